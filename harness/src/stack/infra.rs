//! The stack's infrastructure, Redis and the registry, as [`ServiceSpec`]s
//! like any service: a command or an image, the private files that hold
//! their secrets, and a readiness ([`Ready::RedisPing`],
//! [`Ready::RegistryLeader`]). They start through the same path as every
//! instance; only what they are is written here.

use std::path::PathBuf;
use std::time::Duration;

use gantry_common::jwt;
use gantry_common::registry::RegistryClient;

use super::launch;
use super::role::Role;
use super::spec::{READY_TIMEOUT, Ready, Registration, Run, ServiceSpec};
use crate::error::HarnessError;
use crate::run::containers;
use crate::run::wait;

/// The Redis image unless `GANTRY_REDIS_IMAGE` says otherwise: a current Redis 7.
pub const DEFAULT_REDIS_IMAGE: &str = "redis:7.4.2";
/// The Consul image unless `GANTRY_CONSUL_IMAGE` says otherwise: a current Consul 1.x.
pub const DEFAULT_CONSUL_IMAGE: &str = "hashicorp/consul:1.20.5";
/// How long an infrastructure container may take to be ready.
const CONTAINER_READY_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Which registry a local stack runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RegistryKind {
    /// `consul agent -dev` when `consul` is on PATH (and `GANTRY_NO_CONSUL`
    /// is unset), else Gantry's dev registry.
    #[default]
    ConsulIfInstalled,
    /// Gantry's dev registry always.
    Dev,
    /// One already running at `addr` (`host:port`), written to with `token`
    /// (its ACL token, if it has ACLs on). The stack neither starts nor stops it.
    External {
        /// `host:port` of its HTTP API.
        addr: String,
        /// The ACL token the stack writes with; `None` when it has no ACLs.
        token: Option<String>,
    },
}

/// Which images the `containers` provider runs.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `GANTRY_REDIS_IMAGE` | `redis:7.4.2` | Redis |
/// | `GANTRY_CONSUL_IMAGE` | `hashicorp/consul:1.20.5` | Consul, run as `agent -dev` |
/// | `GANTRY_REGISTRY_IMAGE` | — | Gantry's dev registry instead of Consul (`ci/images/build.sh` builds `gantry/registry`) |
#[derive(Debug, Clone)]
pub struct Images {
    /// Redis's image and tag.
    pub redis: String,
    /// The registry's image: Consul's, or Gantry's dev registry's.
    pub registry: RegistryImage,
}

/// The registry's image: Consul's, or Gantry's dev registry's.
#[derive(Debug, Clone)]
pub enum RegistryImage {
    /// A Consul image, run as `agent -dev`.
    Consul(String),
    /// Gantry's dev registry (`GANTRY_REGISTRY_IMAGE`).
    Dev(String),
}

impl RegistryImage {
    /// The image and its tag, whichever registry it is.
    pub fn image(&self) -> &str {
        match self {
            RegistryImage::Consul(i) | RegistryImage::Dev(i) => i,
        }
    }
}

impl Images {
    /// The images the variables in the table above name, or their defaults
    /// (a variable set to blanks counts as unset).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let registry = match var("GANTRY_REGISTRY_IMAGE") {
            Some(dev) => RegistryImage::Dev(dev),
            None => RegistryImage::Consul(var("GANTRY_CONSUL_IMAGE").unwrap_or_else(|| DEFAULT_CONSUL_IMAGE.into())),
        };
        Self {
            redis: var("GANTRY_REDIS_IMAGE").unwrap_or_else(|| DEFAULT_REDIS_IMAGE.into()),
            registry,
        }
    }

    /// Why these images cannot run here, or `None` when they can.
    pub async fn unavailable_because(&self) -> Option<String> {
        containers::unavailable_because(&[&self.redis, self.registry.image()]).await
    }
}

/// Where the infrastructure comes from, once [`Infra::Auto`] is decided.
#[derive(Debug, Clone)]
pub enum Provider {
    /// Local processes: `redis-server` from PATH, the registry as `kind` says.
    Local(RegistryKind),
    /// Containers of these images, through testcontainers.
    Containers(Images),
}

