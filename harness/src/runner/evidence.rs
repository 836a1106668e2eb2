//! What a failed scenario leaves behind: its stack's logs copied to
//! `target/gantry/<run>/<scenario>/` (a stack of its own whole, the shared
//! one's from the scenario's start on), the folder printed, and the logs'
//! tails put into the JUnit report's `<system-out>` after the run. Fault
//! timelines a scenario reported are written there whether it passed or not.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cucumber::gherkin::Scenario;

use crate::error::HarnessError;
use crate::report::evidence::{self, CaseOutput, DEFAULT_TAIL_LINES, Skipped};
use crate::report::timeline::FaultTimeline;
use crate::stack::SavedLog;

/// The failed scenarios of a run and where their logs went.
pub struct Evidence {
    run_dir: PathBuf,
    cases: Mutex<Vec<CaseOutput>>,
    /// Each scenario's folder, by where it is written (file line and
    /// column, and name), chosen once: its timelines and logs go together,
    /// and two scenarios of the same name never share one.
    folders: Mutex<HashMap<(String, usize, usize), PathBuf>>,
}

impl Evidence {
    /// A run's evidence under `base/<run>` (`GANTRY_RUN_ID`, else the time).
    pub fn new(base: &Path) -> Self {
        Self {
            run_dir: base.join(evidence::run_id()),
            cases: Mutex::new(Vec::new()),
            folders: Mutex::new(HashMap::new()),
        }
    }

    /// The folder of `scenario`'s evidence, created; `None` (said) when it cannot be.
    pub fn folder(&self, scenario: &Scenario) -> Option<PathBuf> {
        let mut folders = self.folders.lock().expect("not poisoned");
        let key = (scenario.name.clone(), scenario.position.line, scenario.position.col);
        let dir = folders
            .entry(key)
            .or_insert_with(|| evidence::scenario_dir(&self.run_dir, &scenario.name))
            .clone();
        match std::fs::create_dir_all(&dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                eprintln!("gantry: {}: could not create {}: {e}", scenario.name, dir.display());
                None
            }
        }
    }

    /// Writes the fault timelines `scenario` reported to `timelines.json`
    /// in its folder, beside any logs.
    pub fn keep_timelines(&self, scenario: &Scenario, timelines: &[FaultTimeline]) {
        if timelines.is_empty() {
            return;
        }
        let Some(dir) = self.folder(scenario) else { return };
        let path = dir.join("timelines.json");
        let json = serde_json::to_string_pretty(timelines).expect("timelines are JSON");
        match std::fs::write(&path, json) {
            Ok(()) => println!(
                "gantry: {}: its fault timelines are in {}",
                scenario.name,
                path.display()
            ),
            Err(e) => eprintln!("gantry: {}: could not write {}: {e}", scenario.name, path.display()),
        }
    }

    /// Records what became of failed `scenario`'s logs, copied into `dir`
    /// ([`Evidence::folder`]): `Ok(None)` when the harness runs no stack to
    /// keep logs of (a deployed stack's are its own).
    pub fn kept(&self, scenario: &Scenario, dir: &Path, saved: Result<Option<Vec<SavedLog>>, HarnessError>) {
        let saved = match saved {
            Ok(Some(saved)) => saved,
            Ok(None) => {
                eprintln!(
                    "gantry: {}: failed; no stack of the harness's to keep logs of (a deployed stack's are its own)",
                    scenario.name
                );
                let _ = std::fs::remove_dir(dir);
                return;
            }
            Err(e) => {
                eprintln!("gantry: {}: failed; its logs could not be kept: {e}", scenario.name);
                return;
            }
        };
        eprintln!(
            "gantry: {}: failed; the logs of its stack are in {}",
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
                eprintln!("gantry: reading {} to add the logs: {e}", junit.display());
                return;
            }
        };
        let (xml, missing) = evidence::amend_junit(&xml, &cases, skipped);
        for scenario in missing {
            eprintln!(
                "gantry: {scenario}: not found in {}; its logs are not in it",
                junit.display()
            );
        }
        if let Err(e) = std::fs::write(junit, xml) {
            eprintln!("gantry: writing {}: {e}", junit.display());
        }
    }
}
