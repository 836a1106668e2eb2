//! Watching a service's healthy instances with Consul blocking queries.
//!
//! The loop follows Consul's rules for blocking queries: it sends the last
//! `X-Consul-Index` back, resets to 0 when the index goes backwards (the
//! agent restarted or the raft log was restored), never sends an index below
//! 1, and rate-limits itself so a misbehaving agent cannot make it spin.
//! When the registry is unreachable the last result stands and the loop
//! retries with backoff.

use std::time::Duration;

use tokio::time::{Instant, sleep};

pub use crate::registry::DEFAULT_WATCH_WAIT;
use crate::registry::{Instance, RegistryClient};
/// The shortest time between two queries of one watch.
pub const MIN_QUERY_INTERVAL: Duration = Duration::from_millis(50);
/// The longest pause between retries while the registry is down.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(2);

/// The index to send next, given the one we sent and the one we got back.
pub fn next_index(previous: u64, received: u64) -> u64 {
    if received < previous {
        // Went backwards: start over, as Consul's docs require.
        0
    } else {
        received
    }
}

/// Watches `service` forever, calling `on_change` with the passing instances
/// on the first answer and whenever the set changes, and `on_error` for every
/// failed query. Run it in a task; abort the task to stop it.
pub async fn watch_service(
    client: RegistryClient,
    service: String,
    wait: Duration,
    mut on_change: impl FnMut(Vec<Instance>) + Send,
    mut on_error: impl FnMut(&crate::registry::RegistryError) + Send,
) {
    let mut index: u64 = 0;
    let mut last: Option<Vec<Instance>> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        let query_index = if index == 0 { None } else { Some(index.max(1)) };
        match client.health_service(&service, true, query_index, wait).await {
            Ok(result) => {
                backoff = Duration::from_millis(100);
                index = next_index(index, result.index);
                let mut instances = result.value;
                instances.sort_by(|a, b| a.service.id.cmp(&b.service.id));
                if last.as_ref() != Some(&instances) {
                    last = Some(instances.clone());
                    on_change(instances);
                }
                let elapsed = started.elapsed();
                if elapsed < MIN_QUERY_INTERVAL {
                    sleep(MIN_QUERY_INTERVAL - elapsed).await;
                }
            }
            Err(e) => {
                on_error(&e);
                // The agent may come back with a fresh index: ask without one.
                index = 0;
                sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_index;

    #[test]
    fn index_resets_when_it_goes_backwards() {
        assert_eq!(next_index(10, 12), 12);
        assert_eq!(next_index(10, 10), 10);
        assert_eq!(next_index(10, 3), 0);
        assert_eq!(next_index(0, 5), 5);
    }
}
