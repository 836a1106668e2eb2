//! The Cucumber suite: `features/*.feature` against a stack the harness
//! starts (`GANTRY_INFRA=local` or `containers`) or one already deployed
//! (`GANTRY_INFRA=external` with `GANTRY_GATEWAY_URL`), run by the library's
//! runner ([`gantry_harness::runner`]) as a team's suite is: reports in
//! `target/cucumber/bdd/`, a failed scenario's logs in
//! `target/gantry/<run>/<scenario>/`. Gantry's own steps are in `steps/`.

mod steps;
mod target;
mod world;

use std::path::Path;

use gantry_harness::runner::Runner;
use world::GantryWorld;

/// Scenarios run at once, sharing one stack (those tagged `@serial` run
/// alone; those that break things start their own).
const MAX_CONCURRENT_SCENARIOS: usize = 4;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    gantry_common::telemetry::init();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    Runner::<GantryWorld>::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("features"))
        .stack(target::builder().users(3))
        .concurrency(MAX_CONCURRENT_SCENARIOS)
        .reports_named("bdd")
        .target_dir(tmp.parent().expect("the target directory"))
        .run_and_exit()
        .await
}
