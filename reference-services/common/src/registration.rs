//! A service's own presence in the registry: register with a TTL check,
//! heartbeat it, re-register if the registry forgot us, deregister on the way out.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::registry::{RegistryClient, RegistryError, ServiceRegistration, TtlState};

/// A live registration. Drop it and the heartbeat stops (the check then
/// expires); call [`Registration::deregister`] to leave at once.
pub struct Registration {
    client: RegistryClient,
    service_id: String,
    heartbeat: JoinHandle<()>,
}

impl Registration {
    /// Registers `reg`, passes its check once (TTL checks start critical) and
    /// starts heartbeating at a third of the TTL.
    pub async fn start(client: RegistryClient, reg: ServiceRegistration) -> Result<Self, RegistryError> {
        client.register(&reg).await?;
        client.update_ttl(&reg.check_id(), TtlState::Pass, "started").await?;
        let service_id = reg.id.clone();
        let heartbeat = tokio::spawn(heartbeat(client.clone(), reg));
        Ok(Self {
            client,
            service_id,
            heartbeat,
        })
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

async fn heartbeat(client: RegistryClient, reg: ServiceRegistration) {
    let period = (reg.ttl / 3).max(Duration::from_millis(100));
    let check_id = reg.check_id();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match client.update_ttl(&check_id, TtlState::Pass, "heartbeat").await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {
                tracing::warn!(service_id = %reg.id, "registry forgot this service; registering again");
                let again = async {
                    client.register(&reg).await?;
                    client.update_ttl(&check_id, TtlState::Pass, "re-registered").await
                };
                if let Err(e) = again.await {
                    tracing::warn!(error = %e, "re-registration failed; will retry");
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; will retry"),
        }
    }
}
