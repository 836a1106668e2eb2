//! The Gantry user service: owns user profiles (`user:` keys in Redis) and
//! is what the gateway balances across. It verifies every JWT itself
//! (defence in depth: a request that slipped past the gateway gets nothing),
//! refuses revoked tokens, and ignores identity headers.

pub mod config;
mod identity;
mod openapi;
mod routes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gantry_common::discovery::Discovered;
use gantry_common::jwks::KeyStore;
use gantry_common::registration::Registration;
use gantry_common::store::Store;
use tokio::net::TcpListener;

pub use config::UserConfig;

pub use gantry_common::service::ServiceError as UserError;

pub(crate) struct AppState {
    pub store: Store,
    /// Profiles read recently, served when Redis is unreachable. Profiles
    /// never change once created, so a stale copy is a correct copy.
    pub recent: std::sync::Mutex<std::collections::HashMap<String, Arc<str>>>,
    pub keys: KeyStore,
    pub auth: Discovered,
}

/// How often the JWKS is fetched again once it is held.
pub const JWKS_REFRESH: Duration = Duration::from_secs(300);

/// Serves the user service on `listener`, registered in the registry, until `shutdown`.
pub async fn run(
    listener: TcpListener,
    cfg: UserConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), UserError> {
    let bound = listener.local_addr()?;
    let instance_id = cfg.service.instance_id(bound);
    let (auth, watch) = Discovered::watch(cfg.registry.clone(), "auth");
    let state = Arc::new(AppState {
        store: Store::new(&cfg.service.redis_url)?,
        recent: Default::default(),
        keys: KeyStore::new(&cfg.jwt),
        auth,
    });
    // Register only once tokens can be verified: an instance that passes
    // its health check must be able to serve.
    if !load_keys(&state, KEYS_AT_START).await {
        tracing::warn!("no JWKS from auth yet; registering anyway, tokens will be refused until it arrives");
    }
    let prefetch = tokio::spawn(keep_keys_fresh(state.clone()));
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
    served?;
    Ok(())
}

/// How long start-up waits for the first JWKS before registering anyway.
pub const KEYS_AT_START: Duration = Duration::from_secs(10);

/// Tries to fetch the JWKS until it works or `within` passes.
async fn load_keys(state: &AppState, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match state.keys.refresh(&state.auth.base_urls()).await {
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

/// Fetches the JWKS again periodically, so removed keys stop being trusted.
async fn keep_keys_fresh(state: Arc<AppState>) {
    loop {
        tokio::time::sleep(JWKS_REFRESH).await;
        load_keys(&state, JWKS_REFRESH).await;
    }
}
