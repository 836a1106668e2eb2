//! The team's scenarios (`features/*.feature`), written with Gantry's steps
//! alone, against the stack of `stack.toml`. One stack serves the whole run:
//! starting it costs more than every scenario together. Scenarios run one at
//! a time, each holding the stack, so the one that kills an instance breaks
//! no other; it starts the instance again itself (that is part of what it
//! proves), and should it fail half-way, the after-hook does. Reports:
//! `target/cucumber/any-stack.xml` (JUnit).

use std::path::Path;
use std::sync::Arc;

use cucumber::writer::Stats as _;
use cucumber::{World as _, WriterExt as _, writer};
use gantry_harness::stack::file::StackFile;
use gantry_harness::steps::{StackWorld, StepConfig, StepState};
use gantry_harness::{Progress, Stack};
use tokio::sync::{Mutex, OwnedMutexGuard};

type Shared = Arc<Mutex<Option<Stack>>>;

#[derive(Debug, Default, cucumber::World)]
struct World {
    steps: StepState,
    gateway: String,
    /// The run's stack, held for the length of one scenario.
    stack: Option<OwnedMutexGuard<Option<Stack>>>,
}

impl StackWorld for World {
    fn gateway_url(&self) -> String {
        self.gateway.clone()
    }
    fn step_state(&mut self) -> &mut StepState {
        &mut self.steps
    }
    fn step_config(&self) -> StepConfig {
        StepConfig {
            instance_header: "X-Served-By".into(),
            ..StepConfig::default()
        }
    }
    fn stack(&mut self) -> Option<&mut Stack> {
        self.stack.as_deref_mut()?.as_mut()
    }
}

/// Starts again every instance a failed scenario left down.
async fn mend(stack: &mut Stack) {
    for service in stack.services().into_iter().map(str::to_owned).collect::<Vec<_>>() {
        let instances = stack.instances(&service).expect("a service of the stack");
        let down: Vec<usize> = instances
            .iter()
            .filter(|i| i.pid().is_none())
            .map(|i| i.index())
            .collect();
        for n in down {
            let instance = stack.instance_mut(&service, n).expect("listed above");
            let mended = match instance.start_again().await {
                Ok(()) => instance.wait_ready().await.map(drop),
                Err(e) => Err(e),
            };
            mended.unwrap_or_else(|e| panic!("starting {service}-{n} again: {e}"));
        }
    }
}

#[tokio::main]
async fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = async {
        let file = StackFile::load(&here.join("stack.toml"))?
            .with_program("notes", env!("CARGO_BIN_EXE_notes"))?
            .infra_from_env()?;
        let show = &mut |p: Progress<'_>| println!("stack: {p:?}");
        Ok::<_, Box<dyn std::error::Error>>(file.builder(gantry_harness::gantry_binary()?).start(show).await?)
    };
    let stack = started.await.unwrap_or_else(|e| {
        eprintln!("the example stack did not start: {e}");
        std::process::exit(1)
    });
    let gateway = stack.gateway_url().to_owned();
    let shared: Shared = Arc::new(Mutex::new(Some(stack)));
    let reports = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../cucumber");
    std::fs::create_dir_all(&reports).expect("creating the reports' directory");
    let junit = std::fs::File::create(reports.join("any-stack.xml")).expect("creating the JUnit report");

    let lender = shared.clone();
    let run = World::cucumber()
        .steps(gantry_harness::steps::collection::<World>())
        .max_concurrent_scenarios(1)
        .fail_on_skipped()
        .with_writer(
            writer::Basic::stdout()
                .summarized()
                .tee::<World, _>(writer::JUnit::for_tee(junit, 0))
                .normalized(),
        )
        .before(move |_, _, _, world| {
            let (stack, gateway) = (lender.clone(), gateway.clone());
            Box::pin(async move {
                world.gateway = gateway;
                world.stack = Some(stack.lock_owned().await);
            })
        })
        .after(|_, _, _, _, world| {
            Box::pin(async move {
                if let Some(stack) = world.and_then(|w| w.stack()) {
                    mend(stack).await;
                }
            })
        })
        .run(here.join("features"))
        .await;

    if let Some(stack) = shared.lock().await.take() {
        stack.stop(&mut |_| {}).await.expect("stopping the example stack");
    }
    if run.execution_has_failed() || run.passed_steps() == 0 {
        std::process::exit(1);
    }
}
