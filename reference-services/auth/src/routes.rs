//! The auth service's HTTP API: register, login, logout, refresh, JWKS.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gantry_common::error::{ApiError, Json};
use gantry_common::jwt::{Claims, Jwk, Jwks, now_secs, random_id};
use gantry_common::session::{self, Revocation};
use gantry_common::store::Store;
use redis::Cmd;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::password;
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

fn failures_key(username: &str) -> String {
    format!("auth:failures:{username}")
}

fn lockout_key(username: &str) -> String {
    format!("auth:lockout:{username}")
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
        hash: password::hash_async(body.password).await,
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

async fn login(State(state): State<Arc<AppState>>, Json(body): Json<LoginBody>) -> Result<Response, ApiError> {
    if body.username.len() > 64 || body.password.len() > validate::MAX_PASSWORD {
        return Err(invalid_credentials());
    }
    let name = body.username.to_ascii_lowercase();
    let store = &state.store;
    let locked_ms: i64 = store.run(&Cmd::pttl(lockout_key(&name))).await.map_err(store_down)?;
    if locked_ms > 0 {
        return Err(too_many_attempts(Duration::from_millis(locked_ms as u64)));
    }

    let record: Option<String> = store.run(&Cmd::get(account_key(&name))).await.map_err(store_down)?;
    let account = record.and_then(|r| serde_json::from_str::<Account>(&r).ok());
    let phc = account
        .as_ref()
        .map_or_else(|| state.decoy_hash.clone(), |a| a.hash.clone());
    let matches = password::verify_async(body.password, phc).await;
    let Some(account) = account.filter(|_| matches) else {
        record_failure(&state, &name).await?;
        return Err(invalid_credentials());
    };
    let _: () = store.run(&Cmd::del(failures_key(&name))).await.map_err(store_down)?;

    let (token, claims, sid) = open_session(&state, &account.id, &account.username).await?;
    tracing::info!(user_id = %account.id, "logged in");
    Ok(token_response(&state, &token, &claims, &sid))
}

/// Counts a failure; from the `max_failures`-th on, each failure doubles a
/// lockout (1 s, 2 s, 4 s … up to 15 min) during which logins get 429.
async fn record_failure(state: &AppState, name: &str) -> Result<(), ApiError> {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .incr(failures_key(name), 1)
        .expire(failures_key(name), crate::config::MAX_LOCKOUT.as_secs() as i64)
        .ignore();
    let (count,): (u32,) = state.store.run_pipe(&pipe).await.map_err(store_down)?;
    if count >= state.cfg.max_failures {
        let exponent = (count - state.cfg.max_failures).min(20);
        let lockout = Duration::from_secs(1u64 << exponent).min(crate::config::MAX_LOCKOUT);
        let _: () = state
            .store
            .run(&Cmd::pset_ex(lockout_key(name), 1, lockout.as_millis() as u64))
            .await
            .map_err(store_down)?;
    }
    Ok(())
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

/// Signs a token for the user and stores it under a new session id.
async fn open_session(state: &AppState, user_id: &str, username: &str) -> Result<(String, Claims, String), ApiError> {
    let now = now_secs();
    let claims = Claims {
        sub: user_id.to_owned(),
        iss: state.cfg.jwt.issuer.clone(),
        aud: state.cfg.jwt.audience.clone(),
        exp: now + state.cfg.token_ttl.as_secs(),
        iat: now,
        nbf: Some(now),
        jti: random_id(16),
        username: Some(username.to_owned()),
        scope: None,
    };
    let token = state.signer.sign(&claims);
    let sid = session::new_id();
    let key = session::key(&sid);
    let mut pipe = redis::pipe();
    pipe.atomic()
        .hset_multiple(
            &key,
            &[
                (session::JWT_FIELD, token.as_str()),
                ("sub", user_id),
                ("jti", &claims.jti),
            ],
        )
        .ignore()
        .expire(&key, state.cfg.session_ttl.as_secs() as i64)
        .ignore();
    let _: () = state.store.run_pipe(&pipe).await.map_err(store_down)?;
    Ok((token, claims, sid))
}

fn session_cookie(state: &AppState, sid: &str, max_age: u64) -> HeaderValue {
    let secure = if state.cfg.cookie_secure { "; Secure" } else { "" };
    let cookie = format!(
        "{}={sid}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        session::COOKIE
    );
    HeaderValue::from_str(&cookie).expect("session ids are cookie-safe")
}

fn token_response(state: &AppState, token: &str, claims: &Claims, sid: &str) -> Response {
    let body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": claims.exp.saturating_sub(now_secs()),
    });
    let mut response = axum::Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::SET_COOKIE,
        session_cookie(state, sid, state.cfg.session_ttl.as_secs()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie_session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_cookie_header)
        .filter(|sid| session::is_well_formed(sid))
}

/// Deletes the session (if any), denylists the token's `jti` until its `exp`,
/// and tells every gateway.
async fn revoke(store: &Store, sid: Option<&str>, claims: Option<&Claims>) -> Result<(), ApiError> {
    let mut pipe = redis::pipe();
    if let Some(sid) = sid {
        pipe.del(session::key(sid)).ignore();
    }
    if let Some(c) = claims.filter(|c| c.exp > now_secs()) {
        pipe.cmd("SET")
            .arg(session::revoked_key(&c.iss, &c.jti))
            .arg(1)
            .arg("EXAT")
            .arg(c.exp)
            .ignore();
    }
    let message = Revocation {
        sid: sid.map(str::to_owned),
        jti: claims.map(|c| c.jti.clone()),
        iss: claims.map(|c| c.iss.clone()),
        exp: claims.map_or(0, |c| c.exp),
    };
    pipe.publish(
        session::REVOCATION_CHANNEL,
        serde_json::to_string(&message).expect("a revocation serializes"),
    )
    .ignore();
    let _: () = store.run_pipe(&pipe).await.map_err(store_down)?;
    Ok(())
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
    let token = bearer(&headers).map(str::to_owned).or(session_token.clone());
    let claims = token.as_deref().and_then(|t| state.keys.verify(t).ok());
    if claims.is_none() && session_token.is_none() {
        return Err(ApiError::unauthorized("log in first: no valid session or bearer token"));
    }
    // A session's own token is revoked with it even if a different bearer was sent.
    let session_claims = session_token.as_deref().and_then(|t| state.keys.verify(t).ok());
    revoke(store, sid.filter(|_| session_token.is_some()), claims.as_ref()).await?;
    if let Some(sc) = session_claims.filter(|sc| Some(&sc.jti) != claims.as_ref().map(|c| &c.jti)) {
        revoke(store, None, Some(&sc)).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(response)
}

async fn refresh(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(sid) = cookie_session(&headers) else {
        return Err(ApiError::unauthorized("refresh needs a session cookie"));
    };
    let store = &state.store;
    let token: Option<String> = store
        .run(&Cmd::hget(session::key(sid), session::JWT_FIELD))
        .await
        .map_err(store_down)?;
    let claims = token
        .as_deref()
        .and_then(|t| state.keys.verify(t).ok())
        .ok_or_else(|| ApiError::unauthorized("the session has ended; log in again"))?;
    let (token, new_claims, new_sid) =
        open_session(&state, &claims.sub, claims.username.as_deref().unwrap_or_default()).await?;
    revoke(store, Some(sid), Some(&claims)).await?;
    Ok(token_response(&state, &token, &new_claims, &new_sid))
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
