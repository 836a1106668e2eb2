//! The one place that knows how to start and stop a whole stack: Redis, the
//! registry, auth, N user instances and the gateway(s), each a real process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gantry_common::jwt;
use gantry_common::registry::RegistryClient;

use crate::HarnessError;
use crate::component::Component;
use crate::containers;
use crate::ports::{free_port, is_free};
use crate::process::{Process, Spec};
use crate::wait;

/// How long any one component may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The TTL the harness gives service checks: short, so failover shows quickly.
pub const DEFAULT_CHECK_TTL: Duration = Duration::from_secs(2);

/// Where Redis and the registry come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Infra {
    /// Containers when a Docker engine answers, else local processes.
    Auto,
    /// `redis-server` from PATH and the dev registry as processes.
    Local,
    /// Redis and the registry in containers, through testcontainers.
    Containers,
}

impl std::str::FromStr for Infra {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Infra::Auto),
            "local" => Ok(Infra::Local),
            "containers" => Ok(Infra::Containers),
            other => Err(format!(
                "{other:?} is not a provider: expected auto, local or containers"
            )),
        }
    }
}

/// A step of starting or stopping, for progress displays.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    Starting(&'a str),
    Ready(&'a str, Duration),
    Stopping(&'a str),
    /// Something worth telling, such as which provider was chosen and why.
    Note(&'a str),
}

/// Describes a stack; [`StackBuilder::start`] makes it real.
#[derive(Debug, Clone)]
pub struct StackBuilder {
    binary: PathBuf,
    infra: Infra,
    users: usize,
    gateways: usize,
    gateway_port: Option<u16>,
    check_ttl: Duration,
    env: Vec<(String, String)>,
    gateway_env: Vec<(usize, String, String)>,
}

impl StackBuilder {
    /// `binary` is the `gantry` executable, whose `serve <component>` runs each part.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            infra: Infra::Auto,
            users: 3,
            gateways: 1,
            gateway_port: None,
            check_ttl: DEFAULT_CHECK_TTL,
            env: Vec::new(),
            gateway_env: Vec::new(),
        }
    }

    pub fn infra(mut self, infra: Infra) -> Self {
        self.infra = infra;
        self
    }

    /// How many user-service instances (at least 1).
    pub fn users(mut self, n: usize) -> Self {
        self.users = n.max(1);
        self
    }

    /// How many gateways (at least 1); the second and later get free ports.
    pub fn gateways(mut self, n: usize) -> Self {
        self.gateways = n.max(1);
        self
    }

    /// The first gateway's port; a free one when not set.
    pub fn gateway_port(mut self, port: u16) -> Self {
        self.gateway_port = Some(port);
        self
    }

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
        self.gateway_env.push((n, key.into(), value.into()));
        self
    }

    /// Starts everything and waits until it is really ready: Redis answers
    /// PING, the registry answers, every instance is passing, every gateway's
    /// `/readyz` is 200.
    pub async fn start(self, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Stack, HarnessError> {
        let images = containers::Images::from_env();
        let infra = match self.infra {
            Infra::Auto => match containers::unavailable_because(&images).await {
                None => Infra::Containers,
                Some(why) => {
                    progress(Progress::Note(&format!("using local processes: {why}")));
                    Infra::Local
                }
            },
            other => other,
        };
        if infra == Infra::Containers {
            progress(Progress::Note(&format!(
                "using containers: {} and {}",
                images.redis,
                images.registry.image()
            )));
        }
        if let Some(port) = self.gateway_port
            && !is_free(port)
        {
            return Err(HarnessError::PortBusy(port));
        }
        let dir = tempfile::Builder::new()
            .prefix("gantry-stack-")
            .tempdir()
            .map_err(|e| HarnessError::Io("creating the stack's temp dir".into(), e))?;
        let mut stack = Stack {
            dir,
            redis: None,
            registry: None,
            auth: Vec::new(),
            users: Vec::new(),
            gateways: Vec::new(),
            redis_url: String::new(),
            registry_addr: String::new(),
            gateway_urls: Vec::new(),
            gateway_admin_urls: Vec::new(),
            service_env: Vec::new(),
            binary: self.binary.clone(),
            signing_seed: jwt::generate_seed(),
            redis_password: redis_password(),
            registry_token: acl_token(),
        };
        // A stack that fails half-way is torn down by Drop (kill_on_drop).
        match infra {
            Infra::Containers => stack.start_infra_containers(&images, progress).await?,
            _ => {
                stack.start_redis(progress).await?;
                stack.start_registry(progress).await?;
            }
        }

        let seed = stack.signing_seed;
        let ttl = gantry_common::config::format_duration(self.check_ttl);
        stack.service_env = vec![
            ("REDIS_URL".into(), stack.redis_url.clone()),
            ("CONSUL_HTTP_ADDR".into(), format!("http://{}", stack.registry_addr)),
            ("CONSUL_HTTP_TOKEN".into(), stack.registry_token.clone()),
            ("GANTRY_JWT_SIGNING_KEY".into(), jwt::encode_seed(&seed)),
            ("GANTRY_COOKIE_SECURE".into(), "false".into()),
            ("GANTRY_CHECK_TTL".into(), ttl),
            ("GANTRY_DEREGISTER_AFTER".into(), "30s".into()),
            (
                "RUST_LOG".into(),
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            ),
        ];
        stack.service_env.extend(self.env.iter().cloned());

        stack.start_service("auth", "auth-1", None, progress).await?;
        for i in 1..=self.users {
            stack
                .start_service("user", &format!("user-{i}"), None, progress)
                .await?;
        }
        for i in 1..=self.gateways {
            let port = if i == 1 { self.gateway_port } else { None };
            let extra: Vec<(String, String)> = self
                .gateway_env
                .iter()
                .filter(|(n, _, _)| *n == i)
                .map(|(_, k, v)| (k.clone(), v.clone()))
                .collect();
            stack
                .start_gateway(&format!("gateway-{i}"), port, &extra, progress)
                .await?;
        }
        Ok(stack)
    }
}

