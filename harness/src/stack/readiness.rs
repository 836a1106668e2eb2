//! Knowing an instance is ready: its spec's [`Ready`] condition polled until
//! it holds, and for an instance the harness registered, passing in the
//! registry too. When it never holds, the error says what was awaited, what
//! was last seen and what the instance logged.

use std::path::Path;
use std::time::Duration;

use gantry_common::registry::RegistryClient;

use super::instance::Instance;
use super::spec::{Ready, Registration};
use crate::HarnessError;
use crate::component::Component;
use crate::containers::Container;
use crate::wait;

/// How long one readiness probe (an HTTP call, a TCP connect) may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How many log lines an error shows.
pub const TAIL_LINES: usize = 20;

/// What an instance's readiness depends on, apart from the instance itself.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The registry name of the service.
    pub service: String,
    pub ready: Ready,
    pub registration: Registration,
    pub timeout: Duration,
    pub registry: RegistryClient,
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

/// Where to look for a log line.
enum Logs<'a> {
    /// The process's log file, from `from` bytes on (this start's output).
    File(&'a Path, u64),
    Container(&'a Container),
}

/// The host address and ports a probe talks to.
#[derive(Clone)]
struct Target {
    id: String,
    host: String,
    port: u16,
    admin_port: Option<u16>,
}

/// Waits until `inst` is ready. Fails at once if its process exits, and after
/// its timeout with what was awaited and last seen.
pub async fn wait_ready(inst: &mut Instance) -> Result<Duration, HarnessError> {
    let target = Target {
        id: inst.id.clone(),
        host: inst.host.clone(),
        port: inst.port,
        admin_port: inst.admin_port,
    };
    let probe = inst.probe.clone();
    let awaited = awaited(&probe, &target);
    let result = match &mut inst.runner {
        Component::Process(p) => {
            let log = p.log_path().to_owned();
            let from = inst.log_from;
            wait::until(&awaited, probe.timeout, Some(p), || {
                observe(&probe, &target, Logs::File(&log, from))
            })
            .await
        }
        Component::Container(c) => {
            let c = &*c;
            wait::until(&awaited, probe.timeout, None, || {
                observe(&probe, &target, Logs::Container(c))
            })
            .await
        }
    };
    match result {
        Err(HarnessError::NotReady { what, waited, last }) => Err(HarnessError::NeverReady(Box::new(NeverReady {
            service: probe.service.clone(),
            instance: target.id.clone(),
            awaited: what,
            waited,
            last,
            log: inst.log_place(),
            tail: inst.log_tail(TAIL_LINES).await,
        }))),
        other => other,
    }
}

/// What readiness means for this instance, in words.
fn awaited(probe: &Probe, t: &Target) -> String {
    let ready = match &probe.ready {
        Ready::Http { path } => format!("GET {path} on port {} to answer 2xx", t.admin_port.unwrap_or(t.port)),
        Ready::Tcp => format!("port {} to accept connections", t.port),
        Ready::LogLine(m) => m.to_string(),
        Ready::Passing => return format!("{} to pass in the registry", t.id),
    };
    match probe.registration {
        Registration::ByHarness { .. } => format!("{ready} and {} to pass in the registry", t.id),
        _ => ready,
    }
}

/// `Ok(true)` when ready; otherwise what was seen, for the error.
async fn observe(probe: &Probe, t: &Target, logs: Logs<'_>) -> Result<bool, String> {
    match &probe.ready {
        Ready::Http { path } => {
            let url = format!("http://{}:{}{path}", t.host, t.admin_port.unwrap_or(t.port));
            let resp = reqwest::Client::new()
                .get(&url)
                .timeout(PROBE_TIMEOUT)
                .send()
                .await
                .map_err(|e| format!("GET {path}: {}", gantry_common::error::chain(&e)))?;
            let status = resp.status();
            if !status.is_success() {
                let body = resp.text().await.unwrap_or_default();
                return Err(format!("GET {path} answered {status}: {}", clip(&body)));
            }
        }
        Ready::Tcp => {
            let addr = format!("{}:{}", t.host, t.port);
            match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(&addr)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("connecting to {addr}: {e}")),
                Err(_) => return Err(format!("connecting to {addr}: no answer within {PROBE_TIMEOUT:?}")),
            }
        }
        Ready::LogLine(m) => {
            let text = match logs {
                Logs::File(path, from) => read_from(path, from),
                Logs::Container(c) => c.logs().await,
            };
            if !text.lines().any(|line| m.is_in(line)) {
                return Err(format!("no such line among {} lines logged", text.lines().count()));
            }
        }
        Ready::Passing => return passing(probe, &t.id).await,
    }
    match probe.registration {
        Registration::ByHarness { .. } => passing(probe, &t.id).await,
        _ => Ok(true),
    }
}

/// `Ok(true)` when the registry lists instance `id` as passing; otherwise
/// its failing check and the check's output.
pub async fn passing(probe: &Probe, id: &str) -> Result<bool, String> {
    let found = probe
        .registry
        .health_service(&probe.service, true, None, Duration::ZERO)
        .await
        .map_err(|e| e.to_string())?;
    if found.value.iter().any(|i| i.id == id) {
        return Ok(true);
    }
    let checks = probe
        .registry
        .service_checks(&probe.service)
        .await
        .map_err(|e| e.to_string())?;
    match checks.iter().find(|c| c.service_id == id && c.status != "passing") {
        Some(c) => Err(format!("check {:?} is {}: {}", c.check_id, c.status, clip(&c.output))),
        None => Err(format!("{id} is not in the registry")),
    }
}

/// Waits until `registry` lists instance `id` of `service` as passing; with
/// `process`, fails at once if that process exits meanwhile.
pub async fn wait_passing(
    registry: &RegistryClient,
    service: &str,
    id: &str,
    process: Option<&mut crate::process::Process>,
) -> Result<Duration, HarnessError> {
    let probe = Probe {
        service: service.to_owned(),
        ready: Ready::Passing,
        registration: Registration::SelfRegisters,
        timeout: super::READY_TIMEOUT,
        registry: registry.clone(),
    };
    wait::until(&format!("{id} to pass in the registry"), probe.timeout, process, || {
        passing(&probe, id)
    })
    .await
}

/// The file's text from byte `from` on ("" if unreadable).
fn read_from(path: &Path, from: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

/// At most 200 characters of `text`, on one line.
fn clip(text: &str) -> String {
    text.chars().take(200).collect::<String>().replace('\n', " ")
}
