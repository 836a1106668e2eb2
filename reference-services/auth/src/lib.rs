//! The Gantry auth service: accounts, login sessions in Redis, token
//! issuing, JWKS and revocation.
//!
//! Like every service here it is a library: [`run`] takes a bound listener
//! and a shutdown future, so tests bind port 0 and `gantry serve auth` binds
//! the configured port.

pub mod config;
mod openapi;
mod password;
mod profiles;
mod routes;
mod state;
mod validate;

use std::future::Future;
use std::sync::Arc;

use gantry_common::discovery::Discovered;
use gantry_common::jwt::KeySet;
use gantry_common::registration::Registration;
use gantry_common::store::Store;
use tokio::net::TcpListener;

pub use config::AuthConfig;

pub use gantry_common::service::ServiceError as AuthError;

/// Serves auth on `listener`, registered in the registry, until `shutdown`.
pub async fn run(
    listener: TcpListener,
    cfg: AuthConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AuthError> {
    let bound = listener.local_addr()?;
    let instance_id = cfg.service.instance_id(bound);
    let signer = cfg.jwt.signer();
    if cfg.jwt.signing_seed.is_none() && cfg.jwt.kind == gantry_common::jwt::KeyKind::Ed25519 {
        tracing::warn!("GANTRY_JWT_SIGNING_KEY is not set: signing with a key generated for this process only");
    }
    let mut trusted = cfg.jwt.static_keys();
    trusted.extend(signer.verification_key(cfg.jwt.secret.as_deref()));
    let keys = KeySet::new(trusted, &cfg.jwt.issuer, &cfg.jwt.audience, cfg.jwt.leeway);
    let store = Store::new(&cfg.service.redis_url)?;
    let (users, watch) = Discovered::watch(cfg.registry.clone(), "user");
    let profiles = profiles::Profiles::new(users, cfg.jwt.issuer.clone(), cfg.jwt.audience.clone());
    let decoy_hash = tokio::task::spawn_blocking(|| password::hash(&gantry_common::jwt::random_id(16)))
        .await
        .expect("hashing does not panic");
    let registration_spec = cfg.service.registration(bound);
    let registry = cfg.registry.clone();
    let state = Arc::new(state::AppState {
        cfg,
        signer,
        keys,
        store,
        profiles,
        decoy_hash,
    });
    let app = gantry_common::http::standard(routes::router(state), "auth", &instance_id, openapi::DOCUMENT);
    let registration = Registration::start(registry.clone(), registration_spec)
        .await
        .map_err(|source| AuthError::Register {
            addr: registry.base_url().to_owned(),
            source,
        })?;
    tracing::info!(%bound, %instance_id, "auth serving");
    let served = gantry_common::http::serve(listener, app, registration.leave_on(shutdown)).await;
    watch.abort();
    served?;
    Ok(())
}
