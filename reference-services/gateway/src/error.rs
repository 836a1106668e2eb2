//! Why a proxied request failed, Pingora-style: each error knows which side
//! it came from and whether another attempt is safe.

use gantry_common::error::ApiError;
use http::StatusCode;

use crate::policy::{Condition, RetryOn};
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
    /// The `retry_on` condition that covers this failure, and whether a
    /// retry needs an idempotent method (anything that may have reached
    /// the upstream does; a connection never opened does not).
    pub fn retry_condition(&self) -> Option<(Condition, bool)> {
        match self {
            ProxyError::Connect { .. } => Some((Condition::ConnectFailure, false)),
            ProxyError::Upstream { .. } | ProxyError::Stale { .. } => Some((Condition::Reset, true)),
            ProxyError::Timeout { .. } => Some((Condition::GatewayError, true)),
            ProxyError::NoInstance { .. } => None,
        }
    }

    /// Whether another attempt is allowed by `retry_on` for a request
    /// whose method is `idempotent` or not.
    pub fn retried_under(&self, retry_on: &RetryOn, idempotent: bool) -> bool {
        match self.retry_condition() {
            Some((Condition::GatewayError, needs)) => retry_on.retries_timeout() && (idempotent || !needs),
            Some((c, needs)) => retry_on.has(c) && (idempotent || !needs),
            None => false,
        }
    }

    /// Whether it counts against the instance in outlier detection: an
    /// idle-closed kept-alive connection says nothing about the instance.
    pub fn counts_against_instance(&self) -> bool {
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
        let on = RetryOn::DEFAULT;
        let of = |e: SendError| ProxyError::from_send("u1", e);
        let unsent = of(SendError::Unsent("refused".into()));
        assert!(unsent.retried_under(&on, false) && unsent.counts_against_instance());
        let failed = of(SendError::Failed("reset".into()));
        assert!(!failed.retried_under(&on, false) && failed.retried_under(&on, true));
        assert!(failed.counts_against_instance());
        // An idle-closed connection says nothing against the instance.
        let stale = of(SendError::Stale("closed".into()));
        assert!(!stale.retried_under(&on, false) && stale.retried_under(&on, true));
        assert!(!stale.counts_against_instance());
        assert_eq!(stale.to_api_error().status, StatusCode::BAD_GATEWAY);
        let timeout = ProxyError::Timeout { instance: "u1".into() };
        assert!(timeout.retried_under(&on, true) && !timeout.retried_under(&on, false));
        let none = ProxyError::NoInstance { service: "user".into() };
        assert!(!none.retried_under(&on, true) && !none.counts_against_instance());
        // retry_on = none retries nothing, not even a refused connection.
        let nothing = RetryOn::default();
        assert!(!unsent.retried_under(&nothing, true) && !failed.retried_under(&nothing, true));
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
