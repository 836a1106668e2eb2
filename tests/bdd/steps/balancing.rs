//! New instances taking traffic. (Load, its spread and which instances
//! answered are the shared steps of `gantry_harness::steps`.)

use std::time::Duration;

use cucumber::{then, when};
use gantry_harness::GantryStack as _;
use gantry_harness::drive::client::Auth;

use super::eventually;
use crate::world::GantryWorld;

#[when(regex = r"^a (\d+)(?:st|nd|rd|th) user instance starts and passes its health check$")]
async fn another_instance(w: &mut GantryWorld, ordinal: usize) {
    let stack = w.stack();
    let id = stack.add_user().await.expect("starting another user instance");
    assert_eq!(id, format!("user-{ordinal}"));
    w.added = Some((id, tokio::time::Instant::now()));
}

#[then("it answers requests soon after it passed")]
async fn answers_soon(w: &mut GantryWorld) {
    let (id, passed) = w.added.clone().expect("an added instance");
    let user = w.any_user();
    eventually(&format!("{id} to answer"), Duration::from_secs(10), || {
        let user = user.clone();
        let id = id.clone();
        async move {
            user.get("/users/me", Auth::Bearer)
                .await
                .is_ok_and(|a| a.status == 200 && a.instance() == Some(id.as_str()))
        }
    })
    .await;
    let took = passed.elapsed();
    println!("    {id} took traffic {} ms after it passed", took.as_millis());
    // Discovery is pushed by blocking queries; a polling watch would take far longer.
    assert!(took < Duration::from_secs(2), "{id} waited {took:?} for traffic");
}
