//! Step definitions, one file per capability.

mod balancing;
mod faults;
mod identity;
mod input;
mod stack;

use std::future::Future;
use std::time::Duration;

/// Polls `check` until it is true or `within` passes; panics with `what`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one Prometheus series in a scrape (0 when absent).
pub fn metric(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The gateway's user-service `(retries, ejections)` counters.
pub fn counters(scrape: &str) -> (f64, f64) {
    (
        metric(scrape, "gantry_gateway_upstream_retries_total{service=\"user\"}"),
        metric(scrape, "gantry_gateway_upstream_ejections_total{service=\"user\"}"),
    )
}

/// A user's name made unique for this run, so scenarios sharing a stack do not collide.
pub fn unique(name: &str) -> String {
    format!(
        "{name}-{}",
        gantry_common::jwt::random_id(4).to_lowercase().replace(['-', '_'], "x")
    )
}
