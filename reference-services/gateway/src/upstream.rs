//! Upstream instances and the immutable per-service snapshot the request
//! path reads without a lock.
//!
//! A registry watch builds a new [`Snapshot`] whenever the passing set
//! changes and swaps it in whole. Endpoints that survive a change keep their
//! `Arc`, so in-flight counts and ejections carry over.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use gantry_common::registry::Instance;
use http::uri::Authority;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::shard::Sharded;

/// The first ejection after a connect failure lasts this long …
pub const BASE_EJECTION: Duration = Duration::from_secs(1);
/// … doubling with each consecutive failure, up to this.
pub const MAX_EJECTION: Duration = Duration::from_secs(30);

/// One instance of a service.
#[derive(Debug)]
pub struct Endpoint {
    pub id: Box<str>,
    pub authority: Authority,
    /// Requests sent and not yet answered (for least-outstanding balancing).
    pub outstanding: AtomicUsize,
    consecutive_failures: AtomicU32,
    /// Milliseconds since [`Clock`]'s origin until which the endpoint is ejected.
    ejected_until_ms: AtomicU64,
    pub requests: AtomicU64,
    /// Idle keep-alive connections to this instance; they close with it.
    pub pool: crate::pool::Pool,
}

impl Endpoint {
    pub fn new(id: &str, authority: Authority) -> Self {
        Self {
            id: id.into(),
            authority,
            outstanding: AtomicUsize::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            pool: crate::pool::Pool::default(),
        }
    }

    pub fn is_ejected(&self, now_ms: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now_ms
    }

    /// Passive health: a failure ejects at once, for longer each time in a row.
    pub fn eject(&self, now_ms: u64) -> Duration {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed).min(16);
        let backoff = BASE_EJECTION.saturating_mul(1 << failures).min(MAX_EJECTION);
        self.ejected_until_ms
            .store(now_ms + backoff.as_millis() as u64, Ordering::Relaxed);
        backoff
    }

    /// A success clears the failure streak (read first: no write on the hot path).
    pub fn succeeded(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            self.ejected_until_ms.store(0, Ordering::Relaxed);
        }
    }
}

/// A monotonic millisecond clock shared by ejection bookkeeping.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self { origin: Instant::now() }
    }
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

/// The passing instances of one service at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub endpoints: Vec<Arc<Endpoint>>,
    /// False until the registry has answered once.
    pub received: bool,
}

impl Snapshot {
    /// The next snapshot for `instances`, reusing endpoints of `previous`
    /// that are the same instance at the same address.
    pub fn next(previous: &Snapshot, instances: &[Instance]) -> Snapshot {
        let endpoints = instances
            .iter()
            .filter_map(|inst| {
                let authority: Authority = format!("{}:{}", inst.address, inst.port).parse().ok()?;
                let kept = previous
                    .endpoints
                    .iter()
                    .find(|e| *e.id == *inst.id && e.authority == authority)
                    .cloned();
                Some(kept.unwrap_or_else(|| Arc::new(Endpoint::new(&inst.id, authority))))
            })
            .collect();
        Snapshot {
            endpoints,
            received: true,
        }
    }
}

/// A service's current snapshot, swapped atomically, and its counters. It
/// outlives configuration reloads that keep the service.
#[derive(Debug, Default)]
pub struct Upstream {
    pub snapshot: ArcSwap<Snapshot>,
    next: AtomicUsize,
    pub retries: AtomicU64,
    pub ejections: AtomicU64,
    pub failures: AtomicU64,
    /// Connections opened; requests reuse idle ones whenever they can.
    pub connects: AtomicU64,
    /// Requests answered on routes to this service, by status class
    /// (1xx to 5xx), one copy per worker.
    pub answered: Sharded<[AtomicU64; 5]>,
    /// Woken on every snapshot change, so a reload can wait for a new
    /// service's first registry answer instead of routing to nothing.
    changed: Notify,
}

impl Upstream {
    /// An upstream with per-worker counters for `workers` workers.
    pub fn new(workers: usize) -> Self {
        Self {
            answered: Sharded::new(workers),
            ..Self::default()
        }
    }

    pub fn update(&self, instances: &[Instance]) {
        let previous = self.snapshot.load();
        self.snapshot.store(Arc::new(Snapshot::next(&previous, instances)));
        self.changed.notify_waiters();
    }

    /// Resolves once the registry has answered for this service at least once.
    pub async fn answered_once(&self) {
        loop {
            // Made before the check: a change in between still wakes it.
            let changed = self.changed.notified();
            if self.snapshot.load().received {
                return;
            }
            changed.await;
        }
    }

    /// Counts one answered request with `status`.
    pub fn record(&self, status: u16) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.answered.local()[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered with status class `class` (0 for 1xx … 4 for 5xx), over all workers.
    pub fn answered(&self, class: usize) -> u64 {
        self.answered.all().map(|c| c[class].load(Ordering::Relaxed)).sum()
    }

    /// Base URLs of the current endpoints (for fetching the JWKS from auth).
    pub fn base_urls(&self) -> Vec<String> {
        self.snapshot
            .load()
            .endpoints
            .iter()
            .map(|e| format!("http://{}", e.authority))
            .collect()
    }

    /// Picks an endpoint not in `tried`, preferring ones not ejected. When
    /// every candidate is ejected one is tried anyway (Envoy's panic mode):
    /// better a likely failure than a certain one.
    pub fn pick(
        &self,
        snapshot: &Snapshot,
        policy: crate::config::LbPolicy,
        tried: &[usize],
        now_ms: u64,
    ) -> Option<usize> {
        let n = snapshot.endpoints.len();
        let usable = |i: usize| !tried.contains(&i);
        let healthy = |i: usize| usable(i) && !snapshot.endpoints[i].is_ejected(now_ms);
        let chosen = match policy {
            crate::config::LbPolicy::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n).map(|k| (start + k) % n).find(|&i| healthy(i))
            }
            crate::config::LbPolicy::P2c => p2c(snapshot, n, &healthy),
        };
        chosen.or_else(|| (0..n).find(|&i| usable(i)))
    }
}

