//! Why a proxied request failed, Pingora-style: each error knows which side
//! it came from and whether another attempt is safe.

use gantry_common::error::ApiError;
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No connection could be opened: nothing was sent, any method may retry.
    #[error("could not connect to {instance}: {detail}")]
    Connect { instance: Box<str>, detail: String },
    /// The upstream failed after the request may have been sent.
    #[error("{instance} failed mid-request: {detail}")]
    Upstream { instance: Box<str>, detail: String },
    /// The upstream did not answer within the request timeout.
    #[error("{instance} did not answer in time")]
    Timeout { instance: Box<str> },
    /// No passing instance of the service is known.
    #[error("no healthy instance of {service}")]
    NoInstance { service: &'static str },
}

impl ProxyError {
    /// Whether trying another instance is safe: always when nothing reached
    /// the upstream, otherwise only for idempotent methods.
    pub fn retry_safe(&self, idempotent: bool) -> bool {
        match self {
            ProxyError::Connect { .. } => true,
            ProxyError::Upstream { .. } | ProxyError::Timeout { .. } => idempotent,
            ProxyError::NoInstance { .. } => false,
        }
    }

    /// Whether the instance should be ejected from balancing.
    pub fn ejects(&self) -> bool {
        !matches!(self, ProxyError::NoInstance { .. })
    }

    pub fn to_api_error(&self) -> ApiError {
        match self {
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "upstream_unavailable", self.to_string())
            }
            ProxyError::Timeout { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", self.to_string())
            }
            ProxyError::NoInstance { .. } => {
                let mut e = ApiError::unavailable("no_healthy_upstream", self.to_string());
                e.retry_after = Some(1);
                e
            }
        }
    }
}
