//! Throughput and tail latency under load: the direct call, the gateway with
//! a bearer token, and nginx, on one stack in one run.
//!
//! 1. Closed loop: the most requests per second with 16 and 64 connections.
//! 2. Open loop: requests sent on a fixed schedule at 50% and 80% of the
//!    gateway's maximum, latency measured from when each request *should*
//!    have been sent, so a stall counts against every request it delayed
//!    (no coordinated omission); p50/p99/p99.9 from an HDR histogram.
//!
//! Loopback only, bounded in time. `cargo bench --bench load -- --test`
//! runs every step briefly. The table is written to `target/gantry-bench.md`.

mod fixture;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fixture::{Case, HttpClient};
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use tokio::time::Instant;

const CONNECTIONS: [usize; 2] = [16, 64];
const LOAD_LEVELS: [u32; 2] = [50, 80];

async fn send(client: &HttpClient, case: &Case) -> bool {
    match client.request(case.request()).await {
        Ok(resp) => {
            let ok = resp.status().is_success();
            ok && resp.into_body().collect().await.is_ok()
        }
        Err(_) => false,
    }
}

/// Requests per second with `connections` callers each sending back to back.
async fn closed_loop(case: &Case, connections: usize, duration: Duration) -> (f64, u64) {
    let client = fixture::client(connections);
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, case) = (client.clone(), case.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, 0u64);
                while Instant::now() < deadline {
                    if send(&client, &case).await {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for w in workers {
        let (o, f) = w.await.expect("worker");
        ok += o;
        failed += f;
    }
    (ok as f64 / started.elapsed().as_secs_f64(), failed)
}

/// Latencies (µs) of requests sent on a fixed schedule of `rate` per second.
async fn open_loop(case: &Case, connections: usize, rate: f64, duration: Duration) -> (Histogram<u64>, u64) {
    let client = fixture::client(connections);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + duration;
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, case, next) = (client.clone(), case.clone(), next.clone());
            tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
                let mut failed = 0;
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let intended = start + interval.mul_f64(k as f64);
                    if intended >= end {
                        break;
                    }
                    tokio::time::sleep_until(intended).await;
                    if !send(&client, &case).await {
                        failed += 1;
                    }
                    let _ = hist.record(intended.elapsed().as_micros().max(1) as u64);
                }
                (hist, failed)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut failed = 0;
    for w in workers {
        let (h, f) = w.await.expect("worker");
        all.add(h).expect("same bounds");
        failed += f;
    }
    (all, failed)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let (closed_for, open_for) = if quick {
        (Duration::from_millis(300), Duration::from_millis(300))
    } else {
        (Duration::from_secs(4), Duration::from_secs(5))
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let fixture = fixture::Fixture::start().await;
        let probe = fixture::client(1);
        for case in &fixture.cases {
            fixture::check(&probe, case).await;
        }
        let cases: Vec<Case> = ["1 ", "3 ", "6 ", "7 ", "2 ", "8 "]
            .iter()
            .filter_map(|p| fixture.case(p).cloned())
            .collect();

        let mut out = String::from("# Gantry load benchmark\n\n## Closed loop: maximum throughput\n\n");
        out.push_str("| case | connections | req/s | failed |\n|---|---:|---:|---:|\n");
        let mut max = std::collections::HashMap::new();
        for case in &cases {
            for conns in CONNECTIONS {
                let (rps, failed) = closed_loop(case, conns, closed_for).await;
                let _ = writeln!(out, "| {} | {conns} | {rps:.0} | {failed} |", case.name);
                max.insert((case.name, conns), rps);
            }
        }
        let gateway = fixture.case("3 ").expect("the bearer case").name;
        let nginx = fixture.case("6 ").map(|c| c.name);
        let gateway_max = CONNECTIONS.iter().map(|c| max[&(gateway, *c)]).fold(0.0, f64::max);

        out.push_str("\n## Open loop at a fixed rate (latency from the intended send time)\n\n");
        out.push_str(
            "| case | rate | p50 µs | p99 µs | p99.9 µs | max µs | failed |\n|---|---:|---:|---:|---:|---:|---:|\n",
        );
        let mut p50 = std::collections::HashMap::new();
        for pct in LOAD_LEVELS {
            let rate = gateway_max * f64::from(pct) / 100.0;
            for case in cases.iter().filter(|c| ["1 ", "3 ", "6 "].iter().any(|p| c.name.starts_with(p))) {
                let (h, failed) = open_loop(case, 64, rate, open_for).await;
                let _ = writeln!(
                    out,
                    "| {} | {rate:.0}/s ({pct}% of gateway max) | {} | {} | {} | {} | {failed} |",
                    case.name,
                    h.value_at_quantile(0.5),
                    h.value_at_quantile(0.99),
                    h.value_at_quantile(0.999),
                    h.max()
                );
                p50.insert((case.name, pct), h.value_at_quantile(0.5) as f64);
            }
        }

        out.push_str("\n## Ratios\n\n");
        if let Some(nginx) = nginx {
            for conns in CONNECTIONS {
                let ratio = max[&(gateway, conns)] / max[&(nginx, conns)];
                let _ = writeln!(
                    out,
                    "- throughput gateway/nginx at {conns} connections: {ratio:.2}× (target ≥ 1.25×)"
                );
            }
            if let (Some(gw), Some(ng)) = (fixture.case("2 "), fixture.case("8 ")) {
                for conns in CONNECTIONS {
                    let ratio = max[&(gw.name, conns)] / max[&(ng.name, conns)];
                    let _ = writeln!(
                        out,
                        "- throughput gateway/nginx on the cheap upstream (auth JWKS, no identity) at {conns} connections: {ratio:.2}×"
                    );
                }
            }
            let direct = fixture.case("1 ").expect("the direct case").name;
            for pct in LOAD_LEVELS {
                let added_gw = p50[&(gateway, pct)] - p50[&(direct, pct)];
                let added_nginx = p50[&(nginx, pct)] - p50[&(direct, pct)];
                let _ = writeln!(
                    out,
                    "- p50 added over direct at {pct}% load: gateway {added_gw:.0} µs, nginx {added_nginx:.0} µs"
                );
            }
        } else {
            out.push_str("- nginx is not installed: no comparison\n");
        }
        if quick {
            out.push_str("\n(quick run: `--test`; figures are not meaningful)\n");
        }
        println!("{out}");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../gantry-bench.md");
        std::fs::write(&path, &out).expect("writing the table");
        println!("written to {}", path.display());
        fixture.stop().await;
    });
}