fn p2c(snapshot: &Snapshot, n: usize, healthy: &impl Fn(usize) -> bool) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let a = fastrand::usize(..n);
    let b = if n > 1 {
        (a + 1 + fastrand::usize(..n - 1)) % n
    } else {
        a
    };
    let load = |i: usize| snapshot.endpoints[i].outstanding.load(Ordering::Relaxed);
    match (healthy(a), healthy(b)) {
        (true, true) => Some(if load(b) < load(a) { b } else { a }),
        (true, false) => Some(a),
        (false, true) => Some(b),
        // Both drawn were unusable: fall back to the least loaded healthy one.
        (false, false) => (0..n).filter(|&i| healthy(i)).min_by_key(|&i| load(i)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LbPolicy;

    fn instance(id: &str, port: u16) -> Instance {
        Instance {
            id: id.into(),
            name: "user".into(),
            address: "127.0.0.1".into(),
            port,
            tags: vec![],
            meta: Default::default(),
            passing: true,
        }
    }

    fn upstream(n: u16) -> Upstream {
        let u = Upstream::default();
        let list: Vec<_> = (0..n).map(|i| instance(&format!("u{i}"), 9000 + i)).collect();
        u.update(&list);
        u
    }

    #[test]
    fn round_robin_visits_each_in_turn() {
        let u = upstream(3);
        let snap = u.snapshot.load();
        let picks: Vec<_> = (0..6)
            .map(|_| u.pick(&snap, LbPolicy::RoundRobin, &[], 0).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn ejected_and_tried_endpoints_are_skipped() {
        let u = upstream(3);
        let snap = u.snapshot.load();
        snap.endpoints[1].eject(0);
        for _ in 0..10 {
            let p = u.pick(&snap, LbPolicy::RoundRobin, &[0], 10).unwrap();
            assert_eq!(p, 2);
        }
        // Ejection ends after its backoff.
        assert!(!snap.endpoints[1].is_ejected(BASE_EJECTION.as_millis() as u64));
    }

    #[test]
    fn all_ejected_still_tries_one() {
        let u = upstream(2);
        let snap = u.snapshot.load();
        snap.endpoints[0].eject(0);
        snap.endpoints[1].eject(0);
        assert!(u.pick(&snap, LbPolicy::RoundRobin, &[], 1).is_some());
        assert_eq!(u.pick(&snap, LbPolicy::RoundRobin, &[0, 1], 1), None);
    }

    #[test]
    fn ejection_backs_off_and_success_resets() {
        let e = Endpoint::new("x", "127.0.0.1:1".parse().unwrap());
        assert_eq!(e.eject(0), Duration::from_secs(1));
        assert_eq!(e.eject(0), Duration::from_secs(2));
        assert_eq!(e.eject(0), Duration::from_secs(4));
        e.succeeded();
        assert!(!e.is_ejected(0));
        assert_eq!(e.eject(0), Duration::from_secs(1));
        for _ in 0..40 {
            e.eject(0);
        }
        assert_eq!(e.eject(0), MAX_EJECTION);
    }

    #[test]
    fn p2c_prefers_the_less_loaded() {
        let u = upstream(2);
        let snap = u.snapshot.load();
        snap.endpoints[0].outstanding.store(10, Ordering::Relaxed);
        for _ in 0..50 {
            assert_eq!(u.pick(&snap, LbPolicy::P2c, &[], 0), Some(1));
        }
        let single = upstream(1);
        let s = single.snapshot.load();
        assert_eq!(single.pick(&s, LbPolicy::P2c, &[], 0), Some(0));
    }

    #[test]
    fn p2c_spreads_load_evenly_when_idle() {
        let u = upstream(3);
        let snap = u.snapshot.load();
        let mut counts = [0u32; 3];
        for _ in 0..3000 {
            counts[u.pick(&snap, LbPolicy::P2c, &[], 0).unwrap()] += 1;
        }
        // Chi-square with 2 degrees of freedom; 13.8 is the 0.1% critical value.
        let chi2: f64 = counts.iter().map(|&c| (f64::from(c) - 1000.0).powi(2) / 1000.0).sum();
        assert!(chi2 < 13.8, "{counts:?} chi2={chi2}");
    }

    #[test]
    fn snapshots_keep_surviving_endpoints() {
        let u = upstream(2);
        let before = u.snapshot.load_full();
        before.endpoints[0].outstanding.store(7, Ordering::Relaxed);
        u.update(&[instance("u0", 9000), instance("u9", 9009)]);
        let after = u.snapshot.load();
        assert!(Arc::ptr_eq(&before.endpoints[0], &after.endpoints[0]));
        assert_eq!(after.endpoints[1].id.as_ref(), "u9");
        // Same id at a new address is a new endpoint.
        u.update(&[instance("u0", 9100)]);
        assert_eq!(u.snapshot.load().endpoints[0].outstanding.load(Ordering::Relaxed), 0);
    }
}
