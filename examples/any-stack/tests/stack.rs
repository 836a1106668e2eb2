//! The team's scenarios (`features/*.feature`), written with Gantry's steps
//! alone, against the stack of `stack.toml`. One stack serves the whole run,
//! since starting it costs more than all the scenarios. They take turns with
//! it, so the one that kills an instance breaks no other; it starts the
//! instance again itself (part of what it proves), and should it fail
//! half-way, the after-hook does. JUnit report: `target/cucumber/any-stack.xml`.

use std::path::Path;

use cucumber::writer::Stats as _;
use cucumber::{World as _, WriterExt as _, writer};
use gantry_harness::Stack;
use gantry_harness::stack::file::StackFile;
use gantry_harness::steps::{Lease, SharedStack, StackWorld, StepConfig, StepState};

#[derive(Debug, Default, cucumber::World)]
struct World {
    steps: StepState,
    stack: Option<Lease>,
}

impl StackWorld for World {
    fn gateway_url(&self) -> String {
        self.stack.as_ref().map(Lease::gateway_url).unwrap_or_default()
    }
    fn step_state(&mut self) -> &mut StepState {
        &mut self.steps
    }
    fn step_config(&self) -> StepConfig {
        let instance_header = "X-Served-By".into();
        StepConfig {
            instance_header,
            ..StepConfig::default()
        }
    }
    fn stack(&mut self) -> Option<&mut Stack> {
        self.stack.as_mut().map(Lease::stack)
    }
}

#[tokio::main]
async fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let start = async {
        let file = StackFile::load(&here.join("stack.toml"))?
            .with_program("notes", env!("CARGO_BIN_EXE_notes"))?
            .infra_from_env()?;
        let builder = file.builder(gantry_harness::gantry_binary()?);
        Ok::<_, Box<dyn std::error::Error>>(builder.start(&mut |p| println!("stack: {p:?}")).await?)
    };
    let shared = SharedStack::new(start.await.unwrap_or_else(|e| {
        eprintln!("the example stack did not start: {e}");
        std::process::exit(1)
    }));
    let reports = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../cucumber");
    std::fs::create_dir_all(&reports).expect("creating the reports' directory");
    let junit = std::fs::File::create(reports.join("any-stack.xml")).expect("creating the JUnit report");

    let lender = shared.clone();
    let run = World::cucumber()
        .steps(gantry_harness::steps::collection::<World>())
        .with_writer(
            writer::Basic::stdout()
                .summarized()
                .tee::<World, _>(writer::JUnit::for_tee(junit, 0))
                .normalized(),
        )
        // After `with_writer`, which replaces the writer and with it this check:
        // a step no phrase matches (a typo) fails the run instead of skipping.
        .fail_on_skipped()
        .before(move |_, _, _, world| {
            let lender = lender.clone();
            Box::pin(async move { world.stack = Some(lender.lend().await) })
        })
        .after(|_, _, _, _, world| {
            Box::pin(async move {
                if let Some(lease) = world.and_then(|w| w.stack.as_mut()) {
                    lease.mend().await.unwrap_or_else(|e| panic!("mending the stack: {e}"));
                }
            })
        })
        .run(here.join("features"))
        .await;

    shared.stop().await.expect("stopping the example stack");
    if run.execution_has_failed() || run.skipped_steps() > 0 || run.passed_steps() == 0 {
        std::process::exit(1);
    }
}
