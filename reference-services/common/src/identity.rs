//! Who is calling: the one verifier of the gateway and of every service that
//! checks tokens itself (the user service; a team's Rust service).
//!
//! A bearer token is verified once and then cached until its `exp`, so a hot
//! token costs a map lookup, not a signature check nor a Redis round trip:
//! Redis's denylist is asked only on a miss, and auth's revocations, followed
//! over pub/sub ([`Identity::follow_revocations`]), drop a revoked token from
//! the cache at once (a lost feed forgets every cached identity). A `SESSION` cookie is
//! looked up in Redis (`session:<id>` → JWT) and cached for at most a few
//! seconds; revocations published by auth drop both caches' entries at once.
//! Redis down: session requests fail closed (503), bearer requests go on.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::ApiError;
use crate::jwks::KeyStore;
use crate::jwt::{Claims, now_secs};
use crate::session::{self, Revocation};
use crate::store::Store;
use dashmap::DashMap;
use http::HeaderValue;
use redis::Cmd;
use tokio::time::Instant;

use crate::shard::Sharded;

/// Beyond this many cached tokens or sessions the caches are emptied rather
/// than grown: a bound against memory exhaustion, not an eviction policy.
pub const MAX_CACHE_ENTRIES: usize = 100_000;
/// Revoked `jti`s remembered in memory; beyond this the oldest are dropped.
/// Dropping is safe: this map is only a fast path. A token that is not in
/// the cache is checked against Redis's denylist before it is trusted, so a
/// forgotten revocation is asked for again (and a revoked token is never
/// cached, nor kept in the cache: a revocation removes it at once).
pub const MAX_REVOKED: usize = 100_000;
/// Cached tokens or sessions listed under one `jti` in the revocation index.
/// One token and one session is the normal case; beyond this a token or
/// session is served but not cached, since a revocation could not find it.
pub const MAX_ENTRIES_PER_JTI: usize = 8;
/// How long the gateway waits for Redis to say whether a token is revoked
/// before letting it through on its signature alone (and not caching it).
pub const DENYLIST_TIMEOUT: Duration = Duration::from_millis(250);
/// How often the revocation feed is pinged …
pub const FEED_PING_INTERVAL: Duration = Duration::from_secs(1);
/// … and how long its answer (or a subscription's) may take. A feed that
/// goes silent without closing (a partition, a NAT that forgot the
/// connection) would otherwise miss revocations unnoticed: it is dropped,
/// every cached identity forgotten, and it subscribes again.
pub const FEED_PING_TIMEOUT: Duration = Duration::from_secs(1);

/// A fast, randomly seeded hasher: tokens are long, and only verified ones
/// are ever inserted, so SipHash's flood resistance buys nothing here.
type Hasher = foldhash::fast::RandomState;

/// Who a verified token says is calling, as header values made once when
/// the token is first verified, so passing them on (`identity_headers`)
/// costs a reference count, not an allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`: sent as `X-User-Id`.
    pub user_id: HeaderValue,
    /// The token's `username`, when it has one: sent as `X-Username`.
    pub username: Option<HeaderValue>,
}

impl Caller {
    /// The caller `claims` name. A `sub` that cannot be a header value is
    /// refused: a service trusting `X-User-Id` must never get a wrong one.
    fn of(claims: &Claims) -> Result<Self, Denied> {
        let user_id =
            HeaderValue::from_str(&claims.sub).map_err(|_| Denied::Unauthorized("invalid or expired token"))?;
        let username = claims.username.as_deref().and_then(|u| HeaderValue::from_str(u).ok());
        Ok(Self { user_id, username })
    }
}

#[derive(Debug)]
struct TokenEntry {
    exp: u64,
    jti: Arc<str>,
    caller: Caller,
    /// Every claim, for a service that reads more than who is calling.
    claims: Arc<Claims>,
}

