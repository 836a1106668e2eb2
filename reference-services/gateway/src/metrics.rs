//! Counters and a latency histogram, lock-free, rendered as Prometheus text.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::shard::Sharded;
use crate::snapshot::Routing;
use crate::upstream::Upstream;

/// Histogram bucket upper bounds, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// The gateway's own answers (route "none") by status class, and latency
/// of all requests; one copy per worker (see [`crate::shard`]). Requests on
/// a route are counted by their service's [`Upstream`], which survives reloads.
#[derive(Default)]
pub struct Metrics {
    shards: Sharded<Counts>,
}

#[derive(Default)]
struct Counts {
    unrouted: [AtomicU64; 5],
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
    pub fn record(&self, service: Option<&Upstream>, status: u16, elapsed: Duration) {
        match service {
            Some(upstream) => upstream.record(status),
            None => {
                let class = usize::from((status / 100).clamp(1, 5)) - 1;
                self.shards.local().unrouted[class].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.shards.local().record(elapsed);
    }

    fn sum(&self, read: impl Fn(&Counts) -> &AtomicU64) -> u64 {
        self.shards.all().map(|c| read(c).load(Ordering::Relaxed)).sum()
    }
}

impl Counts {
    fn record(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Requests by route (named by the service of the current `routing`,
    /// then "none" for the gateway's own answers) and latency.
    pub fn render_requests(&self, routing: &Routing, out: &mut String) {
        out.push_str("# HELP gantry_gateway_requests_total Requests answered, by route and status class.\n");
        out.push_str("# TYPE gantry_gateway_requests_total counter\n");
        let services = routing.services.iter().map(|s| (&*s.name, Some(&*s.upstream)));
        for (name, upstream) in services.chain([("none", None)]) {
            for class in 0..5 {
                let n = match upstream {
                    Some(u) => u.answered(class),
                    None => self.sum(|c| &c.unrouted[class]),
                };
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
        let cfg = crate::GatewayConfig::from_env().expect("the default config");
        let routing = Routing::build(&crate::declared::Declared::reference(), &cfg, None);
        let user = &routing.by_name("user").unwrap().upstream;
        let m = Metrics::default();
        m.record(Some(user), 200, Duration::from_micros(300));
        m.record(Some(user), 503, Duration::from_millis(2));
        m.record(None, 404, Duration::from_secs(60));
        let mut out = String::new();
        m.render_requests(&routing, &mut out);
        assert!(out.contains("gantry_gateway_requests_total{route=\"auth\",status=\"2xx\"} 0"));
        assert!(out.contains("gantry_gateway_requests_total{route=\"user\",status=\"2xx\"} 1"));
        assert!(out.contains("gantry_gateway_requests_total{route=\"user\",status=\"5xx\"} 1"));
        assert!(out.contains("gantry_gateway_requests_total{route=\"none\",status=\"4xx\"} 1"));
        assert!(out.contains("gantry_gateway_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(out.contains("gantry_gateway_request_duration_seconds_bucket{le=\"30\"} 2"));
        assert!(out.contains("gantry_gateway_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
    }
}
