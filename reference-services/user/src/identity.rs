//! Who is calling: the verified claims of the bearer token, and nothing
//! else. `X-User-Id` and friends are never read.
//!
//! A user's access token ([`Caller`]) and another service's token
//! ([`ServiceCaller`]) are distinct kinds with their own `typ` and audience:
//! neither is accepted where the other is expected. An access token whose
//! `jti` auth has revoked is refused here too, not only at the gateway, so a
//! request that reaches an instance directly gets nothing with it.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use gantry_common::credentials;
use gantry_common::error::ApiError;
use gantry_common::jwt::{Claims, TokenKind};
use gantry_common::session;
use redis::Cmd;

use crate::AppState;

/// A user, by a valid, unrevoked access token.
pub struct Caller(pub Claims);

/// Another service, by a valid service token (internal routes only).
pub struct ServiceCaller(pub Claims);

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    credentials::bearer(&parts.headers).ok_or_else(|| ApiError::unauthorized("a bearer token is required"))
}

async fn verified(parts: &Parts, state: &AppState, kind: TokenKind) -> Result<Claims, ApiError> {
    state
        .keys
        .verify_as(kind, bearer(parts)?, &state.auth.base_urls())
        .await
        .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let claims = verified(parts, state, TokenKind::Access).await?;
        // Auth writes the denylist entry before it announces a revocation,
        // so asking Redis is as current as following the channel. If Redis
        // cannot answer, the signature stands, as at the gateway: profiles
        // are then served from memory, and a definite answer comes next time.
        let revoked = Cmd::exists(session::revoked_key(&claims.iss, &claims.jti));
        match state.store.run::<bool>(&revoked).await {
            Ok(true) => return Err(ApiError::unauthorized("token has been revoked")),
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "denylist unavailable; trusting the signature"),
        }
        Ok(Caller(claims))
    }
}

impl FromRequestParts<Arc<AppState>> for ServiceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        verified(parts, state, TokenKind::Service).await.map(ServiceCaller)
    }
}
