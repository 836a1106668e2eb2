//! The task that runs one HTTP or TCP check for as long as it is
//! registered: first after a random stagger, then once per interval after
//! the previous run ended (as Consul's `CheckHTTP.run`), each result passed
//! through the check's [`StatusHandler`] and what takes effect recorded in
//! the catalog. [`crate::state::Registry`] starts and aborts these tasks as
//! checks come and go.

use std::sync::Weak;

use crate::definition::Probe;
use crate::probe;
use crate::state::Registry;
use crate::status_handler::StatusHandler;

/// Runs `probe` for the check `check_id` of `generation` until aborted or
/// the registry is gone.
pub async fn run(registry: Weak<Registry>, check_id: String, generation: u64, probe: Probe) {
    let mut handler = StatusHandler::new(probe.thresholds);
    tokio::time::sleep(probe::stagger(probe.interval)).await;
    loop {
        let (status, output) = probe::run(&probe).await;
        if let Some(status) = handler.update(status) {
            let Some(registry) = registry.upgrade() else {
                return;
            };
            registry.record_probe(&check_id, generation, status, &output);
        }
        tokio::time::sleep(probe.interval).await;
    }
}
