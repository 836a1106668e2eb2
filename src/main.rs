//! `gantry`: start the reference stack, run one of its components, or look
//! at a running stack.

mod process;
// Written by `gantry up` (the harness), read by `down`, `status`, `reload`.
#[cfg_attr(not(feature = "harness"), allow(dead_code))]
mod runstate;
#[cfg(feature = "harness")]
mod up;

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::builder::TypedValueParser as _;
use clap::{Parser, Subcommand};
use gantry_common::component::Component;

#[derive(Parser)]
#[command(
    name = "gantry",
    version,
    about = "A reference Rust microservice stack and the harness that proves it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start Redis, the registry, auth, N user instances and the gateway (or
    /// the stack a --config file describes); Ctrl-C stops them all.
    #[cfg(feature = "harness")]
    Up {
        /// How many user-service instances (reference stack only).
        #[arg(long, default_value_t = 3, conflicts_with = "config")]
        users: usize,
        /// The gateway's port on 127.0.0.1 (the file's `[gateway] port` when it sets one).
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Where Redis and the registry come from (the file's `[infra] provider` when it sets one).
        #[arg(long)]
        infra: Option<String>,
        /// A stack file (TOML) describing the services to start instead of
        /// the reference stack; see harness/stack.example.toml.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Serve HTTPS on the gateway's port, with a certificate for
        /// localhost from a CA generated for this stack (its path is
        /// printed: trust it with `curl --cacert` or GANTRY_CA_CERT).
        #[arg(long)]
        tls: bool,
        /// The stack's name, for `gantry down <name>` and `gantry status
        /// <name>`: several stacks run side by side under different names.
        /// Default: the stack file's folder, or `gantry` without one.
        #[arg(long)]
        name: Option<String>,
    },
    /// Stop a stack that `gantry up` started (the only one, or the one named).
    Down { name: Option<String> },
    /// Show whether a stack that `gantry up` started is ready (the only one, or the one named).
    Status { name: Option<String> },
    /// Run one component in the foreground (what `up` and container images run).
    Serve {
        #[arg(value_parser = component_parser())]
        component: Component,
    },
    /// Run the dev registry (same as `serve registry`). With GANTRY_REGISTRY_ACL_TOKEN
    /// set, writes need that token (X-Consul-Token) and reads without it see nothing,
    /// as with Consul's ACLs on and default deny; without it anyone may write.
    Registry,
    /// Act on running gateways.
    Gateway {
        #[command(subcommand)]
        action: GatewayAction,
    },
    /// Print a fresh Ed25519 signing key for GANTRY_JWT_SIGNING_KEY.
    Keygen,
    /// Register a service instance in the registry (CONSUL_HTTP_ADDR, with
    /// CONSUL_HTTP_TOKEN) with a check the registry runs, as `consul
    /// services register` does: for services that do not register
    /// themselves, run once per instance by whatever deploys them.
    Register {
        /// The service's name, e.g. `greeter`.
        #[arg(long)]
        service: String,
        /// The instance's id, e.g. `greeter-1`.
        #[arg(long)]
        id: String,
        /// The host the registry and the gateway reach it at.
        #[arg(long)]
        address: String,
        /// Its port there.
        #[arg(long)]
        port: u16,
        /// The path of its HTTP health check.
        #[arg(long, default_value = "/health", conflicts_with = "tcp")]
        http: String,
        /// A TCP check (the port accepts a connection) instead of HTTP.
        #[arg(long)]
        tcp: bool,
        /// How often the registry checks it.
        #[arg(long, default_value = "1s")]
        interval: String,
        /// How long a critical instance stays registered.
        #[arg(long, default_value = "30s")]
        deregister_after: String,
    },
    /// Exit 0 when URL answers 2xx within the timeout, else 1 with why: a
    /// health check for container images that have no curl.
    Probe {
        url: String,
        /// How long to wait for the answer (`500ms`, `2s`).
        #[arg(long, default_value = "2s")]
        timeout: String,
    },
}

