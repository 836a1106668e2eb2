//! The Gantry user service: owns user profiles (`user:` keys in Redis) and
//! is what the gateway balances across. It verifies every JWT itself
//! (defence in depth: a request that slipped past the gateway gets nothing)
//! and ignores identity headers.

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
use gantry_common::registry::RegistryError;
use gantry_common::store::Store;
use tokio::net::TcpListener;

pub use config::UserConfig;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(transparent)]
    Config(#[from] gantry_common::config::ConfigError),
    #[error("could not register in the registry at {addr}: {source}")]
    Register { addr: String, source: RegistryError },
    #[error("serving HTTP failed: {0}")]
    Serve(#[from] std::io::Error),
}

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
    let prefetch = tokio::spawn(keep_keys_fresh(state.clone()));
    let app = gantry_common::http::standard(routes::router(state), "user", &instance_id);
    let registration = Registration::start(cfg.registry.clone(), cfg.service.registration(bound))
        .await
        .map_err(|source| UserError::Register {
            addr: cfg.registry.base_url().to_owned(),
            source,
        })?;
    tracing::info!(%bound, %instance_id, "user serving");
    let served = gantry_common::http::serve(listener, app, registration.leave_on(shutdown)).await;
    watch.abort();
    prefetch.abort();
    served?;
    Ok(())
}

/// Fetches the JWKS as soon as an auth instance is known, then periodically.
async fn keep_keys_fresh(state: Arc<AppState>) {
    loop {
        let pause = match state.keys.refresh(&state.auth.base_urls()).await {
            Ok(n) => {
                tracing::debug!(keys = n, "JWKS fetched");
                JWKS_REFRESH
            }
            Err(e) => {
                tracing::debug!(error = %e, "JWKS not fetched yet");
                Duration::from_millis(500)
            }
        };
        tokio::time::sleep(pause).await;
    }
}
