//! Why the harness could not do what was asked: one error type for every
//! part of it, each message saying what to do next.

use std::path::PathBuf;
use std::time::Duration;

/// Why the harness could not do what was asked. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The fault proxy could not put a link in a hop.
    #[error("fault proxy: {0}")]
    Faults(String),
    #[error("{program} was not found: {hint}")]
    Missing { program: String, hint: String },
    #[error("could not start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited ({status}) before it was ready; its log is {log}:\n{tail}")]
    Exited {
        name: String,
        status: String,
        log: String,
        tail: String,
    },
    #[error("gave up waiting {waited:?} for {what}: {last}")]
    NotReady {
        what: String,
        waited: Duration,
        last: String,
    },
    #[error("port {0} is already in use: stop what holds it or choose another with --port")]
    PortBusy(u16),
    #[error("{0} is not running")]
    NotRunning(String),
    #[error("could not signal {name}: {source}")]
    Signal {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("container {name}: {detail}")]
    Container { name: String, detail: String },
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("the gateways' TLS certificate: {0}")]
    Tls(#[from] PkiError),
    /// An instance that never became ready; boxed, it is large.
    #[error("{0}")]
    NeverReady(Box<NeverReady>),
    #[error("no instance {wanted}: {have}")]
    NoSuchInstance { wanted: String, have: String },
    #[error("service {service}: {problem}")]
    BadSpec { service: String, problem: String },
    #[error("{what}: {source}")]
    Registry {
        what: String,
        #[source]
        source: gantry_common::registry::RegistryError,
    },
}

/// What the error for an instance that never became ready says: which
/// instance of which service, what was awaited, what was last seen, and
/// what it logged.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{instance} (service {service}) was not ready within {waited:?}: awaited {awaited}; last seen: {last}; its log is {log}:\n{tail}"
)]
pub struct NeverReady {
    pub service: String,
    pub instance: String,
    pub awaited: String,
    pub waited: Duration,
    pub last: String,
    pub log: String,
    pub tail: String,
}

/// Why the stack's TLS files (`crate::run::tls::TestPki`) could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating the test certificates failed")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path} failed")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
