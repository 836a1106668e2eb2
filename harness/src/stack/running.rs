//! A running stack: its groups (Redis, the registry, the services, the
//! gateways) by [`Role`], what they were started with, and everything a
//! test does to it as a whole. Built by [`super::builder::StackBuilder::start`] once
//! every part is up; Gantry's own helpers are in [`super::gantry`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use gantry_common::registry::RegistryClient;

use super::group::{Context, Group, peers};
use super::instance::Instance;
use super::logs::{self, LogMarks, SavedLog};
use super::progress::Progress;
use super::readiness::wait_passing;
use super::role::{self, Role};
use crate::error::HarnessError;
use crate::faults::{FaultProxy, LinkHandle};
use crate::run::component::Component;
use crate::run::containers::Container;
use crate::run::process::Process;

/// A running stack. Dropping it kills every process; [`Stack::stop`] stops
/// them gracefully, in the reverse of the start order (gateways first,
/// Redis last).
#[derive(Debug)]
pub struct Stack {
    /// Holds the stack's directory ([`Context::dir`]) until the stack goes.
    dir: tempfile::TempDir,
    ctx: Context,
    /// Every part in start order: Redis, the registry, the services, the gateways.
    groups: Vec<Group>,
    /// The `gantry` executable the stack runs its own components with.
    binary: PathBuf,
    /// The Ed25519 seed auth signs with (changed by a key rotation).
    pub(super) signing_seed: [u8; 32],
    /// The private CA the gateways' certificate is from, when they speak TLS.
    ca_cert: Option<PathBuf>,
    /// Derived from the gateway group: kept, as callers borrow them.
    gateway_urls: Vec<String>,
    gateway_admin_urls: Vec<String>,
}

impl Stack {
    /// The stack whose `groups` are up, started with `ctx` in `dir`.
    pub(super) fn new(
        dir: tempfile::TempDir,
        ctx: Context,
        groups: Vec<Group>,
        binary: PathBuf,
        signing_seed: [u8; 32],
        ca_cert: Option<PathBuf>,
    ) -> Self {
        let mut stack = Self {
            dir,
            ctx,
            groups,
            binary,
            signing_seed,
            ca_cert,
            gateway_urls: Vec::new(),
            gateway_admin_urls: Vec::new(),
        };
        stack.refresh_gateway_urls();
        stack
    }

    /// The gateways' instances, in order.
    fn gateways(&self) -> impl Iterator<Item = &Instance> {
        self.groups
            .iter()
            .filter(|g| g.role == Role::Gateway)
            .flat_map(|g| &g.instances)
    }

    /// The fault proxy whose links are in this stack's hops, when it was
    /// started with [`super::StackBuilder::fault_links`].
    pub fn faults(&self) -> Option<&FaultProxy> {
        self.ctx.faults.as_ref()
    }

    /// The link in front of instance `n` of `service` (what the registry
    /// hands out for it): `stack.link("user", 2)?.add(toxic)`.
    pub fn link(&self, service: &str, n: usize) -> Result<LinkHandle, HarnessError> {
        let id = self.instance(service, n)?.id().to_owned();
        self.link_named(&id)
    }

    /// The link on instance `n` of `service`'s hop to `to` (`"redis"` or
    /// `"registry"`): `stack.hop("gateway", 1, "redis")?.disable()`.
    pub fn hop(&self, service: &str, n: usize, to: &str) -> Result<LinkHandle, HarnessError> {
        let id = self.instance(service, n)?.id().to_owned();
        self.link_named(&format!("{id}.{to}"))
    }

    /// A link by its name (`user-2`, `user-2.redis`, `gateway-1.registry`).
    pub fn link_named(&self, name: &str) -> Result<LinkHandle, HarnessError> {
        let faults = self.faults().ok_or_else(|| {
            HarnessError::Faults("this stack has no fault links: start it with StackBuilder::fault_links(true)".into())
        })?;
        Ok(LinkHandle::new(faults, name))
    }

    /// The first gateway's public URL ("" when the stack has no gateway).
    pub fn gateway_url(&self) -> &str {
        self.gateway_urls.first().map_or("", String::as_str)
    }

    /// Each gateway's public URL: over TLS by the name the certificate is
    /// for (`https://localhost:<port>`), else `http://<addr>`.
    pub fn gateway_urls(&self) -> &[String] {
        &self.gateway_urls
    }

    /// Each gateway's admin listener (`/metrics`, the detailed `/readyz`), in
    /// the order of [`Stack::gateway_urls`].
    pub fn gateway_admin_urls(&self) -> &[String] {
        &self.gateway_admin_urls
    }

    fn refresh_gateway_urls(&mut self) {
        let tls = self.ca_cert.is_some();
        self.gateway_urls = self
            .gateways()
            .map(|i| match tls {
                true => format!("https://localhost:{}", i.port),
                false => format!("http://{}", i.addr()),
            })
            .collect();
        self.gateway_admin_urls = self
            .gateways()
            .map(|i| format!("http://{}", i.admin_addr().unwrap_or_else(|| i.addr())))
            .collect();
    }

