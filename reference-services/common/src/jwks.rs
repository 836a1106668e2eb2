//! The keys a verifier trusts, kept fresh from the auth service's JWKS.
//!
//! The set is immutable and swapped whole, so verification reads it without
//! a lock. A token whose `kid` is unknown triggers one refresh (at most every
//! [`MIN_REFRESH_INTERVAL`], so hostile tokens cannot make us hammer auth),
//! which is how a key rotation reaches every verifier without a restart.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use arc_swap::ArcSwap;

use crate::jwt::{Claims, Jwks, JwtConfig, JwtError, KeyKind, KeySet, VerificationKey};

/// Unknown-`kid` refreshes happen at most this often.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// The path of the JWKS on the auth service.
pub const JWKS_PATH: &str = "/auth/.well-known/jwks.json";

/// Fetching the JWKS failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyFetchError {
    #[error("no auth instance is known to fetch the JWKS from")]
    NoSource,
    #[error("fetching the JWKS from {url} failed: {source}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

pub struct KeyStore {
    keys: ArcSwap<KeySet>,
    static_keys: Vec<VerificationKey>,
    issuer: String,
    audience: String,
    leeway: Duration,
    fetches_keys: bool,
    http: reqwest::Client,
    /// When the last unknown-`kid` refresh finished; the lock serializes them.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl KeyStore {
    pub fn new(cfg: &JwtConfig) -> Self {
        let static_keys = cfg.static_keys();
        let keys = KeySet::new(static_keys.clone(), &cfg.issuer, &cfg.audience, cfg.leeway);
        Self {
            keys: ArcSwap::from_pointee(keys),
            static_keys,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway: cfg.leeway,
            fetches_keys: cfg.kind == KeyKind::Ed25519,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(1))
                .timeout(Duration::from_secs(3))
                .build()
                .expect("an HTTP client without TLS always builds"),
            last_refresh: tokio::sync::Mutex::new(None),
        }
    }

    /// The current key set.
    pub fn current(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Verifies against the keys held now, without any I/O.
    pub fn verify_cached(&self, token: &str) -> Result<Claims, JwtError> {
        self.keys.load().verify(token)
    }

    /// Verifies, refreshing the keys first when the token names a `kid` we
    /// do not hold. Refreshes are serialized and at most one per
    /// [`MIN_REFRESH_INTERVAL`]; callers that queued behind a refresh use its
    /// result instead of starting another, so a burst of new-key tokens costs
    /// auth one fetch and hostile `kid`s cannot make verifiers hammer it.
    /// `base_urls` are auth instances.
    pub async fn verify(&self, token: &str, base_urls: &[String]) -> Result<Claims, JwtError> {
        match self.verify_cached(token) {
            Err(JwtError::UnknownKid) if self.fetches_keys => {}
            other => return other,
        }
        let asked = Instant::now();
        let mut last = self.last_refresh.lock().await;
        let answered_since = last.is_some_and(|at| at >= asked);
        if !answered_since {
            if let Some(at) = *last {
                let since = at.elapsed();
                if since < MIN_REFRESH_INTERVAL {
                    tokio::time::sleep(MIN_REFRESH_INTERVAL - since).await;
                }
            }
            if let Err(e) = self.refresh(base_urls).await {
                tracing::warn!(error = %e, "JWKS refresh failed");
            }
            *last = Some(Instant::now());
        }
        drop(last);
        self.verify_cached(token)
    }

    /// Fetches the JWKS from the first auth instance that answers and swaps
    /// in the new set (plus the statically configured keys).
    pub async fn refresh(&self, base_urls: &[String]) -> Result<usize, KeyFetchError> {
        if !self.fetches_keys {
            return Ok(self.keys.load().len());
        }
        let mut last_error = KeyFetchError::NoSource;
        for base in base_urls {
            let url = format!("{base}{JWKS_PATH}");
            let fetched = async {
                self.http
                    .get(&url)
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<Jwks>()
                    .await
            }
            .await;
            match fetched {
                Ok(jwks) => {
                    let mut keys = self.static_keys.clone();
                    keys.extend(jwks.verification_keys());
                    let set = KeySet::new(keys, &self.issuer, &self.audience, self.leeway);
                    let n = set.len();
                    self.keys.store(Arc::new(set));
                    return Ok(n);
                }
                Err(source) => last_error = KeyFetchError::Fetch { url, source },
            }
        }
        Err(last_error)
    }
}
