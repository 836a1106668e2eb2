//! The Cucumber suite: `features/*.feature` against a stack the harness
//! starts (`GANTRY_INFRA=local`, the default) or one already deployed
//! (`GANTRY_INFRA=external` with `GANTRY_GATEWAY_URL`). Reports go to
//! `target/cucumber/` as JUnit XML and Cucumber JSON; a failed scenario's
//! stack logs go to `target/gantry/<run>/<scenario>/` and their tails into
//! the JUnit report (see `evidence.rs`).

mod evidence;
mod steps;
mod target;
mod world;

use std::fs::File;
use std::sync::Arc;

use cucumber::event::ScenarioFinished;
use cucumber::writer::Stats as _;
use cucumber::{World as _, WriterExt as _, writer};

use gantry_harness::runner::mode::NameFilter;
use gantry_harness::runner::{Evidence, Selection, needs};
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
    // `GANTRY_REPORTS` keeps the reports of one run apart from another's
    // (CI runs the suite against several stacks).
    let reports = std::env::var_os("GANTRY_REPORTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../cucumber"));
    std::fs::create_dir_all(&reports).unwrap_or_else(|e| panic!("creating {}: {e}", reports.display()));
    let junit = File::create(reports.join("junit.xml")).expect("creating the JUnit report");
    let json = File::create(reports.join("cucumber.json")).expect("creating the Cucumber JSON report");
    // `GANTRY_FEATURES` runs another directory of feature files (the
    // evidence test runs one made to fail).
    let features = std::env::var_os("GANTRY_FEATURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("features"));
    // `target/gantry/`: beside `target/tmp/`, without a `..` in the printed paths.
    let target_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory");
    let evidence = Arc::new(Evidence::new(&target_dir.join("gantry")));

    let parsed = needs::features(&features);
    if let Err(e) = needs::check_tags(&parsed) {
        eprintln!("bdd: {e}");
        std::process::exit(2);
    }
    let skipped = mode.not_run(&parsed);
    for s in &skipped {
        println!("{s}");
    }
    // Cucumber replaces the filter given to `filter_run` with a `--name` or
    // `--tags` from the command line; taken out here and applied on top of
    // the mode's own, a command-line filter narrows what runs, never widens it.
    let mut cli = cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::parsed();
    let selection = Selection {
        mode,
        name: cli
            .re_filter
            .take()
            .map(|re| Box::new(move |name: &str| re.is_match(name)) as NameFilter),
        tags: cli.tags_filter.take(),
    };
    // Gantry's own steps (tests/bdd/steps) and the library's shared ones.
    let writer = GantryWorld::cucumber()
        .steps(gantry_harness::steps::collection::<GantryWorld>())
        .max_concurrent_scenarios(MAX_CONCURRENT_SCENARIOS)
        .with_writer(
            writer::Basic::stdout()
                .summarized()
                .tee::<GantryWorld, _>(writer::JUnit::for_tee(junit, 0))
                .tee::<GantryWorld, _>(writer::Json::for_tee(json))
                .normalized(),
        )
        .fail_on_skipped()
        .before(|_, _, _, world| {
            Box::pin(async move {
                world.log_marks = target::shared_log_marks().await;
            })
        })
        .after({
            let evidence = evidence.clone();
            move |_, _, scenario, finished, world| {
                let evidence = evidence.clone();
                Box::pin(async move {
                    if let Some(world) = world {
                        evidence.keep_timelines(scenario, &world.steps.timelines);
                        // Before the stack stops: a container's log goes with it.
                        if matches!(
                            finished,
                            ScenarioFinished::StepFailed(..) | ScenarioFinished::BeforeHookFailed(_)
                        ) {
                            evidence::keep(&evidence, scenario, world).await;
                        }
                        world.tear_down().await;
                    }
                })
            }
        })
        .with_cli(cli)
        .filter_run(features.clone(), move |feature, rule, scenario| {
            selection.runs(feature, rule, scenario)
        })
        .await;
    target::stop_shared().await;

    let failed = writer.execution_has_failed();
    let ran = writer.passed_steps() + writer.skipped_steps() + writer.failed_steps();
    // Closes the reports (the JUnit one is written whole when the run ends).
    drop(writer);
    evidence.amend_junit(&reports.join("junit.xml"), &skipped);
    println!(
        "bdd: {} scenarios skipped: their @needs are not met here (listed above as SKIPPED); reports in {}",
        skipped.len(),
        reports.display()
    );
    if failed {
        std::process::exit(1);
    }
    // A selection that runs nothing proves nothing: not a pass.
    if ran == 0 {
        eprintln!("bdd: no scenario ran: the --name, --tags or --input given selects none this mode can run");
        std::process::exit(1);
    }
}