/// A running stack. Dropping it kills every process; [`Stack::stop`] stops
/// them gracefully, gateways first.
#[derive(Debug)]
pub struct Stack {
    dir: tempfile::TempDir,
    redis: Option<Component>,
    registry: Option<Component>,
    auth: Vec<Process>,
    users: Vec<Process>,
    gateways: Vec<Process>,
    redis_url: String,
    registry_addr: String,
    gateway_urls: Vec<String>,
    gateway_admin_urls: Vec<String>,
    service_env: Vec<(String, String)>,
    binary: PathBuf,
    signing_seed: [u8; 32],
    /// Redis's `requirepass`, carried in [`Stack::redis_url`].
    redis_password: String,
    /// The registry's management ACL token, given to services as `CONSUL_HTTP_TOKEN`.
    registry_token: String,
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

    /// Environment every service process was given (with test overrides).
    pub fn service_env(&self) -> &[(String, String)] {
        &self.service_env
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
        let mut old = std::mem::take(&mut self.auth);
        for p in &mut old {
            p.stop().await?;
        }
        for i in 1..=old.len().max(1) {
            self.start_service("auth", &format!("auth-{i}"), None, &mut |_| {})
                .await?;
        }
        // Done when every gateway routes to auth again.
        self.wait_gateways_ready().await?;
        Ok(new_seed)
    }

    /// Where the processes' logs are.
    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `host:port` of each user instance, for calling one directly.
    pub fn user_addrs(&self) -> Vec<String> {
        self.users
            .iter()
            .filter_map(|p| p.env("GANTRY_LISTEN").map(str::to_owned))
            .collect()
    }

    /// `host:port` of each auth instance.
    pub fn auth_addrs(&self) -> Vec<String> {
        self.auth
            .iter()
            .filter_map(|p| p.env("GANTRY_LISTEN").map(str::to_owned))
            .collect()
    }

    /// The user instances, in order (`user-1` first).
    pub fn users_mut(&mut self) -> &mut [Process] {
        &mut self.users
    }

    pub fn gateways_mut(&mut self) -> &mut [Process] {
        &mut self.gateways
    }

    /// Redis, to break and mend.
    pub fn redis_mut(&mut self) -> Option<&mut Component> {
        self.redis.as_mut()
    }

    /// The registry, to break and mend.
    pub fn registry_mut(&mut self) -> Option<&mut Component> {
        self.registry.as_mut()
    }