/// The secrets that guard the infrastructure, fresh for each stack.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// Redis's `requirepass`, carried in `REDIS_URL`.
    pub redis_password: String,
    /// The registry's management ACL token, given to services as `CONSUL_HTTP_TOKEN`.
    pub registry_token: String,
}

impl Secrets {
    /// A new password and token from the OS's random source.
    pub fn generate() -> Self {
        Self {
            redis_password: redis_password(),
            registry_token: acl_token(),
        }
    }
}

/// Redis as `provider` runs it: with a password (in a private file), every
/// write persisted so a restarted Redis still has its sessions, ready when
/// it answers `PING`, not in the registry.
pub fn redis(provider: &Provider, password: &str) -> Result<(Role, ServiceSpec), HarnessError> {
    let persist = ["--appendonly", "yes", "--appendfsync", "always"];
    let spec = match provider {
        Provider::Local(_) => {
            let program = which("redis-server").ok_or_else(|| HarnessError::Missing {
                program: "redis-server".into(),
                hint: "install Redis (Debian: apt-get install redis-server) or put redis-server on PATH".into(),
            })?;
            let mut args = vec![
                "{file:redis.conf}",
                "--port",
                "{port}",
                "--bind",
                "{host}",
                "--save",
                "",
            ];
            args.extend(persist);
            args.extend(["--daemonize", "no", "--dir", "{dir}"]);
            ServiceSpec::command("redis", program, args).file("redis.conf", format!("requirepass {password}\n"))
        }
        Provider::Containers(images) => {
            let mut spec = ServiceSpec::image("redis", &images.redis, 6379);
            let mut args = vec!["redis-server", "{file:redis.conf}", "--bind", "0.0.0.0"];
            args.extend(persist);
            if let Run::Image { args: run_args, .. } = &mut spec.run {
                *run_args = args.into_iter().map(String::from).collect();
            }
            // Protected mode stays on (the official image's entrypoint would
            // turn it off otherwise); with a password it lets authenticated
            // clients in from anywhere.
            spec.file("redis.conf", format!("requirepass {password}\nprotected-mode yes\n"))
                .ready_timeout(CONTAINER_READY_TIMEOUT)
        }
    };
    let spec = spec
        .ready(Ready::RedisPing {
            password: password.to_owned(),
        })
        .registration(Registration::Unregistered);
    Ok((Role::Redis, spec))
}

/// The port of the registry's HTTP API inside its container (Consul's).
pub const REGISTRY_PORT: u16 = 8500;
/// The registry image's DNS port inside its container (Consul's).
pub const REGISTRY_DNS_PORT: u16 = 8600;

/// The registry as `provider` runs it, with ACLs on and `token` as the
/// management token, ready when it has a leader; `None` for an external one.
pub fn registry(
    provider: &Provider,
    binary: &std::path::Path,
    token: &str,
) -> Result<Option<(Role, ServiceSpec)>, HarnessError> {
    let spec = match provider {
        Provider::Local(RegistryKind::External { .. }) => return Ok(None),
        Provider::Local(kind) => {
            let consul = match kind {
                RegistryKind::ConsulIfInstalled => {
                    which("consul").filter(|_| std::env::var_os("GANTRY_NO_CONSUL").is_none())
                }
                _ => None,
            };
            match consul {
                Some(consul) => {
                    let any = launch::any_port;
                    let mut args = consul_dev_args([any()?, any()?, any()?]);
                    args.extend(["-config-file".to_owned(), "{file:consul-acl.hcl}".to_owned()]);
                    // ACLs on, default deny, our token as the management
                    // token: in a file only we can read. DNS on the second
                    // port (`{dns}`).
                    ServiceSpec::command("registry", consul, args)
                        .with_admin_port()
                        .file("consul-acl.hcl", consul_acl_hcl(token))
                }
                // Its DNS interface on the second port (`{dns}`).
                None => ServiceSpec::command("registry", binary, ["serve", "registry"])
                    .with_admin_port()
                    .env("GANTRY_LISTEN", "{host}:{port}")
                    .env(gantry_registry::dns::DNS_LISTEN_VAR, "{host}:{admin_port}")
                    .env(gantry_registry::ACL_TOKEN_VAR, token),
            }
        }
        Provider::Containers(images) => match &images.registry {
            RegistryImage::Consul(image) => {
                // On the stack's network, as the dev registry is.
                let mut spec = ServiceSpec::image("registry", image, REGISTRY_PORT);
                if let Run::Image { args, .. } = &mut spec.run {
                    *args = [
                        "agent",
                        "-dev",
                        "-client",
                        "0.0.0.0",
                        "-config-file",
                        "{file:consul-acl.hcl}",
                    ]
                    .map(String::from)
                    .to_vec();
                }
                spec.file("consul-acl.hcl", consul_acl_hcl(token))
            }
            RegistryImage::Dev(image) => {
                // On the stack's network like every container: its checks
                // reach a container at its name there, a process on the
                // host through the host's relay to it.
                // Its DNS on Consul's port, published on the host at
                // the second port (`{dns}` for processes on the host).
                ServiceSpec::image("registry", image, REGISTRY_PORT)
                    .publish_udp(REGISTRY_DNS_PORT)
                    .env("GANTRY_LISTEN", "{host}:{port}")
                    .env(
                        gantry_registry::dns::DNS_LISTEN_VAR,
                        format!("{{host}}:{REGISTRY_DNS_PORT}"),
                    )
                    .env(gantry_registry::ACL_TOKEN_VAR, token)
            }
        }
        .ready_timeout(CONTAINER_READY_TIMEOUT),
    };
    let spec = spec
        .ready(Ready::RegistryLeader)
        .registration(Registration::Unregistered);
    Ok(Some((Role::Registry, spec)))
}