#[derive(Subcommand)]
enum GatewayAction {
    /// Make a gateway read its routes file (GANTRY_GATEWAY_CONFIG) again, by
    /// sending it SIGHUP: a valid file is in force for the next request, a
    /// bad one is logged and the routes in force stay.
    Reload {
        /// The gateway's process id; without it, every gateway of the stack
        /// `gantry up` started (the only one, or the one --name names).
        #[arg(long)]
        pid: Option<u32>,
        #[arg(long, conflicts_with = "pid")]
        name: Option<String>,
    },
}

/// `gantry serve`'s argument: one of [`Component::NAMES`], listed in `--help`.
fn component_parser() -> impl clap::builder::TypedValueParser<Value = Component> {
    clap::builder::PossibleValuesParser::new(Component::NAMES)
        .map(|name| name.parse::<Component>().expect("one of the listed names"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            #[cfg(feature = "harness")]
            Command::Up {
                users,
                port,
                infra,
                config,
                tls,
                name,
            } => up::up(users, port, infra.as_deref(), config.as_deref(), tls, name).await,
            Command::Down { name } => down(name.as_deref()).await,
            Command::Status { name } => status(name.as_deref()).await,
            Command::Serve { component } => serve(component).await,
            Command::Registry => serve(Component::Registry).await,
            Command::Probe { url, timeout } => probe(&url, &timeout).await,
            Command::Register {
                service,
                id,
                address,
                port,
                http,
                tcp,
                interval,
                deregister_after,
            } => {
                let check = Check {
                    http: (!tcp).then_some(http),
                    interval,
                    deregister_after,
                };
                register(service, id, address, port, check).await
            }
            Command::Gateway {
                action: GatewayAction::Reload { pid, name },
            } => gateway_reload(pid, name.as_deref()),
            Command::Keygen => {
                println!(
                    "{}",
                    gantry_common::jwt::encode_seed(&gantry_common::jwt::generate_seed())
                );
                Ok(())
            }
        }
    })
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} (set GANTRY_LISTEN to another host:port)"))
}

/// Where `gantry serve faultproxy` serves Toxiproxy's API: Toxiproxy's own
/// default, so its clients find it without being told.
#[cfg(feature = "harness")]
const FAULT_PROXY_LISTEN: &str = "127.0.0.1:8474";

async fn serve(component: Component) -> Result<()> {
    gantry_common::telemetry::init();
    let shutdown = gantry_common::shutdown::signal();
    match component {
        Component::Gateway => {
            let cfg = gantry_gateway::GatewayConfig::from_env()?;
            let admin = match cfg.admin_listen {
                Some(addr) => Some(
                    tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("binding {addr} (set GANTRY_ADMIN_LISTEN to another host:port)"))?,
                ),
                None => None,
            };
            // From here on SIGHUP reloads the routes file instead of ending the process.
            let (reloader, reloads) = gantry_gateway::reload::channel();
            let hangups = gantry_gateway::reload::on_sighup(reloader).context("installing the SIGHUP handler")?;
            tokio::spawn(hangups);
            gantry_gateway::run_with_reloads(bind(cfg.listen).await?, admin, cfg, reloads, shutdown).await?;
        }
        Component::Auth => {
            let cfg = gantry_auth::AuthConfig::from_env()?;
            gantry_auth::run(bind(cfg.service.listen).await?, cfg, shutdown).await?;
        }
        Component::User => {
            let cfg = gantry_user::UserConfig::from_env()?;
            gantry_user::run(bind(cfg.service.listen).await?, cfg, shutdown).await?;
        }
        Component::Registry => {
            let cfg = gantry_registry::Options::from_env()?;
            let dns = match cfg.dns_listen {
                Some(addr) => Some(
                    tokio::net::UdpSocket::bind(addr)
                        .await
                        .with_context(|| format!("binding DNS (GANTRY_DNS_LISTEN) on {addr} (UDP)"))?,
                ),
                None => None,
            };
            gantry_registry::run_with_dns(bind(cfg.listen).await?, dns, cfg, shutdown).await?;
        }
        #[cfg(feature = "harness")]
        Component::FaultProxy => {
            // Toxiproxy's API on Toxiproxy's port unless GANTRY_LISTEN says
            // otherwise; links (proxies) are made over it.
            let listen = gantry_common::config::parse_or(
                "GANTRY_LISTEN",
                FAULT_PROXY_LISTEN.parse().expect("a valid default"),
                "host:port, e.g. 127.0.0.1:8474",
            )?;
            let proxy = gantry_harness::faults::FaultProxy::new();
            tracing::info!(%listen, "fault proxy: Toxiproxy's API");
            gantry_harness::faults::api::serve(bind(listen).await?, proxy, shutdown).await?;
        }
        #[cfg(not(feature = "harness"))]
        Component::FaultProxy => {
            drop(shutdown);
            bail!(
                "this gantry was built without the harness (cargo feature `harness`), which the fault proxy is part of"
            );
        }
    }
    Ok(())
}

