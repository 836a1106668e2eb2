//! The auth service's HTTP API: register, login, logout, refresh, JWKS.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gantry_common::credentials;
use gantry_common::error::{ApiError, Json};
use gantry_common::jwt::{Claims, Jwk, Jwks, now_secs, random_id};
use gantry_common::session::{self, Revocation};
use gantry_common::store::Store;
use redis::Cmd;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::limiter::{self, Admission, ClientAddr};
use crate::password::Busy;
use crate::profiles::NewProfile;
use crate::state::AppState;
use crate::validate;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/refresh", post(refresh))
        .route("/auth/.well-known/jwks.json", get(jwks))
        .route("/readyz", get(readyz))
        .with_state(state)
}

fn store_down(e: redis::RedisError) -> ApiError {
    tracing::warn!(error = %e, "redis unavailable");
    ApiError::unavailable(
        "session_store_unavailable",
        "the session store is unavailable; retry shortly",
    )
}

fn account_key(username: &str) -> String {
    format!("auth:account:{username}")
}

/// `auth:jti-session:<jti>` → the id of the session that holds the token,
/// so logging out by bearer token ends that session too. Written with the
/// session, with the same TTL.
fn jti_session_key(jti: &str) -> String {
    format!("auth:jti-session:{jti}")
}

/// 503 with `Retry-After: 1`: too many password hashes running and waiting.
fn busy(_: Busy) -> ApiError {
    let mut e = ApiError::unavailable("busy", "too many logins at once; retry in a second");
    e.retry_after = Some(1);
    e
}

#[derive(Serialize, Deserialize)]
struct Account {
    id: String,
    username: String,
    hash: String,
}

#[derive(Deserialize)]
struct RegisterBody {
    username: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
}

async fn register(State(state): State<Arc<AppState>>, Json(body): Json<RegisterBody>) -> Result<Response, ApiError> {
    let key_name = validate::username(&body.username)?;
    validate::password(&body.password, &body.username)?;
    let display_name = body.display_name.clone().unwrap_or_else(|| body.username.clone());
    validate::display_name(&display_name)?;

    let store = &state.store;
    if store
        .run::<bool>(&Cmd::exists(account_key(&key_name)))
        .await
        .map_err(store_down)?
    {
        return Err(username_taken());
    }
    let account = Account {
        id: format!("u_{}", random_id(12)),
        username: body.username.clone(),
        hash: state.gate.hash(body.password).await.map_err(busy)?,
    };
    let record = serde_json::to_string(&account).expect("an account serializes");
    let created: bool = store
        .run(&Cmd::set_nx(account_key(&key_name), record))
        .await
        .map_err(store_down)?;
    if !created {
        return Err(username_taken());
    }
    let profile = NewProfile {
        id: &account.id,
        username: &account.username,
        display_name: &display_name,
    };
    if let Err(e) = state.profiles.create(&state.signer, &profile).await {
        tracing::warn!(error = %e, "profile creation failed; undoing the registration");
        let _: Result<(), _> = store.run(&Cmd::del(account_key(&key_name))).await;
        return Err(ApiError::unavailable(
            "user_service_unavailable",
            "the user service could not create the profile; retry shortly",
        ));
    }
    tracing::info!(user_id = %account.id, "registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": account.id, "username": account.username})),
    )
        .into_response())
}

fn username_taken() -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "username_taken", "that username is taken")
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

fn invalid_credentials() -> ApiError {
    // One body for unknown users and wrong passwords alike.
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "invalid username or password",
    )
}

