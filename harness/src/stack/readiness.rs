//! Knowing an instance is ready: its spec's [`Ready`] condition polled until
//! it holds, and for an instance the harness registered, passing in the
//! registry too. When it never holds, the error says what was awaited, what
//! was last seen and what the instance logged.

use std::path::Path;
use std::time::Duration;

use gantry_common::registry::RegistryClient;

use super::spec::{READY_TIMEOUT, Ready, Registration};
use crate::error::{HarnessError, NeverReady};
use crate::run::component::Component;
use crate::run::containers::Container;
use crate::run::wait;

/// How long one readiness probe (an HTTP call, a TCP connect) may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How many log lines an error shows.
pub const TAIL_LINES: usize = 20;

/// What an instance's readiness depends on, apart from the instance itself.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The registry name of the service.
    pub service: String,
    /// The condition its spec sets.
    pub ready: Ready,
    /// How it gets into the registry; one the harness registers must pass there too.
    pub registration: Registration,
    /// How long it may take to become ready.
    pub timeout: Duration,
    /// A client of the stack's registry, with its ACL token.
    pub registry: RegistryClient,
}

/// Where to look for a log line.
enum Logs<'a> {
    /// The process's log file, from `from` bytes on (this start's output).
    File(&'a Path, u64),
    Container(&'a Container),
}

/// The instance a probe looks at: its id, and the host address and ports
/// it serves on.
#[derive(Debug, Clone)]
pub struct Target {
    /// The instance id, e.g. `greeter-2`.
    pub id: String,
    /// The host address it serves on.
    pub host: String,
    /// The port it serves on (on the host).
    pub port: u16,
    /// Its admin listener's port, where [`Ready::Http`] is probed, if it has one.
    pub admin_port: Option<u16>,
}

/// Waits until the instance `target` names, run by `runner`, is ready by
/// `probe` (its log read from byte `log_from` on). Fails at once if its
/// process exits, and after the probe's timeout with what was awaited and
/// last seen.
pub async fn wait_ready(
    runner: &mut Component,
    target: &Target,
    probe: &Probe,
    log_from: u64,
) -> Result<Duration, HarnessError> {
    let awaited = awaited(probe, target);
    let result = match runner {
        Component::Process(p) => {
            let log = p.log_path().to_owned();
            let from = log_from;
            wait::until(&awaited, probe.timeout, Some(p), || {
                observe(probe, target, Logs::File(&log, from))
            })
            .await
        }
        Component::Container(c) => {
            let c = &*c;
            wait::until(&awaited, probe.timeout, None, || {
                observe(probe, target, Logs::Container(c))
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
            log: runner.log_place(),
            tail: runner.log_tail(TAIL_LINES).await,
        }))),
        other => other,
    }
}

/// What readiness means for this instance, in words.
fn awaited(probe: &Probe, t: &Target) -> String {
    let ready = match &probe.ready {
        Ready::Http { path } => format!("GET {path} on port {} to answer 2xx", t.admin_port.unwrap_or(t.port)),
        Ready::Tcp => format!("port {} to accept connections", t.port),
        Ready::Healthcheck => "its container's HEALTHCHECK to report healthy".to_owned(),
        Ready::LogLine(m) => m.to_string(),
        Ready::Passing => return format!("{} to pass in the registry", t.id),
        Ready::RedisPing { .. } => format!("redis on port {} to answer PING", t.port),
        Ready::RegistryLeader => format!("the registry on port {} to elect a leader", t.port),
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
        Ready::Healthcheck => {
            let Logs::Container(c) = logs else {
                return Err("a process has no HEALTHCHECK: only an image's container does".into());
            };
            match c.health().await.map_err(|e| e.to_string())? {
                Some(status) if status == "healthy" => {}
                Some(status) => return Err(format!("its HEALTHCHECK says {status}")),
                None => return Err("the image has no HEALTHCHECK".into()),
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
        Ready::RedisPing { password } => {
            let url = redis_url(&format!("{}:{}", t.host, t.port), password);
            if !redis_ping(&url).await? {
                return Ok(false);
            }
        }
        Ready::RegistryLeader => {
            let client = RegistryClient::new(&format!("{}:{}", t.host, t.port));
            let leader = client.leader().await.map_err(|e| e.to_string())?;
            if leader.is_empty() {
                return Err("no leader elected yet".into());
            }
        }
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
    if found.value.iter().any(|i| i.service.id == id) {
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
    process: Option<&mut crate::run::process::Process>,
) -> Result<Duration, HarnessError> {
    let probe = Probe {
        service: service.to_owned(),
        ready: Ready::Passing,
        registration: Registration::SelfRegisters,
        timeout: READY_TIMEOUT,
        registry: registry.clone(),
    };
    wait::until(&format!("{id} to pass in the registry"), probe.timeout, process, || {
        passing(&probe, id)
    })
    .await
}

/// `redis://:<password>@<addr>`, the form `REDIS_URL` takes.
pub fn redis_url(addr: &str, password: &str) -> String {
    format!("redis://:{password}@{addr}")
}

/// `PING` as a client of `url` (password included) does it: true on
/// `PONG`; Redis's own error (e.g. `WRONGPASS`) otherwise.
async fn redis_ping(url: &str) -> Result<bool, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, ping).await {
        Ok(Ok(pong)) => Ok(pong == "PONG"),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer to PING within {PROBE_TIMEOUT:?}")),
    }
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
