//! Counters and a latency histogram, lock-free, rendered as Prometheus text.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::routes::SERVICES;
use crate::shard::Sharded;

/// Histogram bucket upper bounds, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// Requests by route (services, then "none") and status class, and latency;
/// one copy per worker (see [`crate::shard`]).
#[derive(Default)]
pub struct Metrics {
    shards: Sharded<Counts>,
}

#[derive(Default)]
struct Counts {
    requests: [[AtomicU64; 5]; SERVICES.len() + 1],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Metrics {
    pub fn new(workers: usize) -> Self {
        Self {
            shards: Sharded::new(workers),
        }
    }

    /// Records one answered request. `service` is `None` for the gateway's own answers.
    pub fn record(&self, service: Option<usize>, status: u16, elapsed: Duration) {
        self.shards.local().record(service, status, elapsed);
    }

    fn sum(&self, read: impl Fn(&Counts) -> &AtomicU64) -> u64 {
        self.shards.all().map(|c| read(c).load(Ordering::Relaxed)).sum()
    }
}

impl Counts {
    fn record(&self, service: Option<usize>, status: u16, elapsed: Duration) {
        let route = service.unwrap_or(SERVICES.len());
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.requests[route][class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn render_requests(&self, out: &mut String) {
        out.push_str("# HELP gantry_gateway_requests_total Requests answered, by route and status class.\n");
        out.push_str("# TYPE gantry_gateway_requests_total counter\n");
        for route in 0..=SERVICES.len() {
            let name = SERVICES.get(route).copied().unwrap_or("none");
            for class in 0..5 {
                let n = self.sum(|c| &c.requests[route][class]);
                let _ = writeln!(
                    out,
                    "gantry_gateway_requests_total{{route=\"{name}\",status=\"{}xx\"}} {n}",
                    class + 1,
                );
            }
        }
        out.push_str("# HELP gantry_gateway_request_duration_seconds Time from request to response headers.\n");
        out.push_str("# TYPE gantry_gateway_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.sum(|c| &c.buckets[i]);
            let _ = writeln!(
                out,
                "gantry_gateway_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.sum(|c| &c.count);
        let _ = writeln!(
            out,
            "gantry_gateway_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.sum(|c| &c.sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "gantry_gateway_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "gantry_gateway_request_duration_seconds_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record(Some(1), 200, Duration::from_micros(300));
        m.record(Some(1), 503, Duration::from_millis(2));
        m.record(None, 404, Duration::from_secs(60));
        let mut out = String::new();
        m.render_requests(&mut out);
        assert!(out.contains("gantry_gateway_requests_total{route=\"user\",status=\"2xx\"} 1"));
        assert!(out.contains("gantry_gateway_requests_total{route=\"user\",status=\"5xx\"} 1"));
        assert!(out.contains("gantry_gateway_requests_total{route=\"none\",status=\"4xx\"} 1"));
        assert!(out.contains("gantry_gateway_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(out.contains("gantry_gateway_request_duration_seconds_bucket{le=\"30\"} 2"));
        assert!(out.contains("gantry_gateway_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
    }
}
