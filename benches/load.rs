//! Throughput and tail latency under load: the direct call, the gateway with
//! a bearer token, and nginx, on one stack in one run.
//!
//! 1. One request at a time, the cases taking turns request by request so a
//!    noisy neighbour slows them all alike: p50/p90/p99 and the latency each
//!    proxy adds over calling the instance directly.
//! 2. Closed loop: the most requests per second with 16 and 64 connections,
//!    and the CPU each request cost the process serving it (from /proc).
//! 3. Open loop: requests sent on a fixed schedule at 50% and 80% of the
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

use fixture::cpu::{self, CpuTime};
use fixture::{Case, HttpClient};
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use tokio::time::Instant;

const CONNECTIONS: [usize; 2] = [16, 64];
const LOAD_LEVELS: [u32; 2] = [50, 80];
/// Which direct case each proxied case is compared with.
const BASELINE: [(&str, &str); 6] = [
    ("2 ", "7 "),
    ("3 ", "1 "),
    ("4 ", "1 "),
    ("5 ", "1 "),
    ("6 ", "1 "),
    ("8 ", "7 "),
];

async fn send(client: &HttpClient, case: &Case) -> bool {
    match client.request(case.request()).await {
        Ok(resp) => {
            let ok = resp.status().is_success();
            ok && resp.into_body().collect().await.is_ok()
        }
        Err(_) => false,
    }
}

/// What a closed-loop run measured.
struct Closed {
    rps: f64,
    failed: u64,
    /// CPU per request of the case's first hop, in µs.
    cpu: Option<CpuTime>,
}

/// Requests per second with `connections` callers each sending back to back.
async fn closed_loop(case: &Case, connections: usize, duration: Duration) -> Closed {
    let client = fixture::client(connections);
    let cpu_before = case.pgid.and_then(cpu::group);
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
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_before
        .zip(case.pgid.and_then(cpu::group))
        .map(|(before, after)| (after - before).per_request_us(ok + failed));
    Closed {
        rps: ok as f64 / elapsed,
        failed,
        cpu,
    }
}

/// Latencies (µs) of one request at a time per case, the cases taking turns
/// request by request for `duration`, each over its own keep-alive
/// connection, on a single-threaded runtime as a lone caller would be.
fn one_at_a_time(cases: Vec<Case>, duration: Duration) -> Vec<(Histogram<u64>, u64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let clients: Vec<HttpClient> = cases.iter().map(|_| fixture::client(1)).collect();
        let mut results: Vec<_> = cases
            .iter()
            .map(|_| {
                (
                    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
                    0u64,
                )
            })
            .collect();
        // Open every connection before timing anything.
        for (case, client) in cases.iter().zip(&clients) {
            send(client, case).await;
        }
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            for ((case, client), (hist, failed)) in cases.iter().zip(&clients).zip(&mut results) {
                let sent = Instant::now();
                if !send(client, case).await {
                    *failed += 1;
                }
                let _ = hist.record(sent.elapsed().as_micros().max(1) as u64);
            }
        }
        results
    })
}

fn cpu_cell(cpu: Option<CpuTime>) -> String {
    cpu.map_or_else(
        || "–".to_owned(),
        |c| format!("{:.1} ({:.1} + {:.1})", c.total(), c.user, c.system),
    )
}

/// What 1.25× nginx's throughput would leave the gateway to spend. The load
/// generator, the proxy and the upstream saturate the machine's cores, so
/// each request costs `cores / rps` of CPU in all; serving `ratio` times as
/// many leaves `cores / (ratio * rps)`, of which only nginx's share minus
/// the difference is the proxy's.
fn budget_for_target(nginx: &Closed, ratio: f64) -> Option<String> {
    let cpu = nginx.cpu?;
    let cores = std::thread::available_parallelism().ok()?.get() as f64;
    let per_request = cores / nginx.rps * 1e6;
    let budget = cpu.total() - per_request * (1.0 - 1.0 / ratio);
    Some(format!(
        "(at {ratio}× the machine's {per_request:.0} µs of CPU per request shrinks to {:.0}: the gateway could spend \
         {budget:.1} µs, while nginx spends {:.1} µs in the kernel alone)",
        per_request / ratio,
        cpu.system
    ))
}

/// "; CPU per request gateway/nginx R×" when both were measured.
fn cpu_ratio(gateway: &Closed, nginx: &Closed) -> String {
    gateway.cpu.zip(nginx.cpu).map_or_else(String::new, |(g, n)| {
        format!("; CPU per request gateway/nginx {:.2}×", g.total() / n.total())
    })
}