/// The record `gantry up` left for stack `name` (or the only one), and where it is.
fn read_state(name: Option<&str>) -> Result<(std::path::PathBuf, runstate::RunState)> {
    runstate::read(&runstate::dir()?, name)
}

/// `gantry gateway reload`: SIGHUP to gateway `pid`, or to each gateway
/// `gantry up` recorded in its state file.
fn gateway_reload(pid: Option<u32>, name: Option<&str>) -> Result<()> {
    let pids = match pid {
        Some(pid) => vec![pid],
        None => {
            let (path, state) = read_state(name)?;
            let pids = state.gateway_pids;
            if pids.is_empty() {
                bail!("{} records no gateway pids; pass the gateway's --pid", path.display());
            }
            pids
        }
    };
    for pid in pids {
        reload_gateway(pid)?;
        println!("gateway {pid}: asked to reload (its log says whether the file was accepted)");
    }
    Ok(())
}

/// SIGHUP to process `pid` if it is `gantry serve gateway`: SIGHUP ends a
/// process that does not handle it, so only a gateway gets one. The same
/// way as `gantry down` ([`process::signal_if`]): on Linux a pidfd is opened
/// before the check and the signal goes through it, so a pid reused by
/// another process meanwhile never gets the signal.
fn reload_gateway(pid: u32) -> Result<()> {
    let is_gateway = || match process::args(pid) {
        Some(args) if args.windows(2).any(|w| w[0] == b"serve" && w[1] == b"gateway") => Ok(()),
        Some(_) => Err(format!(
            "process {pid} is not `gantry serve gateway`; not sending it SIGHUP, which would end it"
        )),
        None => Err(format!(
            "cannot read what process {pid} runs (it has exited, or is not ours); not sending it SIGHUP"
        )),
    };
    match process::signal_if(pid, libc::SIGHUP, is_gateway).with_context(|| format!("sending SIGHUP to {pid}"))? {
        process::Signalled::Sent => Ok(()),
        process::Signalled::Gone => bail!("no process {pid} is running (has the gateway exited?); nothing to reload"),
        process::Signalled::Refused(why) => bail!(why),
    }
}

/// The check `gantry register` gives an instance, as given on its command line.
struct Check {
    /// The HTTP check's path, or `None` for a TCP check.
    http: Option<String>,
    interval: String,
    deregister_after: String,
}

async fn register(service: String, id: String, address: String, port: u16, check: Check) -> Result<()> {
    use gantry_common::registry::{AgentRegistration, CheckDefinition, RegistryClient, ServiceRecord};
    let duration = |flag: &str, text: &str| {
        gantry_common::config::parse_duration(text)
            .with_context(|| format!("--{flag} {text:?}: expected a duration such as 500ms or 2s"))
    };
    let interval = duration("interval", &check.interval)?;
    let deregister_critical_after = duration("deregister-after", &check.deregister_after)?;
    let timeout = interval.max(std::time::Duration::from_secs(1));
    let check = match check.http {
        Some(path) => CheckDefinition::Http {
            url: format!("http://{address}:{port}{path}"),
            interval,
            timeout,
        },
        None => CheckDefinition::Tcp {
            addr: format!("{address}:{port}"),
            interval,
            timeout,
        },
    };
    let registry = RegistryClient::from_env().context("the registry: set CONSUL_HTTP_ADDR (and CONSUL_HTTP_TOKEN)")?;
    let registration = AgentRegistration {
        service: ServiceRecord {
            id: id.clone(),
            name: service.clone(),
            address,
            port,
            tags: Vec::new(),
            meta: Default::default(),
        },
        check,
        deregister_critical_after,
    };
    registry
        .register_agent(&registration)
        .await
        .with_context(|| format!("registering {id} of {service}"))?;
    println!("registered {id} of {service}");
    Ok(())
}

