//! Reloading the routes file without dropping a connection.
//!
//! On SIGHUP (or [`Reloader::reload`]) the file is read again. A valid one
//! becomes a new immutable [`Routing`] swapped in whole: the next request
//! uses it, requests in flight finish on the one they started with, and
//! connections are not touched. Services that stay keep their upstream
//! state (pools, ejections, counters); new ones get a registry watch, and
//! the swap waits (a little) for their first answer so their routes do not
//! start with 503s; removed ones stop being watched. An invalid file is
//! logged and counted, and the routes in force stay.
//!
//! Reloads are done one at a time by one task, which owns the watches.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gantry_common::registry::RegistryClient;
use gantry_common::watch::watch_service;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::CONFIG_FILE_VAR;
use crate::declared::{Declared, DeclaredError};
use crate::proxy::Gateway;
use crate::snapshot::Routing;
use crate::upstream::Upstream;

/// How long a reload waits for the registry's first answer about a service
/// it adds before swapping the new routes in anyway (the registry may be
/// down; the routes to that service then answer 503 until it answers).
pub const DEFAULT_DISCOVERY_WAIT: Duration = Duration::from_secs(5);

/// Reloads done, by result, for `/metrics`.
#[derive(Debug, Default)]
pub struct ReloadCounts {
    pub ok: AtomicU64,
    pub error: AtomicU64,
}

/// Why a reload left the routes as they were.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(
        "there is no routes file to read again: {CONFIG_FILE_VAR} was not set, so the built-in routes are in force"
    )]
    NoFile,
    #[error(transparent)]
    File(#[from] DeclaredError),
    #[error("the gateway has stopped")]
    Stopped,
}

/// What a successful reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub services: usize,
    pub routes: usize,
    /// Services watched from now on.
    pub added: Vec<String>,
    /// Services no longer watched.
    pub removed: Vec<String>,
}

type Ask = oneshot::Sender<Result<ReloadReport, ReloadError>>;

/// Asks a running gateway to read its routes file again. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Reloader {
    asks: mpsc::Sender<Ask>,
}

/// The gateway's end of a [`Reloader`], given to [`crate::run_with_reloads`].
#[derive(Debug)]
pub struct Reloads {
    asks: mpsc::Receiver<Ask>,
}

/// A connected [`Reloader`] and [`Reloads`].
pub fn channel() -> (Reloader, Reloads) {
    // A few asks may queue; each is answered in turn.
    let (asks, rx) = mpsc::channel(8);
    (Reloader { asks }, Reloads { asks: rx })
}

impl Reloader {
    /// Reloads and says how it went, once the new routes are in force (or
    /// were refused).
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let (reply, answer) = oneshot::channel();
        self.asks.send(reply).await.map_err(|_| ReloadError::Stopped)?;
        answer.await.map_err(|_| ReloadError::Stopped)?
    }
}

/// Installs a SIGHUP handler now (so a SIGHUP from then on no longer ends
/// the process) and returns the loop that reloads on each one. What each
/// reload did is logged (and counted) by the gateway.
#[cfg(unix)]
pub fn on_sighup(reloader: Reloader) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reading the routes file again");
            if let Err(ReloadError::Stopped) = reloader.reload().await {
                return;
            }
        }
    })
}

/// A registry watch per service of the configuration in force.
pub(crate) struct Watches {
    registry: RegistryClient,
    tasks: HashMap<Arc<str>, JoinHandle<()>>,
}

impl Watches {
    pub(crate) fn new(registry: RegistryClient) -> Self {
        Self {
            registry,
            tasks: HashMap::new(),
        }
    }

    /// Starts watching the services of `routing` not watched yet; returns
    /// their names and upstreams.
    pub(crate) fn start_missing(&mut self, routing: &Routing) -> Vec<(Arc<str>, Arc<Upstream>)> {
        let mut started = Vec::new();
        for service in &routing.services {
            if self.tasks.contains_key(&service.name) {
                continue;
            }
            let (name, upstream) = (service.name.clone(), service.upstream.clone());
            let task = tokio::spawn(watch_service(
                self.registry.clone(),
                name.to_string(),
                self.registry.watch_wait(),
                {
                    let (name, upstream) = (name.clone(), upstream.clone());
                    move |instances| {
                        tracing::info!(service = %name, count = instances.len(), "instances changed");
                        upstream.update(&instances);
                    }
                },
                |e| tracing::warn!(error = %e, "registry watch failed; serving from the last snapshot"),
            ));
            self.tasks.insert(name.clone(), task);
            started.push((name, upstream));
        }
        started
    }

    /// Stops watching services `routing` no longer has; returns their names.
    pub(crate) fn stop_others(&mut self, routing: &Routing) -> Vec<Arc<str>> {
        let gone: Vec<Arc<str>> = self
            .tasks
            .keys()
            .filter(|name| routing.by_name(name).is_none())
            .cloned()
            .collect();
        for name in &gone {
            if let Some(task) = self.tasks.remove(name) {
                task.abort();
            }
        }
        gone
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.abort();
        }
    }
}

/// Answers reload asks for as long as the gateway runs, one at a time.
/// Owns the watches: they live (and are stopped) with this task.
pub(crate) async fn serve(gateway: Arc<Gateway>, mut watches: Watches, mut reloads: Reloads) {
    while let Some(reply) = reloads.asks.recv().await {
        let result = reload(&gateway, &mut watches).await;
        match &result {
            Ok(report) => {
                gateway.reloads.ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    services = report.services,
                    routes = report.routes,
                    added = ?report.added,
                    removed = ?report.removed,
                    "routes file reloaded"
                );
            }
            Err(e) => {
                gateway.reloads.error.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "routes file not reloaded; the routes in force stay");
            }
        }
        let _ = reply.send(result);
    }
    // Nobody can ask any more; the watches must go on until shutdown.
    std::future::pending::<()>().await;
}

async fn reload(gateway: &Gateway, watches: &mut Watches) -> Result<ReloadReport, ReloadError> {
    let path = gateway.cfg.routes_file.as_deref().ok_or(ReloadError::NoFile)?;
    let declared = Declared::load(path)?;
    let previous = gateway.routing.load_full();
    let next = Arc::new(Routing::build(&declared, &gateway.cfg, Some(&previous)));
    let added = watches.start_missing(&next);
    let first_answers = async {
        for (_, upstream) in &added {
            upstream.answered_once().await;
        }
    };
    if tokio::time::timeout(DEFAULT_DISCOVERY_WAIT, first_answers)
        .await
        .is_err()
    {
        tracing::warn!(
            wait = ?DEFAULT_DISCOVERY_WAIT,
            "the registry has not answered for every added service; their routes answer 503 until it does"
        );
    }
    gateway.routing.store(next.clone());
    let removed = watches.stop_others(&next);
    Ok(ReloadReport {
        services: next.services.len(),
        routes: next.table.len(),
        added: added.iter().map(|(name, _)| name.to_string()).collect(),
        removed: removed.iter().map(|name| name.to_string()).collect(),
    })
}
