//! The dev registry: Consul's HTTP API (services, checks, health, catalog,
//! KV, sessions and locks, transactions, `?filter=`) and its DNS, for
//! hermetic runs where no Consul binary or image can be had, written so a
//! team's own Consul clients work against it unchanged. It runs TTL
//! checks, and HTTP and TCP checks on an interval as a Consul agent does
//! (see [`probe`] and [`status_handler`]), so a service that does not
//! register itself can be registered for it with a check the registry runs.
//!
//! Differences from Consul, on purpose: one node, one ACL token (the
//! management token, see [`acl`]); `Interval` and
//! `DeregisterCriticalServiceAfter` are honoured at any value (Consul
//! enforces floors of one second and one minute), which lets tests watch
//! checks flip and services be reaped quickly; HTTP checks are `http://`
//! only; an unknown state in `/v1/health/state/{state}` is refused with 400
//! (Consul answers an empty list); other check kinds (gRPC, script, …)
//! are refused with 400; a malformed `?filter=`, an unknown session in a
//! lock and a session TTL out of range are 400 where Consul answers 500
//! (the request is at fault); transactions take KV operations only; DNS is
//! UDP only.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `GANTRY_LISTEN` | `127.0.0.1:8500` ([`DEFAULT_LISTEN`]) | where the HTTP API listens |
//! | `GANTRY_REGISTRY_ACL_TOKEN` | — (ACLs off) | the management token, as Consul's `acl.tokens.initial_management`; with it, writes without it get 403 and reads without it see nothing |
//! | `GANTRY_DNS_LISTEN` | — (off) | where Consul's DNS interface answers over UDP ([`dns`]; Consul's port is 8600) |
//! | `GANTRY_HEADER_TIMEOUT`, `GANTRY_BODY_TIMEOUT`, `GANTRY_MAX_CONNECTIONS` | `10s`, `30s`, `10000` | what one connection may cost, as on every listener ([`gantry_common::serve::Limits`]) |
//!
//! It serves through [`gantry_common::serve`] like every other listener: a
//! client must send a request head within the header timeout (which is
//! also how long an idle keep-alive connection stays open), its body
//! within the body timeout, and connections past the cap get 503. The
//! header timeout covers reading heads only: a blocking query holds its
//! request open for its whole `wait` (up to ten minutes), and on
//! shutdown every blocked query answers at once.

pub mod acl;
mod api;
pub mod catalog;
pub mod config;
pub mod definition;
pub mod dns;
pub mod filter;
pub mod probe;
mod runner;
pub mod state;
pub mod status_handler;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use acl::Acl;
pub use config::{ACL_TOKEN_VAR, DEFAULT_LISTEN, DEFAULT_PORT, LISTEN_VAR, Options};
use state::Registry;

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Stops the reaper and every check task when [`run`] ends, however it ends
/// (returned, or dropped by its caller).
struct StopOnDrop {
    registry: Arc<Registry>,
    reaper: tokio::task::AbortHandle,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.reaper.abort();
        self.registry.stop_checks();
    }
}

/// Serves the dev registry on `listener` until `shutdown` resolves, within
/// `options.limits`; then blocked queries answer at once and in-flight
/// requests get [`gantry_common::serve::DRAIN_TIMEOUT`] to finish.
/// (`options.listen` is not used here: the caller binds.)
pub async fn run(
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with_dns(listener, None, options, shutdown).await
}

/// [`run`], answering Consul's DNS queries on `dns` too when given.
pub async fn run_with_dns(
    listener: TcpListener,
    dns: Option<tokio::net::UdpSocket>,
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
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "dev registry serving");
    }
    let registry = Arc::new(Registry::default());
    let _stop = StopOnDrop {
        registry: registry.clone(),
        reaper: tokio::spawn(registry.clone().reaper()).abort_handle(),
    };
    // Dropped (and so stopped) when `run` returns.
    let _dns = dns.map(|socket| AbortOnDrop(tokio::spawn(dns::serve(socket, registry.clone())).abort_handle()));
    let limits = options.limits;
    let app = api::router(registry.clone(), acl, limits.body_timeout);
    let shutdown = async move {
        shutdown.await;
        // Blocking queries may wait ten minutes; draining must not.
        registry.close();
    };
    gantry_common::serve::serve(listener, app, limits, shutdown).await
}
