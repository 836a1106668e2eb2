//! Gantry's own fault checks: a hung instance's cost, a graceful stop the
//! gateway never tries, an instance taking traffic again. (Killing, pausing
//! and restarting, and load with a fault in the middle, are the shared steps
//! of `gantry_harness::steps`.)

use std::time::Duration;

use cucumber::{then, when};
use gantry_harness::GantryStack as _;
use gantry_harness::drive::client::Auth;
use gantry_harness::drive::metrics::Scrape;

use super::{counters, eventually};
use crate::world::GantryWorld;

fn index(n: usize) -> usize {
    n.checked_sub(1).expect("user instances count from 1")
}

#[then("no request took longer than twice the request timeout")]
async fn bounded_latency(w: &mut GantryWorld) {
    let timeout = w.request_timeout.expect("a stack with a request timeout");
    let max = w.load().max_latency();
    println!("    slowest request {max:?} (request timeout {timeout:?})");
    assert!(max < timeout * 2, "a request took {max:?}");
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
    let user = w.any_user();
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