fn verdict(holds: bool) -> &'static str {
    if holds { "holds" } else { "does not hold" }
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
    let (one_for, closed_for, open_for) = if quick {
        (
            Duration::from_millis(300),
            Duration::from_millis(300),
            Duration::from_millis(300),
        )
    } else {
        (Duration::from_secs(8), Duration::from_secs(4), Duration::from_secs(5))
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let fixture = fixture::Fixture::start().await;
        let probe = fixture::client(1);
        for case in &fixture.cases {
            fixture::check(&probe, case).await;
        }
        let name = |prefix: &str| fixture.case(prefix).map(|c| c.name);
        let mut out = String::from("# Gantry load benchmark\n\n");

        out.push_str("## One request at a time (cases interleaved)\n\n");
        out.push_str("| case | p50 µs | p90 µs | p99 µs | p50 added over direct µs | failed |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|\n");
        let all = fixture.cases.clone();
        let results = tokio::task::spawn_blocking(move || one_at_a_time(all, one_for))
            .await
            .expect("latency run");
        let mut p50 = std::collections::HashMap::new();
        for (case, (hist, _)) in fixture.cases.iter().zip(&results) {
            p50.insert(case.name, hist.value_at_quantile(0.5) as f64);
        }
        let added = |prefix: &str| -> Option<f64> {
            let (_, base) = BASELINE.iter().find(|(p, _)| *p == prefix)?;
            Some(p50[name(prefix)?] - p50[name(base)?])
        };
        for (case, (hist, failed)) in fixture.cases.iter().zip(&results) {
            let prefix = &case.name[..2];
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {failed} |",
                case.name,
                hist.value_at_quantile(0.5),
                hist.value_at_quantile(0.9),
                hist.value_at_quantile(0.99),
                added(prefix).map_or_else(|| "–".to_owned(), |a| format!("{a:.0}")),
            );
        }

        let cases: Vec<Case> = ["1 ", "3 ", "6 ", "7 ", "2 ", "8 "]
            .iter()
            .filter_map(|p| fixture.case(p).cloned())
            .collect();
        out.push_str("\n## Closed loop: maximum throughput\n\n");
        out.push_str("| case | connections | req/s | CPU µs/req of the first hop (user + sys) | failed |\n");
        out.push_str("|---|---:|---:|---:|---:|\n");
        let mut max = std::collections::HashMap::new();
        for case in &cases {
            for conns in CONNECTIONS {
                let run = closed_loop(case, conns, closed_for).await;
                let _ = writeln!(
                    out,
                    "| {} | {conns} | {:.0} | {} | {} |",
                    case.name,
                    run.rps,
                    cpu_cell(run.cpu),
                    run.failed
                );
                max.insert((case.name, conns), run);
            }
        }
        let gateway = name("3 ").expect("the bearer case");
        let nginx = name("6 ");
        let gateway_max = CONNECTIONS.iter().map(|c| max[&(gateway, *c)].rps).fold(0.0, f64::max);

        out.push_str("\n## Open loop at a fixed rate (latency from the intended send time)\n\n");
        out.push_str(
            "| case | rate | p50 µs | p99 µs | p99.9 µs | max µs | failed |\n|---|---:|---:|---:|---:|---:|---:|\n",
        );
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
            }
        }

        out.push_str("\n## Targets\n\n");
        if let (Some(gw), Some(ng)) = (added("3 "), added("6 ")) {
            let _ = writeln!(
                out,
                "- p50 added at one connection, bearer: gateway {gw:.0} µs, nginx {ng:.0} µs (target: gateway ≤ nginx): {}",
                verdict(gw <= ng)
            );
        }
        if let (Some(gw), Some(ng)) = (added("2 "), added("8 ")) {
            let _ = writeln!(
                out,
                "- the same on the cheap upstream (auth JWKS, no identity): gateway {gw:.0} µs, nginx {ng:.0} µs: {}",
                verdict(gw <= ng)
            );
        }
        if let (Some(session), Some(bearer)) = (name("4 "), name("3 ")) {
            let ratio = p50[session] / p50[bearer];
            let _ = writeln!(
                out,
                "- session cache hit p50 / bearer p50: {ratio:.2} (target ≤ 1.10): {}",
                verdict(ratio <= 1.10)
            );
        }
        if let Some(nginx) = nginx {
            for conns in CONNECTIONS {
                let (g, n) = (&max[&(gateway, conns)], &max[&(nginx, conns)]);
                let ratio = g.rps / n.rps;
                let cpu = cpu_ratio(g, n);
                let _ = writeln!(
                    out,
                    "- throughput gateway/nginx at {conns} connections: {ratio:.2}× (target ≥ 1.25×): {}{cpu}",
                    verdict(ratio >= 1.25)
                );
                if let Some(budget) = budget_for_target(n, 1.25) {
                    let _ = writeln!(out, "  {budget}");
                }
            }
            if let (Some(gw), Some(ng)) = (name("2 "), name("8 ")) {
                for conns in CONNECTIONS {
                    let (g, n) = (&max[&(gw, conns)], &max[&(ng, conns)]);
                    let cpu = cpu_ratio(g, n);
                    let _ = writeln!(
                        out,
                        "- throughput gateway/nginx on the cheap upstream at {conns} connections: {:.2}×{cpu}",
                        g.rps / n.rps
                    );
                }
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
