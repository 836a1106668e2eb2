//! What the scenarios run against: a stack the harness manages (shared, or
//! fresh per scenario) or a deployed one given by URL. Which scenarios run
//! where (`@needs`, `--name`, `--tags`) is the runner's
//! ([`gantry_harness::runner`]), as for a team's suite.

use std::path::Path;

pub use gantry_harness::runner::{Mode, Target};
use gantry_harness::{Infra, Stack, StackBuilder};
use tokio::sync::{Mutex, OnceCell};

/// A stack builder for this mode's infrastructure.
pub fn builder() -> StackBuilder {
    let infra = match Mode::from_env() {
        Ok(Mode::Managed(infra)) => infra,
        _ => Infra::Local,
    };
    StackBuilder::new(env!("CARGO_BIN_EXE_gantry")).infra(infra)
}

static SHARED: OnceCell<Target> = OnceCell::const_new();
static SHARED_STACK: Mutex<Option<Stack>> = Mutex::const_new(None);

/// The stack scenarios share: started on first use, stopped by [`stop_shared`].
pub async fn shared() -> Target {
    SHARED
        .get_or_init(|| async {
            match Mode::from_env().expect("checked in main") {
                Mode::External(deployed) => deployed.target(),
                Mode::Managed(_) => {
                    let stack = builder()
                        .users(3)
                        .start(&mut |step| {
                            if let gantry_harness::Progress::Note(note) = step {
                                println!("bdd: {note}");
                            }
                        })
                        .await
                        .unwrap_or_else(|e| panic!("the shared stack did not start: {e}"));
                    let target = Target::of(&stack);
                    *SHARED_STACK.lock().await = Some(stack);
                    target
                }
            }
        })
        .await
        .clone()
}

/// Where the shared stack's logs stand now (`None` before it started).
pub async fn shared_log_marks() -> Option<gantry_harness::LogMarks> {
    match SHARED_STACK.lock().await.as_ref() {
        Some(stack) => Some(stack.log_marks().await),
        None => None,
    }
}

/// Copies the shared stack's logs, from `since` on, into `dest`; `None`
/// when the harness runs no shared stack (external mode).
pub async fn save_shared_logs(
    dest: &Path,
    since: Option<&gantry_harness::LogMarks>,
) -> Result<Option<Vec<gantry_harness::SavedLog>>, gantry_harness::HarnessError> {
    match SHARED_STACK.lock().await.as_ref() {
        Some(stack) => stack.save_logs(dest, since).await.map(Some),
        None => Ok(None),
    }
}

pub async fn stop_shared() {
    if let Some(stack) = SHARED_STACK.lock().await.take() {
        let _ = stack.stop(&mut |_| {}).await;
    }
}
