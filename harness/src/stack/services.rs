//! Starting an instance of a service from its spec: its port, its
//! environment with placeholders filled, a process or a container, its
//! registration when the harness is the one to register it, and the wait
//! until it is ready, all through the one start-on-a-free-port routine.

use std::path::PathBuf;
use std::time::Duration;

use super::instance::Instance;
use super::launch;
use super::placeholders::Values;
use super::readiness::Probe;
use super::role::Role;
use super::spec::{Run, ServiceSpec};
use super::{Progress, Stack};
use crate::HarnessError;
use crate::component::Component;
use crate::containers;
use crate::process::{self, Process};

/// The loopback address every instance serves on.
pub const HOST: &str = "127.0.0.1";

/// A service of a stack: its spec, its role and its instances by index.
#[derive(Debug)]
pub(crate) struct Group {
    pub spec: ServiceSpec,
    pub role: Role,
    pub instances: Vec<Instance>,
}

impl Stack {
    /// Starts instance `index` (1-based) of group `g` and waits until it is
    /// ready. On failure nothing of it is left running.
    pub(super) async fn start_instance(
        &mut self,
        g: usize,
        index: usize,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Duration, HarnessError> {
        let spec = self.groups[g].spec.clone();
        let role = self.groups[g].role.clone();
        let id = format!("{}-{index}", spec.name);
        progress(Progress::Starting(&id));
        let fixed = if index == 1 { spec.port } else { None };
        let this = &*self;
        let (instance, took) =
            launch::on_free_port(fixed, async |port| this.try_instance(&spec, &role, index, port).await).await?;
        let instances = &mut self.groups[g].instances;
        let at = instances
            .iter()
            .position(|i| i.index > index)
            .unwrap_or(instances.len());
        instances.insert(at, instance);
        if role == Role::Gateway {
            self.refresh_gateway_urls();
        }
        progress(Progress::Ready(&id, took));
        Ok(took)
    }

    /// One attempt on `port`.
    async fn try_instance(
        &self,
        spec: &ServiceSpec,
        role: &Role,
        index: usize,
        port: u16,
    ) -> Result<(Instance, Duration), HarnessError> {
        let id = format!("{}-{index}", spec.name);
        let admin_port = if spec.admin_port {
            Some(launch::any_port()?)
        } else {
            None
        };
        let mut values = Values {
            port,
            admin_port,
            host: HOST.to_owned(),
            id: id.clone(),
            index,
            name: spec.name.clone(),
            registry: format!("http://{}", self.registry_addr),
            registry_token: self.registry_token.clone(),
            redis: self.redis_url.clone(),
            dir: self.dir.path().display().to_string(),
            peers: self
                .groups
                .iter()
                .filter_map(|g| Some((g.spec.name.clone(), g.instances.first()?.addr())))
                .collect(),
        };
        if let Run::Image { port: inside, .. } = &spec.run {
            // Inside its container the service listens on every interface
            // of the container, on the port its image expects.
            values.port = *inside;
            values.host = "0.0.0.0".to_owned();
        }
        let mut env = if spec.gantry_env {
            self.service_env.clone()
        } else {
            self.common_env.clone()
        };
        env.extend(spec.env.iter().map(|(k, v)| (k.clone(), values.fill(v))));
        env.extend(
            spec.instance_env
                .iter()
                .filter(|(n, _, _)| *n == index)
                .map(|(_, k, v)| (k.clone(), values.fill(v))),
        );
        let log = self.dir.path().join(format!("{id}.log"));
        let log_from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let runner = match &spec.run {
            Run::Command { program, args } => {
                let pspec = process::Spec {
                    name: id.clone(),
                    program: program.clone(),
                    args: args.iter().map(|a| values.fill(a)).collect(),
                    env,
                    log,
                };
                let dir = spec
                    .workdir
                    .as_ref()
                    .map(|d| PathBuf::from(values.fill(&d.display().to_string())));
                Component::Process(Process::start_in(pspec, dir)?)
            }
            Run::Image { image, port: inside } => {
                Component::Container(containers::service(&id, image, *inside, port, &env).await?)
            }
        };
        let mut instance = Instance {
            role: role.clone(),
            id,
            index,
            host: HOST.to_owned(),
            port,
            admin_port,
            runner,
            probe: Probe {
                service: spec.name.clone(),
                ready: spec.ready.clone(),
                registration: spec.registration.clone(),
                timeout: spec.ready_timeout,
                registry: self.registry(),
            },
            log_from,
        };
        let ready = match instance.register().await {
            Ok(()) => instance.wait_ready().await,
            Err(e) => Err(e),
        };
        match ready {
            Ok(took) => Ok((instance, took)),
            Err(e) => {
                instance.discard().await;
                Err(e)
            }
        }
    }
}

impl Instance {
    /// Kills it and forgets it: a failed start, or a stack torn down
    /// because another part failed. Errors are moot by then.
    pub(crate) async fn discard(&mut self) {
        let _ = self.runner.kill().await;
        let _ = self.runner.shut_down().await;
        let _ = self.deregister().await;
    }
}
