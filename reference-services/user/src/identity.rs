//! Who is calling: the verified claims of the bearer token, and nothing
//! else. `X-User-Id` and friends are never read.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use gantry_common::error::ApiError;
use gantry_common::jwt::Claims;

use crate::AppState;

pub struct Caller(pub Claims);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
        let claims = state
            .keys
            .verify(token, &state.auth.base_urls())
            .await
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        Ok(Caller(claims))
    }
}