#[derive(Debug)]
struct SessionEntry {
    /// `Bearer <jwt>`, ready to be sent upstream (cloning it does not allocate).
    authorization: HeaderValue,
    exp: u64,
    jti: Arc<str>,
    caller: Caller,
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

const REVOKED: Denied = Denied::Unauthorized("token has been revoked");

#[derive(Default)]
pub struct IdentityStats {
    pub token_hits: AtomicU64,
    pub token_misses: AtomicU64,
    pub session_hits: AtomicU64,
    pub session_lookups: AtomicU64,
    pub revocations: AtomicU64,
    /// Denylist checks that timed out or failed: the token was let through
    /// on its signature and not cached.
    pub denylist_unanswered: AtomicU64,
    /// Times the revocation feed was lost (closed, or silent past its ping)
    /// and every cached identity forgotten.
    pub feed_lost: AtomicU64,
}

/// What Redis's denylist said about a `jti`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denylist {
    Revoked,
    NotRevoked,
    /// No answer in time, or an error: nothing is known.
    Unknown,
}

/// A verified token: its `exp`, `jti`, caller and claims, and whether it may be cached.
struct Verified {
    exp: u64,
    jti: Arc<str>,
    caller: Caller,
    claims: Arc<Claims>,
    /// The denylist answered (not revoked) and the token is in the cache.
    cached: bool,
}

/// Whether an entry could be put in a cache.
#[derive(Debug, PartialEq, Eq)]
enum Cached {
    Yes,
    /// Serve it, but it could not be indexed: not cached.
    No,
    /// Its `jti` was revoked meanwhile.
    Revoked,
}

/// What is cached under one `jti`, so a revocation reaches it without a scan.
#[derive(Debug, Default)]
struct Refs {
    tokens: Vec<Arc<str>>,
    sessions: Vec<Arc<str>>,
}

/// Revoked `jti`s in arrival order, bounded by [`MAX_REVOKED`]: the oldest
/// (and any expired at the front) are dropped first.
#[derive(Debug, Default)]
struct Revoked {
    exp: HashMap<Arc<str>, u64, Hasher>,
    order: VecDeque<Arc<str>>,
}

impl Revoked {
    fn contains(&self, jti: &str) -> bool {
        self.exp.contains_key(jti)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.exp.len()
    }

    /// Amortized O(1): each entry is pushed and popped once.
    fn insert(&mut self, jti: &str, exp: u64, now: u64) {
        if self.exp.contains_key(jti) {
            return;
        }
        while let Some(front) = self.order.front()
            && (self.order.len() >= MAX_REVOKED || self.exp.get(front).is_none_or(|e| *e <= now))
        {
            if let Some(front) = self.order.pop_front() {
                self.exp.remove(&front);
            }
        }
        let jti: Arc<str> = jti.into();
        self.exp.insert(jti.clone(), exp);
        self.order.push_back(jti);
    }
}

/// Everything the request path does not read: the revocation index and the
/// revoked set. Every change to the caches is made holding it, so the index
/// always lists every cached entry (it may list more: harmless).
#[derive(Debug, Default)]
struct Index {
    by_jti: HashMap<Arc<str>, Refs, Hasher>,
    revoked: Revoked,
}

pub struct Identity {
    keys: KeyStore,
    store: Store,
    /// Read lock-free on the request path; written only under `index`.
    tokens: DashMap<Arc<str>, TokenEntry, Hasher>,
    sessions: DashMap<Arc<str>, SessionEntry, Hasher>,
    index: Mutex<Index>,
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
            index: Mutex::default(),
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

    /// The index, even if a panic poisoned it: it holds no invariant a
    /// half-done change could break beyond listing an entry too many.
    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks a bearer token and says who it names. `auth_urls` is called
    /// only when the token's key is unknown and the JWKS must be fetched.
    pub async fn bearer(&self, token: &str, auth_urls: impl FnOnce() -> Vec<String>) -> Result<Caller, Denied> {
        // The hot path: a map lookup, no allocation, no signature check.
        if let Some(entry) = self.tokens.get(token)
            && entry.exp > now_secs()
        {
            self.stats.local().token_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(entry.caller.clone());
        }
        self.stats.local().token_misses.fetch_add(1, Ordering::Relaxed);
        self.verify_and_cache(token, auth_urls).await.map(|v| v.caller)
    }

    /// Checks a user's access token and gives its claims: what a service
    /// that verifies tokens itself calls on every request. A hit costs a
    /// map lookup and a reference count.
    pub async fn access(&self, token: &str, auth_urls: impl FnOnce() -> Vec<String>) -> Result<Arc<Claims>, Denied> {
        if let Some(entry) = self.tokens.get(token)
            && entry.exp > now_secs()
        {
            self.stats.local().token_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(entry.claims.clone());
        }
        self.stats.local().token_misses.fetch_add(1, Ordering::Relaxed);
        self.verify_and_cache(token, auth_urls).await.map(|v| v.claims)
    }

