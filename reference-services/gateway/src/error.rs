//! Why a proxied request failed, Pingora-style: each error knows which side
//! it came from and whether another attempt is safe.

use gantry_common::error::ApiError;
use http::StatusCode;

use crate::pool::SendError;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No connection could be opened: nothing was sent, any method may retry.
    #[error("could not connect to {instance}: {detail}")]
    Connect { instance: Box<str>, detail: String },
    /// The upstream failed after the request may have been sent.
    #[error("{instance} failed mid-request: {detail}")]
    Upstream { instance: Box<str>, detail: String },
    /// A kept-alive connection closed before any answer: likely idle-closed
    /// by the upstream, so no reason to eject it; safe to retry only for
    /// idempotent methods, since the request may have been seen.
    #[error("{instance}: {detail}")]
    Stale { instance: Box<str>, detail: String },
    /// The upstream did not answer within the request timeout.
    #[error("{instance} did not answer in time")]
    Timeout { instance: Box<str> },
    /// No passing instance of the service is known.
    #[error("no healthy instance of {service}")]
    NoInstance { service: Box<str> },
}

impl ProxyError {
    /// Whether trying another instance is safe: always when nothing reached
    /// the upstream, otherwise only for idempotent methods.
    pub fn retry_safe(&self, idempotent: bool) -> bool {
        match self {
            ProxyError::Connect { .. } => true,
            ProxyError::Upstream { .. } | ProxyError::Stale { .. } | ProxyError::Timeout { .. } => idempotent,
            ProxyError::NoInstance { .. } => false,
        }
    }

    /// Whether the instance should be ejected from balancing.
    pub fn ejects(&self) -> bool {
        !matches!(self, ProxyError::NoInstance { .. } | ProxyError::Stale { .. })
    }

    /// The error of one failed attempt on `instance`.
    pub fn from_send(instance: &str, e: SendError) -> Self {
        let instance = instance.into();
        match e {
            SendError::Unsent(detail) => ProxyError::Connect { instance, detail },
            SendError::Stale(detail) => ProxyError::Stale { instance, detail },
            SendError::Failed(detail) => ProxyError::Upstream { instance, detail },
        }
    }

    /// What the client is told: a generic message. Instance ids and OS
    /// error text stay in the log (see `Display`), never in a public body.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } | ProxyError::Stale { .. } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "the service could not answer; retry shortly",
            ),
            ProxyError::Timeout { .. } => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the service did not answer in time",
            ),
            ProxyError::NoInstance { service } => {
                let mut e = ApiError::unavailable("no_healthy_upstream", format!("no healthy instance of {service}"));
                e.retry_after = Some(1);
                e
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_knows_whether_to_retry_and_eject() {
        let of = |e: SendError| ProxyError::from_send("u1", e);
        let unsent = of(SendError::Unsent("refused".into()));
        assert!(unsent.retry_safe(false) && unsent.ejects());
        let failed = of(SendError::Failed("reset".into()));
        assert!(!failed.retry_safe(false) && failed.retry_safe(true) && failed.ejects());
        // An idle-closed connection says nothing against the instance.
        let stale = of(SendError::Stale("closed".into()));
        assert!(!stale.retry_safe(false) && stale.retry_safe(true) && !stale.ejects());
        assert_eq!(stale.to_api_error().status, StatusCode::BAD_GATEWAY);
        let none = ProxyError::NoInstance { service: "user".into() };
        assert!(!none.retry_safe(true) && !none.ejects());
    }

    #[test]
    fn client_bodies_name_no_instance_and_no_os_error() {
        let detail = "connection refused (os error 111) at 127.0.0.1:41234";
        for e in [
            ProxyError::Connect {
                instance: "user-2".into(),
                detail: detail.into(),
            },
            ProxyError::Upstream {
                instance: "user-2".into(),
                detail: detail.into(),
            },
            ProxyError::Stale {
                instance: "user-2".into(),
                detail: detail.into(),
            },
            ProxyError::Timeout {
                instance: "user-2".into(),
            },
        ] {
            // The log line keeps the detail...
            assert!(e.to_string().contains("user-2"), "{e}");
            // ...the body does not.
            let body = e.to_api_error().body();
            for secret in ["user-2", "os error", "127.0.0.1", "refused"] {
                assert!(!body.contains(secret), "{body} contains {secret}");
            }
        }
    }
}
