//! Gateway latency, one request at a time over a keep-alive connection,
//! side by side with a direct call to the same instance and with nginx in
//! front of it, all in one run so the ratios hold on a noisy machine.

#[allow(dead_code)] // shared with the load benchmark
mod fixture;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;

fn latency(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fixture = rt.block_on(fixture::Fixture::start());
    let client = fixture::client(1);
    let mut group = c.benchmark_group("latency");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for case in &fixture.cases {
        rt.block_on(fixture::check(&client, case));
        group.bench_function(case.name, |b| {
            b.to_async(&rt).iter(|| async {
                let resp = client.request(case.request()).await.expect("request");
                let body = resp.into_body().collect().await.expect("body");
                std::hint::black_box(body);
            })
        });
    }
    group.finish();
    rt.block_on(fixture.stop());
}

criterion_group!(benches, latency);
criterion_main!(benches);