    /// The process id of the service process named `name` (`gateway-1`,
    /// `user-2`, `auth-1`), e.g. to read what CPU it has used.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        self.gateways
            .iter()
            .chain(&self.users)
            .chain(&self.auth)
            .find(|p| p.name() == name)
            .and_then(Process::pid)
    }

    /// Process ids of everything running as a process, for checks that
    /// nothing is left behind.
    pub fn pids(&self) -> Vec<u32> {
        let services = self
            .gateways
            .iter()
            .chain(&self.users)
            .chain(&self.auth)
            .filter_map(Process::pid);
        let infra = self.registry.iter().chain(&self.redis).filter_map(Component::pid);
        services.chain(infra).collect()
    }

    fn spec(&self, name: &str, program: PathBuf, args: Vec<String>, env: Vec<(String, String)>) -> Spec {
        Spec {
            name: name.to_owned(),
            program,
            args,
            env,
            log: self.dir.path().join(format!("{name}.log")),
        }
    }

    async fn start_redis(&mut self, progress: &mut dyn FnMut(Progress<'_>)) -> Result<(), HarnessError> {
        progress(Progress::Starting("redis"));
        let program = which("redis-server").ok_or_else(|| HarnessError::Missing {
            program: "redis-server".into(),
            hint: "install Redis (Debian: apt-get install redis-server) or put redis-server on PATH".into(),
        })?;
        // A port found free can be taken by another stack starting at the
        // same moment: then Redis exits at once and another port is tried.
        let mut attempt = 0;
        let (process, url, took) = loop {
            attempt += 1;
            let port = free_port().map_err(|e| HarnessError::Io("finding a free port".into(), e))?;
            // The password goes in a file only we can read (the stack's dir is
            // 0700), not on the command line, which every user can see.
            let config = self.dir.path().join("redis.conf");
            write_private(&config, &format!("requirepass {}\n", self.redis_password))?;
            let args = [
                &config.display().to_string(),
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                // Persist every write, so a restarted Redis still has its sessions.
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
                "--dir",
                &self.dir.path().display().to_string(),
            ]
            .map(String::from)
            .to_vec();
            let spec = self.spec("redis", program.clone(), args, vec![]);
            let mut process = Process::start(spec)?;
            let url = redis_url(&format!("127.0.0.1:{port}"), &self.redis_password);
            match wait::until("redis to answer PING", READY_TIMEOUT, Some(&mut process), || {
                redis_ping(&url)
            })
            .await
            {
                Ok(took) => break (process, url, took),
                Err(e) if port_was_taken(&e, attempt) => {}
                Err(e) => return Err(e),
            }
        };
        self.redis_url = url;
        self.redis = Some(Component::Process(process));
        progress(Progress::Ready("redis", took));
        Ok(())
    }

    /// Redis and the registry in containers, on fixed host ports.
    async fn start_infra_containers(
        &mut self,
        images: &containers::Images,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(), HarnessError> {
        progress(Progress::Starting("redis"));
        let started = tokio::time::Instant::now();
        let (redis, port) = containers::redis(images, &self.redis_password).await?;
        let url = redis_url(&format!("127.0.0.1:{port}"), &self.redis_password);
        wait::until("redis to answer PING", READY_TIMEOUT, None, || redis_ping(&url)).await?;
        self.redis_url = url;
        self.redis = Some(Component::Container(redis));
        progress(Progress::Ready("redis", started.elapsed()));

        progress(Progress::Starting("registry"));
        let started = tokio::time::Instant::now();
        let (registry, port) = containers::registry(images, &self.registry_token).await?;
        let addr = format!("127.0.0.1:{port}");
        let client = RegistryClient::new(&addr);
        wait::until("the registry to elect a leader", READY_TIMEOUT, None, || {
            let client = client.clone();
            // Consul answers "" until it has a leader.
            async move { client.leader().await.map(|l| !l.is_empty()).map_err(|e| e.to_string()) }
        })
        .await?;
        self.registry_addr = addr;
        self.registry = Some(Component::Container(registry));
        progress(Progress::Ready("registry", started.elapsed()));
        Ok(())
    }

    /// The registry as a process: `consul agent -dev` when `consul` is on
    /// PATH (and `GANTRY_NO_CONSUL` is unset), else Gantry's dev registry.
    async fn start_registry(&mut self, progress: &mut dyn FnMut(Progress<'_>)) -> Result<(), HarnessError> {
        let free = || free_port().map_err(|e| HarnessError::Io("finding a free port".into(), e));
        let port = free()?;
        let addr = format!("127.0.0.1:{port}");
        let (label, spec) = match which("consul").filter(|_| std::env::var_os("GANTRY_NO_CONSUL").is_none()) {
            Some(consul) => {
                // ACLs on, default deny, our token as the management token:
                // in a file only we can read, not on the command line.
                let acl = self.dir.path().join("consul-acl.hcl");
                write_private(&acl, &consul_acl_hcl(&self.registry_token))?;
                let mut args = consul_dev_args(port, [free()?, free()?, free()?]);
                args.extend(["-config-file".to_owned(), acl.display().to_string()]);
                ("registry (consul)", self.spec("registry", consul, args, vec![]))
            }
            None => (
                "registry",
                self.spec(
                    "registry",
                    self.binary.clone(),
                    vec!["serve".into(), "registry".into()],
                    vec![
                        ("GANTRY_LISTEN".into(), addr.clone()),
                        (crate::registry::ACL_TOKEN_VAR.into(), self.registry_token.clone()),
                    ],
                ),
            ),
        };
        progress(Progress::Starting(label));
        let mut process = Process::start(spec)?;
        let client = RegistryClient::new(&addr);
        let took = wait::until(
            "the registry to elect a leader",
            READY_TIMEOUT,
            Some(&mut process),
            || {
                let client = client.clone();
                // Consul answers "" until it has a leader.
                async move { client.leader().await.map(|l| !l.is_empty()).map_err(|e| e.to_string()) }
            },
        )
        .await?;
        self.registry_addr = addr;
        self.registry = Some(Component::Process(process));
        progress(Progress::Ready(label, took));
        Ok(())
    }

    async fn start_service(
        &mut self,
        service: &str,
        id: &str,
        port: Option<u16>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(), HarnessError> {
        progress(Progress::Starting(id));
        let mut attempt = 0;
        let (process, took) = loop {
            attempt += 1;
            let port = pick_port(port)?;
            let mut env = self.service_env.clone();
            env.push(("GANTRY_LISTEN".into(), format!("127.0.0.1:{port}")));
            env.push(("GANTRY_INSTANCE_ID".into(), id.into()));
            let spec = self.spec(id, self.binary.clone(), vec!["serve".into(), service.into()], env);
            let mut process = Process::start(spec)?;
            match self.wait_passing_of(service, id, Some(&mut process)).await {
                Ok(took) => break (process, took),
                Err(e) if port_was_taken(&e, attempt) => {}
                Err(e) => return Err(e),
            }
        };
        match service {
            "auth" => self.auth.push(process),
            _ => self.users.push(process),
        }
        progress(Progress::Ready(id, took));
        Ok(())
    }

    async fn start_gateway(
        &mut self,
        id: &str,
        port: Option<u16>,
        extra_env: &[(String, String)],
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(), HarnessError> {
        progress(Progress::Starting(id));
        let mut attempt = 0;
        let (process, url, admin_url, took) = loop {
            attempt += 1;
            let chosen = pick_port(port)?;
            let admin = pick_port(None)?;
            let mut env = self.service_env.clone();
            env.push(("GANTRY_LISTEN".into(), format!("127.0.0.1:{chosen}")));
            env.push(("GANTRY_ADMIN_LISTEN".into(), format!("127.0.0.1:{admin}")));
            env.push(("GANTRY_INSTANCE_ID".into(), id.into()));
            env.extend(extra_env.iter().cloned());
            let spec = self.spec(id, self.binary.clone(), vec!["serve".into(), "gateway".into()], env);
            let mut process = Process::start(spec)?;
            let url = format!("http://127.0.0.1:{chosen}");
            let admin_url = format!("http://127.0.0.1:{admin}");
            // The admin /readyz says what is missing when it is not ready.
            match wait_gateway_ready(&admin_url, Some(&mut process)).await {
                Ok(took) => break (process, url, admin_url, took),
                // The admin port is always a free one, so retry even when
                // the public port is fixed (checked free before starting).
                Err(e) if port_was_taken(&e, attempt) => {}
                Err(e) => return Err(e),
            }
        };
        self.gateways.push(process);
        self.gateway_urls.push(url);
        self.gateway_admin_urls.push(admin_url);
        progress(Progress::Ready(id, took));
        Ok(())
    }

    async fn wait_passing_of(
        &self,
        service: &str,
        id: &str,
        process: Option<&mut Process>,
    ) -> Result<Duration, HarnessError> {
        wait_passing(&self.registry(), service, id, process).await
    }

    /// Starts one more user instance (`user-<n+1>`) and waits until it passes.
    /// Returns its instance id.
    pub async fn add_user(&mut self) -> Result<String, HarnessError> {
        let id = format!("user-{}", self.users.len() + 1);
        self.start_service("user", &id, None, &mut |_| {}).await?;
        Ok(id)
    }

    /// Starts one more gateway (`gateway-<n+1>`, a new replica) with the
    /// stack's environment on free ports and waits until its admin `/readyz`
    /// is 200. Returns its public URL, also last in [`Stack::gateway_urls`].
    pub async fn add_gateway(&mut self) -> Result<String, HarnessError> {
        let id = format!("gateway-{}", self.gateways.len() + 1);
        self.start_gateway(&id, None, &[], &mut |_| {}).await?;
        Ok(self.gateway_urls.last().cloned().unwrap_or_default())
    }

    /// Restarts gateway `n` (1-based) as a deploy or a crash would: stopped
    /// (SIGTERM), started again with the same environment and ports, and
    /// waited for until its admin `/readyz` is 200. It comes back with empty
    /// caches and a new subscription to the revocation channel.
    pub async fn restart_gateway(&mut self, n: usize) -> Result<Duration, HarnessError> {
        let count = self.gateways.len();
        let (Some(process), Some(admin)) = (
            self.gateways.get_mut(n.wrapping_sub(1)),
            self.gateway_admin_urls.get(n.wrapping_sub(1)),
        ) else {
            return Err(HarnessError::NotRunning(format!("gateway-{n} (the stack has {count})")));
        };
        process.restart().await?;
        wait_gateway_ready(admin, Some(process)).await
    }

    /// Waits until instance `id` of `service` is passing in the registry.
    pub async fn wait_passing(&self, service: &str, id: &str) -> Result<Duration, HarnessError> {
        self.wait_passing_of(service, id, None).await
    }

    /// Waits until every gateway answers `/readyz` with 200.
    pub async fn wait_gateways_ready(&self) -> Result<(), HarnessError> {
        for url in &self.gateway_admin_urls {
            wait_gateway_ready(url, None).await?;
        }
        Ok(())
    }

    /// Stops everything gracefully, gateways first and Redis last.
    pub async fn stop(mut self, progress: &mut dyn FnMut(Progress<'_>)) -> Result<(), HarnessError> {
        let groups = [
            std::mem::take(&mut self.gateways),
            std::mem::take(&mut self.users),
            std::mem::take(&mut self.auth),
        ];
        for mut group in groups {
            for p in &mut group {
                progress(Progress::Stopping(p.name()));
                p.stop().await?;
            }
        }
        for mut c in [self.registry.take(), self.redis.take()].into_iter().flatten() {
            progress(Progress::Stopping(c.name()));
            c.shut_down().await?;
        }
        Ok(())
    }
}

/// Waits until `registry` lists instance `id` of `service` as passing; with
/// `process`, fails at once if that process exits meanwhile.
pub(crate) async fn wait_passing(
    registry: &RegistryClient,
    service: &str,
    id: &str,
    process: Option<&mut Process>,
) -> Result<Duration, HarnessError> {
    wait::until(&format!("{id} to pass in the registry"), READY_TIMEOUT, process, || {
        let registry = registry.clone();
        async move {
            let found = registry
                .health_service(service, true, None, Duration::ZERO)
                .await
                .map_err(|e| e.to_string())?;
            Ok(found.value.iter().any(|i| i.id == id))
        }
    })
    .await
}

async fn wait_gateway_ready(url: &str, process: Option<&mut Process>) -> Result<Duration, HarnessError> {
    let http = reqwest::Client::new();
    let readyz = format!("{url}/readyz");
    wait::until("the gateway's /readyz to answer 200", READY_TIMEOUT, process, || {
        let req = http.get(&readyz).timeout(Duration::from_secs(2)).send();
        async move {
            let resp = req.await.map_err(|e| e.to_string())?;
            if resp.status().is_success() {
                Ok(true)
            } else {
                Err(resp.text().await.unwrap_or_default())
            }
        }
    })
    .await
}

/// `consul agent -dev` on loopback with every port chosen, so several stacks
/// (and a restart on the same ports) never collide; DNS and gRPC are off.
fn consul_dev_args(http: u16, [serf_lan, serf_wan, server]: [u16; 3]) -> Vec<String> {
    let mut args: Vec<String> = ["agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1"]
        .map(String::from)
        .to_vec();
    for (flag, port) in [
        ("-http-port", i32::from(http)),
        ("-serf-lan-port", i32::from(serf_lan)),
        ("-serf-wan-port", i32::from(serf_wan)),
        ("-server-port", i32::from(server)),
        ("-dns-port", -1),
        ("-grpc-port", -1),
        ("-grpc-tls-port", -1),
    ] {
        args.push(flag.to_owned());
        args.push(port.to_string());
    }
    args
}

/// `fixed`, or a port that is free now.
fn pick_port(fixed: Option<u16>) -> Result<u16, HarnessError> {
    match fixed {
        Some(p) => Ok(p),
        None => free_port().map_err(|e| HarnessError::Io("finding a free port".into(), e)),
    }
}

/// True when a process died because its port was taken in the moment
/// between choosing it and binding it, and another try is allowed.
fn port_was_taken(e: &HarnessError, attempt: usize) -> bool {
    attempt < 5 && matches!(e, HarnessError::Exited { tail, .. } if tail.contains("Address already in use"))
}

fn set_env(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value.to_owned()));
}

/// `PING` as a client of `url` (password included) does it: true on
/// `PONG`; Redis's own error (e.g. `WRONGPASS`) otherwise.
async fn redis_ping(url: &str) -> Result<bool, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(pong)) => Ok(pong == "PONG"),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer to PING within 2 s".to_owned()),
    }
}

