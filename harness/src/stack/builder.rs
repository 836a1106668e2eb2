//! Describing a stack: infrastructure, services in start order, gateways.

use std::path::PathBuf;
use std::time::Duration;

use gantry_common::jwt;

use super::gantry::USER;
use super::group::{Context, Group, peers};
use super::infra::{self, Images, Infra, Provider, RegistryKind, Secrets};
use super::progress::Progress;
use super::readiness::redis_url;
use super::role::{GATEWAY, Role};
use super::running::Stack;
use super::spec::{READY_TIMEOUT, Ready, Registration, Run, ServiceSpec, check_references};
use crate::error::HarnessError;
use crate::run::ports::is_free;

/// The TTL the harness gives service checks: short, so failover shows quickly.
pub const DEFAULT_CHECK_TTL: Duration = Duration::from_secs(2);

/// The gateways of a stack: Gantry's gateway, `count` instances.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySpec {
    /// How many gateway instances start, after every service; 0 for none.
    pub count: usize,
    /// Gateway 1's public port; a free one when `None`.
    pub port: Option<u16>,
    /// A routes file, passed as `GANTRY_GATEWAY_CONFIG`.
    pub routes: Option<PathBuf>,
    /// Environment for every gateway (placeholders allowed).
    pub env: Vec<(String, String)>,
    /// Environment for gateway `n` (1-based) only.
    pub instance_env: Vec<(usize, String, String)>,
    /// How long a gateway may take to answer `/readyz` 200 before the start fails.
    pub ready_timeout: Duration,
}

impl Default for GatewaySpec {
    fn default() -> Self {
        Self {
            count: 1,
            port: None,
            routes: None,
            env: Vec::new(),
            instance_env: Vec::new(),
            ready_timeout: READY_TIMEOUT,
        }
    }
}

impl GatewaySpec {
    /// As a [`ServiceSpec`]: `gantry serve gateway` with a public and an
    /// admin port, ready when its admin `/readyz` answers 200, not in the
    /// registry.
    fn to_spec(&self, binary: &std::path::Path) -> ServiceSpec {
        let mut spec = ServiceSpec::gantry(binary, GATEWAY)
            .with_admin_port()
            .env("GANTRY_ADMIN_LISTEN", "{host}:{admin_port}")
            .ready(Ready::http("/readyz"))
            .registration(Registration::Unregistered)
            .ready_timeout(self.ready_timeout)
            .replicas(self.count);
        if let Some(routes) = &self.routes {
            spec = spec.env("GANTRY_GATEWAY_CONFIG", routes.display().to_string());
        }
        spec.env.extend(self.env.iter().cloned());
        spec.instance_env = self.instance_env.clone();
        spec.port = self.port;
        spec
    }
}

/// Describes a stack; [`StackBuilder::start`] makes it real.
#[derive(Debug, Clone)]
pub struct StackBuilder {
    binary: PathBuf,
    infra: Infra,
    redis: bool,
    registry: RegistryKind,
    services: Vec<ServiceSpec>,
    gateway: GatewaySpec,
    /// Whether the gateways terminate TLS ([`StackBuilder::gateway_tls`]).
    gateway_tls: bool,
    check_ttl: Duration,
    env: Vec<(String, String)>,
    /// Whether every hop goes through a fault link ([`StackBuilder::fault_links`]).
    fault_links: bool,
}