async fn login(
    State(state): State<Arc<AppState>>,
    addr: ClientAddr,
    headers: HeaderMap,
    Json(body): Json<LoginBody>,
) -> Result<Response, ApiError> {
    // No account has such a name or password: refuse without counting or hashing.
    if body.password.len() > validate::MAX_PASSWORD_BYTES {
        return Err(invalid_credentials());
    }
    let Ok(name) = validate::username(&body.username) else {
        return Err(invalid_credentials());
    };
    let store = &state.store;
    // Counted before the password is looked at, so concurrent guesses cannot
    // outrun the count; refused attempts cost no hash.
    if let Admission::Refused(wait) = limiter::admit(store, state.limits(), &name, &addr)
        .await
        .map_err(store_down)?
    {
        return Err(too_many_attempts(wait));
    }

    let record: Option<String> = store.run(&Cmd::get(account_key(&name))).await.map_err(store_down)?;
    let account = record.and_then(|r| serde_json::from_str::<Account>(&r).ok());
    let phc = account
        .as_ref()
        .map_or_else(|| state.decoy_hash.clone(), |a| a.hash.clone());
    let matches = match state.gate.verify(body.password, phc).await {
        Ok(matches) => matches,
        Err(full) => {
            // Not evaluated, so not a failure: a flood must not lock the owner out.
            if let Err(e) = limiter::refund(store, &name, &addr).await {
                tracing::warn!(error = %e, "could not give back a login attempt");
            }
            return Err(busy(full));
        }
    };
    let Some(account) = account.filter(|_| matches) else {
        return Err(invalid_credentials());
    };
    limiter::succeeded(store, &name, &addr).await.map_err(store_down)?;

    let deadline = now_secs() + state.cfg.session_max_age.as_secs();
    let opened = open_session(&state, &account.id, &account.username, deadline).await?;
    tracing::info!(user_id = %account.id, "logged in");
    Ok(token_response(&state, &headers, &opened))
}

fn too_many_attempts(wait: Duration) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many failed logins; retry in {secs} s"),
    );
    e.retry_after = Some(secs.max(1));
    e
}

/// A session's lifetimes when opened at `now` and bound to end by
/// `deadline` (Unix seconds): its TTL in seconds, and its token's `exp`.
/// Neither reaches past the deadline. `None` once the deadline has come.
fn lifetimes(now: u64, deadline: u64, session_ttl: Duration, token_ttl: Duration) -> Option<(u64, u64)> {
    let left = deadline.checked_sub(now).filter(|&left| left > 0)?;
    Some((session_ttl.as_secs().min(left), now + token_ttl.as_secs().min(left)))
}

/// A session just opened.
struct Opened {
    token: String,
    claims: Claims,
    sid: String,
    /// Seconds the session lives (and the cookie's `Max-Age`).
    ttl: u64,
}

fn session_over() -> ApiError {
    ApiError::unauthorized("the session has ended; log in again")
}

/// Signs a token for the user and stores it under a new session id; the
/// session ends by `deadline` (Unix seconds) whatever happens to it.
async fn open_session(state: &AppState, user_id: &str, username: &str, deadline: u64) -> Result<Opened, ApiError> {
    let now = now_secs();
    let (ttl, exp) = lifetimes(now, deadline, state.cfg.session_ttl, state.cfg.token_ttl)
        .ok_or_else(|| ApiError::unauthorized("the session has reached its maximum age; log in again"))?;
    let claims = Claims {
        sub: user_id.to_owned(),
        iss: state.cfg.jwt.issuer.clone(),
        aud: state.cfg.jwt.audience.clone(),
        exp,
        iat: now,
        nbf: Some(now),
        jti: random_id(16),
        username: Some(username.to_owned()),
        scope: None,
    };
    let token = state.signer.sign(&claims);
    let sid = session::new_id();
    let key = session::key(&sid);
    let deadline = deadline.to_string();
    let mut pipe = redis::pipe();
    pipe.atomic()
        .hset_multiple(
            &key,
            &[
                (session::JWT_FIELD, token.as_str()),
                (session::SUB_FIELD, user_id),
                (session::JTI_FIELD, &claims.jti),
                (session::MAX_EXP_FIELD, &deadline),
            ],
        )
        .ignore()
        .expire(&key, ttl as i64)
        .ignore()
        .set_ex(jti_session_key(&claims.jti), &sid, ttl)
        .ignore();
    let _: () = state.store.run_pipe(&pipe).await.map_err(store_down)?;
    Ok(Opened {
        token,
        claims,
        sid,
        ttl,
    })
}

