//! Who is calling, decided at the edge.
//!
//! A bearer token is verified once and then cached until its `exp`, so a hot
//! token costs a map lookup, not a signature check. A `SESSION` cookie is
//! looked up in Redis (`session:<id>` → JWT) and cached for at most a few
//! seconds; revocations published by auth drop both caches' entries at once.
//! Redis down: session requests fail closed (503), bearer requests go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use gantry_common::error::ApiError;
use gantry_common::jwks::KeyStore;
use gantry_common::jwt::now_secs;
use gantry_common::session::{self, Revocation};
use gantry_common::store::Store;
use http::HeaderValue;
use redis::Cmd;
use tokio::time::Instant;

use crate::shard::Sharded;

/// Beyond this many cached tokens or sessions the cache is emptied rather
/// than grown: a bound against memory exhaustion, not an eviction policy.
pub const MAX_CACHE_ENTRIES: usize = 100_000;
/// How long the gateway waits for Redis to say whether a token is revoked
/// before letting it through on its signature alone.
pub const DENYLIST_TIMEOUT: Duration = Duration::from_millis(250);

/// A fast, randomly seeded hasher: tokens are long, and only verified ones
/// are ever inserted, so SipHash's flood resistance buys nothing here.
type Hasher = foldhash::fast::RandomState;

#[derive(Debug)]
struct TokenEntry {
    exp: u64,
    jti: Box<str>,
}

#[derive(Debug)]
struct SessionEntry {
    /// `Bearer <jwt>`, ready to be sent upstream (cloning it does not allocate).
    authorization: HeaderValue,
    exp: u64,
    jti: Box<str>,
    fetched: Instant,
}

/// Why identity could not be established.
#[derive(Debug)]
pub enum Denied {
    /// 401: no identity, or a bad one.
    Unauthorized(&'static str),
    /// 503: the session store cannot be asked.
    StoreDown,
}

impl Denied {
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Denied::Unauthorized(why) => ApiError::unauthorized(*why),
            Denied::StoreDown => {
                let mut e = ApiError::unavailable(
                    "session_store_unavailable",
                    "sessions cannot be checked right now; retry shortly or use a bearer token",
                );
                e.retry_after = Some(1);
                e
            }
        }
    }
}

#[derive(Default)]
pub struct IdentityStats {
    pub token_hits: AtomicU64,
    pub token_misses: AtomicU64,
    pub session_hits: AtomicU64,
    pub session_lookups: AtomicU64,
    pub revocations: AtomicU64,
}

pub struct Identity {
    keys: KeyStore,
    store: Store,
    tokens: DashMap<Box<str>, TokenEntry, Hasher>,
    sessions: DashMap<Box<str>, SessionEntry, Hasher>,
    /// jti → exp of tokens revoked while this gateway was listening.
    revoked: DashMap<Box<str>, u64, Hasher>,
    session_ttl: Duration,
    pub stats: Sharded<IdentityStats>,
}

impl Identity {
    pub fn new(keys: KeyStore, store: Store, session_ttl: Duration, workers: usize) -> Self {
        Self {
            keys,
            store,
            tokens: DashMap::with_hasher(Hasher::default()),
            sessions: DashMap::with_hasher(Hasher::default()),
            revoked: DashMap::with_hasher(Hasher::default()),
            session_ttl,
            stats: Sharded::new(workers),
        }
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Checks a bearer token. `auth_urls` is called only when the token's key
    /// is unknown and the JWKS must be fetched.
    pub async fn bearer(&self, token: &str, auth_urls: impl FnOnce() -> Vec<String>) -> Result<(), Denied> {
        // The hot path: a map lookup, no allocation, no signature check.
        if self.tokens.get(token).is_some_and(|e| e.exp > now_secs()) {
            self.stats.local().token_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.stats.local().token_misses.fetch_add(1, Ordering::Relaxed);
        self.verify_and_cache(token, auth_urls).await.map(drop)
    }

    /// The `(exp, jti)` of a token verified before and not expired since.
    /// Revocations remove tokens from the cache, so a hit is still good.
    fn cached_token(&self, token: &str) -> Option<(u64, Box<str>)> {
        let entry = self.tokens.get(token).filter(|e| e.exp > now_secs())?;
        self.stats.local().token_hits.fetch_add(1, Ordering::Relaxed);
        Some((entry.exp, entry.jti.clone()))
    }

    async fn verify_and_cache(
        &self,
        token: &str,
        auth_urls: impl FnOnce() -> Vec<String>,
    ) -> Result<(u64, Box<str>), Denied> {
        let claims = match self.keys.verify_cached(token) {
            Err(gantry_common::jwt::JwtError::UnknownKid) => self.keys.verify(token, &auth_urls()).await,
            other => other,
        }
        .map_err(|_| Denied::Unauthorized("invalid or expired token"))?;
        if self.is_revoked(&claims.iss, &claims.jti).await {
            return Err(Denied::Unauthorized("token has been revoked"));
        }
        if self.tokens.len() >= MAX_CACHE_ENTRIES {
            self.tokens.clear();
        }
        let jti: Box<str> = claims.jti.into();
        self.tokens.insert(
            token.into(),
            TokenEntry {
                exp: claims.exp,
                jti: jti.clone(),
            },
        );
        Ok((claims.exp, jti))
    }

    async fn is_revoked(&self, iss: &str, jti: &str) -> bool {
        if self.revoked.contains_key(jti) {
            return true;
        }
        // Revocations from before this gateway subscribed live in Redis. If
        // Redis cannot answer, the signature stands: bearer requests must
        // keep working through a Redis outage.
        let cmd = Cmd::exists(session::revoked_key(iss, jti));
        let check = self.store.run::<bool>(&cmd);
        match tokio::time::timeout(DENYLIST_TIMEOUT, check).await {
            Ok(Ok(revoked)) => revoked,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "denylist unavailable; trusting the signature");
                false
            }
            Err(_) => false,
        }
    }

