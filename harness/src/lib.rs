//! The Gantry harness: starts a stack (infrastructure and services as real
//! processes), breaks it on purpose, and drives it.

pub mod binary;
pub mod client;
pub mod component;
pub mod containers;
pub mod echo;
pub mod evidence;
pub mod load;
pub mod metrics;
pub mod nginx;
pub mod ports;
pub mod process;
pub mod raw;
pub mod redis_stats;
/// The dev registry moved to its own crate (it is a deployed component);
/// this path keeps `gantry_harness::registry::…` working for callers.
pub use gantry_registry as registry;
pub mod stack;
pub mod stats;
pub mod steps;
pub mod tls;
pub mod wait;

use std::time::Duration;

pub use binary::gantry_binary;
pub use stack::{
    Check, GatewaySpec, Infra, Instance, LogMarks, LogMatch, Progress, Ready, Registration, Role, Run, SavedLog,
    ServiceSpec, Stack, StackBuilder,
};

/// Why the harness could not do what was asked. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
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
    Tls(#[from] tls::PkiError),
    /// An instance that never became ready; boxed, it is large.
    #[error("{0}")]
    NeverReady(Box<stack::readiness::NeverReady>),
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
