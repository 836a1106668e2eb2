//! Load, and how it is spread.

use std::time::Duration;

use cucumber::{then, when};
use gantry_harness::load::{self, LoadSpec};
use gantry_harness::stats::{chi_square_critical_p001, chi_square_uniform};

use super::eventually;
use crate::world::GantryWorld;

pub fn bearer_load(w: &GantryWorld, name: &str, path: &str) -> LoadSpec {
    let token = w.user(name).token.clone().expect("a token");
    LoadSpec::get(format!("{}{path}", w.gateway())).header("authorization", &format!("Bearer {token}"))
}

#[when(regex = r#"^"(\w+)" sends (\d+) requests to (/\S+) with (\d+) concurrent callers$"#)]
async fn sends(w: &mut GantryWorld, name: String, n: usize, path: String, callers: usize) {
    let spec = bearer_load(w, &name, &path)
        .requests(n)
        .concurrency(callers)
        .duration(Duration::from_secs(60));
    let report = load::run(spec).await;
    println!("    {}", report.summary());
    assert_eq!(report.samples.len(), n, "the load stopped early: {}", report.summary());
    w.load = Some(report);
}

#[then("every answer is 200")]
async fn every_answer_is_200(w: &mut GantryWorld) {
    if let Some(report) = &w.load {
        let failures = report.failures();
        assert!(
            failures.is_empty(),
            "{} failed, first: {:?}",
            failures.len(),
            failures.first()
        );
    }
    for a in &w.answers {
        assert_eq!(a.status, 200, "{}", a.body);
    }
    assert!(w.load.is_some() || !w.answers.is_empty(), "no requests were made");
}

#[then(regex = r"^the answers are spread evenly over (\d+) instances by a chi-square test$")]
async fn spread_evenly(w: &mut GantryWorld, instances: usize) {
    let by = w.load().by_instance();
    assert_eq!(by.len(), instances, "{by:?}");
    let counts: Vec<f64> = by.values().map(|&c| c as f64).collect();
    let chi2 = chi_square_uniform(&counts);
    let critical = chi_square_critical_p001(instances - 1);
    println!("    split {by:?}: chi-square {chi2:.2} (critical {critical} at p = 0.001)");
    assert!(chi2 < critical, "uneven: {by:?}, chi-square {chi2:.2}");
}

#[then(regex = r"^the answers came from (\d+) instances$")]
async fn came_from(w: &mut GantryWorld, n: usize) {
    let by = w.load().by_instance();
    assert_eq!(by.len(), n, "{by:?}");
}

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
    let name = w.users.keys().next().cloned().expect("a user");
    let user = w.user(&name).clone();
    eventually(&format!("{id} to answer"), Duration::from_secs(10), || {
        let user = user.clone();
        let id = id.clone();
        async move {
            user.get("/users/me", gantry_harness::client::Auth::Bearer)
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

#[then(regex = r"^no answer came from user instance (\d+)$")]
async fn none_from(w: &mut GantryWorld, n: usize) {
    let id = format!("user-{n}");
    let by = w.load().by_instance();
    assert!(!by.contains_key(&id), "{id} answered: {by:?}");
}
