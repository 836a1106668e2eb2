//! The same team's services shipped as images (`images/build.sh` builds
//! them), against the stack of `stack.images.toml`: `features-images/`,
//! where one image calls another by its service's name and through the
//! gateway, and killing a replica is killing its container. Reports:
//! `target/cucumber/any-stack-images/`.
//!
//! Without a Docker engine or the images, it says so and runs nothing,
//! unless `GANTRY_INFRA=containers` asks for containers: then it fails.

mod world;

use std::path::Path;

use gantry_harness::runner::Runner;
use world::World;

/// The images `stack.images.toml` runs.
const IMAGES: [&str; 2] = ["any-stack/greeter:latest", "any-stack/notes:latest"];

#[tokio::main]
async fn main() {
    if let Some(why) = gantry_harness::run::containers::unavailable_because(&IMAGES).await {
        let required = std::env::var("GANTRY_INFRA").is_ok_and(|i| i == "containers");
        eprintln!("images: not run: {why}; build them with examples/any-stack/images/build.sh");
        std::process::exit(if required { 2 } else { 0 });
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    Runner::<World>::new(here.join("features-images"))
        .stack_file(here.join("stack.images.toml"))
        .reports_named("any-stack-images")
        .run_and_exit()
        .await
}