    /// `REDIS_URL` ("" when the stack has no Redis).
    pub fn redis_url(&self) -> &str {
        &self.ctx.redis_url
    }

    /// `host:port` of the registry's HTTP API.
    pub fn registry_addr(&self) -> &str {
        &self.ctx.registry_addr
    }

    /// A client of the registry holding its ACL token (as the services do).
    pub fn registry(&self) -> RegistryClient {
        self.ctx.registry()
    }

    /// The registry's management ACL token (`CONSUL_HTTP_TOKEN`): without it
    /// the registry refuses writes and hides what it holds.
    pub fn registry_token(&self) -> &str {
        &self.ctx.registry_token
    }

    /// The Ed25519 seed auth signs with, so tests can mint tokens the
    /// stack trusts (expired, wrong audience, …).
    pub fn signing_seed(&self) -> [u8; 32] {
        self.signing_seed
    }

    /// Environment every Gantry service process was given (with test overrides).
    pub fn service_env(&self) -> &[(String, String)] {
        &self.ctx.gantry_env
    }

    /// The `gantry` executable the stack runs its own components with.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Where the processes' logs are.
    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The services' names in start order (`gateway` last when there is
    /// one); Redis and the registry are not services.
    pub fn services(&self) -> Vec<&str> {
        self.groups
            .iter()
            .filter(|g| matches!(g.role, Role::Service(_) | Role::Gateway))
            .map(|g| g.spec.name.as_str())
            .collect()
    }

    fn group_index(&self, name: &str) -> Result<usize, HarnessError> {
        self.groups
            .iter()
            .position(|g| g.spec.name == name)
            .ok_or_else(|| self.no_such(name.to_owned()))
    }

    fn no_such(&self, wanted: String) -> HarnessError {
        let have: Vec<String> = self
            .groups
            .iter()
            .map(|g| format!("{} ×{}", g.spec.name, g.instances.len()))
            .collect();
        HarnessError::NoSuchInstance {
            wanted,
            have: if have.is_empty() {
                "the stack has no services".into()
            } else {
                format!("the stack has {}", have.join(", "))
            },
        }
    }

    /// The running instances of `service` (or `redis`, `registry`), in index order.
    pub fn instances(&self, service: &str) -> Result<&[Instance], HarnessError> {
        Ok(&self.groups[self.group_index(service)?].instances)
    }

    /// Instance `n` (1-based) of `service` (or `redis`, `registry`).
    pub fn instance(&self, service: &str, n: usize) -> Result<&Instance, HarnessError> {
        let g = self.group_index(service)?;
        self.groups[g]
            .instances
            .iter()
            .find(|i| i.index == n)
            .ok_or_else(|| self.no_such(format!("{service}-{n}")))
    }

    /// Instance `n` (1-based) of `service` (or `redis`, `registry`), to break and mend.
    pub fn instance_mut(&mut self, service: &str, n: usize) -> Result<&mut Instance, HarnessError> {
        let g = self.group_index(service)?;
        match self.groups[g].instances.iter().position(|i| i.index == n) {
            Some(at) => Ok(&mut self.groups[g].instances[at]),
            None => Err(self.no_such(format!("{service}-{n}"))),
        }
    }

    /// Starts instance `index` of group `g` and waits until it is ready.
    pub(super) async fn start_instance(&mut self, g: usize, index: usize) -> Result<Duration, HarnessError> {
        let peers = peers(&self.groups);
        let took = self.groups[g]
            .start_instance(&self.ctx, index, &peers, &mut |_| {})
            .await?;
        self.refresh_gateway_urls();
        Ok(took)
    }

    /// Starts one more replica of `service` and waits until it is ready.
    /// Returns its instance id.
    pub async fn add_instance(&mut self, service: &str) -> Result<String, HarnessError> {
        let g = self.group_index(service)?;
        let index = self.groups[g].instances.iter().map(|i| i.index).max().unwrap_or(0) + 1;
        self.start_instance(g, index).await?;
        Ok(format!("{service}-{index}"))
    }

    /// Stops every instance of `service` and starts each again with the
    /// stack's environment as it is now (after [`Stack::set_gantry_env`]),
    /// on new ports, waiting until each is ready.
    pub async fn redeploy(&mut self, service: &str) -> Result<(), HarnessError> {
        let g = self.group_index(service)?;
        let mut old = std::mem::take(&mut self.groups[g].instances);
        for i in &mut old {
            i.stop().await?;
        }
        let indices: Vec<usize> = old.iter().map(|i| i.index).collect();
        drop(old);
        for index in if indices.is_empty() { vec![1] } else { indices } {
            self.start_instance(g, index).await?;
        }
        Ok(())
    }

    /// Sets a variable of the environment Gantry's own components are
    /// started with from now on (what [`Stack::service_env`] lists).
    pub fn set_gantry_env(&mut self, key: &str, value: &str) {
        let env = &mut self.ctx.gantry_env;
        env.retain(|(k, _)| k != key);
        env.push((key.to_owned(), value.to_owned()));
    }

