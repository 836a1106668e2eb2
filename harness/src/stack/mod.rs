//! The one place that knows how to start and stop a whole stack: Redis, the
//! registry, the services described by [`ServiceSpec`]s and the gateways,
//! each a real process (or container).
//!
//! Split along its seams: [`builder`] describes a stack, [`infra`] starts
//! Redis and the registry, [`services`] starts instances from specs through
//! the one start-on-a-free-port routine in [`launch`], [`readiness`] knows
//! when they are up, [`instance`] breaks them, [`file`] reads `stack.toml`.

pub mod builder;
pub mod file;
pub mod infra;
pub mod instance;
pub mod launch;
pub mod logs;
mod placeholders;
pub mod readiness;
pub mod role;
mod services;
pub mod spec;

use std::path::{Path, PathBuf};
use std::time::Duration;

use gantry_common::jwt;
use gantry_common::registry::RegistryClient;

pub use builder::{GatewaySpec, StackBuilder};
pub(crate) use infra::consul_acl_hcl;
pub use infra::{Infra, RegistryKind, redis_url, which};
pub use instance::Instance;
pub use logs::{LogMarks, SavedLog};
pub(crate) use readiness::wait_passing;
pub use role::Role;
pub use spec::{Check, LogMatch, READY_TIMEOUT, Ready, Registration, Run, ServiceSpec};

use crate::HarnessError;
use crate::component::Component;
use crate::process::Process;
use services::Group;

/// The TTL the harness gives service checks: short, so failover shows quickly.
pub const DEFAULT_CHECK_TTL: Duration = Duration::from_secs(2);

