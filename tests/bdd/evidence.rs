//! What a failed scenario leaves behind: its stack's logs copied to
//! `target/gantry/<run>/<scenario>/` (a fresh stack's whole logs; the
//! shared stack's from the scenario's start on), the path printed, and the
//! logs' tails put into the JUnit report's `<system-out>` after the run.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cucumber::gherkin::{Feature, Scenario};
use gantry_harness::report::evidence::{self, CaseOutput, DEFAULT_TAIL_LINES, Skipped};

use crate::target;
use crate::world::GantryWorld;

/// The failed scenarios of a run and where their logs went.
pub struct Evidence {
    run_dir: PathBuf,
    cases: Mutex<Vec<CaseOutput>>,
    /// Held while a scenario's directory is chosen and created, so two
    /// failures of the same name never share one.
    naming: Mutex<()>,
}

impl Evidence {
    /// A run's evidence under `base/<run>` (`GANTRY_RUN_ID`, else the time).
    pub fn new(base: &Path) -> Self {
        Self {
            run_dir: base.join(evidence::run_id()),
            cases: Mutex::new(Vec::new()),
            naming: Mutex::new(()),
        }
    }

    /// Writes the fault timelines `scenario` reported (passed or not) to
    /// `timelines.json` in its folder, beside any logs.
    pub fn keep_timelines(&self, scenario: &Scenario, world: &GantryWorld) {
        if world.steps.timelines.is_empty() {
            return;
        }
        let dir = {
            let _naming = self.naming.lock().expect("not poisoned");
            evidence::scenario_dir(&self.run_dir, &scenario.name)
        };
        let path = dir.join("timelines.json");
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            let json = serde_json::to_string_pretty(&world.steps.timelines).expect("timelines are JSON");
            std::fs::write(&path, json)
        });
        match written {
            Ok(()) => println!("bdd: {}: its fault timelines are in {}", scenario.name, path.display()),
            Err(e) => eprintln!("bdd: {}: could not write {}: {e}", scenario.name, path.display()),
        }
    }

    /// Keeps the logs of the stack `world` ran against, for failed `scenario`.
    pub async fn keep(&self, scenario: &Scenario, world: &GantryWorld) {
        let dir = {
            let _naming = self.naming.lock().expect("not poisoned");
            let dir = evidence::scenario_dir(&self.run_dir, &scenario.name);
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!("bdd: {}: could not create {}: {e}", scenario.name, dir.display());
                return;
            }
            dir
        };
        let saved = match (&world.fresh, &world.target) {
            (Some(stack), _) => stack.save_logs(&dir, None).await.map(Some),
            (None, Some(_)) => target::save_shared_logs(&dir, world.log_marks.as_ref()).await,
            (None, None) => Ok(None),
        };
        let saved = match saved {
            Ok(Some(saved)) => saved,
            Ok(None) => {
                eprintln!(
                    "bdd: {}: failed; no stack of the harness's to keep logs of (a deployed stack's are its own)",
                    scenario.name
                );
                let _ = std::fs::remove_dir(&dir);
                return;
            }
            Err(e) => {
                eprintln!("bdd: {}: failed; its logs could not be kept: {e}", scenario.name);
                return;
            }
        };
        eprintln!(
            "bdd: {}: failed; the logs of its stack are in {}",
            scenario.name,
            dir.display()
        );
        let mut text = format!("Logs of the stack, whole: {}\n", dir.display());
        for log in &saved {
            let whole = std::fs::read_to_string(&log.path).unwrap_or_default();
            text.push_str(&format!(
                "\n== {} (last {DEFAULT_TAIL_LINES} lines of {}) ==\n{}\n",
                log.name,
                log.path.display(),
                evidence::tail(&whole, DEFAULT_TAIL_LINES)
            ));
        }
        self.cases.lock().expect("not poisoned").push(CaseOutput {
            scenario: scenario.name.clone(),
            line: scenario.position.line,
            column: scenario.position.col,
            text,
        });
    }

    /// Puts the failed scenarios' log tails and the `skipped` scenarios into
    /// the JUnit report at `junit` (written by cucumber when the run ended).
    pub fn amend_junit(&self, junit: &Path, skipped: &[Skipped]) {
        let cases = self.cases.lock().expect("not poisoned");
        let xml = match std::fs::read_to_string(junit) {
            Ok(xml) => xml,
            Err(e) => {
                eprintln!("bdd: reading {} to add the logs: {e}", junit.display());
                return;
            }
        };
        let (xml, missing) = evidence::amend_junit(&xml, &cases, skipped);
        for scenario in missing {
            eprintln!(
                "bdd: {scenario}: not found in {}; its logs are not in it",
                junit.display()
            );
        }
        if let Err(e) = std::fs::write(junit, xml) {
            eprintln!("bdd: writing {}: {e}", junit.display());
        }
    }
}

/// The scenarios of `features` that `mode` cannot run, with what they need,
/// for the JUnit report's skipped entries.
pub fn not_run(mode: &target::Mode, features: &[Feature]) -> Vec<Skipped> {
    let mut skipped = Vec::new();
    for feature in features {
        for (rule, scenario) in target::scenarios(feature) {
            let unmet = mode.unmet(feature, rule, scenario);
            if unmet.is_empty() {
                continue;
            }
            let reason: Vec<String> = unmet
                .iter()
                .map(|n| format!("@{}: {}", n.tag(), n.how_external()))
                .collect();
            skipped.push(Skipped {
                feature: feature.name.clone(),
                scenario: scenario.name.clone(),
                reason: reason.join("; "),
            });
        }
    }
    skipped
}
