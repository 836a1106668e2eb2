//! The registry's shared state: the catalog behind a lock, a channel that
//! ticks on every change so blocking queries wake, the reaper that expires
//! TTLs and removes services critical for too long, and the tasks running
//! HTTP and TCP checks, kept in step with the catalog after every change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::catalog::{Catalog, CatalogError, Status};
use crate::runner;

/// How often expired TTLs are looked for when nothing is due sooner.
const REAP_IDLE: Duration = Duration::from_millis(500);

/// A running check task and the generation of the check it runs.
struct Runner {
    generation: u64,
    task: AbortHandle,
}

pub struct Registry {
    catalog: Mutex<Catalog>,
    changed: watch::Sender<u64>,
    /// By check id.
    runners: Mutex<HashMap<String, Runner>>,
    /// Set when the registry shuts down: blocked queries answer at once.
    closing: AtomicBool,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            catalog: Mutex::new(Catalog::default()),
            changed: watch::Sender::new(1),
            runners: Mutex::new(HashMap::new()),
            closing: AtomicBool::new(false),
        }
    }
}

/// A poisoned lock still holds consistent data here (every update is a
/// single assignment under the lock), so it is used rather than panicking.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    pub fn read<T>(&self, f: impl FnOnce(&Catalog) -> T) -> T {
        f(&lock(&self.catalog))
    }

    /// Applies a write; when it changed the catalog, wakes blocked queries
    /// and starts or stops check tasks to match.
    pub fn write<T>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Catalog) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        let (result, changed) = {
            let mut c = lock(&self.catalog);
            let before = c.index();
            let r = f(&mut c);
            (r, (c.index() != before).then(|| c.index()))
        };
        if let Some(index) = changed {
            self.changed.send_replace(index);
            self.sync_runners();
        }
        result
    }

    /// Records a check task's result (see [`Catalog::record_probe`]).
    pub fn record_probe(&self, check_id: &str, generation: u64, status: Status, output: &str) {
        let changed = {
            let mut c = lock(&self.catalog);
            c.record_probe(check_id, generation, status, output, Instant::now())
                .then(|| c.index())
        };
        if let Some(index) = changed {
            tracing::debug!(check = check_id, status = status.as_str(), "check status changed");
            self.changed.send_replace(index);
        }
    }

    /// Starts a task for every HTTP or TCP check without one, and aborts
    /// the tasks of checks that are gone or were registered again (a new
    /// registration restarts its checks, counters included, as in Consul).
    fn sync_runners(self: &Arc<Self>) {
        let wanted: HashMap<String, (u64, crate::definition::Probe)> = self.read(|c| {
            c.probes()
                .map(|(id, generation, probe)| (id.to_owned(), (generation, probe.clone())))
                .collect()
        });
        let mut runners = lock(&self.runners);
        runners.retain(|id, r| {
            let keep = wanted.get(id).is_some_and(|(g, _)| *g == r.generation);
            if !keep {
                r.task.abort();
            }
            keep
        });
        for (id, (generation, probe)) in wanted {
            if runners.contains_key(&id) {
                continue;
            }
            let task = tokio::spawn(runner::run(Arc::downgrade(self), id.clone(), generation, probe));
            runners.insert(
                id,
                Runner {
                    generation,
                    task: task.abort_handle(),
                },
            );
        }
    }

    /// Stops every check task (the registry is shutting down).
    pub fn stop_checks(&self) {
        for (_, r) in lock(&self.runners).drain() {
            r.task.abort();
        }
    }

    /// Ends every blocking query now and any made from here on (each
    /// answers with what it would read at once), as a Consul agent does
    /// when it shuts down: a query may block for ten minutes, and shutdown
    /// must not wait for it.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        // Wakes every waiter without changing the index; each then sees `closing`.
        self.changed.send_modify(|_| {});
    }

    /// Waits until `unchanged` turns false, or `wait` (plus up to wait/16
    /// of jitter, as Consul adds) runs out, or the registry closes.
    pub async fn wait_while(&self, wait: Duration, unchanged: impl Fn(&Catalog) -> bool) {
        let jitter = wait.mul_f64(fastrand::f64() / 16.0);
        let deadline = Instant::now() + wait + jitter;
        // Subscribed before `closing` is read, so a close between the two still wakes us.
        let mut rx = self.changed.subscribe();
        while !self.closing.load(Ordering::SeqCst) && self.read(&unchanged) {
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// Waits until the index `current` reads passes `index`. No index (or
    /// 0) answers at once; so does an index from the future (the registry
    /// restarted), so the client can reset.
    pub async fn block_until(&self, index: Option<u64>, wait: Duration, current: impl Fn(&Catalog) -> u64) {
        let Some(index) = index.filter(|i| *i > 0) else {
            return;
        };
        self.wait_while(wait, |c| current(c) == index).await
    }

    /// Expires TTLs and reaps critical services until aborted.
    pub async fn reaper(self: Arc<Self>) {
        let mut rx = self.changed.subscribe();
        loop {
            let (changed, index, next) = {
                let mut c = lock(&self.catalog);
                let changed = c.reap(Instant::now());
                (changed, c.index(), c.next_deadline())
            };
            if changed {
                self.changed.send_replace(index);
                // A reaped service's checks stop running.
                self.sync_runners();
            }
            let until = next.unwrap_or_else(|| Instant::now() + REAP_IDLE);
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                // A registration or a check result may bring a sooner deadline.
                _ = rx.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Far longer than closing takes, far shorter than the wait.
    const PATIENCE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn closing_ends_blocked_queries_and_any_made_after() {
        let reg = Registry::default();
        let blocked = reg.wait_while(Duration::from_secs(600), |_| true);
        tokio::pin!(blocked);
        // Polled once (a zero timeout polls before it fires): it blocks.
        assert!(tokio::time::timeout(Duration::ZERO, &mut blocked).await.is_err());
        reg.close();
        assert!(
            tokio::time::timeout(PATIENCE, blocked).await.is_ok(),
            "a blocked query outlived close"
        );
        // A query made after close does not block at all.
        let after = reg.wait_while(Duration::from_secs(600), |_| true);
        assert!(
            tokio::time::timeout(PATIENCE, after).await.is_ok(),
            "a query after close blocked"
        );
    }
}
