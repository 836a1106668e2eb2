//! A service of a stack as it runs: its spec, its role and its instances,
//! and starting one more of them from the spec: its port, its private files,
//! its environment with placeholders filled, a process or a container, its
//! registration when the harness is the one to register it, and the wait
//! until it is ready, all through the one start-on-a-free-port routine.
//! Redis, the registry, services and gateways all start here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gantry_common::registry::RegistryClient;

use super::instance::Instance;
use super::launch;
use super::placeholders::{self, Values};
use super::progress::Progress;
use super::readiness::Probe;
use super::role::Role;
use super::spec::{Check, Registration, Run, ServiceSpec};
use crate::error::HarnessError;
use crate::faults::{FaultProxy, Protocol};
use crate::run::component::Component;
use crate::run::containers::{self, FILES_DIR, HOST_ALIAS, HostReach, StackNetwork};
use crate::run::process::{self, Process};
use crate::run::relay::Relay;

/// The loopback address every instance serves on.
pub const HOST: &str = "127.0.0.1";

/// What every instance of a stack is started with: where its files go, how
/// the infrastructure is reached, and the environment the stack gives.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The stack's directory (0700): logs, private files, Redis's data.
    pub dir: PathBuf,
    /// `host:port` of the registry's HTTP API ("" until it is up).
    pub registry_addr: String,
    /// The registry's management ACL token (`CONSUL_HTTP_TOKEN`).
    pub registry_token: String,
    /// `host:port` of the registry's DNS interface over UDP ("" when it has
    /// none reachable from the host).
    pub registry_dns: String,
    /// `REDIS_URL` ("" until Redis is up, or when the stack has none).
    pub redis_url: String,
    /// The first gateway's URL ("" until the gateways are up).
    pub gateway_url: String,
    /// What Gantry's own components are given ([`ServiceSpec::gantry_env`]).
    pub gantry_env: Vec<(String, String)>,
    /// What every other instance is given ([`super::builder::StackBuilder::env`]).
    pub common_env: Vec<(String, String)>,
    /// When set, every hop goes through a link of this fault proxy: the
    /// registry hands out a service instance's link (`user-2`) instead of
    /// the instance, and each instance reaches Redis and the registry
    /// through its own links (`user-2.redis`, `user-2.registry`).
    pub faults: Option<FaultProxy>,
    /// The stack's network, when it runs containers: every container joins
    /// it, and every process is reachable from it.
    pub network: Option<std::sync::Arc<StackNetwork>>,
    /// What a container is given instead of the host's addresses: where it
    /// reaches Redis, the registry and the first gateway.
    pub inside: Inside,
    /// Whether the registry runs in a container on the stack's network: its
    /// health checks then reach instances at their addresses there.
    pub registry_in_network: bool,
}

/// Where a container of the stack reaches its infrastructure ("" until up).
#[derive(Debug, Clone, Default)]
pub struct Inside {
    /// `REDIS_URL` as a container uses it.
    pub redis_url: String,
    /// `host:port` of the registry's HTTP API, from a container.
    pub registry_addr: String,
    /// The first gateway's URL, from a container.
    pub gateway_url: String,
}

impl Context {
    /// A client of the registry holding its ACL token (as the services do).
    pub fn registry(&self) -> RegistryClient {
        RegistryClient::new(&self.registry_addr).with_token(Some(self.registry_token.clone()))
    }
}

/// A service of a stack: its spec, its role and its instances by index.
#[derive(Debug)]
pub struct Group {
    pub spec: ServiceSpec,
    pub role: Role,
    pub instances: Vec<Instance>,
}

/// The instances of each group that has some, as a process on the host and
/// as a container reach them: what `{url:<service>}`, `{urls:<service>}` …
/// name for each.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    /// `host:port` of every instance, from the host.
    pub host: BTreeMap<String, Vec<String>>,
    /// `host:port` of every instance, from a container on the stack's network.
    pub inside: BTreeMap<String, Vec<String>>,
    /// What names a service as a whole from a container: its name on the
    /// network when its instances are containers (Docker spreads lookups
    /// over them), else its first instance.
    pub service_inside: BTreeMap<String, String>,
}

/// The [`Peers`] of `groups`.
pub fn peers(groups: &[Group]) -> Peers {
    let mut peers = Peers::default();
    for g in groups.iter().filter(|g| !g.instances.is_empty()) {
        let name = g.spec.name.clone();
        peers
            .host
            .insert(name.clone(), g.instances.iter().map(Instance::addr).collect());
        let inside: Vec<String> = g.instances.iter().filter_map(|i| i.inside.clone()).collect();
        let whole = match &g.spec.run {
            Run::Image { port, .. } => Some(format!("{name}:{port}")),
            Run::Command { .. } => inside.first().cloned(),
        };
        if let Some(whole) = whole {
            peers.service_inside.insert(name.clone(), whole);
        }
        peers.inside.insert(name, inside);
    }
    peers
}

