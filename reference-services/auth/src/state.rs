//! What every auth handler shares.

use gantry_common::jwt::{KeySet, Signer};
use gantry_common::store::Store;

use crate::config::AuthConfig;
use crate::limiter;
use crate::password::{self, HashGate};
use crate::profiles::Profiles;

pub struct AppState {
    pub cfg: AuthConfig,
    pub signer: Signer,
    /// Auth verifies tokens presented to it (logout, refresh) with the keys
    /// it publishes.
    pub keys: KeySet,
    pub store: Store,
    pub profiles: Profiles,
    /// A real hash to verify against when the account does not exist, so an
    /// unknown username costs as much time as a wrong password.
    pub decoy_hash: String,
    /// Every password hash and check goes through here.
    pub gate: HashGate,
}

impl AppState {
    /// Keys, the store, the hashing gate and a decoy hash from `cfg`.
    pub async fn new(cfg: AuthConfig, profiles: Profiles) -> Result<Self, gantry_common::config::ConfigError> {
        let signer = cfg.jwt.signer();
        if cfg.jwt.signing_seed.is_none() && cfg.jwt.kind == gantry_common::jwt::KeyKind::Ed25519 {
            tracing::warn!("GANTRY_JWT_SIGNING_KEY is not set: signing with a key generated for this process only");
        }
        let mut trusted = cfg.jwt.static_keys();
        trusted.extend(signer.verification_key(cfg.jwt.secret.as_deref()));
        let keys = KeySet::new(trusted, &cfg.jwt.issuer, &cfg.jwt.audience, cfg.jwt.leeway);
        let store = Store::new(&cfg.service.redis_url)?;
        let decoy_hash = tokio::task::spawn_blocking(|| password::hash(&gantry_common::jwt::random_id(16)))
            .await
            .expect("hashing does not panic");
        let gate = HashGate::new(cfg.hash_concurrency, cfg.hash_queue);
        Ok(Self {
            cfg,
            signer,
            keys,
            store,
            profiles,
            decoy_hash,
            gate,
        })
    }

    /// The login limits, as configured.
    pub fn limits(&self) -> limiter::Limits {
        limiter::Limits {
            max_failures: self.cfg.max_failures,
            account_max_failures: self.cfg.account_max_failures,
            first_lockout: self.cfg.first_lockout,
        }
    }
}