async fn probe(url: &str, timeout: &str) -> Result<()> {
    let timeout = gantry_common::config::parse_duration(timeout)
        .with_context(|| format!("--timeout {timeout:?}: expected a duration such as 500ms or 2s"))?;
    // HTTPS with the system's roots, plus GANTRY_CA_CERT for a private CA.
    let client = gantry_common::tls::client_builder()?
        .timeout(timeout)
        .build()
        .context("building an HTTP client")?;
    let resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("{url} did not answer within {timeout:?}"))?;
    let code = resp.status();
    if !code.is_success() {
        let body = resp.text().await.unwrap_or_default();
        bail!("{url} answered {code}: {}", body.chars().take(300).collect::<String>());
    }
    Ok(())
}

async fn status(name: Option<&str>) -> Result<()> {
    let (_, state) = read_state(name)?;
    let gw = state.gateway.as_str();
    // The admin listener's /readyz says what is missing; the public one only whether.
    let admin = Some(state.admin.as_str()).filter(|a| !a.is_empty()).unwrap_or(gw);
    let resp = reqwest::get(format!("{admin}/readyz"))
        .await
        .with_context(|| format!("the gateway at {gw} does not answer; is `gantry up` still running?"))?;
    let code = resp.status();
    let body = resp.text().await.unwrap_or_default();
    println!("{} — gateway {gw}: {code}\n{body}", state.name);
    if !code.is_success() {
        bail!("the stack is not ready");
    }
    Ok(())
}

async fn down(name: Option<&str>) -> Result<()> {
    let (path, state) = read_state(name)?;
    let up = state.up;
    let pid = up.pid;
    match up.signal_if_ours(libc::SIGTERM)? {
        runstate::Liveness::Ours => {}
        runstate::Liveness::Gone => {
            let _ = std::fs::remove_file(&path);
            bail!("`gantry up` (pid {pid}) is not running any more; removed its state file");
        }
        runstate::Liveness::Other(why) => bail!(
            "pid {pid} in {} is not the `gantry up` that wrote it ({why}); not signalling it",
            path.display()
        ),
    }
    print!("Stopping the stack {:?} (pid {pid}) … ", state.name);
    let _ = std::io::stdout().flush();
    for _ in 0..600 {
        if up.check() != runstate::Liveness::Ours {
            println!("stopped.");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("`gantry up` (pid {pid}) did not stop within 30 s")
}

#[cfg(test)]
mod tests {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn reloading_a_pid_that_exited_says_nothing_runs_there() {
        let mut child = Command::new("true").spawn().expect("spawning true");
        child.wait().unwrap();
        let pid = child.id();
        let err = reload_gateway(pid).unwrap_err().to_string();
        assert!(err.contains(&format!("no process {pid} is running")), "{err}");
    }

    #[test]
    fn a_process_that_is_not_a_gateway_is_refused_and_left_running() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("spawning sleep");
        let err = reload_gateway(child.id()).unwrap_err().to_string();
        assert!(err.contains("is not `gantry serve gateway`"), "{err}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the process that is not a gateway was signalled"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_gateway_gets_sighup() {
        // A stand-in whose command line reads `… serve gateway`; it says
        // "ready" once its SIGHUP handler is in place, and exits 42 on
        // SIGHUP, or 0 after 30 s without one (the bound on the wait below).
        let script = "trap 'exit 42' HUP; echo ready; i=0; \
                      while [ $i -lt 150 ]; do sleep 0.2; i=$((i+1)); done; exit 0";
        let mut child = Command::new("sh")
            .args(["-c", script, "gantry", "serve", "gateway"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning sh");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        reload_gateway(child.id()).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(42), "the gateway did not get SIGHUP: {status:?}");
    }
}
