//! The stack's infrastructure: Redis and the registry, as local processes
//! or containers, with the secrets that guard them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gantry_common::jwt;
use gantry_common::registry::RegistryClient;

use super::launch;
use super::{Progress, READY_TIMEOUT, Stack};
use crate::HarnessError;
use crate::component::Component;
use crate::containers;
use crate::process::{Process, Spec};
use crate::wait;

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
    External { addr: String, token: Option<String> },
}

impl Stack {
    fn infra_spec(&self, name: &str, program: PathBuf, args: Vec<String>, env: Vec<(String, String)>) -> Spec {
        Spec {
            name: name.to_owned(),
            program,
            args,
            env,
            log: self.dir.path().join(format!("{name}.log")),
        }
    }

    /// Redis as a process (`redis-server` from PATH), with a password.
    pub(super) async fn start_redis(&mut self, progress: &mut dyn FnMut(Progress<'_>)) -> Result<(), HarnessError> {
        progress(Progress::Starting("redis"));
        let program = which("redis-server").ok_or_else(|| HarnessError::Missing {
            program: "redis-server".into(),
            hint: "install Redis (Debian: apt-get install redis-server) or put redis-server on PATH".into(),
        })?;
        // The password goes in a file only we can read (the stack's dir is
        // 0700), not on the command line, which every user can see.
        let config = self.dir.path().join("redis.conf");
        write_private(&config, &format!("requirepass {}\n", self.redis_password))?;
        let this = &*self;
        let (process, url, took) = launch::on_free_port(None, async |port| {
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
                &this.dir.path().display().to_string(),
            ]
            .map(String::from)
            .to_vec();
            let mut process = Process::start(this.infra_spec("redis", program.clone(), args, vec![]))?;
            let url = redis_url(&format!("127.0.0.1:{port}"), &this.redis_password);
            let took = wait::until("redis to answer PING", READY_TIMEOUT, Some(&mut process), || {
                redis_ping(&url)
            })
            .await?;
            Ok((process, url, took))
        })
        .await?;
        self.redis_url = url;
        self.redis = Some(Component::Process(process));
        progress(Progress::Ready("redis", took));
        Ok(())
    }

    /// Redis in a container.
    pub(super) async fn start_redis_container(
        &mut self,
        images: &containers::Images,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(), HarnessError> {
        progress(Progress::Starting("redis"));
        let started = tokio::time::Instant::now();
        let password = self.redis_password.clone();
        let (redis, url) = launch::on_free_port(None, async |port| {
            let redis = containers::redis(images, &password, port).await?;
            let url = redis_url(&format!("127.0.0.1:{port}"), &password);
            wait::until("redis to answer PING", READY_TIMEOUT, None, || redis_ping(&url)).await?;
            Ok((redis, url))
        })
        .await?;
        self.redis_url = url;
        self.redis = Some(Component::Container(redis));
        progress(Progress::Ready("redis", started.elapsed()));
        Ok(())
    }

    /// The registry in a container.
    pub(super) async fn start_registry_container(
        &mut self,
        images: &containers::Images,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(), HarnessError> {
        progress(Progress::Starting("registry"));
        let started = tokio::time::Instant::now();
        let token = self.registry_token.clone();
        let (registry, addr) = launch::on_free_port(None, async |port| {
            let registry = containers::registry(images, &token, port).await?;
            let addr = format!("127.0.0.1:{port}");
            wait_leader(&addr, None).await?;
            Ok((registry, addr))
        })
        .await?;
        self.registry_addr = addr;
        self.registry = Some(Component::Container(registry));
        progress(Progress::Ready("registry", started.elapsed()));
        Ok(())
    }

    /// The registry as a process: `consul agent -dev` or Gantry's dev
    /// registry, as `kind` says.
    pub(super) async fn start_registry(
        &mut self,
        kind: &RegistryKind,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(), HarnessError> {
        if let RegistryKind::External { addr, token } = kind {
            progress(Progress::Starting("registry"));
            let client = RegistryClient::new(addr);
            let took = wait_leader(client.base_url(), None).await?;
            self.registry_addr = client.base_url().trim_start_matches("http://").to_owned();
            self.registry_token = token.clone().unwrap_or_default();
            progress(Progress::Ready("registry", took));
            return Ok(());
        }
        let consul = match kind {
            RegistryKind::ConsulIfInstalled => {
                which("consul").filter(|_| std::env::var_os("GANTRY_NO_CONSUL").is_none())
            }
            RegistryKind::Dev | RegistryKind::External { .. } => None,
        };
        let label = if consul.is_some() {
            "registry (consul)"
        } else {
            "registry"
        };
        progress(Progress::Starting(label));
        if consul.is_some() {
            // ACLs on, default deny, our token as the management token:
            // in a file only we can read, not on the command line.
            write_private(&self.consul_acl_path(), &consul_acl_hcl(&self.registry_token))?;
        }
        let this = &*self;
        let (process, addr, took) = launch::on_free_port(None, async |port| {
            let addr = format!("127.0.0.1:{port}");
            let spec = match &consul {
                Some(consul) => {
                    let any = launch::any_port;
                    let mut args = consul_dev_args(port, [any()?, any()?, any()?]);
                    args.extend(["-config-file".to_owned(), this.consul_acl_path().display().to_string()]);
                    this.infra_spec("registry", consul.clone(), args, vec![])
                }
                None => this.infra_spec(
                    "registry",
                    this.binary.clone(),
                    vec!["serve".into(), "registry".into()],
                    vec![
                        ("GANTRY_LISTEN".into(), addr.clone()),
                        (crate::registry::ACL_TOKEN_VAR.into(), this.registry_token.clone()),
                    ],
                ),
            };
            let mut process = Process::start(spec)?;
            let took = wait_leader(&addr, Some(&mut process)).await?;
            Ok((process, addr, took))
        })
        .await?;
        self.registry_addr = addr;
        self.registry = Some(Component::Process(process));
        progress(Progress::Ready(label, took));
        Ok(())
    }

    fn consul_acl_path(&self) -> PathBuf {
        self.dir.path().join("consul-acl.hcl")
    }
}

/// Waits until the registry at `addr` has a leader (Consul answers "" until then).
async fn wait_leader(addr: &str, process: Option<&mut Process>) -> Result<Duration, HarnessError> {
    let client = RegistryClient::new(addr);
    wait::until("the registry to elect a leader", READY_TIMEOUT, process, || {
        let client = client.clone();
        async move { client.leader().await.map(|l| !l.is_empty()).map_err(|e| e.to_string()) }
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
pub(super) fn redis_password() -> String {
    jwt::generate_seed().iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh ACL token in the UUID form Consul gives its tokens, from
/// the OS's random source.
pub(super) fn acl_token() -> String {
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
