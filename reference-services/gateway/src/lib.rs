//! The Gantry API gateway.
//!
//! Built on hyper directly: the request path reads an immutable per-service
//! snapshot (no lock), verifies identity from caches, balances, and retries
//! around dead instances. Background tasks keep the snapshots, the JWKS, the
//! Redis health flag and the revocation feed current.

pub mod config;
mod error;
mod headers;
mod identity;
mod metrics;
mod openapi;
mod pool;
mod proxy;
mod routes;
mod shard;
mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gantry_common::jwks::KeyStore;
use gantry_common::store::Store;
use gantry_common::watch::{DEFAULT_WATCH_WAIT, watch_service};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{GatewayConfig, LbPolicy};
pub use proxy::Gateway;

/// How long in-flight requests may take to finish after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often Redis reachability is checked for `/readyz`.
pub const REDIS_PROBE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] gantry_common::config::ConfigError),
    #[error("serving HTTP failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// Serves the gateway on `listener` until `shutdown`, then drains.
pub async fn run(
    listener: TcpListener,
    cfg: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let bound = listener.local_addr()?;
    let instance_id = cfg
        .instance_id
        .clone()
        .unwrap_or_else(|| format!("gateway-{}", bound.port()));
    let store = Store::new(&cfg.redis_url)?;
    let identity = Arc::new(identity::Identity::new(
        KeyStore::new(&cfg.jwt),
        store,
        cfg.session_cache_ttl,
        cfg.workers,
    ));
    let gateway = Arc::new(Gateway::new(cfg, identity.clone(), &instance_id));
    let tasks = spawn_background(&gateway);
    tracing::info!(%bound, %instance_id, lb = ?gateway.cfg.lb, workers = gateway.cfg.workers, "gateway serving");

    // Thread per core, as nginx runs a worker per core: each worker has its
    // own single-threaded runtime and upstream pool, so a request never
    // crosses threads; shared state is read through atomics. One acceptor
    // deals connections out in turn, so the workers stay evenly loaded.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    let mut inboxes = Vec::new();
    for n in 0..gateway.cfg.workers {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (gateway, stop) = (gateway.clone(), stop_rx.clone());
        let thread = std::thread::Builder::new()
            .name(format!("gateway-worker-{n}"))
            .spawn(move || worker(n, rx, gateway, stop))?;
        workers.push(thread);
        inboxes.push(tx);
    }
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next = 0usize;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted.and_then(|(stream, peer)| Ok((stream.into_std()?, peer))) {
            Ok(conn) => {
                let _ = inboxes[next % inboxes.len()].send(conn);
                next = next.wrapping_add(1);
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    tracing::info!("draining");
    let _ = stop_tx.send(true);
    let joined = tokio::task::spawn_blocking(move || {
        for w in workers {
            if let Ok(Err(e)) = w.join() {
                tracing::warn!(error = %e, "worker ended with an error");
            }
        }
    });
    let _ = joined.await;
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// One worker thread: accepts and serves connections until told to stop,
/// then drains them for up to [`DRAIN_TIMEOUT`].
fn worker(
    n: usize,
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<(std::net::TcpStream, std::net::SocketAddr)>,
    gateway: Arc<Gateway>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    shard::set_worker(n);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        // Cloned per request, so it must belong to this thread alone: the
        // shared Arc's count would bounce between cores on every request.
        let local = Arc::new(gateway);
        let graceful = GracefulShutdown::new();
        loop {
            let (stream, peer) = tokio::select! {
                conn = inbox.recv() => match conn {
                    Some(conn) => conn,
                    None => break,
                },
                _ = stop.wait_for(|stop| *stop) => break,
            };
            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let gateway = local.clone();
            let client_ip =
                http::HeaderValue::from_str(&peer.ip().to_string()).expect("an IP address is a header value");
            let service = service_fn(move |req| {
                let (gateway, client_ip) = (gateway.clone(), client_ip.clone());
                async move { Ok::<_, std::convert::Infallible>(gateway.handle(req, &client_ip).await) }
            });
            let conn = http1::Builder::new()
                .keep_alive(true)
                .max_buf_size(gantry_common::http::MAX_HEADER_BYTES * 4)
                .serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
            tracing::warn!("drain timed out; closing remaining connections");
        }
        Ok(())
    })
}

fn spawn_background(gateway: &Arc<Gateway>) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (i, name) in routes::SERVICES.iter().enumerate() {
        let gw = gateway.clone();
        tasks.push(tokio::spawn(watch_service(
            gateway.cfg.registry.clone(),
            (*name).to_owned(),
            DEFAULT_WATCH_WAIT,
            move |instances| {
                tracing::info!(
                    service = routes::SERVICES[i],
                    count = instances.len(),
                    "instances changed"
                );
                gw.upstreams[i].update(&instances);
            },
            |e| tracing::warn!(error = %e, "registry watch failed; serving from the last snapshot"),
        )));
    }
    tasks.push(tokio::spawn(gateway.identity.clone().follow_revocations()));
    let gw = gateway.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            let ok = gw.identity.store().ping().await.is_ok();
            if gw.redis_ok.swap(ok, Ordering::Relaxed) != ok {
                tracing::info!(reachable = ok, "redis reachability changed");
            }
            tokio::time::sleep(REDIS_PROBE_INTERVAL).await;
        }
    }));
    let gw = gateway.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            let pause = match gw.identity.keys().refresh(&gw.upstreams[0].base_urls()).await {
                Ok(_) => Duration::from_secs(300),
                // Until auth is discovered: readiness waits on this.
                Err(_) => Duration::from_millis(50),
            };
            tokio::time::sleep(pause).await;
        }
    }));
    tasks
}
