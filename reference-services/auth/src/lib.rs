//! The Gantry auth service: accounts, login sessions in Redis, token
//! issuing, JWKS and revocation.
//!
//! Like every service here it is a library: [`run`] takes a bound listener
//! and a shutdown future, so tests bind port 0 and `gantry serve auth` binds
//! the configured port.

pub mod config;
mod limiter;
mod openapi;
mod password;
mod profiles;
mod routes;
mod state;
#[cfg(test)]
mod tests;
mod validate;

use std::future::Future;
use std::sync::Arc;

use gantry_common::discovery::Discovered;
use gantry_common::registration::Registration;
use tokio::net::TcpListener;

pub use config::AuthConfig;

pub use gantry_common::service::ServiceError as AuthError;

/// Serves auth on `listener`, registered in the registry, until `shutdown`.
pub async fn run(
    listener: TcpListener,
    cfg: AuthConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AuthError> {
    let bound = listener.local_addr()?;
    let instance_id = cfg.service.instance_id(bound);
    let (users, watch) = Discovered::watch(cfg.registry.clone(), "user");
    let profiles = profiles::Profiles::new(users, cfg.jwt.issuer.clone(), cfg.jwt.audience.clone());
    let registration_spec = cfg.service.registration(bound);
    let limits = cfg.service.limits;
    let registry = cfg.registry.clone();
    let state = match state::AppState::new(cfg, profiles).await {
        Ok(state) => Arc::new(state),
        Err(e) => {
            watch.abort();
            return Err(e.into());
        }
    };
    let app = gantry_common::http::standard(routes::router(state), "auth", &instance_id, openapi::DOCUMENT, &limits);
    let registration = Registration::start(registry.clone(), registration_spec)
        .await
        .map_err(|source| AuthError::Register {
            addr: registry.base_url().to_owned(),
            source,
        })?;
    tracing::info!(%bound, %instance_id, "auth serving");
    let served = gantry_common::serve::serve(listener, app, limits, registration.leave_on(shutdown)).await;
    watch.abort();
    served?;
    Ok(())
}
