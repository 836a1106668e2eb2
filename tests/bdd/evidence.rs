//! What a failed scenario leaves behind, with the runner's [`Evidence`]:
//! its stack's logs in `target/gantry/<run>/<scenario>/` (a fresh stack's
//! whole logs; the shared stack's from the scenario's start on), their
//! tails in the JUnit report, and any fault timelines beside them.

use cucumber::gherkin::Scenario;
use gantry_harness::runner::Evidence;

use crate::target;
use crate::world::GantryWorld;

/// Keeps the logs of the stack `world` ran against, for failed `scenario`.
pub async fn keep(evidence: &Evidence, scenario: &Scenario, world: &GantryWorld) {
    let Some(dir) = evidence.folder(scenario) else { return };
    let saved = match (&world.fresh, &world.target) {
        (Some(stack), _) => stack.save_logs(&dir, None).await.map(Some),
        (None, Some(_)) => target::save_shared_logs(&dir, world.log_marks.as_ref()).await,
        (None, None) => Ok(None),
    };
    evidence.kept(scenario, &dir, saved);
}