    /// The `(exp, jti, caller)` of a token verified before and not expired
    /// since. Revocations remove tokens from the cache, so a hit is still good.
    fn cached_token(&self, token: &str) -> Option<(u64, Arc<str>, Caller)> {
        let entry = self.tokens.get(token).filter(|e| e.exp > now_secs())?;
        self.stats.local().token_hits.fetch_add(1, Ordering::Relaxed);
        Some((entry.exp, entry.jti.clone(), entry.caller.clone()))
    }

    async fn verify_and_cache(&self, token: &str, auth_urls: impl FnOnce() -> Vec<String>) -> Result<Verified, Denied> {
        let claims = match self.keys.verify_cached(token) {
            Err(crate::jwt::JwtError::UnknownKid) => self.keys.verify(token, &auth_urls()).await,
            other => other,
        }
        .map_err(|_| Denied::Unauthorized("invalid or expired token"))?;
        let caller = Caller::of(&claims)?;
        let (exp, jti): (u64, Arc<str>) = (claims.exp, claims.jti.as_str().into());
        let claims = Arc::new(claims);
        match self.denylist(&claims.iss, &jti).await {
            Denylist::Revoked => Err(REVOKED),
            // Let through on the signature, as Redis outages must not stop
            // bearer requests; but not cached, so the next request asks again.
            Denylist::Unknown => {
                self.stats.local().denylist_unanswered.fetch_add(1, Ordering::Relaxed);
                Ok(Verified {
                    exp,
                    jti,
                    caller,
                    claims,
                    cached: false,
                })
            }
            Denylist::NotRevoked => match self.cache_token(token, &jti, &caller, &claims) {
                Cached::Revoked => Err(REVOKED),
                cached => Ok(Verified {
                    exp,
                    jti,
                    caller,
                    claims,
                    cached: cached == Cached::Yes,
                }),
            },
        }
    }

    /// Caches a token the denylist has cleared, unless its `jti` was
    /// revoked while Redis was asked.
    fn cache_token(&self, token: &str, jti: &Arc<str>, caller: &Caller, claims: &Arc<Claims>) -> Cached {
        let mut index = self.index();
        let key = match self.link(&mut index, jti, self.tokens.len(), |refs| &mut refs.tokens, token) {
            Ok(key) => key,
            Err(not) => return not,
        };
        self.tokens.insert(
            key,
            TokenEntry {
                exp: claims.exp,
                jti: jti.clone(),
                caller: caller.clone(),
                claims: claims.clone(),
            },
        );
        Cached::Yes
    }

    /// Lists `key` under `jti` in the index (in the list `which` picks), so
    /// a revocation finds it: the key to cache it under, or why not —
    /// [`Cached::Revoked`] when `jti` was revoked while Redis was asked,
    /// [`Cached::No`] past [`MAX_ENTRIES_PER_JTI`]. Empties the caches at
    /// their bound (`cached` is the size of the one `key` goes into).
    fn link(
        &self,
        index: &mut Index,
        jti: &Arc<str>,
        cached: usize,
        which: fn(&mut Refs) -> &mut Vec<Arc<str>>,
        key: &str,
    ) -> Result<Arc<str>, Cached> {
        if index.revoked.contains(jti) {
            return Err(Cached::Revoked);
        }
        if cached >= MAX_CACHE_ENTRIES || index.by_jti.len() >= 2 * MAX_CACHE_ENTRIES {
            self.clear(index);
        }
        let listed = which(index.by_jti.entry(jti.clone()).or_default());
        if let Some(known) = listed.iter().find(|k| ***k == *key) {
            return Ok(known.clone());
        }
        if listed.len() >= MAX_ENTRIES_PER_JTI {
            return Err(Cached::No);
        }
        let key: Arc<str> = key.into();
        listed.push(key.clone());
        Ok(key)
    }