/// Waits until the registry at `addr` (one the stack does not run) has a
/// leader (Consul answers "" until then).
pub async fn wait_leader(addr: &str) -> Result<Duration, HarnessError> {
    let client = RegistryClient::new(addr);
    wait::until("the registry to elect a leader", READY_TIMEOUT, None, || {
        let client = client.clone();
        async move { client.leader().await.map(|l| !l.is_empty()).map_err(|e| e.to_string()) }
    })
    .await
}

/// `consul agent -dev` on loopback with every port chosen (HTTP's is the
/// instance's `{port}`), so several stacks (and a restart on the same ports)
/// never collide; DNS and gRPC are off.
fn consul_dev_args([serf_lan, serf_wan, server]: [u16; 3]) -> Vec<String> {
    let mut args: Vec<String> = [
        "agent",
        "-dev",
        "-bind",
        "{host}",
        "-client",
        "{host}",
        "-http-port",
        "{port}",
        "-dns-port",
        "{admin_port}",
    ]
    .map(String::from)
    .to_vec();
    for (flag, port) in [
        ("-serf-lan-port", i32::from(serf_lan)),
        ("-serf-wan-port", i32::from(serf_wan)),
        ("-server-port", i32::from(server)),
        ("-grpc-port", -1),
        ("-grpc-tls-port", -1),
    ] {
        args.push(flag.to_owned());
        args.push(port.to_string());
    }
    args
}

/// A fresh Redis password: 32 random bytes from the OS, in hex (nothing to
/// escape in a URL or a config file).
fn redis_password() -> String {
    jwt::generate_seed().iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh ACL token in the UUID form Consul gives its tokens, from
/// the OS's random source.
fn acl_token() -> String {
    jwt::uuid_v4()
}

/// Consul's ACL configuration for a dev agent: on, default deny, `token` as
/// the management token and the agent's own token (so it can sync itself).
pub(crate) fn consul_acl_hcl(token: &str) -> String {
    format!(
        "acl {{\n  enabled = true\n  default_policy = \"deny\"\n  enable_token_persistence = false\n  \
         tokens {{\n    initial_management = \"{token}\"\n    agent = \"{token}\"\n  }}\n}}\n"
    )
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
        let args = consul_dev_args([9001, 9002, 9003]).join(" ");
        assert!(args.starts_with("agent -dev -bind {host} -client {host}"));
        for part in [
            "-http-port {port}",
            "-serf-lan-port 9001",
            "-serf-wan-port 9002",
            "-server-port 9003",
            "-dns-port {admin_port}",
        ] {
            assert!(args.contains(part), "{args}");
        }
    }
}
