//! The Gantry user service: owns user profiles (`user:` keys in Redis) and
//! is what the gateway balances across. It verifies every JWT itself
//! (defence in depth: a request that slipped past the gateway gets nothing),
//! refuses revoked tokens, and ignores identity headers. It verifies with
//! the gateway's verifier ([`gantry_common::identity`]): a token seen before
//! costs a map lookup, not a signature check and a Redis round trip, and
//! auth's revocations reach its cache over pub/sub.

pub mod config;
mod identity;
mod openapi;
mod routes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gantry_common::discovery::Discovered;
use gantry_common::identity::Identity;
use gantry_common::jwks::KeyStore;
use gantry_common::registration::Registration;
use gantry_common::store::Store;
use tokio::net::TcpListener;

pub use config::UserConfig;

pub use gantry_common::service::ServiceError as UserError;

pub(crate) struct AppState {
    pub store: Store,
    /// Profiles read before, served without asking Redis again (and while
    /// it is unreachable). Profiles never change once created, so a copy
    /// is a correct copy.
    pub recent: std::sync::Mutex<std::collections::HashMap<String, Arc<str>>>,
    /// Verifies tokens (and holds the keys), caching them until `exp`.
    pub identity: Arc<Identity>,
    pub auth: Discovered,
}

/// Serves the user service on `listener`, registered in the registry, until `shutdown`.
pub async fn run(
    listener: TcpListener,
    cfg: UserConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), UserError> {
    let bound = listener.local_addr()?;
    let instance_id = cfg.service.instance_id(bound);
    let (auth, watch) = Discovered::watch(cfg.registry.clone(), "auth");
    // The verifier's own connection: the denylist (asked on a cache miss)
    // and the revocation feed. No session cookie reaches this service, so
    // its session TTL is unused.
    let denylist = Store::new(&cfg.service.redis_url)?;
    let identity = Arc::new(Identity::new(KeyStore::new(&cfg.jwt), denylist, Duration::ZERO, 1));
    let state = Arc::new(AppState {
        store: Store::new(&cfg.service.redis_url)?,
        recent: Default::default(),
        identity: identity.clone(),
        auth,
    });
    let revocations = tokio::spawn(identity.follow_revocations());
    // Register only once tokens can be verified: an instance that passes
    // its health check must be able to serve.
    if !load_keys(&state, KEYS_AT_START).await {
        tracing::warn!("no JWKS from auth yet; registering anyway, tokens will be refused until it arrives");
    }
    let refresher = state.clone();
    let prefetch = tokio::spawn(async move {
        let sources = || Some(refresher.auth.base_urls());
        refresher.identity.keys().keep_fresh(sources).await
    });
    let app = gantry_common::http::standard(
        routes::router(state),
        "user",
        &instance_id,
        openapi::DOCUMENT,
        &cfg.service.limits,
    );
    let registration = Registration::start(cfg.registry.clone(), cfg.service.registration(bound))
        .await
        .map_err(|source| UserError::Register {
            addr: cfg.registry.base_url().to_owned(),
            source,
        })?;
    tracing::info!(%bound, %instance_id, "user serving");
    let served = gantry_common::serve::serve(listener, app, cfg.service.limits, registration.leave_on(shutdown)).await;
    watch.abort();
    prefetch.abort();
    revocations.abort();
    served?;
    Ok(())
}

/// How long start-up waits for the first JWKS before registering anyway.
pub const KEYS_AT_START: Duration = Duration::from_secs(10);

/// Tries to fetch the JWKS until it works or `within` passes.
async fn load_keys(state: &AppState, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match state.identity.keys().refresh(&state.auth.base_urls()).await {
            Ok(n) => {
                tracing::debug!(keys = n, "JWKS fetched");
                return true;
            }
            Err(e) if tokio::time::Instant::now() >= deadline => {
                tracing::warn!(error = %e, "JWKS not fetched");
                return false;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
