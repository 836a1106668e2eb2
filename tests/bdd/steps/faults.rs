//! Killing, stopping, pausing and restarting instances.

use std::time::Duration;

use cucumber::{then, when};
use gantry_harness::client::Auth;
use gantry_harness::load;
use gantry_harness::metrics::Scrape;

use super::{balancing::bearer_load, counters, eventually};
use crate::world::GantryWorld;

fn index(n: usize) -> usize {
    n.checked_sub(1).expect("user instances count from 1")
}

#[when(
    regex = r#"^"(\w+)" loads (/\S+) with (\d+) concurrent callers for (\d+) seconds, and user instance (\d+) is (killed|paused) after (\d+) seconds?$"#
)]
// One argument per capture of the step's text.
#[allow(clippy::too_many_arguments)]
async fn load_with_fault(
    w: &mut GantryWorld,
    name: String,
    path: String,
    callers: usize,
    secs: u64,
    victim: usize,
    fault: String,
    after: u64,
) {
    let spec = bearer_load(w, &name, &path)
        .concurrency(callers)
        .duration(Duration::from_secs(secs));
    let running = tokio::spawn(load::run(spec));
    tokio::time::sleep(Duration::from_secs(after)).await;
    let process = &mut w.stack().users_mut()[index(victim)];
    match fault.as_str() {
        "killed" => process.kill().await.expect("SIGKILL"),
        _ => process.pause().expect("SIGSTOP"),
    }
    let report = running.await.expect("the load task");
    println!("    {}", report.summary());
    w.load = Some(report);
}

#[then("no request failed")]
async fn no_request_failed(w: &mut GantryWorld) {
    let report = w.load();
    let failures = report.failures();
    assert!(
        failures.is_empty(),
        "{} of {} failed, first: {:?}",
        failures.len(),
        report.samples.len(),
        failures.first()
    );
    let (retries, ejections) = counters(&w.admin()).await;
    println!("    the gateway retried {retries} times and ejected {ejections} times");
}

#[then("no request took longer than twice the request timeout")]
async fn bounded_latency(w: &mut GantryWorld) {
    let timeout = w.request_timeout.expect("a stack with a request timeout");
    let max = w.load().max_latency();
    println!("    slowest request {max:?} (request timeout {timeout:?})");
    assert!(max < timeout * 2, "a request took {max:?}");
}

#[then(regex = r"^user instance (\d+) leaves the passing set within its TTL$")]
async fn leaves_passing(w: &mut GantryWorld, n: usize) {
    let id = format!("user-{n}");
    let ttl = w.target().check_ttl;
    let registry = w.stack().registry();
    // The load ran for a while after the kill; the instance must be gone by now
    // or within one more TTL, and never linger.
    eventually(&format!("{id} to leave ?passing"), ttl + Duration::from_secs(1), || {
        let registry = registry.clone();
        let id = id.clone();
        async move {
            registry
                .health_service("user", true, None, Duration::ZERO)
                .await
                .is_ok_and(|r| !r.value.iter().any(|i| i.id == id))
        }
    })
    .await;
}

#[when(regex = r"^user instance (\d+) (starts again|resumes)$")]
async fn comes_back(w: &mut GantryWorld, n: usize, how: String) {
    let stack = w.stack();
    let process = &mut stack.users_mut()[index(n)];
    match how.as_str() {
        "resumes" => process.resume().expect("SIGCONT"),
        _ => process.start_again().expect("starting again"),
    }
    stack
        .wait_passing("user", &format!("user-{n}"))
        .await
        .expect("passing again");
}

#[when(regex = r"^user instance (\d+) stops gracefully$")]
async fn stops_gracefully(w: &mut GantryWorld, n: usize) {
    let id = format!("user-{n}");
    let admin = w.admin();
    w.stack().users_mut()[index(n)].stop().await.expect("SIGTERM");
    // It deregistered on the way out; wait until the gateway's snapshot has
    // dropped it, then remember the counters that trying it would move.
    let series = format!("instance=\"{id}\"");
    eventually(&format!("the gateway to drop {id}"), Duration::from_secs(5), || {
        let (admin, series) = (admin.clone(), series.clone());
        async move { Scrape::of(&admin).await.is_ok_and(|s| !s.0.contains(&series)) }
    })
    .await;
    w.counters_before = Some(counters(&admin).await);
}

#[then(regex = r"^the gateway never tried user instance (\d+)$")]
async fn never_tried(w: &mut GantryWorld, _n: usize) {
    assert_eq!(
        Some(counters(&w.admin()).await),
        w.counters_before,
        "retries or ejections happened: it was tried"
    );
}

#[then(regex = r"^user instance (\d+) takes traffic again$")]
async fn takes_traffic(w: &mut GantryWorld, n: usize) {
    takes_traffic_within(w, &format!("user-{n}"), Duration::from_secs(40)).await;
}

/// Waits until a request of the scenario's user, by bearer, is answered 200
/// by instance `id` of the user service.
pub(super) async fn takes_traffic_within(w: &GantryWorld, id: &str, within: Duration) {
    let name = w.users.keys().next().cloned().expect("a user");
    let user = w.user(&name).clone();
    eventually(&format!("{id} to take traffic"), within, || {
        let user = user.clone();
        async move {
            user.get("/users/me", Auth::Bearer)
                .await
                .is_ok_and(|a| a.status == 200 && a.instance() == Some(id))
        }
    })
    .await;
}
