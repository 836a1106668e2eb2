//! What the gateway's integration tests share: a dev registry in-process on
//! port 0, a gateway on port 0 over a routes file, and a wait until the
//! gateway has found a service's instances.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use gantry_common::registry::RegistryClient;
use gantry_gateway::GatewayConfig;
use gantry_gateway::reload::Reloads;
use gantry_harness::drive::metrics::Scrape;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Time any single wait may take before a test fails.
pub const SLACK: Duration = Duration::from_secs(10);

/// The dev registry, serving until this is dropped.
pub struct Registry {
    pub client: RegistryClient,
    _stop: oneshot::Sender<()>,
}

pub async fn registry() -> Registry {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = RegistryClient::new(&listener.local_addr().unwrap().to_string());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(gantry_harness::registry::run(
        listener,
        gantry_harness::registry::Options::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    Registry { client, _stop: stop }
}

/// The default configuration with `routes` (written to `dir`) over
/// `registry`, two workers and no Redis (bearer tokens then stand on their
/// signature alone).
pub fn config(dir: &Path, routes: &str, registry: &RegistryClient) -> GatewayConfig {
    let routes_file = dir.join("gateway.toml");
    std::fs::write(&routes_file, routes).unwrap();
    let mut cfg = GatewayConfig::from_env()
        .expect("the default gateway config")
        .with_routes_file(&routes_file)
        .expect("the routes file");
    cfg.registry = registry.clone();
    cfg.redis_url = "redis://127.0.0.1:1".into();
    cfg.workers = 2;
    cfg
}

/// A gateway serving until this is dropped.
pub struct Gateway {
    pub addr: SocketAddr,
    /// Its admin listener's URL (`/metrics`).
    pub admin: String,
    _stop: oneshot::Sender<()>,
}

/// Serves `cfg` on port 0 (and an admin listener), taking reloads from `reloads`.
pub async fn serve(cfg: GatewayConfig, reloads: Option<Reloads>) -> Gateway {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let admin_url = format!("http://{}", admin.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async move {
        let _ = stopped.await;
    };
    match reloads {
        Some(reloads) => tokio::spawn(gantry_gateway::run_with_reloads(
            listener,
            Some(admin),
            cfg,
            reloads,
            stopped,
        )),
        None => tokio::spawn(gantry_gateway::run(listener, Some(admin), cfg, stopped)),
    };
    Gateway {
        addr,
        admin: admin_url,
        _stop: stop,
    }
}

/// Waits until the gateway's snapshot of `service` is `ids`, as its
/// per-instance series on `/metrics` show.
pub async fn until_instances(admin: &str, service: &str, ids: &[&str]) {
    let prefix = format!("gantry_gateway_upstream_requests_total{{service=\"{service}\",instance=\"");
    let deadline = Instant::now() + SLACK;
    loop {
        let seen: Vec<String> = match Scrape::of(admin).await {
            Ok(scrape) => scrape
                .0
                .lines()
                .filter_map(|l| l.strip_prefix(&prefix)?.split_once('"').map(|(id, _)| id.to_owned()))
                .collect(),
            Err(_) => Vec::new(),
        };
        if seen == ids {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway has {seen:?} for {service}, not {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
