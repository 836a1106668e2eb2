//! The team's scenarios (`features/*.feature`), written with Gantry's steps
//! alone, against the stack of `stack.toml`, run by Gantry's runner. One
//! stack serves the whole run, since starting it costs more than all the
//! scenarios. They take turns with it, so the one that kills an instance
//! breaks no other; the runner mends what a scenario left broken.
//!
//! `GANTRY_INFRA=external GANTRY_GATEWAY_URL=…` runs the same scenarios
//! against a deployed stack instead (those it can: `@needs` tags say what
//! else a scenario needs). Reports: `target/cucumber/any-stack/`; a failed
//! scenario's logs: `target/gantry/<run>/<scenario>/`.

mod world;

use std::path::Path;

use gantry_harness::runner::Runner;
use world::World;

#[tokio::main]
async fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    Runner::<World>::new(here.join("features"))
        .stack_file(here.join("stack.toml"))
        .program("notes", env!("CARGO_BIN_EXE_notes"))
        .reports_named("any-stack")
        .run_and_exit()
        .await
}