/// A step of starting or stopping, for progress displays.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    Starting(&'a str),
    Ready(&'a str, Duration),
    Stopping(&'a str),
    /// Something worth telling, such as which provider was chosen and why.
    Note(&'a str),
}

/// A running stack. Dropping it kills every process; [`Stack::stop`] stops
/// them gracefully, in the reverse of the start order (gateways first).
#[derive(Debug)]
pub struct Stack {
    dir: tempfile::TempDir,
    redis: Option<Component>,
    registry: Option<Component>,
    /// The services in start order, the gateways last.
    groups: Vec<Group>,
    redis_url: String,
    registry_addr: String,
    gateway_urls: Vec<String>,
    gateway_admin_urls: Vec<String>,
    /// What Gantry's own components are given.
    service_env: Vec<(String, String)>,
    /// What every service is given ([`StackBuilder::env`]).
    common_env: Vec<(String, String)>,
    binary: PathBuf,
    signing_seed: [u8; 32],
    /// Redis's `requirepass`, carried in [`Stack::redis_url`].
    redis_password: String,
    /// The registry's management ACL token, given to services as `CONSUL_HTTP_TOKEN`.
    registry_token: String,
    /// The private CA the gateways' certificate is from, when they speak TLS.
    ca_cert: Option<PathBuf>,
}

impl Stack {
    pub fn gateway_url(&self) -> &str {
        &self.gateway_urls[0]
    }

    pub fn gateway_urls(&self) -> &[String] {
        &self.gateway_urls
    }

    /// Each gateway's admin listener (`/metrics`, the detailed `/readyz`), in
    /// the order of [`Stack::gateway_urls`].
    pub fn gateway_admin_urls(&self) -> &[String] {
        &self.gateway_admin_urls
    }

    pub fn redis_url(&self) -> &str {
        &self.redis_url
    }

    /// `host:port` of the registry's HTTP API.
    pub fn registry_addr(&self) -> &str {
        &self.registry_addr
    }

    /// A client of the registry holding its ACL token (as the services do).
    pub fn registry(&self) -> RegistryClient {
        RegistryClient::new(&self.registry_addr).with_token(Some(self.registry_token.clone()))
    }

    /// The registry's management ACL token (`CONSUL_HTTP_TOKEN`): without it
    /// the registry refuses writes and hides what it holds.
    pub fn registry_token(&self) -> &str {
        &self.registry_token
    }

    /// The Ed25519 seed auth signs with, so tests can mint tokens the
    /// stack trusts (expired, wrong audience, …).
    pub fn signing_seed(&self) -> [u8; 32] {
        self.signing_seed
    }

    /// Environment every Gantry service process was given (with test overrides).
    pub fn service_env(&self) -> &[(String, String)] {
        &self.service_env
    }

    /// The `gantry` executable the stack runs its own components with.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Where the processes' logs are.
    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The services' names in start order (`gateway` last when there is one).
    pub fn services(&self) -> Vec<&str> {
        self.groups.iter().map(|g| g.spec.name.as_str()).collect()
    }

    fn group_index(&self, service: &str) -> Result<usize, HarnessError> {
        self.groups
            .iter()
            .position(|g| g.spec.name == service)
            .ok_or_else(|| self.no_such(service.to_owned()))
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

    /// The running instances of `service`, in index order.
    pub fn instances(&self, service: &str) -> Result<&[Instance], HarnessError> {
        Ok(&self.groups[self.group_index(service)?].instances)
    }

    /// Instance `n` (1-based) of `service`.
    pub fn instance(&self, service: &str, n: usize) -> Result<&Instance, HarnessError> {
        let g = self.group_index(service)?;
        self.groups[g]
            .instances
            .iter()
            .find(|i| i.index == n)
            .ok_or_else(|| self.no_such(format!("{service}-{n}")))
    }

    /// Instance `n` (1-based) of `service`, to break and mend.
    pub fn instance_mut(&mut self, service: &str, n: usize) -> Result<&mut Instance, HarnessError> {
        let g = self.group_index(service)?;
        match self.groups[g].instances.iter().position(|i| i.index == n) {
            Some(at) => Ok(&mut self.groups[g].instances[at]),
            None => Err(self.no_such(format!("{service}-{n}"))),
        }
    }

    /// Starts one more replica of `service` and waits until it is ready.
    /// Returns its instance id.
    pub async fn add_instance(&mut self, service: &str) -> Result<String, HarnessError> {
        let g = self.group_index(service)?;
        let index = self.groups[g].instances.iter().map(|i| i.index).max().unwrap_or(0) + 1;
        self.start_instance(g, index, &mut |_| {}).await?;
        Ok(format!("{service}-{index}"))
    }

    /// The processes of `service`'s instances (containers left out).
    fn processes_mut(&mut self, service: &str) -> Vec<&mut Process> {
        self.groups
            .iter_mut()
            .filter(|g| g.spec.name == service)
            .flat_map(|g| g.instances.iter_mut())
            .filter_map(Instance::process_mut)
            .collect()
    }

    fn addrs(&self, service: &str) -> Vec<String> {
        self.instances(service)
            .map(|all| all.iter().map(Instance::addr).collect())
            .unwrap_or_default()
    }

    /// `host:port` of each user instance, for calling one directly.
    pub fn user_addrs(&self) -> Vec<String> {
        self.addrs("user")
    }

    /// `host:port` of each auth instance.
    pub fn auth_addrs(&self) -> Vec<String> {
        self.addrs("auth")
    }

    /// The user instances' processes, in order (`user-1` first).
    pub fn users_mut(&mut self) -> Vec<&mut Process> {
        self.processes_mut("user")
    }

    /// The gateways' processes, in order.
    pub fn gateways_mut(&mut self) -> Vec<&mut Process> {
        self.processes_mut(role::GATEWAY)
    }

    /// Redis, to break and mend.
    pub fn redis_mut(&mut self) -> Option<&mut Component> {
        self.redis.as_mut()
    }

    /// The registry, to break and mend.
    pub fn registry_mut(&mut self) -> Option<&mut Component> {
        self.registry.as_mut()
    }

    fn all_instances(&self) -> impl Iterator<Item = &Instance> {
        self.groups.iter().flat_map(|g| &g.instances)
    }

    /// The process id of the instance named `name` (`gateway-1`, `user-2`,
    /// `auth-1`), e.g. to read what CPU it has used.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        self.all_instances().find(|i| i.id == name).and_then(Instance::pid)
    }

    /// Process ids of everything running as a process, for checks that
    /// nothing is left behind.
    pub fn pids(&self) -> Vec<u32> {
        let services = self.all_instances().filter_map(Instance::pid);
        let infra = self.registry.iter().chain(&self.redis).filter_map(Component::pid);
        services.chain(infra).collect()
    }

    /// Starts one more user instance (`user-<n+1>`) and waits until it passes.
    /// Returns its instance id.
    pub async fn add_user(&mut self) -> Result<String, HarnessError> {
        self.add_instance("user").await
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

    /// Rotates auth's signing key: auth restarts signing with a new key and
    /// still publishes the old public key, so tokens signed before keep
    /// working until they expire. Returns the new seed.
    pub async fn rotate_signing_key(&mut self) -> Result<[u8; 32], HarnessError> {
        let old_public = jwt::public_key(&self.signing_seed);
        let old_x = jwt::encode_seed(&old_public);
        let new_seed = jwt::generate_seed();
        set_env(
            &mut self.service_env,
            "GANTRY_JWT_SIGNING_KEY",
            &jwt::encode_seed(&new_seed),
        );
        set_env(
            &mut self.service_env,
            "GANTRY_JWT_VERIFY_KEYS",
            &format!("{}={old_x}", jwt::kid_for(&old_x)),
        );
        self.signing_seed = new_seed;
        let g = self.group_index("auth")?;
        let mut old = std::mem::take(&mut self.groups[g].instances);
        for i in &mut old {
            i.stop().await?;
        }
        let indices: Vec<usize> = old.iter().map(|i| i.index).collect();
        drop(old);
        for index in if indices.is_empty() { vec![1] } else { indices } {
            self.start_instance(g, index, &mut |_| {}).await?;
        }
        // Done when every gateway routes to auth again.
        self.wait_gateways_ready().await?;
        Ok(new_seed)
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
    /// the stack was built with [`StackBuilder::gateway_tls`]: what clients
    /// of [`Stack::gateway_urls`] must trust
    /// (`gantry_common::tls::client_builder_trusting`).
    pub fn ca_cert(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// Generates the stack's CA and the gateways' certificate into its
    /// directory and gives the gateways `GANTRY_TLS_CERT`/`GANTRY_TLS_KEY`.
    fn issue_gateway_certificate(&mut self) -> Result<(), HarnessError> {
        let pki = crate::tls::TestPki::generate(self.dir.path())?;
        for g in self.groups.iter_mut().filter(|g| g.role == Role::Gateway) {
            g.spec
                .env
                .push(("GANTRY_TLS_CERT".into(), pki.server_cert.display().to_string()));
            g.spec
                .env
                .push(("GANTRY_TLS_KEY".into(), pki.server_key.display().to_string()));
        }
        self.ca_cert = Some(pki.ca_cert);
        Ok(())
    }

    fn refresh_gateway_urls(&mut self) {
        let gateways = self.groups.iter().filter(|g| g.role == Role::Gateway);
        let instances: Vec<&Instance> = gateways.flat_map(|g| &g.instances).collect();
        // Over TLS by the name the certificate is for, not the address.
        let tls = self.ca_cert.is_some();
        self.gateway_urls = instances
            .iter()
            .map(|i| match tls {
                true => format!("https://localhost:{}", i.port),
                false => format!("http://{}", i.addr()),
            })
            .collect();
        self.gateway_admin_urls = instances
            .iter()
            .map(|i| format!("http://{}", i.admin_addr().unwrap_or_else(|| i.addr())))
            .collect();
    }

    /// Stops everything gracefully, in the reverse of the start order
    /// (gateways first), and Redis last. Instances the harness registered
    /// are deregistered.
    pub async fn stop(mut self, progress: &mut dyn FnMut(Progress<'_>)) -> Result<(), HarnessError> {
        for group in self.groups.iter_mut().rev() {
            for i in &mut group.instances {
                progress(Progress::Stopping(&i.id));
                i.remove().await?;
            }
        }
        for mut c in [self.registry.take(), self.redis.take()].into_iter().flatten() {
            progress(Progress::Stopping(c.name()));
            c.shut_down().await?;
        }
        Ok(())
    }

    /// Kills everything at once and waits until it is gone: a start that
    /// failed half-way leaves nothing running.
    pub(crate) async fn discard(&mut self) {
        for group in self.groups.iter_mut().rev() {
            for i in &mut group.instances {
                i.discard().await;
            }
        }
        for c in [self.registry.as_mut(), self.redis.as_mut()].into_iter().flatten() {
            let _ = c.kill().await;
            let _ = c.shut_down().await;
        }
    }
}

fn set_env(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value.to_owned()));
}

/// A [`Progress`] callback that prints each step on stderr after `prefix`
/// (`<prefix>: starting user-1`, `<prefix>: user-1 ready (812 ms)`).
pub fn print_progress(prefix: &str) -> impl FnMut(Progress<'_>) + use<'_> {
    move |step| match step {
        Progress::Starting(what) => eprintln!("{prefix}: starting {what}"),
        Progress::Ready(what, took) => eprintln!("{prefix}: {what} ready ({} ms)", took.as_millis()),
        Progress::Stopping(what) => eprintln!("{prefix}: stopping {what}"),
        Progress::Note(note) => eprintln!("{prefix}: {note}"),
    }
}
