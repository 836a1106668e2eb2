//! What a check is, as the registry holds it once its registration was
//! parsed and checked: a TTL the service must refresh, or an HTTP or TCP
//! probe the registry runs itself on an interval, as a Consul agent does.

use std::time::Duration;

use http::{HeaderMap, Method, Uri};

/// How long one run of an HTTP or TCP check may take unless the check says
/// (Consul's default `Timeout`).
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an HTTP check's response body is kept in its `Output`: the
/// last 4 KiB, as Consul's circular buffer (`checks.DefaultBufSize`) keeps.
pub const OUTPUT_MAX_BYTES: usize = 4 * 1024;

/// The kinds of check the dev registry runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// Turns critical unless updated within the duration.
    Ttl(Duration),
    /// Run by the registry on an interval.
    Probe(Probe),
    /// Critical while a service or the node is in maintenance; set and
    /// cleared only through the maintenance endpoints.
    Maintenance,
}

impl CheckKind {
    /// Consul's `Type` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckKind::Ttl(_) => "ttl",
            // Consul's maintenance checks carry no type.
            CheckKind::Maintenance => "",
            CheckKind::Probe(p) => match p.target {
                Target::Http(_) => "http",
                Target::Tcp(_) => "tcp",
            },
        }
    }
}

/// An HTTP or TCP check: what to reach, how often, how patiently, and how
/// many results in a row change its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub target: Target,
    pub interval: Duration,
    pub timeout: Duration,
    pub thresholds: Thresholds,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Http(Box<HttpTarget>),
    /// `host:port` to connect to.
    Tcp(String),
}

/// An HTTP check's request. Only `http://` URLs: the dev registry has no TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// The URL as registered, as it appears in the check's `Output`.
    pub url: String,
    pub uri: Uri,
    pub method: Method,
    pub headers: HeaderMap,
    pub body: String,
}

/// Consul's `SuccessBeforePassing`, `FailuresBeforeWarning` and
/// `FailuresBeforeCritical`; see [`crate::status_handler`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Thresholds {
    pub success_before_passing: u32,
    /// Defaults to `failures_before_critical`, as in Consul.
    pub failures_before_warning: u32,
    pub failures_before_critical: u32,
}

impl Thresholds {
    /// The thresholds as registered, `failures_before_warning` defaulted as
    /// Consul's agent does (a zero takes `failures_before_critical`).
    pub fn new(success_before_passing: u32, failures_before_warning: u32, failures_before_critical: u32) -> Self {
        Self {
            success_before_passing,
            failures_before_warning: if failures_before_warning == 0 {
                failures_before_critical
            } else {
                failures_before_warning
            },
            failures_before_critical,
        }
    }
}
