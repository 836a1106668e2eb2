//! Step definitions, one file per capability.

mod abuse;
mod balancing;
mod configuration;
mod edge;
mod faults;
mod identity;
mod input;
pub(crate) mod routes;
mod sick;
mod stack;
mod tls;
mod tokens;
mod trust;
mod upstream;

use std::future::Future;
use std::time::Duration;

use gantry_harness::drive::metrics::Scrape;
use gantry_harness::run::wait;

/// Polls `check` until it is true or `within` passes (the harness's
/// [`wait::until`]); panics with `what`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let check = || {
        let done = check();
        async move { Ok(done.await) }
    };
    if let Err(e) = wait::until(what, within, None, check).await {
        panic!("{e}");
    }
}

/// The gateway's user-service `(retries, ejections)` counters, scraped now
/// from its admin listener `admin`.
pub async fn counters(admin: &str) -> (f64, f64) {
    let scrape = Scrape::of(admin).await.expect("the gateway's /metrics");
    (
        scrape.value("gantry_gateway_upstream_retries_total{service=\"user\"}"),
        scrape.sum("gantry_gateway_upstream_ejections_total", "service=\"user\""),
    )
}

/// A user's name made unique for this run, so scenarios sharing a stack do not collide.
pub fn unique(name: &str) -> String {
    format!(
        "{name}-{}",
        gantry_common::jwt::random_id(4).to_lowercase().replace(['-', '_'], "x")
    )
}
