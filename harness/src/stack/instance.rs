//! One running instance of a service, with the faults a test inflicts on it.

use std::time::Duration;

use gantry_common::registry::{AgentRegistration, CheckDefinition, ServiceRecord};

use super::readiness::{self, Probe, Target};
use super::role::Role;
use super::spec::{Check, Registration};
use crate::error::HarnessError;
use crate::run::component::Component;
use crate::run::process::Process;

/// An instance of a service (or a gateway): a process or a container, on
/// a port it keeps across restarts.
#[derive(Debug)]
pub struct Instance {
    pub(crate) role: Role,
    pub(crate) id: String,
    pub(crate) index: usize,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The port others are given through the registry: `port`, or its
    /// fault link's when the stack puts links in its hops.
    pub(crate) advertised_port: u16,
    pub(crate) admin_port: Option<u16>,
    pub(crate) runner: Component,
    pub(crate) probe: Probe,
    /// Where this start's output begins in the log file, so a log line
    /// from before a restart does not count as ready.
    pub(crate) log_from: u64,
    /// `host:port` where a container of the stack reaches it (`None`: the
    /// stack has no containers): its name on the stack's network, or the
    /// host's relay to it.
    pub(crate) inside: Option<String>,
    /// The relay that lets containers reach it: held so it lives as long.
    pub(crate) _relay: Option<crate::run::relay::Relay>,
    /// Where a registry in a container checks its health, when not at
    /// [`Instance::addr`].
    pub(crate) checked_at: Option<String>,
}

impl Instance {
    /// The instance id, e.g. `greeter-2`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its 1-based index among its service's instances.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The part it plays in the stack, and the service it is an instance of.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// `host:port` it serves on.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// `host:port` of its admin listener, when its spec asked for one.
    pub fn admin_addr(&self) -> Option<String> {
        self.admin_port.map(|p| format!("{}:{p}", self.host))
    }

    /// The process id, for a process that is running.
    pub fn pid(&self) -> Option<u32> {
        self.runner.pid()
    }

    /// The process, when the instance is one (not a container).
    pub fn process(&self) -> Option<&Process> {
        match &self.runner {
            Component::Process(p) => Some(p),
            Component::Container(_) => None,
        }
    }

    /// The process, mutably (to signal or restart it directly), when the
    /// instance is one.
    pub fn process_mut(&mut self) -> Option<&mut Process> {
        match &mut self.runner {
            Component::Process(p) => Some(p),
            Component::Container(_) => None,
        }
    }

    /// The container, when the instance is one.
    pub fn container(&self) -> Option<&crate::run::containers::Container> {
        match &self.runner {
            Component::Container(c) => Some(c),
            Component::Process(_) => None,
        }
    }

    /// The value of an environment variable the process was started with.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.process().and_then(|p| p.env(key))
    }

    /// The last `lines` lines of its output.
    pub async fn log_tail(&self, lines: usize) -> String {
        self.runner.log_tail(lines).await
    }

    /// Where its output is: a file, or the container's logs.
    pub fn log_place(&self) -> String {
        self.runner.log_place()
    }

    /// SIGKILL (or `docker kill`). A harness-registered instance stays
    /// registered: its check notices, as in a real deployment.
    pub async fn kill(&mut self) -> Result<(), HarnessError> {
        self.runner.kill().await
    }

    /// SIGTERM, then SIGKILL if it does not stop in time.
    pub async fn stop(&mut self) -> Result<(), HarnessError> {
        self.runner.stop().await
    }

    /// SIGSTOP (or `docker pause`): it hangs with its sockets open.
    pub async fn pause(&mut self) -> Result<(), HarnessError> {
        self.runner.pause().await
    }

    /// SIGCONT (or `docker unpause`).
    pub async fn resume(&mut self) -> Result<(), HarnessError> {
        self.runner.resume().await
    }

    /// Starts it again on the same port after a kill or stop, without
    /// waiting; [`Instance::wait_ready`] waits.
    pub async fn start_again(&mut self) -> Result<(), HarnessError> {
        self.mark_log();
        self.runner.start_again().await
    }

    /// Stops it and starts it again on the same port, as a deploy does, and
    /// waits until it is ready. Returns how long that took.
    pub async fn restart(&mut self) -> Result<Duration, HarnessError> {
        self.runner.stop().await?;
        self.start_again().await?;
        self.wait_ready().await
    }

    /// Waits until it is ready by its spec's readiness (and, when the
    /// harness registered it, passing in the registry).
    pub async fn wait_ready(&mut self) -> Result<Duration, HarnessError> {
        let target = Target {
            id: self.id.clone(),
            host: self.host.clone(),
            port: self.port,
            admin_port: self.admin_port,
        };
        readiness::wait_ready(&mut self.runner, &target, &self.probe, self.log_from).await
    }

    /// Kills it and forgets it: a failed start, or a stack torn down
    /// because another part failed. Errors are moot by then.
    pub(crate) async fn discard(&mut self) {
        let _ = self.runner.kill().await;
        let _ = self.runner.shut_down().await;
        let _ = self.deregister().await;
    }

    /// Stops it for good; a harness-registered instance is deregistered.
    pub async fn remove(&mut self) -> Result<(), HarnessError> {
        self.runner.shut_down().await?;
        self.deregister().await
    }

    /// Registers it with its check, when the harness is the one to.
    pub(crate) async fn register(&self) -> Result<(), HarnessError> {
        let Registration::ByHarness {
            check,
            deregister_after,
            tags,
            meta,
        } = &self.probe.registration
        else {
            return Ok(());
        };
        let checked = self.checked_at.clone().unwrap_or_else(|| self.addr());
        let check = match check {
            Check::Http {
                path,
                interval,
                timeout,
            } => CheckDefinition::Http {
                url: format!("http://{checked}{path}"),
                interval: *interval,
                timeout: *timeout,
            },
            Check::Tcp { interval, timeout } => CheckDefinition::Tcp {
                addr: checked,
                interval: *interval,
                timeout: *timeout,
            },
        };
        let reg = AgentRegistration {
            service: ServiceRecord {
                id: self.id.clone(),
                name: self.probe.service.clone(),
                address: self.host.clone(),
                port: self.advertised_port,
                tags: tags.clone(),
                meta: meta.clone(),
            },
            check,
            deregister_critical_after: *deregister_after,
        };
        self.probe
            .registry
            .register_agent(&reg)
            .await
            .map_err(|source| HarnessError::Registry {
                what: format!("registering {} for it", self.id),
                source,
            })
    }

    /// Removes it from the registry, when the harness registered it.
    pub(crate) async fn deregister(&self) -> Result<(), HarnessError> {
        if !matches!(self.probe.registration, Registration::ByHarness { .. }) {
            return Ok(());
        }
        match self.probe.registry.deregister(&self.id).await {
            Err(e) if !e.is_not_found() => Err(HarnessError::Registry {
                what: format!("deregistering {}", self.id),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn mark_log(&mut self) {
        if let Component::Process(p) = &self.runner {
            self.log_from = std::fs::metadata(p.log_path()).map(|m| m.len()).unwrap_or(0);
        }
    }
}
