//! The Cucumber suite: `features/*.feature` against a stack the harness
//! starts (`GANTRY_INFRA=local`, the default) or one already deployed
//! (`GANTRY_INFRA=external` with `GANTRY_GATEWAY_URL`). Reports go to
//! `target/cucumber/` as JUnit XML and Cucumber JSON.

mod steps;
mod target;
mod world;

use std::fs::File;

use cucumber::writer::Stats as _;
use cucumber::{World as _, WriterExt as _, writer};

use world::GantryWorld;

/// Scenarios run at once (those tagged `@serial` run alone).
const MAX_CONCURRENT_SCENARIOS: usize = 4;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    gantry_common::telemetry::init();
    let mode = match target::Mode::from_env() {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("bdd: {e}");
            std::process::exit(2);
        }
    };
    let reports = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../cucumber");
    std::fs::create_dir_all(&reports).expect("creating target/cucumber");
    let junit = File::create(reports.join("junit.xml")).expect("creating the JUnit report");
    let json = File::create(reports.join("cucumber.json")).expect("creating the Cucumber JSON report");
    let features = concat!(env!("CARGO_MANIFEST_DIR"), "/features");

    let skipped = mode.report_unrunnable(features);
    let runnable = mode.clone();
    let writer = GantryWorld::cucumber()
        .max_concurrent_scenarios(MAX_CONCURRENT_SCENARIOS)
        .with_writer(
            writer::Basic::stdout()
                .summarized()
                .tee::<GantryWorld, _>(writer::JUnit::for_tee(junit, 0))
                .tee::<GantryWorld, _>(writer::Json::for_tee(json))
                .normalized(),
        )
        .fail_on_skipped()
        .after(|_, _, _, _, world| {
            Box::pin(async move {
                if let Some(world) = world {
                    world.tear_down().await;
                }
            })
        })
        .filter_run(features, move |_, _, scenario| runnable.runs(scenario))
        .await;
    target::stop_shared().await;

    let failed = writer.execution_has_failed();
    println!(
        "bdd: {} scenarios skipped because {}; reports in {}",
        skipped,
        mode.skip_reason(),
        reports.display()
    );
    if failed {
        std::process::exit(1);
    }
}
