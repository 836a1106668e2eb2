//! The Gantry API gateway.
//!
//! Built on hyper directly: the request path reads an immutable snapshot of
//! the configuration and of each service's instances (no lock), verifies
//! identity from caches, balances, and retries around dead instances.
//! Services and routes come from a declarative file ([`declared`]), reloaded
//! on SIGHUP without dropping a connection ([`reload`]). Background tasks
//! keep the instance snapshots, the JWKS, the Redis health flag and the
//! revocation feed current.

mod admin;
pub mod config;
pub mod declared;
pub mod edge;
mod error;
mod headers;
mod metrics;
mod openapi;
pub mod policy;
// The verifier and per-worker counters are shared with every service.
use gantry_common::{identity, shard};
mod pool;
mod proxy;
pub mod reload;
mod routes;
mod snapshot;
mod stages;
mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gantry_common::jwks::KeyStore;
use gantry_common::serve::{Admitted, DRAIN_TIMEOUT, Limits, http1_builder};
use gantry_common::store::Store;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;

pub use config::{GatewayConfig, GatewayConfigError};
pub use declared::{Declared, DeclaredError};
pub use policy::{LbPolicy, Policy};
pub use proxy::Gateway;
pub use reload::{ReloadError, ReloadReport, Reloader, Reloads};

/// How often Redis reachability is checked for `/readyz`.
pub const REDIS_PROBE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] gantry_common::config::ConfigError),
    #[error("serving HTTP failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// Serves the gateway on `listener` until `shutdown`, then drains; the
/// routes in `cfg` stay as they are (see [`run_with_reloads`]).
///
/// `admin`, when given, serves the operator endpoints (`/metrics`, the
/// detailed `/readyz`); the public listener never does. Both are bound by
/// the caller, so tests can bind port 0.
pub async fn run(
    listener: TcpListener,
    admin: Option<TcpListener>,
    cfg: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let (_, reloads) = reload::channel();
    run_with_reloads(listener, admin, cfg, reloads, shutdown).await
}

/// [`run`], reloading the routes file whenever the [`Reloader`] paired
/// with `reloads` ([`reload::channel`]) asks; the binary asks on SIGHUP.
pub async fn run_with_reloads(
    listener: TcpListener,
    admin: Option<TcpListener>,
    cfg: GatewayConfig,
    reloads: Reloads,
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
    let routing = snapshot::Routing::build(&cfg.declared, &cfg, None);
    let mut watches = reload::Watches::new(cfg.registry.clone());
    watches.start_missing(&routing);
    let gateway = Arc::new(Gateway::new(cfg, routing, identity.clone(), &instance_id, bound.port()));
    let mut tasks = spawn_background(&gateway);
    tasks.push(tokio::spawn(reload::serve(gateway.clone(), watches, reloads)));
    let admin_addr = admin.as_ref().and_then(|a| a.local_addr().ok());
    tracing::info!(
        %bound,
        admin = ?admin_addr,
        %instance_id,
        routes_file = ?gateway.cfg.routes_file,
        services = gateway.cfg.declared.services.len(),
        routes = gateway.cfg.declared.routes.len(),
        workers = gateway.cfg.workers,
        tls = gateway.cfg.tls.is_some(),
        "gateway serving"
    );

    // Thread per core, as nginx runs a worker per core: each worker has its
    // own single-threaded runtime and upstream pool, so a request never
    // crosses threads; shared state is read through atomics. One acceptor
    // deals connections out in turn, so the workers stay evenly loaded.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let admin_task = admin.map(|listener| tokio::spawn(serve_admin(listener, gateway.clone(), stop_rx.clone())));
    let mut workers = Vec::new();
    let mut inboxes = Vec::new();
    for n in 0..gateway.cfg.workers {
        let (tx, rx) = tokio::sync::mpsc::channel(WORKER_QUEUE);
        let (gateway, stop) = (gateway.clone(), stop_rx.clone());
        let thread = std::thread::Builder::new()
            .name(format!("gateway-worker-{n}"))
            .spawn(move || worker(n, rx, gateway, stop))?;
        workers.push(thread);
        inboxes.push(tx);
    }
    let connections = gateway.connections.clone();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next = 0usize;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Over the cap the connection is answered 503 and closed without
        // waiting on it; the ones already open are not touched.
        let Some(guard) = connections.admit() else {
            connections.refuse(stream);
            continue;
        };
        let Ok(stream) = stream.into_std() else { continue };
        // Each worker's queue is bounded: when one is full the next is
        // tried, and when all are, the connection is refused.
        let mut conn = Some((stream, peer, guard));
        for _ in 0..inboxes.len() {
            let Some(queued) = conn.take() else { break };
            let inbox = &inboxes[next % inboxes.len()];
            next = next.wrapping_add(1);
            conn = match inbox.try_send(queued) {
                Ok(()) => None,
                Err(TrySendError::Full(back) | TrySendError::Closed(back)) => Some(back),
            };
        }
        if let Some((stream, _, guard)) = conn {
            drop(guard);
            if let Ok(stream) = TcpStream::from_std(stream) {
                connections.refuse(stream);
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
    if let Some(admin) = admin_task {
        tasks.push(admin);
    }
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// Connections queued for one worker and not yet taken up; beyond this the
/// acceptor tries another worker, then refuses.
pub const WORKER_QUEUE: usize = 1024;
/// Connections to the admin listener at once; it is for a few operators and
/// scrapers, not for clients.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;
type Queued = (std::net::TcpStream, std::net::SocketAddr, Admitted);

/// One worker thread: accepts and serves connections until told to stop,
/// then drains them for up to [`DRAIN_TIMEOUT`].
fn worker(
    n: usize,
    mut inbox: tokio::sync::mpsc::Receiver<Queued>,
    gateway: Arc<Gateway>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    shard::set_worker(n);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let builder = http1_builder(gateway.cfg.limits.header_timeout);
        // Cloned per request, so it must belong to this thread alone: the
        // shared Arc's count would bounce between cores on every request.
        let local = Arc::new(gateway);
        let graceful = GracefulShutdown::new();
        let acceptor = gateway_tls(&local);
        loop {
            let (stream, peer, admitted) = tokio::select! {
                conn = inbox.recv() => match conn {
                    Some(conn) => conn,
                    None => break,
                },
                _ = stop.wait_for(|stop| *stop) => break,
            };
            let Ok(stream) = TcpStream::from_std(stream) else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let gateway = local.clone();
            let client = Arc::new(proxy::Peer::new(peer.ip()));
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (gateway, client) = (gateway.clone(), client.clone());
                async move { Ok::<_, std::convert::Infallible>(gateway.handle(req, &client).await) }
            });
            let Some(acceptor) = &acceptor else {
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(admitted);
                });
                continue;
            };
            let (acceptor, builder, watcher) = (acceptor.clone(), builder.clone(), graceful.watcher());
            let deadline = local.cfg.limits.header_timeout;
            tokio::spawn(async move {
                // The handshake runs here, in the connection's own task, so
                // a slow one holds up no other; the header deadline bounds
                // it, or a client that opens TCP and never says hello would
                // hold a connection slot forever (a TLS slowloris). A
                // plain-HTTP request fails the handshake and is closed.
                // Plain HTTP sent to the TLS port gets a plain answer saying
                // so, as nginx's 497 does, instead of a closed connection.
                let until = tokio::time::Instant::now() + deadline;
                let first = tokio::time::timeout_at(until, async {
                    let mut byte = [0u8; 1];
                    stream.peek(&mut byte).await.map(|n| (n == 1).then_some(byte[0]))
                });
                if let Ok(Ok(Some(b))) = first.await
                    && b.is_ascii_alphabetic()
                {
                    refuse_plain_http(stream).await;
                    return;
                }
                let tls = match tokio::time::timeout_at(until, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let conn = watcher.watch(builder.serve_connection(TokioIo::new(tls), service));
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                drop(admitted);
            });
        }
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
            tracing::warn!("drain timed out; closing remaining connections");
        }
        Ok(())
    })
}