    async fn denylist(&self, iss: &str, jti: &str) -> Denylist {
        if self.index().revoked.contains(jti) {
            return Denylist::Revoked;
        }
        // Revocations from before this gateway subscribed live in Redis.
        let cmd = Cmd::exists(session::revoked_key(iss, jti));
        let check = self.store.run::<bool>(&cmd);
        match tokio::time::timeout(DENYLIST_TIMEOUT, check).await {
            Ok(Ok(true)) => Denylist::Revoked,
            Ok(Ok(false)) => Denylist::NotRevoked,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "denylist unavailable; trusting the signature for this request");
                Denylist::Unknown
            }
            Err(_) => {
                tracing::debug!("denylist did not answer in time; trusting the signature for this request");
                Denylist::Unknown
            }
        }
    }

    /// Resolves a session id to the `Authorization` value to send upstream
    /// and the caller its token names.
    pub async fn session(
        &self,
        sid: &str,
        auth_urls: impl FnOnce() -> Vec<String>,
    ) -> Result<(HeaderValue, Caller), Denied> {
        if !session::is_well_formed(sid) {
            return Err(Denied::Unauthorized("invalid session"));
        }
        if let Some(entry) = self.sessions.get(sid)
            && entry.fetched.elapsed() < self.session_ttl
            && entry.exp > now_secs()
        {
            self.stats.local().session_hits.fetch_add(1, Ordering::Relaxed);
            return Ok((entry.authorization.clone(), entry.caller.clone()));
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
        let (exp, jti, caller, cacheable) = match self.cached_token(&jwt) {
            Some((exp, jti, caller)) => (exp, jti, caller, true),
            None => {
                let v = self.verify_and_cache(&jwt, auth_urls).await?;
                (v.exp, v.jti, v.caller, v.cached)
            }
        };
        let authorization =
            HeaderValue::from_str(&format!("Bearer {jwt}")).map_err(|_| Denied::Unauthorized("invalid session"))?;
        if cacheable && self.cache_session(sid, &authorization, exp, &jti, &caller) == Cached::Revoked {
            return Err(REVOKED);
        }
        Ok((authorization, caller))
    }

    fn cache_session(
        &self,
        sid: &str,
        authorization: &HeaderValue,
        exp: u64,
        jti: &Arc<str>,
        caller: &Caller,
    ) -> Cached {
        let mut index = self.index();
        let key = match self.link(&mut index, jti, self.sessions.len(), |refs| &mut refs.sessions, sid) {
            Ok(key) => key,
            Err(not) => return not,
        };
        let entry = SessionEntry {
            authorization: authorization.clone(),
            exp,
            jti: jti.clone(),
            caller: caller.clone(),
            fetched: Instant::now(),
        };
        // A session now holding another token: its old `jti` no longer
        // needs to list it.
        if let Some(old) = self.sessions.insert(key, entry)
            && old.jti != *jti
        {
            unlink_session(&mut index, &old.jti, sid);
        }
        Cached::Yes
    }

    /// Applies a revocation message from auth: O(1), whatever is cached.
    pub fn apply(&self, revocation: &Revocation) {
        self.stats.local().revocations.fetch_add(1, Ordering::Relaxed);
        let mut index = self.index();
        if let Some(sid) = &revocation.sid
            && let Some((_, entry)) = self.sessions.remove(sid.as_str())
        {
            unlink_session(&mut index, &entry.jti, sid);
        }
        if let Some(jti) = &revocation.jti {
            index.revoked.insert(jti, revocation.exp, now_secs());
            if let Some(refs) = index.by_jti.remove(jti.as_str()) {
                for token in &refs.tokens {
                    self.tokens.remove(token);
                }
                for sid in &refs.sessions {
                    self.sessions.remove(sid);
                }
            }
        }
    }

    /// Empties the caches and their index together.
    fn clear(&self, index: &mut Index) {
        self.tokens.clear();
        self.sessions.clear();
        index.by_jti.clear();
    }

    /// Forgets everything cached: called when the revocation feed was
    /// interrupted, since messages may have been missed.
    pub fn forget_all(&self) {
        let mut index = self.index();
        self.clear(&mut index);
    }

    /// Follows auth's revocation channel for as long as the gateway runs,
    /// resubscribing after Redis outages. Pub/sub is fire-and-forget: a
    /// message published while the feed was down is lost, so every
    /// (re)subscription starts by forgetting every cached identity, and a
    /// feed that stops answering its ping is treated as down.
    pub async fn follow_revocations(self: Arc<Self>) {
        use futures_util::StreamExt;
        let mut backoff = Duration::from_millis(100);
        loop {
            let subscribed = tokio::time::timeout(FEED_PING_TIMEOUT, async {
                let (mut sink, stream) = self.store.client().get_async_pubsub().await?.split();
                sink.subscribe(session::REVOCATION_CHANNEL).await?;
                Ok::<_, redis::RedisError>((sink, stream))
            })
            .await;
            match subscribed {
                Ok(Ok((mut sink, mut messages))) => {
                    tracing::info!("following revocations");
                    backoff = Duration::from_millis(100);
                    self.forget_all();
                    let mut ping = tokio::time::interval(FEED_PING_INTERVAL);
                    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    ping.tick().await;
                    let why = loop {
                        tokio::select! {
                            msg = messages.next() => {
                                let Some(msg) = msg else { break "closed" };
                                let payload: Vec<u8> = msg.get_payload().unwrap_or_default();
                                match serde_json::from_slice::<Revocation>(&payload) {
                                    Ok(r) => self.apply(&r),
                                    Err(e) => tracing::warn!(error = %e, "unreadable revocation message"),
                                }
                            }
                            _ = ping.tick() => {
                                let pong = tokio::time::timeout(FEED_PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                                if !matches!(pong, Ok(Ok(_))) {
                                    break "silent past its ping";
                                }
                            }
                        }
                    };
                    tracing::warn!(why, "revocation feed lost; dropping cached identities");
                    self.stats.local().feed_lost.fetch_add(1, Ordering::Relaxed);
                    self.forget_all();
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "revocation feed: redis unreachable"),
                Err(_) => tracing::debug!("revocation feed: no subscription in time"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

/// Drops `sid` from what `jti` lists.
fn unlink_session(index: &mut Index, jti: &str, sid: &str) {
    if let Some(refs) = index.by_jti.get_mut(jti) {
        refs.sessions.retain(|s| **s != *sid);
        if refs.tokens.is_empty() && refs.sessions.is_empty() {
            index.by_jti.remove(jti);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use crate::jwt::{JwtConfig, KeyKind, Signer, now_secs};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-gateway-tests";

    fn identity(redis_url: &str) -> Identity {
        let mut cfg = JwtConfig::from_env().expect("the default JWT config");
        cfg.kind = KeyKind::Hs256;
        cfg.secret = Some(Arc::from(SECRET));
        let store = Store::new(redis_url).expect("a redis URL");
        Identity::new(KeyStore::new(&cfg), store, Duration::from_secs(5), 1)
    }

    /// A token the identity above trusts, with `jti`.
    fn token(jti: &str) -> String {
        let cfg = JwtConfig::from_env().expect("the default JWT config");
        let now = now_secs();
        Signer::hs256(SECRET).sign(&serde_json::json!({
            "sub": "u_1", "iss": cfg.issuer, "aud": cfg.audience,
            "iat": now, "exp": now + 600, "jti": jti, "username": "ada",
        }))
    }

    /// Claims expiring at `exp`, as a cached token carries them.
    fn claims(exp: u64) -> Arc<Claims> {
        Arc::new(Claims {
            sub: "u_1".into(),
            iss: "gantry-auth".into(),
            aud: "gantry".into(),
            exp,
            iat: exp - 60,
            nbf: None,
            jti: "j".into(),
            username: Some("ada".into()),
            scope: None,
        })
    }

    fn caller() -> Caller {
        Caller {
            user_id: HeaderValue::from_static("u_1"),
            username: Some(HeaderValue::from_static("ada")),
        }
    }

    fn revocation(jti: Option<&str>, sid: Option<&str>) -> Revocation {
        serde_json::from_value(serde_json::json!({"jti": jti, "sid": sid, "exp": now_secs() + 600}))
            .expect("a revocation message")
    }

    fn stat(id: &Identity, read: fn(&IdentityStats) -> &AtomicU64) -> u64 {
        id.stats.all().map(|s| read(s).load(Ordering::Relaxed)).sum()
    }

    /// A Redis that speaks just enough RESP2: `EXISTS` answers `exists`,
    /// `HGET session:<sid> jwt` answers `session`'s JWT, anything else `+OK`.
    async fn fake_redis(exists: bool, session: Option<(String, String)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let session = session.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = conn.read(&mut chunk).await
                        && n > 0
                    {
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some((args, used)) = parse_command(&buf) {
                            buf.drain(..used);
                            let reply = match args.first().map(|a| a.to_ascii_uppercase()).as_deref() {
                                Some(b"EXISTS") => format!(":{}\r\n", u8::from(exists)),
                                Some(b"PING") => "+PONG\r\n".to_owned(),
                                Some(b"HGET") => match &session {
                                    Some((sid, jwt)) if args[1] == session::key(sid).as_bytes() => {
                                        format!("${}\r\n{jwt}\r\n", jwt.len())
                                    }
                                    _ => "$-1\r\n".to_owned(),
                                },
                                _ => "+OK\r\n".to_owned(),
                            };
                            if conn.write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        format!("redis://{addr}")
    }

    /// One RESP array of bulk strings from the front of `buf`, and its length.
    fn parse_command(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
        fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
            let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
            Some((&buf[at..end], end + 2))
        }
        let (head, mut at) = line(buf, 0)?;
        let n: usize = std::str::from_utf8(head.strip_prefix(b"*")?).ok()?.parse().ok()?;
        let mut args = Vec::with_capacity(n);
        for _ in 0..n {
            let (len, next) = line(buf, at)?;
            let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?).ok()?.parse().ok()?;
            let data = buf.get(next..next + len)?.to_vec();
            at = next + len + 2;
            if buf.len() < at {
                return None;
            }
            args.push(data);
        }
        Some((args, at))
    }

    /// A Redis that accepts connections and never says a word.
    async fn silent_redis() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        format!("redis://{addr}")
    }

    #[tokio::test]
    async fn a_token_the_denylist_cleared_is_cached() {
        let id = identity(&fake_redis(false, None).await);
        let t = token("j1");
        // The caller is the token's, whether verified now or found cached.
        assert_eq!(id.bearer(&t, Vec::new).await.unwrap(), caller());
        assert_eq!(id.bearer(&t, Vec::new).await.unwrap(), caller());
        assert_eq!(stat(&id, |s| &s.token_misses), 1);
        assert_eq!(stat(&id, |s| &s.token_hits), 1);
    }

    #[tokio::test]
    async fn a_token_the_denylist_lists_is_refused() {
        let id = identity(&fake_redis(true, None).await);
        assert!(id.bearer(&token("j1"), Vec::new).await.is_err());
        assert!(id.tokens.is_empty());
    }

    #[tokio::test]
    async fn a_denylist_that_does_not_answer_lets_the_request_through_but_caches_nothing() {
        let id = identity(&silent_redis().await);
        let t = token("j1");
        for _ in 0..2 {
            id.bearer(&t, Vec::new).await.expect("served on the signature");
        }
        // Asked again the second time: no cache hit, two unanswered checks.
        assert_eq!(stat(&id, |s| &s.token_hits), 0);
        assert_eq!(stat(&id, |s| &s.token_misses), 2);
        assert_eq!(stat(&id, |s| &s.denylist_unanswered), 2);
        assert!(id.tokens.is_empty());
    }

    #[tokio::test]
    async fn a_denylist_that_errors_caches_nothing_either() {
        // Nothing listens there: the check fails at once.
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", free.local_addr().unwrap());
        drop(free);
        let id = identity(&url);
        let t = token("j1");
        id.bearer(&t, Vec::new).await.expect("served on the signature");
        id.bearer(&t, Vec::new).await.expect("served on the signature");
        assert_eq!(stat(&id, |s| &s.token_hits), 0);
        assert_eq!(stat(&id, |s| &s.denylist_unanswered), 2);
    }

    #[tokio::test]
    async fn a_revocation_removes_the_token_and_the_session_holding_it_and_nothing_else() {
        let sid = "a".repeat(session::ID_LEN);
        let (t, other) = (token("j1"), token("j2"));
        let id = identity(&fake_redis(false, Some((sid.clone(), t.clone()))).await);
        let (authorization, who) = id.session(&sid, Vec::new).await.unwrap();
        assert_eq!(authorization, format!("Bearer {t}").as_str());
        assert_eq!(who, caller());
        id.bearer(&other, Vec::new).await.unwrap();
        assert!(id.tokens.contains_key(t.as_str()) && id.sessions.contains_key(sid.as_str()));

        id.apply(&revocation(Some("j1"), None));
        assert!(!id.tokens.contains_key(t.as_str()), "the token is still cached");
        assert!(!id.sessions.contains_key(sid.as_str()), "the session is still cached");
        assert!(id.tokens.contains_key(other.as_str()), "an unrelated token was dropped");
        assert!(!id.index().by_jti.contains_key("j1"));
        // Refused from memory, though this Redis would say "not revoked".
        assert!(id.bearer(&t, Vec::new).await.is_err());
        assert!(id.session(&sid, Vec::new).await.is_err());
        assert!(id.bearer(&other, Vec::new).await.is_ok());
    }

    #[tokio::test]
    async fn a_session_revocation_removes_the_session_and_its_index_entry() {
        let sid = "b".repeat(session::ID_LEN);
        let t = token("j1");
        let id = identity(&fake_redis(false, Some((sid.clone(), t.clone()))).await);
        id.session(&sid, Vec::new).await.unwrap();
        id.apply(&revocation(None, Some(&sid)));
        assert!(!id.sessions.contains_key(sid.as_str()));
        let index = id.index();
        let refs = index.by_jti.get("j1").expect("the token is still cached and indexed");
        assert!(refs.sessions.is_empty(), "{refs:?}");
    }

    #[test]
    fn a_revocation_that_raced_the_denylist_check_wins() {
        // The revocation arrives while Redis is being asked: caching after
        // a "not revoked" answer must not bring the token back.
        let id = identity("redis://127.0.0.1:1");
        id.apply(&revocation(Some("j1"), None));
        assert_eq!(
            id.cache_token("t", &Arc::from("j1"), &caller(), &claims(now_secs() + 60)),
            Cached::Revoked
        );
        assert!(id.tokens.is_empty());
    }

    #[test]
    fn the_caches_and_their_index_are_bounded_together() {
        let id = identity("redis://127.0.0.1:1");
        let exp = now_secs() + 60;
        for i in 0..MAX_CACHE_ENTRIES + 10 {
            assert_eq!(
                id.cache_token(&format!("t{i}"), &Arc::from(format!("j{i}")), &caller(), &claims(exp)),
                Cached::Yes
            );
        }
        assert!(id.tokens.len() <= MAX_CACHE_ENTRIES);
        assert_eq!(
            id.index().by_jti.len(),
            id.tokens.len(),
            "the index lists exactly what is cached"
        );
    }

    #[test]
    fn one_jti_indexes_a_bounded_number_of_entries() {
        let id = identity("redis://127.0.0.1:1");
        let (exp, jti) = (now_secs() + 60, Arc::from("j1"));
        for i in 0..MAX_ENTRIES_PER_JTI {
            assert_eq!(
                id.cache_token(&format!("t{i}"), &jti, &caller(), &claims(exp)),
                Cached::Yes
            );
        }
        // One more cannot be indexed, so it is not cached (it is still served).
        assert_eq!(
            id.cache_token("one-too-many", &jti, &caller(), &claims(exp)),
            Cached::No
        );
        // The same token again is not a new entry.
        assert_eq!(id.cache_token("t0", &jti, &caller(), &claims(exp)), Cached::Yes);
        id.apply(&revocation(Some("j1"), None));
        assert!(id.tokens.is_empty());
    }

    #[test]
    fn the_revoked_set_is_bounded_and_drops_the_oldest_first() {
        let mut revoked = Revoked::default();
        let now = 1_000;
        for i in 0..MAX_REVOKED + 5 {
            revoked.insert(&format!("j{i}"), now + 600, now);
        }
        assert_eq!(revoked.len(), MAX_REVOKED);
        assert_eq!(revoked.order.len(), MAX_REVOKED);
        assert!(!revoked.contains("j0") && !revoked.contains("j4"));
        assert!(revoked.contains("j5") && revoked.contains(&format!("j{}", MAX_REVOKED + 4)));
        // A repeated message does not take a second place.
        revoked.insert("j5", now + 600, now);
        assert_eq!(revoked.order.len(), MAX_REVOKED);
    }

    #[test]
    fn expired_revocations_at_the_front_are_dropped_as_new_ones_come() {
        let mut revoked = Revoked::default();
        revoked.insert("old", 100, 50);
        revoked.insert("live", 1_000, 50);
        revoked.insert("new", 1_000, 200);
        assert!(!revoked.contains("old") && revoked.contains("live") && revoked.contains("new"));
    }
}