/// `redis://:<password>@<addr>`, the form `REDIS_URL` takes.
pub fn redis_url(addr: &str, password: &str) -> String {
    format!("redis://:{password}@{addr}")
}

/// A fresh Redis password: 32 random bytes from the OS, in hex (nothing to
/// escape in a URL or a config file).
fn redis_password() -> String {
    jwt::generate_seed().iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh ACL token in the UUID form Consul gives its tokens, from
/// the OS's random source.
fn acl_token() -> String {
    let mut b: [u8; 16] = jwt::generate_seed()[..16].try_into().expect("16 of 32 bytes");
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Consul's ACL configuration for a dev agent: on, default deny, `token` as
/// the management token and the agent's own token (so it can sync itself).
pub(crate) fn consul_acl_hcl(token: &str) -> String {
    format!(
        "acl {{\n  enabled = true\n  default_policy = \"deny\"\n  enable_token_persistence = false\n  \
         tokens {{\n    initial_management = \"{token}\"\n    agent = \"{token}\"\n  }}\n}}\n"
    )
}

/// Writes `text` to a new file readable by this user only (0600).
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

/// The full path of `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::{acl_token, consul_acl_hcl, consul_dev_args, redis_password};

    #[test]
    fn secrets_are_fresh_and_well_formed() {
        let (a, b) = (redis_password(), redis_password());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        let t = acl_token();
        assert_ne!(t, acl_token());
        let groups: Vec<usize> = t.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{t}");
        assert_eq!(&t[14..15], "4", "a version-4 UUID: {t}");
        let hcl = consul_acl_hcl(&t);
        assert!(hcl.contains("default_policy = \"deny\""), "{hcl}");
        assert!(hcl.contains(&format!("initial_management = \"{t}\"")), "{hcl}");
    }

    #[test]
    fn consul_dev_gets_every_port_explicitly() {
        let args = consul_dev_args(8501, [9001, 9002, 9003]).join(" ");
        assert!(args.starts_with("agent -dev -bind 127.0.0.1 -client 127.0.0.1"));
        for part in [
            "-http-port 8501",
            "-serf-lan-port 9001",
            "-serf-wan-port 9002",
            "-server-port 9003",
            "-dns-port -1",
        ] {
            assert!(args.contains(part), "{args}");
        }
    }
}
