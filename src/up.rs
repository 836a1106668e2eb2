//! `gantry up`: a whole stack on this machine, through the harness (the
//! cargo feature `harness`; an image's `gantry` is built without it).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use gantry_harness::stack::file::StackFile;
use gantry_harness::{Infra, Progress, StackBuilder};

use crate::runstate;

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

pub async fn up(
    users: usize,
    port: u16,
    infra: Option<&str>,
    config: Option<&std::path::Path>,
    tls: bool,
    name: Option<String>,
) -> Result<()> {
    let name = name.unwrap_or_else(|| runstate::default_name(config));
    runstate::check_name(&name)?;
    let infra: Option<Infra> = infra
        .map(|i| i.parse().map_err(|e| anyhow::anyhow!("--infra: {e}")))
        .transpose()?;
    let binary = std::env::current_exe().context("locating the gantry executable")?;
    // The stack file is read before anything starts: a mistake in it costs nothing.
    let (builder, title) = match config {
        None => (
            StackBuilder::reference(binary)
                .infra(infra.unwrap_or(Infra::Auto))
                .users(users)
                .gateway_port(port),
            format!(
                "the Gantry stack ({users} user instance{})",
                if users == 1 { "" } else { "s" }
            ),
        ),
        Some(path) => {
            let file = StackFile::load(path)?;
            let mut builder = file.builder(binary);
            if let Some(infra) = infra {
                builder = builder.infra(infra);
            }
            if file.gateway.port.is_none() && file.gateway.count > 0 {
                builder = builder.gateway_port(port);
            }
            let services: Vec<String> = file
                .services
                .iter()
                .map(|s| format!("{} ×{}", s.spec.name, s.spec.replicas))
                .collect();
            (
                builder,
                format!("the stack of {} ({})", path.display(), services.join(", ")),
            )
        }
    };
    let builder = if tls { builder.gateway_tls() } else { builder };
    let dir = runstate::dir()?;
    if let Ok((_, running)) = runstate::read(&dir, Some(&name))
        && running.up.check() == runstate::Liveness::Ours
    {
        let from = match &running.config {
            Some(file) => format!("from {}", file.display()),
            None => "Gantry's reference stack".to_owned(),
        };
        bail!(
            "a stack named {name:?} is running (pid {}, {from}); stop it with `gantry down {name}`, or give this one another name with --name",
            running.up.pid
        );
    }
    // From here on, Ctrl-C, SIGTERM and SIGHUP (the terminal closed) stop
    // the stack, even while it is starting.
    let stop = stop_requested()?;
    tokio::pin!(stop);
    println!("Starting {title}:");
    let started = std::time::Instant::now();
    let mut progress = |p: Progress<'_>| show(p);
    let start = builder.check_ttl(Duration::from_secs(3)).start(&mut progress);
    let stack = tokio::select! {
        stack = start => stack,
        why = &mut stop => {
            // Dropping the half-started stack kills what it started.
            println!("\n{why}: stopped before the stack was ready.");
            return Ok(());
        }
    };
    let stack = match stack {
        Ok(s) => s,
        Err(e) => {
            println!("failed");
            bail!("{e}");
        }
    };
    let gw = stack.gateway_urls().first().cloned().unwrap_or_default();
    let admin = stack.gateway_admin_urls().first().cloned().unwrap_or_default();
    let state = runstate::RunState {
        name: name.clone(),
        config: config.map(|c| std::path::absolute(c).unwrap_or_else(|_| c.to_owned())),
        up: runstate::Identity::of_self()?,
        gateway: gw.clone(),
        admin: admin.clone(),
        redis: stack.redis_url().to_owned(),
        registry: format!("http://{}", stack.registry_addr()),
        registry_token: stack.registry_token().to_owned(),
        logs: stack.log_dir().to_owned(),
        ca_cert: stack.ca_cert().map(std::path::Path::to_owned),
        gateway_pids: (1..).map_while(|n| stack.pid_of(&format!("gateway-{n}"))).collect(),
    };
    let state_path = runstate::write(&dir, &state)?;
    println!("\nReady in {:.1} s.\n", started.elapsed().as_secs_f64());
    if !gw.is_empty() {
        println!("  gateway   {gw}\n  admin     {admin}   (/metrics, /readyz with detail)");
    }
    println!(
        "  registry  http://{}   (CONSUL_HTTP_ADDR)\n            {}   (CONSUL_HTTP_TOKEN)",
        stack.registry_addr(),
        stack.registry_token()
    );
    if !stack.redis_url().is_empty() {
        println!("  redis     {}   (REDIS_URL)", stack.redis_url());
    }
    println!(
        "  logs      {}\n  state     {}\n",
        stack.log_dir().display(),
        state_path.display()
    );
    if let Some(ca) = stack.ca_cert() {
        println!(
            "  HTTPS: the gateway's certificate is signed by a CA made for this stack:\n\
             \x20   {}\n\
             \x20 trust it with `curl --cacert <that file>`, `export CURL_CA_BUNDLE=<that file>`,\n\
             \x20 or GANTRY_CA_CERT=<that file> for `gantry probe` and the suite in external mode.\n",
            ca.display()
        );
    }
    if config.is_none() {
        let trust = stack
            .ca_cert()
            .map(|ca| format!("\n  export CURL_CA_BUNDLE={}", ca.display()))
            .unwrap_or_default();
        println!("Try it (in another terminal):{trust}\n{}", walkthrough(&gw));
    } else {
        for service in stack.services() {
            for instance in stack.instances(service).unwrap_or_default() {
                println!("  {:<12} http://{}", instance.id(), instance.addr());
            }
        }
        println!();
    }
    println!("Press Ctrl-C to stop.");
    let why = stop.await;
    println!("\n{why}; stopping:");
    stack.stop(&mut |p| show(p)).await?;
    let _ = std::fs::remove_file(&state_path);
    println!("Stopped; nothing left running.");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM (the services' shutdown signal) or SIGHUP
/// (the terminal `gantry up` runs in was closed), naming which. The handlers
/// are installed by this call, not on the future's first poll: a signal that
/// came in between would otherwise kill `gantry up` and leave what it had
/// started running.
fn stop_requested() -> Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => "interrupted",
            _ = term.recv() => "terminated",
            _ = hup.recv() => "hung up",
        }
    })
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
