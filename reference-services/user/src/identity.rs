//! Who is calling: the verified claims of the bearer token, and nothing
//! else. `X-User-Id` and friends are never read.
//!
//! A user's access token ([`Caller`]) and another service's token
//! ([`ServiceCaller`]) are distinct kinds with their own `typ` and audience:
//! neither is accepted where the other is expected. An access token whose
//! `jti` auth has revoked is refused here too, not only at the gateway, so a
//! request that reaches an instance directly gets nothing with it: the
//! shared verifier asks the denylist when it first sees a token and drops
//! it from its cache when auth announces the revocation.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use gantry_common::credentials;
use gantry_common::error::ApiError;
use gantry_common::jwt::{Claims, TokenKind};

use crate::AppState;

/// A user, by a valid, unrevoked access token.
pub struct Caller(pub Arc<Claims>);

/// Another service, by a valid service token (internal routes only).
pub struct ServiceCaller(pub Claims);

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    credentials::bearer(&parts.headers).ok_or_else(|| ApiError::unauthorized("a bearer token is required"))
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    /// If Redis cannot answer, the signature stands, as at the gateway
    /// (and the token is not cached, so the next request asks again).
    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        state
            .identity
            .access(bearer(parts)?, || state.auth.base_urls())
            .await
            .map(Caller)
            .map_err(|denied| denied.to_api_error())
    }
}

impl FromRequestParts<Arc<AppState>> for ServiceCaller {
    type Rejection = ApiError;

    /// Service tokens reach internal routes only (rare): verified each time.
    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        state
            .identity
            .keys()
            .verify_as(TokenKind::Service, bearer(parts)?, &state.auth.base_urls())
            .await
            .map(ServiceCaller)
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))
    }
}