/// Whether the client reached the stack over HTTPS, as the gateway says in
/// `X-Forwarded-Proto` (which it sets itself, overwriting a client's copy).
fn client_used_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The `SESSION` cookie: `Secure` when configured (`GANTRY_COOKIE_SECURE`)
/// or whenever the client came over HTTPS, so a TLS gateway never hands out
/// a cookie a browser would also send over plain HTTP.
fn session_cookie(state: &AppState, headers: &HeaderMap, sid: &str, max_age: u64) -> HeaderValue {
    let secure = if state.cfg.cookie_secure || client_used_https(headers) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={sid}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        session::COOKIE
    );
    HeaderValue::from_str(&cookie).expect("session ids are cookie-safe")
}

fn token_response(state: &AppState, request: &HeaderMap, opened: &Opened) -> Response {
    let body = json!({
        "access_token": opened.token,
        "token_type": "Bearer",
        "expires_in": opened.claims.exp.saturating_sub(now_secs()),
    });
    let mut response = axum::Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::SET_COOKIE,
        session_cookie(state, request, &opened.sid, opened.ttl),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The session cookie, when it has the shape of an id auth issues.
fn cookie_session(headers: &HeaderMap) -> Option<&str> {
    credentials::session_cookie(headers).filter(|sid| session::is_well_formed(sid))
}

/// What [`revoke`] changed.
#[derive(Debug, Clone, Copy, Default)]
struct Revoked {
    /// The session existed and is now gone.
    session_ended: bool,
    /// The token was not denylisted before.
    token_denylisted: bool,
}

/// Deletes the session (if any), denylists the token's `jti` until its
/// `exp`, and tells every gateway — only about what changed, so repeating a
/// logout publishes nothing.
async fn revoke(store: &Store, sid: Option<&str>, claims: Option<&Claims>) -> Result<Revoked, ApiError> {
    let live = claims.filter(|c| c.exp > now_secs());
    let mut pipe = redis::pipe();
    pipe.atomic();
    if let Some(sid) = sid {
        pipe.del(session::key(sid));
    }
    if let Some(c) = claims {
        pipe.del(jti_session_key(&c.jti)).ignore();
    }
    if let Some(c) = live {
        pipe.cmd("SET")
            .arg(session::revoked_key(&c.iss, &c.jti))
            .arg(1)
            .arg("NX")
            .arg("EXAT")
            .arg(c.exp);
    }
    if sid.is_none() && claims.is_none() {
        return Ok(Revoked::default());
    }
    let replies: Vec<redis::Value> = store.run_pipe(&pipe).await.map_err(store_down)?;
    let mut replies = replies.into_iter();
    let mut revoked = Revoked::default();
    if sid.is_some() {
        let deleted: i64 = replies
            .next()
            .map_or(Ok(0), redis::from_redis_value)
            .map_err(|e| store_down(e.into()))?;
        revoked.session_ended = deleted > 0;
    }
    if live.is_some() {
        // SET NX answers OK when it set the key and nil when it was there.
        revoked.token_denylisted = replies.next().is_some_and(|v| v != redis::Value::Nil);
    }
    if revoked.session_ended || revoked.token_denylisted {
        let jti = live.filter(|_| revoked.token_denylisted);
        let message = Revocation {
            sid: sid.filter(|_| revoked.session_ended).map(str::to_owned),
            jti: jti.map(|c| c.jti.clone()),
            iss: jti.map(|c| c.iss.clone()),
            exp: jti.map_or(0, |c| c.exp),
        };
        let publish = Cmd::publish(
            session::REVOCATION_CHANNEL,
            serde_json::to_string(&message).expect("a revocation serializes"),
        );
        let _: () = store.run(&publish).await.map_err(store_down)?;
    }
    Ok(revoked)
}

async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let store = &state.store;
    let sid = cookie_session(&headers);
    let session_token: Option<String> = match sid {
        Some(sid) => store
            .run(&Cmd::hget(session::key(sid), session::JWT_FIELD))
            .await
            .map_err(store_down)?,
        None => None,
    };
    let bearer_claims = credentials::bearer(&headers).and_then(|t| state.keys.verify(t).ok());
    if bearer_claims.is_none() && session_token.is_none() {
        return Err(ApiError::unauthorized("log in first: no valid session or bearer token"));
    }
    // The cookie's session ends with its own token, whatever bearer was sent.
    let session_claims = session_token.as_deref().and_then(|t| state.keys.verify(t).ok());
    if let Some(sid) = sid.filter(|_| session_token.is_some()) {
        revoke(store, Some(sid), session_claims.as_ref()).await?;
    }
    // A bearer token ends with the session that holds it: otherwise that
    // session's cookie could still be refreshed into a new token.
    let other = bearer_claims.filter(|c| session_claims.as_ref().is_none_or(|sc| sc.jti != c.jti));
    if let Some(claims) = other {
        let holder: Option<String> = store
            .run(&Cmd::get(jti_session_key(&claims.jti)))
            .await
            .map_err(store_down)?;
        let holder = holder.filter(|h| session::is_well_formed(h) && Some(h.as_str()) != sid);
        revoke(store, holder.as_deref(), Some(&claims)).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, &headers, "", 0));
    Ok(response)
}