    /// The processes of `service`'s instances (containers left out).
    pub fn processes_mut(&mut self, service: &str) -> Vec<&mut Process> {
        self.groups
            .iter_mut()
            .filter(|g| g.spec.name == service)
            .flat_map(|g| g.instances.iter_mut())
            .filter_map(Instance::process_mut)
            .collect()
    }

    /// `host:port` of each instance of `service`.
    pub fn addrs(&self, service: &str) -> Vec<String> {
        self.instances(service)
            .map(|all| all.iter().map(Instance::addr).collect())
            .unwrap_or_default()
    }

    /// The gateways' processes, in order.
    pub fn gateways_mut(&mut self) -> Vec<&mut Process> {
        self.processes_mut(role::GATEWAY)
    }

    /// The instance playing `role` alone (Redis, the registry), to break and mend.
    fn single_mut(&mut self, role: &Role) -> Option<&mut Instance> {
        let g = self.groups.iter_mut().find(|g| g.role == *role)?;
        g.instances.first_mut()
    }

    /// Redis, to break and mend (`None` without one).
    pub fn redis_mut(&mut self) -> Option<&mut Instance> {
        self.single_mut(&Role::Redis)
    }

    /// The registry, to break and mend (`None` when it is not the stack's own).
    pub fn registry_mut(&mut self) -> Option<&mut Instance> {
        self.single_mut(&Role::Registry)
    }

    fn all_instances(&self) -> impl Iterator<Item = &Instance> {
        self.groups.iter().flat_map(|g| &g.instances)
    }

    /// The process id of the instance named `name` (`gateway-1`, `user-2`,
    /// `redis-1`), e.g. to read what CPU it has used.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        self.all_instances().find(|i| i.id == name).and_then(Instance::pid)
    }

    /// Process ids of everything running as a process, for checks that
    /// nothing is left behind.
    pub fn pids(&self) -> Vec<u32> {
        self.all_instances().filter_map(Instance::pid).collect()
    }

    /// Starts one more gateway (`gateway-<n+1>`, a new replica) with the
    /// stack's environment on free ports and waits until its admin `/readyz`
    /// is 200. Returns its public URL, also last in [`Stack::gateway_urls`].
    pub async fn add_gateway(&mut self) -> Result<String, HarnessError> {
        self.add_instance(role::GATEWAY).await?;
        Ok(self.gateway_urls.last().cloned().unwrap_or_default())
    }

    /// Restarts gateway `n` (1-based) as a deploy or a crash would: stopped
    /// (SIGTERM), started again with the same environment and ports, and
    /// waited for until its admin `/readyz` is 200. It comes back with empty
    /// caches and a new subscription to the revocation channel.
    pub async fn restart_gateway(&mut self, n: usize) -> Result<Duration, HarnessError> {
        self.instance_mut(role::GATEWAY, n)?.restart().await
    }

    /// Waits until instance `id` of `service` is passing in the registry.
    pub async fn wait_passing(&self, service: &str, id: &str) -> Result<Duration, HarnessError> {
        wait_passing(&self.registry(), service, id, None).await
    }

    /// Waits until every gateway answers `/readyz` with 200.
    pub async fn wait_gateways_ready(&mut self) -> Result<(), HarnessError> {
        if let Ok(g) = self.group_index(role::GATEWAY) {
            for i in &mut self.groups[g].instances {
                i.wait_ready().await?;
            }
        }
        Ok(())
    }

    /// The CA certificate (PEM) the gateways' TLS certificate is from, when
    /// the stack was built with [`super::builder::StackBuilder::gateway_tls`]: what
    /// clients of [`Stack::gateway_urls`] must trust
    /// (`gantry_common::tls::client_builder_trusting`).
    pub fn ca_cert(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// Every container of the stack (Redis, the registry, services run
    /// from images).
    fn containers(&self) -> Vec<&Container> {
        self.all_instances()
            .filter_map(|i| match &i.runner {
                Component::Container(c) => Some(c),
                Component::Process(_) => None,
            })
            .collect()
    }

    /// Where every log stands now, for [`Stack::save_logs`] to copy only
    /// what is written after.
    pub async fn log_marks(&self) -> LogMarks {
        logs::marks(self.dir.path(), &self.containers()).await
    }

    /// Copies every process's and container's log into `dest` (created),
    /// as `<name>.log`: whole, or only what was written after `since`.
    pub async fn save_logs(&self, dest: &Path, since: Option<&LogMarks>) -> Result<Vec<SavedLog>, HarnessError> {
        logs::save(self.dir.path(), &self.containers(), dest, since).await
    }

    /// Stops everything gracefully, in the reverse of the start order
    /// (gateways first, Redis last). Instances the harness registered are
    /// deregistered.
    pub async fn stop(mut self, progress: &mut dyn FnMut(Progress<'_>)) -> Result<(), HarnessError> {
        for group in self.groups.iter_mut().rev() {
            for i in &mut group.instances {
                progress(Progress::Stopping(&i.id));
                i.remove().await?;
            }
        }
        // Once its containers are gone.
        if let Some(network) = &self.ctx.network {
            network.remove().await;
        }
        Ok(())
    }
}