impl StackBuilder {
    /// Same as [`StackBuilder::reference`]; kept for existing callers.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self::reference(binary)
    }

    /// Gantry's reference stack: Redis, the registry, `auth-1`,
    /// `user-1..3` and `gateway-1`. `binary` is the `gantry` executable,
    /// whose `serve <component>` runs each part.
    pub fn reference(binary: impl Into<PathBuf>) -> Self {
        let binary = binary.into();
        let mut builder = Self::empty(&binary);
        builder.services = vec![
            ServiceSpec::gantry(&binary, "auth"),
            ServiceSpec::gantry(&binary, "user").replicas(3),
        ];
        builder.gateway.count = 1;
        builder
    }

    /// Redis and the registry, and nothing else until
    /// [`StackBuilder::service`] and [`StackBuilder::gateway`] add to it.
    pub fn empty(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            infra: Infra::Auto,
            redis: true,
            registry: RegistryKind::default(),
            services: Vec::new(),
            gateway: GatewaySpec {
                count: 0,
                ..GatewaySpec::default()
            },
            gateway_tls: false,
            check_ttl: DEFAULT_CHECK_TTL,
            env: Vec::new(),
            fault_links: false,
        }
    }

    /// Puts a link of a fault proxy in every hop: the registry hands out
    /// each service instance's link instead of the instance, and every
    /// instance (gateways too) reaches Redis and the registry through links
    /// of its own; [`Stack::link`] and [`Stack::hop`] give them faults.
    /// Off by default: a link is one more loopback hop.
    pub fn fault_links(mut self, yes: bool) -> Self {
        self.fault_links = yes;
        self
    }

    /// Where Redis and the registry come from ([`Infra::Auto`] unless told).
    pub fn infra(mut self, infra: Infra) -> Self {
        self.infra = infra;
        self
    }

    /// Whether the stack has Redis (it does unless told otherwise).
    pub fn redis(mut self, yes: bool) -> Self {
        self.redis = yes;
        self
    }

    /// Which registry a local stack runs.
    pub fn registry(mut self, kind: RegistryKind) -> Self {
        self.registry = kind;
        self
    }

    /// A service, started after those added before it (a service can need
    /// another). A spec with the name of one already there replaces it.
    pub fn service(mut self, spec: ServiceSpec) -> Self {
        match self.services.iter_mut().find(|s| s.name == spec.name) {
            Some(old) => *old = spec,
            None => self.services.push(spec),
        }
        self
    }

    /// The gateways, started after every service.
    pub fn gateway(mut self, gateway: GatewaySpec) -> Self {
        self.gateway = gateway;
        self
    }

    /// How many user-service instances (at least 1), in a stack with Gantry's user service.
    pub fn users(mut self, n: usize) -> Self {
        if let Some(user) = self.services.iter_mut().find(|s| s.name == USER) {
            user.replicas = n.max(1);
        }
        self
    }

    /// How many gateways (at least 1); the second and later get free ports.
    pub fn gateways(mut self, n: usize) -> Self {
        self.gateway.count = n.max(1);
        self
    }

    /// The first gateway's port; a free one when not set or 0.
    pub fn gateway_port(mut self, port: u16) -> Self {
        self.gateway.port = (port != 0).then_some(port);
        self
    }

    /// Gateways that terminate TLS on their public port with a certificate
    /// from a private CA generated for this stack ([`crate::run::tls::TestPki`],
    /// in the stack's directory): their URLs are `https://localhost:<port>`
    /// and [`super::running::Stack::ca_cert`] is the CA clients must trust. The admin
    /// port stays plain HTTP, so readiness is waited for there as ever.
    pub fn gateway_tls(mut self) -> Self {
        self.gateway_tls = true;
        self
    }

    /// A routes file for every gateway (`GANTRY_GATEWAY_CONFIG`).
    pub fn gateway_routes(mut self, path: impl Into<PathBuf>) -> Self {
        self.gateway.routes = Some(path.into());
        self
    }

    /// The TTL Gantry's services give their checks (`GANTRY_CHECK_TTL`).
    pub fn check_ttl(mut self, ttl: Duration) -> Self {
        self.check_ttl = ttl;
        self
    }

    /// An environment variable for every service process (e.g. `GANTRY_LB=p2c`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// An environment variable for gateway number `n` only (1-based), e.g. a
    /// second gateway with its session cache off.
    pub fn gateway_env(mut self, n: usize, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.gateway.instance_env.push((n, key.into(), value.into()));
        self
    }

    /// The services in start order, then the gateways, then the services
    /// that name the gateway (`{gateway}`), in their order, as specs.
    pub fn specs(&self) -> Vec<(Role, ServiceSpec)> {
        let as_spec = |s: &ServiceSpec| (Role::Service(s.name.clone()), s.clone());
        let (late, early): (Vec<&ServiceSpec>, Vec<&ServiceSpec>) = self
            .services
            .iter()
            .partition(|s| self.gateway.count > 0 && s.names_gateway());
        let mut specs: Vec<(Role, ServiceSpec)> = early.into_iter().map(as_spec).collect();
        if self.gateway.count > 0 {
            specs.push((Role::Gateway, self.gateway.to_spec(&self.binary)));
        }
        specs.extend(late.into_iter().map(as_spec));
        specs
    }

    /// Starts everything in order and waits until each part is really
    /// ready: Redis answers PING, the registry has a leader, every instance
    /// is ready by its spec, every gateway's `/readyz` is 200. When a part
    /// fails, everything started before it is stopped before the error returns.
    pub async fn start(self, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Stack, HarnessError> {
        let specs = self.specs();
        let mut names = std::collections::HashSet::new();
        for (_, spec) in &specs {
            spec.validate(self.redis)?;
            if !names.insert(spec.name.clone()) {
                return Err(HarnessError::BadSpec {
                    service: spec.name.clone(),
                    problem: "named twice (the gateways are \"gateway\"): expected one spec per service".into(),
                });
            }
        }
        check_references(&specs)?;
        if let Some(port) = self.gateway.port
            && self.gateway.count > 0
            && !is_free(port)
        {
            return Err(HarnessError::PortBusy(port));
        }
        let provider = self.provider(progress).await;
        let secrets = Secrets::generate();
        let mut groups = Vec::new();
        if self.redis {
            let (role, spec) = infra::redis(&provider, &secrets.redis_password)?;
            groups.push(Group::new(role, spec));
        }
        let mut ctx = Context {
            registry_token: secrets.registry_token.clone(),
            common_env: self.env.clone(),
            faults: self.fault_links.then(crate::faults::FaultProxy::new),
            ..Context::default()
        };
        if let Some((role, spec)) = infra::registry(&provider, &self.binary, &secrets.registry_token)? {
            groups.push(Group::new(role, spec));
        }
        groups.extend(specs.into_iter().map(|(role, spec)| Group::new(role, spec)));
        // One network for the stack's containers, when it has any.
        if groups.iter().any(|g| matches!(g.spec.run, Run::Image { .. })) {
            progress(Progress::Note("creating the stack's network"));
            let network = crate::run::containers::StackNetwork::create("stack").await?;
            ctx.network = Some(std::sync::Arc::new(network));
        }
        let dir = tempfile::Builder::new()
            .prefix("gantry-stack-")
            .tempdir()
            .map_err(|e| HarnessError::Io("creating the stack's temp dir".into(), e))?;
        ctx.dir = dir.path().to_owned();
        let ca_cert = match self.gateway_tls && self.gateway.count > 0 {
            true => Some(issue_gateway_certificate(dir.path(), &mut groups)?),
            false => None,
        };
        let signing_seed = jwt::generate_seed();
        match self
            .bring_up(&provider, &mut groups, &mut ctx, &secrets, &signing_seed, progress)
            .await
        {
            Ok(()) => Ok(Stack::new(dir, ctx, groups, self.binary, signing_seed, ca_cert)),
            Err(e) => {
                for g in groups.iter_mut().rev() {
                    g.discard().await;
                }
                if let Some(network) = &ctx.network {
                    network.remove().await;
                }
                Err(e)
            }
        }
    }

    /// Where the infrastructure comes from: [`Infra::Auto`] decided by
    /// whether Docker answers and has the images.
    async fn provider(&self, progress: &mut dyn FnMut(Progress<'_>)) -> Provider {
        let images = Images::from_env();
        let containers = match self.infra {
            Infra::Local => false,
            Infra::Containers => true,
            Infra::Auto => match images.unavailable_because().await {
                None => true,
                Some(why) => {
                    progress(Progress::Note(&format!("using local processes: {why}")));
                    false
                }
            },
        };
        if !containers {
            return Provider::Local(self.registry.clone());
        }
        progress(Progress::Note(&format!(
            "using containers: {} and {}",
            images.redis,
            images.registry.image()
        )));
        Provider::Containers(images)
    }

    /// Starts every group's instances in order; once Redis and the
    /// registry are up, what Gantry's components are given is known.
    async fn bring_up(
        &self,
        provider: &Provider,
        groups: &mut [Group],
        ctx: &mut Context,
        secrets: &Secrets,
        signing_seed: &[u8; 32],
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(), HarnessError> {
        if let Provider::Local(RegistryKind::External { addr, token }) = provider {
            progress(Progress::Starting("registry"));
            let took = infra::wait_leader(addr).await?;
            ctx.registry_addr = addr.trim_start_matches("http://").to_owned();
            ctx.registry_token = token.clone().unwrap_or_default();
            progress(Progress::Ready("registry", took));
        }
        let infra = groups
            .iter()
            .take_while(|g| matches!(g.role, Role::Redis | Role::Registry))
            .count();
        // Services that call through the gateway start after it; a gateway
        // is ready only once every service it routes has an instance, so
        // until they have started it is awaited only to be alive.
        let gateways = groups.iter().position(|g| g.role == Role::Gateway);
        let services_after = gateways.is_some_and(|g| g + 1 < groups.len());
        for g in 0..groups.len() {
            if g == infra {
                ctx.gantry_env = self.gantry_env(ctx, signing_seed);
            }
            let ready = groups[g].spec.ready.clone();
            if Some(g) == gateways && services_after {
                groups[g].spec.ready = Ready::http("/healthz");
            }
            for index in 1..=groups[g].spec.replicas {
                let peers = peers(groups);
                groups[g].start_instance(ctx, index, &peers, progress).await?;
            }
            groups[g].spec.ready = ready.clone();
            for instance in &mut groups[g].instances {
                instance.probe.ready = ready.clone();
            }
            let first = groups[g].instances.first();
            let addr = first.map(|i| i.addr()).unwrap_or_default();
            let inside = first.and_then(|i| i.inside.clone()).unwrap_or_default();
            let in_container = matches!(groups[g].spec.run, Run::Image { .. });
            match groups[g].role {
                Role::Redis => {
                    ctx.redis_url = redis_url(&addr, &secrets.redis_password);
                    ctx.inside.redis_url = redis_url(&inside, &secrets.redis_password);
                }
                Role::Registry => {
                    // On the host: a process's second port, or where a
                    // container's DNS port is published (the registry
                    // image's; Consul's image publishes none).
                    ctx.registry_dns = first.and_then(|i| i.admin_addr()).unwrap_or_default();
                    ctx.registry_addr = addr;
                    ctx.inside.registry_addr = inside;
                    ctx.registry_in_network = in_container;
                }
                Role::Gateway => {
                    let scheme = if self.gateway_tls { "https" } else { "http" };
                    ctx.gateway_url = format!("{scheme}://{addr}");
                    ctx.inside.gateway_url = format!("{scheme}://{inside}");
                }
                Role::Service(_) => {}
            }
        }
        if infra == groups.len() {
            ctx.gantry_env = self.gantry_env(ctx, signing_seed);
        }
        if let Some(g) = gateways.filter(|_| services_after) {
            for instance in &mut groups[g].instances {
                progress(Progress::Note(&format!("awaiting {}'s /readyz", instance.id())));
                instance.wait_ready().await?;
            }
        }
        Ok(())
    }

    /// What Gantry's own components are given, once Redis and the registry are up.
    fn gantry_env(&self, ctx: &Context, signing_seed: &[u8; 32]) -> Vec<(String, String)> {
        let ttl = gantry_common::config::format_duration(self.check_ttl);
        let mut env: Vec<(String, String)> = vec![
            ("REDIS_URL".into(), ctx.redis_url.clone()),
            ("CONSUL_HTTP_ADDR".into(), format!("http://{}", ctx.registry_addr)),
            ("CONSUL_HTTP_TOKEN".into(), ctx.registry_token.clone()),
            ("GANTRY_JWT_SIGNING_KEY".into(), jwt::encode_seed(signing_seed)),
            // Secure cookies only where the client speaks HTTPS: a client
            // would not send a Secure cookie back over plain HTTP.
            ("GANTRY_COOKIE_SECURE".into(), self.gateway_tls.to_string()),
            ("GANTRY_CHECK_TTL".into(), ttl),
            ("GANTRY_DEREGISTER_AFTER".into(), "30s".into()),
            (
                "RUST_LOG".into(),
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            ),
            // An error a component exits with (a refused routes file) is
            // printed without a backtrace even under RUST_BACKTRACE=1, so the
            // log tail the harness reports shows the error, not frames.
            // Panics keep theirs (RUST_BACKTRACE).
            ("RUST_LIB_BACKTRACE".into(), "0".into()),
        ];
        env.extend(self.env.iter().cloned());
        env
    }
}

/// Generates the stack's CA and the gateways' certificate into `dir` and
/// gives the gateways `GANTRY_TLS_CERT`/`GANTRY_TLS_KEY`. Returns the CA's path.
fn issue_gateway_certificate(dir: &std::path::Path, groups: &mut [Group]) -> Result<PathBuf, HarnessError> {
    let pki = crate::run::tls::TestPki::generate(dir)?;
    for g in groups.iter_mut().filter(|g| g.role == Role::Gateway) {
        g.spec
            .env
            .push(("GANTRY_TLS_CERT".into(), pki.server_cert.display().to_string()));
        g.spec
            .env
            .push(("GANTRY_TLS_KEY".into(), pki.server_key.display().to_string()));
    }
    Ok(pki.ca_cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_stack_is_auth_users_and_a_gateway_as_specs() {
        let b = StackBuilder::new("/bin/gantry").users(2).gateways(2);
        let specs = b.specs();
        let names: Vec<_> = specs
            .iter()
            .map(|(r, s)| (r.clone(), s.name.as_str(), s.replicas))
            .collect();
        assert_eq!(
            names,
            [
                (Role::Service("auth".into()), "auth", 1),
                (Role::Service("user".into()), "user", 2),
                (Role::Gateway, "gateway", 2),
            ]
        );
        assert_eq!(specs[0].1.registration, Registration::SelfRegisters);
        assert_eq!(specs[0].1.ready, Ready::Passing);
        assert_eq!(specs[2].1.ready, Ready::http("/readyz"));
        assert!(StackBuilder::empty("/bin/gantry").specs().is_empty());
    }

    #[test]
    fn services_that_name_the_gateway_start_after_it() {
        let service = |name: &str, url: &str| ServiceSpec::command(name, "svc", ["run"]).env("UPSTREAM", url);
        let b = StackBuilder::empty("/bin/gantry")
            .gateways(1)
            .service(service("orders", "{gateway}/inventory"))
            .service(service("inventory", "{url:auth}"))
            .service(service("audit", "{url:gateway}"));
        let order: Vec<String> = b.specs().iter().map(|(_, s)| s.name.clone()).collect();
        assert_eq!(order, ["inventory", "gateway", "orders", "audit"]);
        check_references(&b.specs()).expect_err("inventory names auth, not in this stack");

        let no_gateway = StackBuilder::empty("/bin/gantry").service(service("orders", "{gateway}/inventory"));
        let err = check_references(&no_gateway.specs()).expect_err("no gateway to name");
        assert!(err.to_string().contains("{gateway}"), "{err}");
    }
}