impl Group {
    pub fn new(role: Role, spec: ServiceSpec) -> Self {
        Self {
            spec,
            role,
            instances: Vec::new(),
        }
    }

    /// Starts instance `index` (1-based) and waits until it is ready. On
    /// failure nothing of it is left running.
    pub async fn start_instance(
        &mut self,
        ctx: &Context,
        index: usize,
        peers: &Peers,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Duration, HarnessError> {
        let id = format!("{}-{index}", self.spec.name);
        progress(Progress::Starting(&id));
        let fixed = if index == 1 { self.spec.port } else { None };
        let (spec, role) = (&self.spec, &self.role);
        let (instance, took) = launch::on_free_port(fixed, async |port| {
            try_instance(ctx, spec, role, index, port, peers).await
        })
        .await?;
        let at = self
            .instances
            .iter()
            .position(|i| i.index > index)
            .unwrap_or(self.instances.len());
        self.instances.insert(at, instance);
        progress(Progress::Ready(&id, took));
        Ok(took)
    }

    /// Kills every instance at once and forgets them.
    pub async fn discard(&mut self) {
        for i in &mut self.instances {
            i.discard().await;
        }
    }
}

/// One attempt on `port`.
async fn try_instance(
    ctx: &Context,
    spec: &ServiceSpec,
    role: &Role,
    index: usize,
    port: u16,
    peers: &Peers,
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
        registry: format!("http://{}", ctx.registry_addr),
        registry_token: ctx.registry_token.clone(),
        dns: ctx.registry_dns.clone(),
        redis: ctx.redis_url.clone(),
        dir: ctx.dir.display().to_string(),
        gateway: ctx.gateway_url.clone(),
        peers: peers.host.clone(),
        services: BTreeMap::new(),
        files: BTreeMap::new(),
    };
    match &spec.run {
        Run::Command { .. } => {
            let dir = write_files(&ctx.dir, spec)?;
            values.files = spec
                .files
                .iter()
                .map(|(name, _)| (name.clone(), dir.join(name).display().to_string()))
                .collect();
        }
        Run::Image { port: inside, .. } => {
            values.files = spec
                .files
                .iter()
                .map(|(name, _)| (name.clone(), format!("{FILES_DIR}/{name}")))
                .collect();
            // Inside its container the service listens on every interface
            // of the container, on the port its image expects, and reaches
            // the rest of the stack by the names of the stack's network.
            values.port = *inside;
            values.host = "0.0.0.0".to_owned();
            values.redis = ctx.inside.redis_url.clone();
            values.registry = format!("http://{}", ctx.inside.registry_addr);
            // A registry process's DNS listens on the host's loopback,
            // which no container reaches.
            values.dns = String::new();
            values.gateway = ctx.inside.gateway_url.clone();
            values.peers = peers.inside.clone();
            values.services = peers.service_inside.clone();
        }
    }
    if values.dns.is_empty()
        && spec
            .texts()
            .iter()
            .any(|(_, text)| placeholders::names_in(text).contains(&"dns"))
    {
        return Err(HarnessError::BadSpec {
            service: spec.name.clone(),
            problem: "{dns} names the registry's DNS interface, which this stack does not offer it: only a registry run as a local process (the dev registry, or consul agent -dev) answers DNS, and only to processes on this host".into(),
        });
    }
    let mut env = if spec.gantry_env {
        ctx.gantry_env.clone()
    } else {
        ctx.common_env.clone()
    };
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), values.fill(v))));
    env.extend(
        spec.instance_env
            .iter()
            .filter(|(n, _, _)| *n == index)
            .map(|(_, k, v)| (k.clone(), values.fill(v))),
    );
    let advertised = match &ctx.faults {
        Some(faults) => put_behind_links(faults, ctx, spec, role, &id, port, &mut values, &mut env).await?,
        None => port,
    };
    let log = ctx.dir.join(format!("{id}.log"));
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
        Run::Image {
            image,
            port: inside,
            args,
            mounts,
        } => {
            let cmd: Vec<String> = args.iter().map(|a| values.fill(a)).collect();
            let join = ctx.network.as_deref().map(|network| containers::Join {
                network,
                aliases: vec![spec.name.clone(), id.clone()],
            });
            Component::Container(
                containers::start(containers::Request {
                    name: &id,
                    image,
                    port: *inside,
                    host_port: port,
                    udp: spec.publish_udp.zip(admin_port),
                    join,
                    cmd: &cmd,
                    env: &env,
                    files: &spec.files,
                    mounts,
                })
                .await?,
            )
        }
    };
    // Where a container of the stack (and a registry in one) reaches it.
    let (inside, relay) = match (&spec.run, ctx.network.as_deref()) {
        (Run::Image { port: inside, .. }, Some(_)) => (Some(format!("{id}:{inside}")), None),
        (Run::Command { .. }, Some(network)) => match network.reach() {
            HostReach::Relayed { ip } => {
                let relay = Relay::start(ip, (std::net::Ipv4Addr::LOCALHOST, port).into())
                    .await
                    .map_err(|e| HarnessError::Io(format!("relaying {id} to the stack's network on {ip}"), e))?;
                (Some(format!("{HOST_ALIAS}:{}", relay.port())), Some(relay))
            }
            HostReach::Direct => (Some(format!("{HOST_ALIAS}:{port}")), None),
        },
        _ => (None, None),
    };
    let mut instance = Instance {
        role: role.clone(),
        id,
        index,
        host: HOST.to_owned(),
        port,
        advertised_port: advertised,
        admin_port,
        runner,
        probe: Probe {
            service: spec.name.clone(),
            ready: spec.ready.clone(),
            registration: spec.registration.clone(),
            timeout: spec.ready_timeout,
            registry: ctx.registry(),
        },
        log_from,
        checked_at: match (&inside, ctx.registry_in_network) {
            (Some(inside), true) => Some(inside.clone()),
            _ => None,
        },
        inside,
        _relay: relay,
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

/// Puts instance `id` (listening on `port`) behind its fault links: its own
/// (what the registry will hand out: the port returned) when it is a
/// service, and its hops to Redis and the registry, rewriting the values and
/// environment that tell it where those are.
#[allow(clippy::too_many_arguments)]
async fn put_behind_links(
    faults: &FaultProxy,
    ctx: &Context,
    spec: &ServiceSpec,
    role: &Role,
    id: &str,
    port: u16,
    values: &mut Values,
    env: &mut Vec<(String, String)>,
) -> Result<u16, HarnessError> {
    let link = async |name: String, upstream: &str, protocol: Protocol| {
        faults
            .ensure(&name, upstream, protocol)
            .await
            .map_err(|e| HarnessError::Faults(format!("the link {name}: {e}")))
    };
    if matches!(role, Role::Redis | Role::Registry) {
        return Ok(port);
    }
    // A container reaches Redis and the registry over the stack's network,
    // not through links on the host's loopback: only its own hop is linked.
    let on_host = matches!(spec.run, Run::Command { .. });
    if on_host
        && !ctx.redis_url.is_empty()
        && let Some(addr) = redis_addr(&ctx.redis_url)
    {
        let at = link(format!("{id}.redis"), addr, Protocol::Tcp).await?;
        let url = ctx.redis_url.replacen(addr, &at.to_string(), 1);
        values.redis = url.clone();
        for (_, v) in env.iter_mut() {
            if *v == ctx.redis_url {
                *v = url.clone();
            }
        }
    }
    if on_host && !ctx.registry_addr.is_empty() {
        let at = link(format!("{id}.registry"), &ctx.registry_addr, Protocol::Tcp).await?;
        let before = format!("http://{}", ctx.registry_addr);
        let after = format!("http://{at}");
        values.registry = after.clone();
        for (_, v) in env.iter_mut() {
            if *v == before {
                *v = after.clone();
            }
        }
    }
    if !matches!(role, Role::Service(_)) {
        return Ok(port);
    }
    let protocol = match &spec.registration {
        Registration::ByHarness {
            check: Check::Tcp { .. },
            ..
        } => Protocol::Tcp,
        _ => Protocol::Http,
    };
    let at = link(id.to_owned(), &format!("{HOST}:{port}"), protocol).await?;
    if spec.registration == Registration::SelfRegisters {
        // Gantry's services register this port instead of the one they bind.
        env.push(("GANTRY_ADVERTISE_PORT".to_owned(), at.port().to_string()));
    }
    Ok(at.port())
}

/// The `host:port` of a `redis://[user:password@]host:port[/db]` URL.
fn redis_addr(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    Some(rest.split('/').next().unwrap_or(rest))
}

/// Writes `spec`'s private files (0600) into a folder of its own in the
/// stack's directory; returns the folder.
fn write_files(stack_dir: &Path, spec: &ServiceSpec) -> Result<PathBuf, HarnessError> {
    let dir = stack_dir.join("files").join(&spec.name);
    if spec.files.is_empty() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| HarnessError::Io(format!("creating {}", dir.display()), e))?;
    for (name, contents) in &spec.files {
        write_private(&dir.join(name), contents)?;
    }
    Ok(dir)
}

/// Writes `text` to a file readable by this user only (0600).
fn write_private(path: &Path, text: &str) -> Result<(), HarnessError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let what = || format!("writing {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| HarnessError::Io(what(), e))?;
    file.write_all(text.as_bytes()).map_err(|e| HarnessError::Io(what(), e))
}
