//! Upstream instances and the immutable per-service snapshot the request
//! path reads without a lock.
//!
//! A registry watch builds a new [`Snapshot`] whenever the passing set
//! changes and swaps it in whole. Endpoints that survive a change keep their
//! `Arc`, so in-flight counts and ejections carry over.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use gantry_common::registry::Instance;

use crate::policy::{LbPolicy, Outlier};
use http::uri::Authority;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::shard::Sharded;

/// One instance of a service.
#[derive(Debug)]
pub struct Endpoint {
    pub id: Box<str>,
    pub authority: Authority,
    /// Requests sent and not yet answered (for least-outstanding balancing).
    pub outstanding: AtomicUsize,
    /// Outlier detection's counts, packed so that a success reads one word:
    /// see [`Streaks`].
    streaks: AtomicU64,
    /// Milliseconds since [`Clock`]'s origin until which the endpoint is ejected.
    ejected_until_ms: AtomicU64,
    pub requests: AtomicU64,
    /// Idle keep-alive connections to this instance; they close with it.
    pub pool: crate::pool::Pool,
}

/// What an attempt on an instance came to, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer with this status (5xx counts against the instance).
    Answered(u16),
    /// Refused, reset or timed out: a failure at the gateway's end.
    LocalFailure,
}

/// Why an instance was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ejection {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
    ConsecutiveLocalOriginFailure,
}

impl Ejection {
    pub const ALL: [Ejection; 3] = [
        Ejection::Consecutive5xx,
        Ejection::ConsecutiveGatewayFailure,
        Ejection::ConsecutiveLocalOriginFailure,
    ];

    /// Its name in `/metrics` and logs (Envoy's detector names).
    pub const fn name(self) -> &'static str {
        match self {
            Ejection::Consecutive5xx => "consecutive_5xx",
            Ejection::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            Ejection::ConsecutiveLocalOriginFailure => "consecutive_local_origin_failure",
        }
    }
}

/// Four 16-bit counts in one word: 5xx answers in a row, gateway errors
/// (502/503/504) in a row, local failures in a row, and ejections in a row
/// (the multiplier of `base_ejection_time`). Zero means healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Streaks {
    five_xx: u16,
    gateway: u16,
    local: u16,
    ejections: u16,
}

impl Streaks {
    fn unpack(w: u64) -> Self {
        Self {
            five_xx: w as u16,
            gateway: (w >> 16) as u16,
            local: (w >> 32) as u16,
            ejections: (w >> 48) as u16,
        }
    }

    fn pack(self) -> u64 {
        u64::from(self.five_xx)
            | u64::from(self.gateway) << 16
            | u64::from(self.local) << 32
            | u64::from(self.ejections) << 48
    }

    /// The counts after `outcome`, and the detector it trips, if any.
    fn after(mut self, outcome: Outcome, o: &Outlier) -> (Self, Option<Ejection>) {
        let reached = |n: u16, limit: u32| limit != 0 && u32::from(n) >= limit;
        let tripped = match outcome {
            Outcome::LocalFailure => {
                self.local = self.local.saturating_add(1);
                reached(self.local, o.consecutive_local_origin_failure)
                    .then_some(Ejection::ConsecutiveLocalOriginFailure)
            }
            Outcome::Answered(status) => {
                // Any answer means the connection worked.
                self.local = 0;
                if status >= 500 {
                    self.five_xx = self.five_xx.saturating_add(1);
                    if matches!(status, 502..=504) {
                        self.gateway = self.gateway.saturating_add(1);
                    } else {
                        self.gateway = 0;
                    }
                    if reached(self.five_xx, o.consecutive_5xx) {
                        Some(Ejection::Consecutive5xx)
                    } else {
                        reached(self.gateway, o.consecutive_gateway_failure)
                            .then_some(Ejection::ConsecutiveGatewayFailure)
                    }
                } else {
                    return (Self::default(), None);
                }
            }
        };
        (self, tripped)
    }
}

impl Endpoint {
    pub fn new(id: &str, authority: Authority) -> Self {
        Self {
            id: id.into(),
            authority,
            outstanding: AtomicUsize::new(0),
            streaks: AtomicU64::new(0),
            ejected_until_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            pool: crate::pool::Pool::default(),
        }
    }

    pub fn is_ejected(&self, now_ms: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now_ms
    }