    /// Resolves a session id to the `Authorization` value to send upstream.
    pub async fn session(&self, sid: &str, auth_urls: impl FnOnce() -> Vec<String>) -> Result<HeaderValue, Denied> {
        if !session::is_well_formed(sid) {
            return Err(Denied::Unauthorized("invalid session"));
        }
        if let Some(entry) = self.sessions.get(sid)
            && entry.fetched.elapsed() < self.session_ttl
            && entry.exp > now_secs()
        {
            self.stats.local().session_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(entry.authorization.clone());
        }
        self.stats.local().session_lookups.fetch_add(1, Ordering::Relaxed);
        let cmd = Cmd::hget(session::key(sid), session::JWT_FIELD);
        let lookup = self.store.run::<Option<String>>(&cmd);
        let jwt = lookup
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "session lookup failed");
                Denied::StoreDown
            })?
            .ok_or(Denied::Unauthorized("session has ended; log in again"))?;
        // The session's token was most likely verified already: then the
        // lookup costs one Redis round trip and no signature check.
        let (exp, jti) = match self.cached_token(&jwt) {
            Some(hit) => hit,
            None => self.verify_and_cache(&jwt, auth_urls).await?,
        };
        let authorization =
            HeaderValue::from_str(&format!("Bearer {jwt}")).map_err(|_| Denied::Unauthorized("invalid session"))?;
        if self.sessions.len() >= MAX_CACHE_ENTRIES {
            self.sessions.clear();
        }
        self.sessions.insert(
            sid.into(),
            SessionEntry {
                authorization: authorization.clone(),
                exp,
                jti,
                fetched: Instant::now(),
            },
        );
        Ok(authorization)
    }

    /// Applies a revocation message from auth.
    pub fn apply(&self, revocation: &Revocation) {
        self.stats.local().revocations.fetch_add(1, Ordering::Relaxed);
        if let Some(sid) = &revocation.sid {
            self.sessions.remove(sid.as_str());
        }
        if let Some(jti) = &revocation.jti {
            self.revoked.insert(jti.as_str().into(), revocation.exp);
            self.tokens.retain(|_, e| *e.jti != **jti);
            self.sessions.retain(|_, e| *e.jti != **jti);
        }
        let now = now_secs();
        if self.revoked.len() > 1_000 {
            self.revoked.retain(|_, exp| *exp > now);
        }
    }

    /// Forgets everything cached: called when the revocation feed was
    /// interrupted, since messages may have been missed.
    pub fn forget_all(&self) {
        self.tokens.clear();
        self.sessions.clear();
    }

    /// Follows auth's revocation channel for as long as the gateway runs,
    /// resubscribing after Redis outages.
    pub async fn follow_revocations(self: Arc<Self>) {
        use futures_util::StreamExt;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.store.client().get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(session::REVOCATION_CHANNEL).await {
                    Ok(()) => {
                        tracing::info!("following revocations");
                        backoff = Duration::from_millis(100);
                        self.forget_all();
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            let payload: Vec<u8> = msg.get_payload().unwrap_or_default();
                            match serde_json::from_slice::<Revocation>(&payload) {
                                Ok(r) => self.apply(&r),
                                Err(e) => tracing::warn!(error = %e, "unreadable revocation message"),
                            }
                        }
                        tracing::warn!("revocation feed lost; dropping cached identities");
                        self.forget_all();
                    }
                    Err(e) => tracing::warn!(error = %e, "could not subscribe to revocations"),
                },
                Err(e) => tracing::debug!(error = %e, "revocation feed: redis unreachable"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
