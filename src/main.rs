//! `gantry`: start the reference stack, run one of its components, or look
//! at a running stack.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use gantry_harness::{Infra, Progress, StackBuilder};

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
    /// Start Redis, the registry, auth, N user instances and the gateway; Ctrl-C stops them all.
    Up {
        /// How many user-service instances.
        #[arg(long, default_value_t = 3)]
        users: usize,
        /// The gateway's port on 127.0.0.1.
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Where Redis and the registry come from.
        #[arg(long, default_value = "auto")]
        infra: String,
    },
    /// Stop the stack that `gantry up` started.
    Down,
    /// Show whether the stack that `gantry up` started is ready.
    Status,
    /// Run one component in the foreground (what `up` and container images run).
    Serve {
        #[arg(value_enum)]
        component: Component,
    },
    /// Run the dev registry (same as `serve registry`).
    Registry,
    /// Print a fresh Ed25519 signing key for GANTRY_JWT_SIGNING_KEY.
    Keygen,
}

#[derive(Clone, Copy, ValueEnum)]
enum Component {
    Gateway,
    Auth,
    User,
    Registry,
}

/// What `gantry up` leaves for `down` and `status`.
fn state_file() -> PathBuf {
    std::env::temp_dir().join("gantry-up.json")
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Up { users, port, infra } => up(users, port, &infra).await,
            Command::Down => down().await,
            Command::Status => status().await,
            Command::Serve { component } => serve(component).await,
            Command::Registry => serve(Component::Registry).await,
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
            gantry_gateway::run(bind(cfg.listen).await?, admin, cfg, shutdown).await?;
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
            let default = format!("127.0.0.1:{}", gantry_harness::registry::DEFAULT_PORT);
            let addr = gantry_common::config::parse_or(
                "GANTRY_LISTEN",
                default.parse().expect("valid default"),
                "host:port, e.g. 127.0.0.1:8500",
            )?;
            let listener = bind(addr).await?;
            tracing::info!(%addr, "dev registry serving");
            let options = gantry_harness::registry::Options::from_env();
            gantry_harness::registry::run(listener, options, shutdown).await?;
        }
    }
    Ok(())
}

fn show(step: Progress<'_>) {
    match step {
        Progress::Starting(what) => {
            print!("  starting {what:<12} … ");
            let _ = std::io::stdout().flush();
        }
        Progress::Ready(_, took) => println!("ready ({} ms)", took.as_millis()),
        Progress::Stopping(what) => println!("  stopping {what}"),
        Progress::Note(what) => println!("  {what}"),
    }
}

async fn up(users: usize, port: u16, infra: &str) -> Result<()> {
    let infra: Infra = infra.parse().map_err(anyhow::Error::msg)?;
    let binary = std::env::current_exe().context("locating the gantry executable")?;
    println!(
        "Starting the Gantry stack ({users} user instance{}):",
        if users == 1 { "" } else { "s" }
    );
    let started = std::time::Instant::now();
    let stack = StackBuilder::new(binary)
        .infra(infra)
        .users(users)
        .gateway_port(port)
        .check_ttl(Duration::from_secs(3))
        .start(&mut |p| show(p))
        .await;
    let stack = match stack {
        Ok(s) => s,
        Err(e) => {
            println!("failed");
            bail!("{e}");
        }
    };
    let gw = stack.gateway_url().to_owned();
    let state = serde_json::json!({
        "pid": std::process::id(),
        "gateway": gw,
        "redis": stack.redis_url(),
        "registry": format!("http://{}", stack.registry_addr()),
        "logs": stack.log_dir(),
    });
    let _ = std::fs::write(state_file(), state.to_string());
    println!(
        "\nReady in {:.1} s.\n\n  gateway   {gw}\n  registry  http://{}   (CONSUL_HTTP_ADDR)\n  redis     {}   (REDIS_URL)\n  logs      {}\n",
        started.elapsed().as_secs_f64(),
        stack.registry_addr(),
        stack.redis_url(),
        stack.log_dir().display(),
    );
    println!("Try it (in another terminal):\n{}", walkthrough(&gw));
    println!("Press Ctrl-C to stop.");
    gantry_common::shutdown::signal().await;
    println!("\nStopping:");
    stack.stop(&mut |p| show(p)).await?;
    let _ = std::fs::remove_file(state_file());
    println!("Stopped; nothing left running.");
    Ok(())
}

fn walkthrough(gw: &str) -> String {
    format!(
        r#"
  curl -s -X POST {gw}/auth/register -H 'content-type: application/json' \
       -d '{{"username":"ada","password":"correct-horse-battery","display_name":"Ada"}}'
  curl -s -c jar.txt -X POST {gw}/auth/login -H 'content-type: application/json' \
       -d '{{"username":"ada","password":"correct-horse-battery"}}'
  curl -s -b jar.txt {gw}/users/me
  TOKEN=$(curl -s -X POST {gw}/auth/login -H 'content-type: application/json' \
       -d '{{"username":"ada","password":"correct-horse-battery"}}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  curl -s -H "Authorization: Bearer $TOKEN" {gw}/users/me
  curl -s -b jar.txt -X POST {gw}/auth/logout -o /dev/null -w '%{{http_code}}\n'
  curl -s -H "Authorization: Bearer $TOKEN" -X POST {gw}/auth/logout -o /dev/null -w '%{{http_code}}\n'
  curl -s -b jar.txt {gw}/users/me
  curl -s -H "Authorization: Bearer $TOKEN" {gw}/users/me
"#
    )
}

fn read_state() -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(state_file())
        .context("no stack started by `gantry up` is running here (start one with `gantry up`)")?;
    serde_json::from_str(&text).context("the state file of `gantry up` is unreadable; remove it and run `gantry up`")
}

async fn status() -> Result<()> {
    let state = read_state()?;
    let gw = state["gateway"].as_str().unwrap_or_default();
    let resp = reqwest::get(format!("{gw}/readyz"))
        .await
        .with_context(|| format!("the gateway at {gw} does not answer; is `gantry up` still running?"))?;
    let code = resp.status();
    let body = resp.text().await.unwrap_or_default();
    println!("gateway {gw}: {code}\n{body}");
    if !code.is_success() {
        bail!("the stack is not ready");
    }
    Ok(())
}

async fn down() -> Result<()> {
    let state = read_state()?;
    let pid = state["pid"].as_u64().context("the state file has no pid")? as i32;
    // SAFETY: kill(2) on the pid `gantry up` recorded; a stale pid yields ESRCH.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        let _ = std::fs::remove_file(state_file());
        bail!("`gantry up` (pid {pid}) is not running any more; cleaned up its state file");
    }
    print!("Stopping the stack (pid {pid}) … ");
    let _ = std::io::stdout().flush();
    for _ in 0..600 {
        // SAFETY: signal 0 only asks whether the pid exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            println!("stopped.");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("`gantry up` (pid {pid}) did not stop within 30 s")
}