    /// Counts one attempt's `outcome` and says which detector of `o` it
    /// trips, if any. A success reads one word and writes nothing unless
    /// there was a streak to end: the hot path stays write-free.
    pub fn observe(&self, outcome: Outcome, o: &Outlier) -> Option<Ejection> {
        if matches!(outcome, Outcome::Answered(s) if s < 500) {
            if self.streaks.load(Ordering::Relaxed) != 0 {
                self.streaks.store(0, Ordering::Relaxed);
                self.ejected_until_ms.store(0, Ordering::Relaxed);
            }
            return None;
        }
        let mut tripped = None;
        let _ = self.streaks.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            let (next, t) = Streaks::unpack(w).after(outcome, o);
            tripped = t;
            Some(next.pack())
        });
        tripped
    }

    /// Ejects the endpoint for `base_ejection_time` × its ejections in a
    /// row (this one included), at most `max_ejection_time`; its streaks
    /// start again from zero, as Envoy's do.
    pub fn eject(&self, now_ms: u64, o: &Outlier) -> Duration {
        let mut n = 0;
        let _ = self.streaks.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            n = Streaks::unpack(w).ejections.saturating_add(1);
            Some(
                Streaks {
                    ejections: n,
                    ..Streaks::default()
                }
                .pack(),
            )
        });
        let time = o.ejection_time(u32::from(n));
        self.ejected_until_ms
            .store(now_ms + time.as_millis() as u64, Ordering::Relaxed);
        time
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
                let authority: Authority = format!("{}:{}", inst.service.address, inst.service.port).parse().ok()?;
                let kept = previous
                    .endpoints
                    .iter()
                    .find(|e| *e.id == *inst.service.id && e.authority == authority)
                    .cloned();
                Some(kept.unwrap_or_else(|| Arc::new(Endpoint::new(&inst.service.id, authority))))
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
    /// Retries not made because the retry budget was spent.
    pub retry_overflow: AtomicU64,
    /// Retries in flight now, against the retry budget …
    pub retrying: AtomicUsize,
    /// … and the most there ever were at once (what the budget held them to).
    pub retrying_peak: AtomicUsize,
    /// Ejections by detector ([`Ejection::ALL`]'s order).
    pub ejections: [AtomicU64; 3],
    /// Ejections a detector asked for and `max_ejection_percent` refused.
    pub ejections_overflow: AtomicU64,
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

    /// Requests in flight to this service's instances now.
    pub fn in_flight(&self, snapshot: &Snapshot) -> usize {
        snapshot
            .endpoints
            .iter()
            .map(|e| e.outstanding.load(Ordering::Relaxed))
            .sum()
    }

    /// Ejects `endpoint` of `snapshot` for `why`, unless `max_ejection_percent`
    /// forbids one more; counts either. Returns how long, if ejected.
    pub fn eject(
        &self,
        snapshot: &Snapshot,
        endpoint: &Endpoint,
        why: Ejection,
        o: &Outlier,
        now_ms: u64,
    ) -> Option<Duration> {
        // Others only: an instance tried while ejected (every other one was
        // out too) and failing again is ejected anew, not one more.
        let ejected = snapshot
            .endpoints
            .iter()
            .filter(|e| !std::ptr::eq(&***e, endpoint) && e.is_ejected(now_ms))
            .count();
        if !o.may_eject(ejected, snapshot.endpoints.len()) {
            self.ejections_overflow.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.ejections[why as usize].fetch_add(1, Ordering::Relaxed);
        Some(endpoint.eject(now_ms, o))
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
    pub fn pick(&self, snapshot: &Snapshot, policy: LbPolicy, tried: &[usize], now_ms: u64) -> Option<usize> {
        let n = snapshot.endpoints.len();
        let usable = |i: usize| !tried.contains(&i);
        let healthy = |i: usize| usable(i) && !snapshot.endpoints[i].is_ejected(now_ms);
        let chosen = match policy {
            LbPolicy::RoundRobin if n == 0 => None,
            LbPolicy::RoundRobin => {
                let turn = self.next.fetch_add(1, Ordering::Relaxed);
                if healthy(turn % n) {
                    Some(turn % n)
                } else {
                    // The turn of one set aside goes to the others in turn,
                    // not always to its neighbour (which would get double).
                    let others = (0..n).filter(|&i| healthy(i)).count();
                    (others > 0)
                        .then(|| (0..n).filter(|&i| healthy(i)).nth(turn % others))
                        .flatten()
                }
            }
            LbPolicy::P2c => p2c(snapshot, n, &healthy),
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
    use gantry_common::registry::ServiceRecord;

    fn outlier() -> Outlier {
        Outlier::DEFAULT
    }

    fn instance(id: &str, port: u16) -> Instance {
        Instance {
            service: ServiceRecord {
                id: id.into(),
                name: "user".into(),
                address: "127.0.0.1".into(),
                port,
                ..ServiceRecord::default()
            },
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
        let o = outlier();
        snap.endpoints[1].eject(0, &o);
        for _ in 0..10 {
            let p = u.pick(&snap, LbPolicy::RoundRobin, &[0], 10).unwrap();
            assert_eq!(p, 2);
        }
        // Ejection ends after its time.
        assert!(!snap.endpoints[1].is_ejected(o.base_ejection_time.as_millis() as u64));
    }

    #[test]
    fn round_robin_stays_even_around_an_ejected_instance() {
        let u = upstream(3);
        let snap = u.snapshot.load();
        snap.endpoints[1].eject(0, &outlier());
        let mut counts = [0u32; 3];
        for _ in 0..600 {
            counts[u.pick(&snap, LbPolicy::RoundRobin, &[], 10).unwrap()] += 1;
        }
        assert_eq!(counts, [300, 0, 300]);
    }

    #[test]
    fn all_ejected_still_tries_one() {
        let u = upstream(2);
        let snap = u.snapshot.load();
        snap.endpoints[0].eject(0, &outlier());
        snap.endpoints[1].eject(0, &outlier());
        assert!(u.pick(&snap, LbPolicy::RoundRobin, &[], 1).is_some());
        assert_eq!(u.pick(&snap, LbPolicy::RoundRobin, &[0, 1], 1), None);
    }

    #[test]
    fn ejection_grows_per_ejection_in_a_row_and_success_resets() {
        let o = outlier();
        let e = Endpoint::new("x", "127.0.0.1:1".parse().unwrap());
        assert_eq!(e.eject(0, &o), Duration::from_secs(1));
        assert_eq!(e.eject(0, &o), Duration::from_secs(2));
        assert_eq!(e.eject(0, &o), Duration::from_secs(3));
        assert_eq!(e.observe(Outcome::Answered(200), &o), None);
        assert!(!e.is_ejected(0));
        assert_eq!(e.eject(0, &o), Duration::from_secs(1));
        for _ in 0..100 {
            e.eject(0, &o);
        }
        assert_eq!(e.eject(0, &o), o.max_ejection_time);
    }

    #[test]
    fn each_detector_trips_at_its_own_count() {
        let mut o = outlier();
        o.consecutive_5xx = 3;
        o.consecutive_gateway_failure = 0;
        o.consecutive_local_origin_failure = 2;
        let e = Endpoint::new("x", "127.0.0.1:1".parse().unwrap());
        assert_eq!(e.observe(Outcome::Answered(503), &o), None);
        assert_eq!(e.observe(Outcome::Answered(500), &o), None);
        assert_eq!(e.observe(Outcome::Answered(503), &o), Some(Ejection::Consecutive5xx));
        // A 4xx is the instance working: the streak ends.
        e.observe(Outcome::Answered(404), &o);
        for _ in 0..2 {
            assert_eq!(e.observe(Outcome::Answered(503), &o), None);
        }
        e.observe(Outcome::Answered(200), &o);
        assert_eq!(e.observe(Outcome::LocalFailure, &o), None);
        // An answer of any kind means the connection worked.
        assert_eq!(e.observe(Outcome::Answered(503), &o), None);
        assert_eq!(e.observe(Outcome::LocalFailure, &o), None);
        assert_eq!(
            e.observe(Outcome::LocalFailure, &o),
            Some(Ejection::ConsecutiveLocalOriginFailure)
        );
        o.consecutive_5xx = 0;
        o.consecutive_gateway_failure = 2;
        let g = Endpoint::new("g", "127.0.0.1:1".parse().unwrap());
        assert_eq!(g.observe(Outcome::Answered(503), &o), None);
        assert_eq!(g.observe(Outcome::Answered(500), &o), None, "500 is no gateway error");
        assert_eq!(g.observe(Outcome::Answered(502), &o), None);
        assert_eq!(
            g.observe(Outcome::Answered(504), &o),
            Some(Ejection::ConsecutiveGatewayFailure)
        );
        let off = Outlier {
            consecutive_5xx: 0,
            consecutive_gateway_failure: 0,
            consecutive_local_origin_failure: 0,
            ..o
        };
        for _ in 0..100 {
            assert_eq!(
                g.observe(Outcome::Answered(503), &off),
                None,
                "0 switches a detector off"
            );
        }
    }

    #[test]
    fn max_ejection_percent_keeps_the_rest_serving() {
        let u = upstream(3);
        let snap = u.snapshot.load();
        let o = outlier();
        assert!(
            u.eject(&snap, &snap.endpoints[0], Ejection::Consecutive5xx, &o, 0)
                .is_some()
        );
        assert!(
            u.eject(&snap, &snap.endpoints[1], Ejection::Consecutive5xx, &o, 0)
                .is_none()
        );
        assert_eq!(u.ejections_overflow.load(Ordering::Relaxed), 1);
        assert_eq!(
            u.ejections[Ejection::Consecutive5xx as usize].load(Ordering::Relaxed),
            1
        );
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
