//! The dev registry: the subset of Consul's HTTP API the stack uses, for
//! hermetic runs where no Consul binary or image can be had.
//!
//! Differences from Consul, on purpose: one node, one ACL token (the
//! management token, see [`acl`]), TTL checks only, and
//! `DeregisterCriticalServiceAfter` is honoured at any value (Consul enforces
//! a one-minute floor), which lets tests watch reaping quickly.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `GANTRY_REGISTRY_ACL_TOKEN` | — (ACLs off) | the management token, as Consul's `acl.tokens.initial_management`; with it, writes without it get 403 and reads without it see nothing |

pub mod acl;
mod api;
pub mod catalog;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use acl::Acl;
use catalog::{Catalog, CatalogError};

/// The variable that holds the registry's management token.
pub const ACL_TOKEN_VAR: &str = "GANTRY_REGISTRY_ACL_TOKEN";

/// How the dev registry runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The management token; `None` turns ACLs off (anyone may write).
    pub acl_token: Option<String>,
}

impl Options {
    /// `GANTRY_REGISTRY_ACL_TOKEN`.
    pub fn from_env() -> Self {
        Self {
            acl_token: gantry_common::config::raw(ACL_TOKEN_VAR).map(|t| t.trim().to_owned()),
        }
    }
}

/// The port Consul's HTTP API listens on, and so does the dev registry.
pub const DEFAULT_PORT: u16 = 8500;
/// How often expired TTLs are looked for when nothing is due sooner.
const REAP_IDLE: Duration = Duration::from_millis(500);

/// The shared state: the catalog, and a channel that ticks on every change
/// so blocking queries wake.
pub struct Registry {
    catalog: Mutex<Catalog>,
    changed: watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            catalog: Mutex::new(Catalog::default()),
            changed: watch::Sender::new(1),
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read<T>(&self, f: impl FnOnce(&Catalog) -> T) -> T {
        f(&self.lock())
    }

    /// Applies a write, wakes blocked queries, and answers as Consul does
    /// (200 with an empty body, 404 for unknown ids).
    fn write(&self, f: impl FnOnce(&mut Catalog) -> Result<(), CatalogError>) -> Response {
        let result = {
            let mut c = self.lock();
            let before = c.index();
            let r = f(&mut c);
            (r, c.index() != before, c.index())
        };
        match result {
            (Ok(()), changed, index) => {
                if changed {
                    self.changed.send_replace(index);
                }
                StatusCode::OK.into_response()
            }
            (Err(e), _, _) => api_error(e),
        }
    }

    /// Waits until the index of `name` passes `index`, or `wait` (plus up to
    /// wait/16 of jitter, as Consul adds) runs out. An index from the future
    /// (the registry restarted) answers at once so the client can reset.
    async fn block_on_name(&self, name: &str, index: Option<u64>, wait: Duration) {
        self.block_until(index, wait, |c| c.index_of(name)).await
    }

    async fn block_on_catalog(&self, index: Option<u64>, wait: Duration) {
        self.block_until(index, wait, Catalog::index).await
    }

    async fn block_until(&self, index: Option<u64>, wait: Duration, current: impl Fn(&Catalog) -> u64) {
        let Some(index) = index.filter(|i| *i > 0) else {
            return;
        };
        let jitter = wait.mul_f64(fastrand::f64() / 16.0);
        let deadline = Instant::now() + wait + jitter;
        let mut rx = self.changed.subscribe();
        loop {
            let now_index = self.read(&current);
            if now_index != index {
                return;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// Expires TTLs and reaps critical services until the process ends.
    async fn reaper(self: Arc<Self>) {
        let mut rx = self.changed.subscribe();
        loop {
            let (changed, index, next) = {
                let mut c = self.lock();
                let changed = c.reap(Instant::now());
                (changed, c.index(), c.next_deadline())
            };
            if changed {
                self.changed.send_replace(index);
            }
            let until = next.unwrap_or_else(|| Instant::now() + REAP_IDLE);
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                // A registration may bring a sooner deadline.
                _ = rx.changed() => {}
            }
        }
    }
}

fn api_error(e: CatalogError) -> Response {
    let status = match e {
        CatalogError::UnknownService(_) | CatalogError::UnknownCheck(_) => StatusCode::NOT_FOUND,
        CatalogError::OutOfRange(_) => StatusCode::BAD_REQUEST,
    };
    (status, e.to_string()).into_response()
}

/// Serves the dev registry on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acl = Acl::new(options.acl_token);
    if !acl.enabled() {
        tracing::warn!(
            "ACLs are off: anyone who can reach this registry can register, replace and remove services \
             (set {ACL_TOKEN_VAR} to require a token)"
        );
    }
    let registry = Arc::new(Registry::default());
    let reaper = tokio::spawn(registry.clone().reaper());
    let result = axum::serve(listener, api::router(registry, acl))
        .with_graceful_shutdown(shutdown)
        .await;
    reaper.abort();
    result
}
