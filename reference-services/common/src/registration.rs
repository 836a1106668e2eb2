//! A service's own presence in the registry: register with a TTL check,
//! heartbeat it, re-register if the registry forgot us, deregister on the way out.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::registry::{AgentRegistration, RegistryClient, RegistryError, TtlState};

/// The check output every update carries. One text for every update, so a
/// heartbeat that changes nothing is no change the registry wakes watchers for.
const OUTPUT: &str = "heartbeat";

/// A live registration. Drop it and the heartbeat stops (the check then
/// expires); call [`Registration::deregister`] to leave at once.
///
/// The heartbeat reports the state last set: [`TtlState::Pass`] unless
/// [`Registration::set_check`] said otherwise, as an orchestrator reports its
/// own health probes for a process it runs.
pub struct Registration {
    client: RegistryClient,
    service_id: String,
    check_id: String,
    /// The state reported, held while an update is in flight so that a
    /// heartbeat never lands after [`Registration::set_check`] with the old one.
    state: Arc<Mutex<TtlState>>,
    heartbeat: JoinHandle<()>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("service_id", &self.service_id)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// Registers `reg`. With a TTL check (a service registering itself) it
    /// passes the check once (TTL checks start critical) and heartbeats at a
    /// third of the TTL; with a check the registry runs there is nothing to
    /// send, and the registration only waits to be ended.
    pub async fn start(client: RegistryClient, reg: AgentRegistration) -> Result<Self, RegistryError> {
        let check_id = reg.check_id();
        client.register_agent(&reg).await?;
        let state = Arc::new(Mutex::new(TtlState::Pass));
        let service_id = reg.service.id.clone();
        let heartbeat = match reg.ttl() {
            Some(ttl) => {
                client.update_ttl(&check_id, TtlState::Pass, OUTPUT).await?;
                tokio::spawn(heartbeat(client.clone(), reg, ttl, state.clone()))
            }
            None => tokio::spawn(std::future::pending()),
        };
        Ok(Self {
            client,
            service_id,
            check_id,
            state,
            heartbeat,
        })
    }

    pub fn service_id(&self) -> &str {
        &self.service_id
    }

    /// Sets the check to `state` in the registry now (`PUT
    /// /v1/agent/check/<pass|warn|fail>/<check id>`) and keeps reporting it.
    pub async fn set_check(&self, state: TtlState) -> Result<(), RegistryError> {
        let mut reported = self.state.lock().await;
        *reported = state;
        self.client.update_ttl(&self.check_id, state, OUTPUT).await
    }

    /// Stops heartbeating and removes the service from the registry.
    pub async fn deregister(self) -> Result<(), RegistryError> {
        self.heartbeat.abort();
        self.client.deregister(&self.service_id).await
    }
}

impl Registration {
    /// A future that waits for `shutdown`, then deregisters, so callers stop
    /// being sent new requests before the server drains the ones in flight.
    pub async fn leave_on(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        let id = self.service_id.clone();
        match self.deregister().await {
            Ok(()) => tracing::info!(service_id = %id, "deregistered"),
            Err(e) => tracing::warn!(error = %e, "deregistration failed; the TTL check will expire instead"),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

async fn heartbeat(client: RegistryClient, reg: AgentRegistration, ttl: Duration, state: Arc<Mutex<TtlState>>) {
    let period = (ttl / 3).max(Duration::from_millis(100));
    let check_id = reg.check_id();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        // Held until the update has landed: see `Registration::state`.
        let reported = state.lock().await;
        match client.update_ttl(&check_id, *reported, OUTPUT).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {
                tracing::warn!(service_id = %reg.service.id, "registry forgot this service; registering again");
                let again = async {
                    client.register_agent(&reg).await?;
                    client.update_ttl(&check_id, *reported, OUTPUT).await
                };
                if let Err(e) = again.await {
                    tracing::warn!(error = %e, "re-registration failed; will retry");
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; will retry"),
        }
    }
}