/// What plain HTTP sent to the TLS port is answered: a 400 in plain HTTP
/// with a JSON reason, then the connection is closed.
const PLAIN_HTTP_ON_TLS: &str =
    r#"{"error":"https_required","message":"this port speaks HTTPS: send the request to https:// instead of http://"}"#;

async fn refuse_plain_http(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{PLAIN_HTTP_ON_TLS}",
        PLAIN_HTTP_ON_TLS.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The public listener's TLS acceptor, or `None` for plain HTTP; one per
/// worker (the configuration behind it is shared).
fn gateway_tls(gateway: &Gateway) -> Option<tokio_rustls::TlsAcceptor> {
    gateway.cfg.tls.clone().map(tokio_rustls::TlsAcceptor::from)
}

/// The operator listener (always plain HTTP, see [`GatewayConfig::tls`]): `/metrics`, the detailed `/readyz`, `/healthz`
/// and its own `/openapi.json`, on the caller's runtime, with the same
/// header deadline as clients get and a small connection cap of its own.
async fn serve_admin(listener: TcpListener, gateway: Arc<Gateway>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let limits = Limits {
        max_connections: ADMIN_MAX_CONNECTIONS,
        ..gateway.cfg.limits
    };
    let make = |_peer| {
        let gateway = gateway.clone();
        service_fn(move |req| {
            let gateway = gateway.clone();
            async move { Ok::<_, std::convert::Infallible>(gateway.handle_admin(&req)) }
        })
    };
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    if let Err(e) = gantry_common::serve::serve_with(listener, limits, make, stopped).await {
        tracing::warn!(error = %e, "admin listener failed");
    }
}

/// The tasks that keep shared state current: the revocation feed, Redis
/// reachability, the JWKS. (Registry watches belong to [`reload::serve`].)
fn spawn_background(gateway: &Arc<Gateway>) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
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
        // No key source while no route needs identity; a reload may add one.
        // Until the JWKS service is discovered, readiness waits on this.
        let sources = || {
            let routing = gw.routing.load_full();
            routing.jwks.is_some().then(|| routing.jwks_urls())
        };
        gw.identity.keys().keep_fresh(sources).await
    }));
    tasks
}
