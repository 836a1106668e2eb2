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
    /// A program the stack needs (`gantry`, `redis-server`) is not where
    /// the harness looked, or is the wrong version; the hint says how to get it.
    #[error("{program} was not found: {hint}")]
    Missing {
        /// The program, or the path that was named for it.
        program: String,
        /// What to build, install or set so the harness finds it.
        hint: String,
    },
    /// The OS would not start a process, or its log file could not be opened.
    #[error("could not start {name} ({program}): {source}")]
    Spawn {
        /// The process's name in the stack, e.g. `greeter-2`.
        name: String,
        /// The program it runs.
        program: String,
        /// Why the OS refused.
        #[source]
        source: std::io::Error,
    },
    /// A process ended while the harness waited for it to be ready; the
    /// tail of its log usually says why.
    #[error("{name} exited ({status}) before it was ready; its log is {log}:\n{tail}")]
    Exited {
        /// The process's name in the stack.
        name: String,
        /// How it ended: its exit code or the signal.
        status: String,
        /// Where its whole log is.
        log: String,
        /// Its log's last lines.
        tail: String,
    },
    /// Something was still not ready when the deadline passed.
    #[error("gave up waiting {waited:?} for {what}: {last}")]
    NotReady {
        /// What was awaited, e.g. `greeter-2 to pass in the registry`.
        what: String,
        /// How long the harness waited.
        waited: Duration,
        /// What the last attempt saw, to tell a slow start from a wrong one.
        last: String,
    },
    /// The gateway's fixed port is taken by something else; the stack did not start.
    #[error("port {0} is already in use: stop what holds it or choose another with --port")]
    PortBusy(u16),
    /// A fault or a signal was asked of a process or container that is not
    /// running (killed or stopped, not started again): start it again first.
    #[error("{0} is not running")]
    NotRunning(String),
    /// Sending a signal (kill(2)) to a process of the stack failed.
    #[error("could not signal {name}: {source}")]
    Signal {
        /// The process's name in the stack.
        name: String,
        /// Why the OS refused.
        #[source]
        source: std::io::Error,
    },
    /// A failure with no variant of its own; the message says what the
    /// harness was doing.
    #[error("{0}")]
    Unsupported(String),
    /// Docker could not start, stop, pause or remove a container (is
    /// Docker running, is the image there?); `detail` says which step failed.
    #[error("container {name}: {detail}")]
    Container {
        /// The container's name in the stack.
        name: String,
        /// The step that failed and Docker's answer.
        detail: String,
    },
    /// A file, directory or socket the harness needs failed: what it was
    /// doing, and the OS error.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The TLS files for the gateways could not be made.
    #[error("the gateways' TLS certificate: {0}")]
    Tls(#[from] PkiError),
    /// An instance that never became ready; boxed, it is large.
    #[error("{0}")]
    NeverReady(Box<NeverReady>),
    /// A test named an instance the stack does not have: a typo, or an
    /// index past its service's count.
    #[error("no instance {wanted}: {have}")]
    NoSuchInstance {
        /// The instance that was asked for.
        wanted: String,
        /// The services and counts the stack does have.
        have: String,
    },
    /// A service's spec cannot work (a bad name, a name used twice, an
    /// unknown placeholder, a reference to a service not started before
    /// it); nothing was started: fix the spec.
    #[error("service {service}: {problem}")]
    BadSpec {
        /// The service whose spec is wrong.
        service: String,
        /// What is wrong with it and what was expected.
        problem: String,
    },
    /// The registry refused or failed a registration the harness makes for
    /// an instance.
    #[error("{what}: {source}")]
    Registry {
        /// What the harness was doing, e.g. `registering greeter-2 for it`.
        what: String,
        /// The registry client's error.
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
    /// The service it is an instance of.
    pub service: String,
    /// The instance id, e.g. `greeter-2`.
    pub instance: String,
    /// Its readiness condition in words, e.g. `GET /readyz on port 8080 to answer 2xx`.
    pub awaited: String,
    /// How long the harness waited.
    pub waited: Duration,
    /// What the last readiness attempt saw.
    pub last: String,
    /// Where its whole log is: a file, or the container's logs.
    pub log: String,
    /// Its log's last lines.
    pub tail: String,
}

/// Why the stack's TLS files (`crate::run::tls::TestPki`) could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen could not make a key or a certificate.
    #[error("generating the test certificates failed")]
    Generate(#[from] rcgen::Error),
    /// A PEM file could not be written to the stack's directory.
    #[error("writing {path} failed")]
    Write {
        /// The file that was being written.
        path: PathBuf,
        /// Why the OS refused.
        #[source]
        source: std::io::Error,
    },
}
