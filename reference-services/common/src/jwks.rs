//! The keys a verifier trusts, kept fresh from the auth service's JWKS.
//!
//! The set is immutable and swapped whole, so verification reads it without
//! a lock. A token whose `kid` is unknown triggers one refresh (at most every
//! [`MIN_REFRESH_INTERVAL`], so hostile tokens cannot make us hammer auth),
//! which is how a key rotation reaches every verifier without a restart.
//!
//! Auth instances are found through the registry, so a JWKS is only as
//! trustworthy as whoever could register there. What a fetch may do is
//! therefore bounded: it may add keys, but a `kid` already trusted with one
//! key is never re-pointed at another (kids are derived from the key, so a
//! real rotation always brings a new kid), and a key is kept for
//! [`KEY_RETENTION`] after it was last published, so a fetch that omits it
//! cannot invalidate tokens signed by it that are still within their life.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use arc_swap::ArcSwap;

use crate::jwt::{Claims, Jwks, JwtConfig, JwtError, KeyKind, KeySet, TokenKind, VerificationKey};

/// How long a fetched key stays trusted after the last JWKS that published
/// it: the longest a token can live (a session's absolute lifetime), so no
/// token still within its life loses its key.
pub const KEY_RETENTION: Duration = Duration::from_secs(12 * 3600);
/// Unknown-`kid` refreshes happen at most this often.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// The path of the JWKS on the auth service.
pub const JWKS_PATH: &str = "/auth/.well-known/jwks.json";
/// How often [`KeyStore::keep_fresh`] fetches the JWKS again once it has it,
/// so a key auth dropped stops being trusted.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// How soon it tries again while no fetch has worked (auth not up yet).
pub const REFRESH_RETRY: Duration = Duration::from_millis(50);
/// How often it looks again for a source when `sources` names none.
pub const SOURCE_RECHECK: Duration = Duration::from_secs(1);

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
    /// Keys learnt from JWKS fetches, with when a fetch last published each.
    /// Written only by refreshes (rare), never on the request path.
    fetched: Mutex<HashMap<String, (VerificationKey, Instant)>>,
    retention: Duration,
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
            fetched: Mutex::new(HashMap::new()),
            retention: KEY_RETENTION,
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

    /// Keeps fetched keys for `retention` after they were last published
    /// instead of [`KEY_RETENTION`] (tests of expiry).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Keeps the keys current for as long as it runs (spawn it): fetches the
    /// JWKS from the auth instances `sources` names every [`REFRESH_EVERY`],
    /// retrying every [`REFRESH_RETRY`] until a fetch works, and looking for
    /// a source again every [`SOURCE_RECHECK`] while there is none (a gateway
    /// whose routes need no identity). The one refresher of every verifier.
    pub async fn keep_fresh(&self, sources: impl Fn() -> Option<Vec<String>>) {
        loop {
            let pause = match sources() {
                None => SOURCE_RECHECK,
                Some(urls) => match self.refresh(&urls).await {
                    Ok(_) => REFRESH_EVERY,
                    Err(e) => {
                        tracing::debug!(error = %e, "JWKS not fetched; trying again");
                        REFRESH_RETRY
                    }
                },
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// Verifies an access token against the keys held now, without any I/O.
    pub fn verify_cached(&self, token: &str) -> Result<Claims, JwtError> {
        self.keys.load().verify(token)
    }

    /// Verifies a token of `kind` against the keys held now, without any I/O.
    pub fn verify_cached_as(&self, kind: TokenKind, token: &str) -> Result<Claims, JwtError> {
        self.keys.load().verify_as(kind, token)
    }

    /// Verifies, refreshing the keys first when the token names a `kid` we
    /// do not hold. Refreshes are serialized and at most one per
    /// [`MIN_REFRESH_INTERVAL`]; callers that queued behind a refresh use its
    /// result instead of starting another, so a burst of new-key tokens costs
    /// auth one fetch and hostile `kid`s cannot make verifiers hammer it.
    /// `base_urls` are auth instances.
    pub async fn verify(&self, token: &str, base_urls: &[String]) -> Result<Claims, JwtError> {
        self.verify_as(TokenKind::Access, token, base_urls).await
    }

    /// [`KeyStore::verify`] for a token that must be of `kind`.
    pub async fn verify_as(&self, kind: TokenKind, token: &str, base_urls: &[String]) -> Result<Claims, JwtError> {
        match self.verify_cached_as(kind, token) {
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
        self.verify_cached_as(kind, token)
    }

    /// Fetches the JWKS from the first auth instance that answers and swaps
    /// in the new set: the statically configured keys, the keys fetched now
    /// (except a known `kid` with a different key) and those fetched before
    /// and still within [`KEY_RETENTION`].
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
                Ok(jwks) => return Ok(self.accept(&jwks)),
                Err(source) => last_error = KeyFetchError::Fetch { url, source },
            }
        }
        Err(last_error)
    }

    /// Merges a fetched JWKS into the trusted keys (see [`KeyStore::refresh`])
    /// and swaps the new set in; returns how many keys are trusted now.
    pub fn accept(&self, jwks: &Jwks) -> usize {
        let now = Instant::now();
        let mut fetched = self.fetched.lock().unwrap_or_else(|p| p.into_inner());
        for key in jwks.verification_keys() {
            // A configured key is trusted already; a fetched one is refreshed.
            let statically = self.static_keys.iter().find(|k| k.kid == key.kid);
            match statically.or_else(|| fetched.get(&key.kid).map(|(k, _)| k)) {
                Some(k) if !k.same_key(&key) => {
                    tracing::warn!(kid = %key.kid, "JWKS offers another key for a trusted kid; refused");
                }
                _ if statically.is_some() => {}
                _ => {
                    fetched.insert(key.kid.clone(), (key, now));
                }
            }
        }
        fetched.retain(|kid, (_, seen)| {
            let keep = now.duration_since(*seen) <= self.retention;
            if !keep {
                tracing::info!(%kid, "key no longer published for the retention period; dropped");
            }
            keep
        });
        let mut keys = self.static_keys.clone();
        keys.extend(fetched.values().map(|(k, _)| k.clone()));
        let set = KeySet::new(keys, &self.issuer, &self.audience, self.leeway);
        let n = set.len();
        self.keys.store(Arc::new(set));
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{Signer, generate_seed, now_secs, random_id};

    fn config() -> JwtConfig {
        JwtConfig {
            kind: KeyKind::Ed25519,
            secret: None,
            signing_seed: None,
            extra_public_keys: Vec::new(),
            issuer: "gantry-auth".into(),
            audience: "gantry".into(),
            leeway: Duration::from_secs(5),
        }
    }

    fn token(signer: &Signer) -> String {
        let now = now_secs();
        signer.sign(&Claims {
            sub: "u1".into(),
            iss: "gantry-auth".into(),
            aud: "gantry".into(),
            exp: now + 60,
            iat: now,
            nbf: None,
            jti: random_id(8),
            username: None,
            scope: None,
        })
    }

    fn jwks(signers: &[&Signer]) -> Jwks {
        Jwks {
            keys: signers.iter().map(|s| s.jwk().unwrap().clone()).collect(),
        }
    }

    #[test]
    fn a_fetch_cannot_repoint_a_trusted_kid() {
        let store = KeyStore::new(&config());
        let real = Signer::ed25519(generate_seed());
        store.accept(&jwks(&[&real]));
        assert!(store.verify_cached(&token(&real)).is_ok());
        // A rogue JWKS publishes its own key under the real kid.
        let rogue = Signer::ed25519(generate_seed());
        let mut forged = rogue.jwk().unwrap().clone();
        forged.kid = Some(real.kid().to_owned());
        store.accept(&Jwks { keys: vec![forged] });
        assert!(
            store.verify_cached(&token(&real)).is_ok(),
            "the real key still verifies"
        );
        // A token signed by the rogue key, naming the real kid: the real
        // token's header over the rogue's payload and signature.
        let (real_token, rogue_signed) = (token(&real), token(&rogue));
        let header = real_token.split('.').next().unwrap();
        let rest = rogue_signed.split_once('.').unwrap().1;
        let rogue_token = format!("{header}.{rest}");
        assert_eq!(store.verify_cached(&rogue_token), Err(JwtError::BadSignature));
    }

    #[test]
    fn a_fetch_cannot_repoint_a_configured_kid_either() {
        let configured = Signer::ed25519(generate_seed());
        let mut cfg = config();
        let x = public_bytes(&configured);
        cfg.extra_public_keys = vec![(configured.kid().to_owned(), x)];
        let store = KeyStore::new(&cfg);
        let rogue = Signer::ed25519(generate_seed());
        let mut forged = rogue.jwk().unwrap().clone();
        forged.kid = Some(configured.kid().to_owned());
        assert_eq!(store.accept(&Jwks { keys: vec![forged] }), 1, "nothing added");
        let (real_token, rogue_signed) = (token(&configured), token(&rogue));
        let rogue_token = format!(
            "{}.{}",
            real_token.split('.').next().unwrap(),
            rogue_signed.split_once('.').unwrap().1
        );
        assert!(store.verify_cached(&real_token).is_ok());
        assert_eq!(store.verify_cached(&rogue_token), Err(JwtError::BadSignature));
    }

    /// The public key bytes a signer publishes.
    fn public_bytes(signer: &Signer) -> [u8; 32] {
        use base64::Engine;
        let x = signer.jwk().unwrap().x.clone().unwrap();
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(x)
            .unwrap()
            .try_into()
            .unwrap()
    }

    #[test]
    fn a_fetch_that_omits_a_key_does_not_drop_it_within_the_retention() {
        let store = KeyStore::new(&config());
        let old = Signer::ed25519(generate_seed());
        let new = Signer::ed25519(generate_seed());
        store.accept(&jwks(&[&old]));
        assert_eq!(store.accept(&jwks(&[&new])), 2, "added, not replaced");
        assert!(store.verify_cached(&token(&old)).is_ok());
        assert!(store.verify_cached(&token(&new)).is_ok());
    }

    #[test]
    fn keys_no_longer_published_go_after_the_retention() {
        let store = KeyStore::new(&config()).with_retention(Duration::ZERO);
        let old = Signer::ed25519(generate_seed());
        let new = Signer::ed25519(generate_seed());
        store.accept(&jwks(&[&old]));
        assert_eq!(store.accept(&jwks(&[&new])), 1);
        assert_eq!(store.verify_cached(&token(&old)), Err(JwtError::UnknownKid));
    }
}
