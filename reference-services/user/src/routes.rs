//! The user service's HTTP API.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gantry_common::error::{ApiError, Json};
use redis::Cmd;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::identity::{Caller, ServiceCaller};

/// The scope a service token needs to create profiles.
pub const WRITE_SCOPE: &str = "users:write";

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/users/me", get(me))
        .route("/users/{id}", get(by_id))
        .route("/internal/users", post(create))
        .route("/readyz", get(readyz))
        .with_state(state)
}

#[derive(Serialize, Deserialize)]
struct Profile {
    id: String,
    username: String,
    display_name: String,
}

fn profile_key(id: &str) -> String {
    format!("user:{id}")
}

/// Ids are ours (`u_` + base64url); anything else cannot exist.
fn plausible_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn store_down(e: redis::RedisError) -> ApiError {
    tracing::warn!(error = %e, "redis unavailable");
    ApiError::unavailable(
        "profile_store_unavailable",
        "the profile store is unavailable; retry shortly",
    )
}

/// The most profiles kept for outages; beyond it the memory is emptied.
const MAX_RECENT: usize = 10_000;

async fn load(state: &AppState, id: &str) -> Result<Response, ApiError> {
    if !plausible_id(id) {
        return Err(ApiError::not_found("no such user"));
    }
    // Profiles never change once created: one read before is the answer,
    // with no Redis round trip (and what is served while Redis is down).
    let known = state.recent.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
    if let Some(raw) = known {
        return profile(&raw);
    }
    let raw: Arc<str> = match state.store.run::<Option<String>>(&Cmd::get(profile_key(id))).await {
        Ok(Some(raw)) => {
            let raw: Arc<str> = raw.into();
            let mut recent = state.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() >= MAX_RECENT {
                recent.clear();
            }
            recent.insert(id.to_owned(), raw.clone());
            raw
        }
        Ok(None) => return Err(ApiError::not_found("no such user")),
        Err(e) => return Err(store_down(e)),
    };
    profile(&raw)
}

fn profile(raw: &str) -> Result<Response, ApiError> {
    let profile = serde_json::from_str::<Profile>(raw).map_err(|_| ApiError::not_found("no such user"))?;
    Ok(axum::Json(profile).into_response())
}

async fn me(State(state): State<Arc<AppState>>, Caller(claims): Caller) -> Result<Response, ApiError> {
    load(&state, &claims.sub).await
}

async fn by_id(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    load(&state, &id).await
}

async fn create(
    State(state): State<Arc<AppState>>,
    ServiceCaller(claims): ServiceCaller,
    Json(profile): Json<Profile>,
) -> Result<Response, ApiError> {
    if !claims.has_scope(WRITE_SCOPE) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token may not create profiles",
        ));
    }
    if !plausible_id(&profile.id) || profile.username.is_empty() || profile.display_name.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_profile",
            "id, username and display_name are required",
        ));
    }
    let record = serde_json::to_string(&profile).expect("a profile serializes");
    let created: bool = state
        .store
        .run(&Cmd::set_nx(profile_key(&profile.id), record))
        .await
        .map_err(store_down)?;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "profile_exists",
            "a profile with this id exists",
        ));
    }
    Ok((StatusCode::CREATED, axum::Json(profile)).into_response())
}

async fn readyz(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    state.store.ping().await.map_err(store_down)?;
    Ok(axum::Json(json!({"status": "ready"})).into_response())
}