async fn refresh(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(sid) = cookie_session(&headers) else {
        return Err(ApiError::unauthorized("refresh needs a session cookie"));
    };
    let store = &state.store;
    let (token, max_exp): (Option<String>, Option<String>) = store
        .run(
            Cmd::new()
                .arg("HMGET")
                .arg(session::key(sid))
                .arg(session::JWT_FIELD)
                .arg(session::MAX_EXP_FIELD),
        )
        .await
        .map_err(store_down)?;
    let claims = token
        .as_deref()
        .and_then(|t| state.keys.verify(t).ok())
        .ok_or_else(session_over)?;
    let revoked: bool = store
        .run(&Cmd::exists(session::revoked_key(&claims.iss, &claims.jti)))
        .await
        .map_err(store_down)?;
    if revoked {
        return Err(session_over());
    }
    // Sessions from before the deadline was stored end a maximum age after
    // their token was issued.
    let deadline = max_exp
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or_else(|| claims.iat.saturating_add(state.cfg.session_max_age.as_secs()));
    if now_secs() >= deadline {
        return Err(ApiError::unauthorized(
            "the session has reached its maximum age; log in again",
        ));
    }
    // Ending the old session is the claim on it: of two concurrent refreshes
    // with one cookie, only the one that deleted it goes on.
    if !revoke(store, Some(sid), Some(&claims)).await?.session_ended {
        return Err(session_over());
    }
    let opened = open_session(
        &state,
        &claims.sub,
        claims.username.as_deref().unwrap_or_default(),
        deadline,
    )
    .await?;
    Ok(token_response(&state, &headers, &opened))
}

async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let mut keys: Vec<Jwk> = state.signer.jwk().cloned().into_iter().collect();
    for (kid, x) in &state.cfg.jwt.extra_public_keys {
        use base64::Engine;
        keys.push(Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(x)),
            kid: Some(kid.clone()),
            alg: Some("EdDSA".into()),
            use_: Some("sig".into()),
        });
    }
    let mut response = axum::Json(Jwks { keys }).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

async fn readyz(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    state.store.ping().await.map_err(store_down)?;
    Ok(axum::Json(json!({"status": "ready"})).into_response())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::lifetimes;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_session_and_its_token_end_by_the_deadline() {
        // Far from the deadline: the configured lifetimes.
        assert_eq!(
            lifetimes(1_000, 1_000 + 12 * 3600, HOUR / 2, HOUR / 4),
            Some((1800, 1_000 + 900))
        );
        // Near it: both cut to what is left.
        assert_eq!(lifetimes(1_000, 1_100, HOUR / 2, HOUR / 4), Some((100, 1_100)));
        assert_eq!(lifetimes(1_000, 1_001, HOUR, HOUR), Some((1, 1_001)));
        // At or past it: no session.
        assert_eq!(lifetimes(1_000, 1_000, HOUR, HOUR), None);
        assert_eq!(lifetimes(1_000, 999, HOUR, HOUR), None);
    }
}
