//! One call that runs a team's scenarios the way Gantry runs its own: the
//! world's steps plus the library's, a step no phrase matches failing the
//! run, JUnit and Cucumber JSON reports, a failed scenario's logs kept,
//! `@needs:*` tags, `--name`/`--tags` narrowing what runs, one shared stack
//! (lent to one scenario at a time and mended after it), and the same
//! scenarios against a deployed stack (`GANTRY_INFRA=external` with
//! `GANTRY_GATEWAY_URL`, and `CONSUL_HTTP_ADDR`, `REDIS_URL`,
//! `GANTRY_GATEWAY_ADMIN_URL` for the scenarios that need them).
//!
//! ```no_run
//! use gantry_harness::runner::Runner;
//! use gantry_harness::steps::{StackWorld, StepState};
//!
//! #[derive(Debug, Default, cucumber::World)]
//! struct World {
//!     steps: StepState,
//! }
//!
//! impl StackWorld for World {
//!     fn gateway_url(&self) -> String {
//!         self.steps.gateway_url()
//!     }
//!     fn step_state(&mut self) -> &mut StepState {
//!         &mut self.steps
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() {
//!     let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
//!     Runner::<World>::new(here.join("features"))
//!         .stack_file(here.join("stack.toml"))
//!         .run_and_exit()
//!         .await
//! }
//! ```
//!
//! `GANTRY_ENV=<name>` runs them against the deployed stack `[name]` of
//! `environments.toml` beside the features folder ([`profile`]).
//! `GANTRY_FEATURES` runs other feature files with the same stack and steps.
//! Where things go: reports in `target/cucumber/<name>/` (`junit.xml`,
//! `cucumber.json`; `GANTRY_REPORTS` elsewhere), a failed scenario's logs in
//! `target/gantry/<run>/<scenario>/` (`GANTRY_RUN_ID` names the run).

pub mod evidence;
pub mod mode;
pub mod needs;
pub mod profile;

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cucumber::codegen::WorldInventory;
use cucumber::event::ScenarioFinished;
use cucumber::gherkin::Scenario;
use cucumber::writer::Stats as _;
use cucumber::{Cucumber, WriterExt as _, writer};

pub use crate::steps::place::{Place, Target};
pub use evidence::Evidence;
pub use mode::{Deployed, Mode, Selection};
pub use needs::Need;

use crate::error::HarnessError;
use crate::stack::file::StackFile;
use crate::stack::{LogMarks, SavedLog, StackBuilder};
use crate::steps::{SharedStack, StackWorld};

/// Runs the feature files there instead of the runner's own (a folder or
/// one file): the same stack and steps against other scenarios.
pub const FEATURES_VAR: &str = "GANTRY_FEATURES";

/// What the runner starts when the harness runs the stack.
enum Source {
    File(PathBuf),
    Builder(Box<StackBuilder>),
}

/// A run of a team's scenarios. See the module's documentation.
pub struct Runner<W> {
    features: PathBuf,
    source: Option<Source>,
    /// Services of the stack file whose program is given here: `(service, program)`.
    programs: Vec<(String, PathBuf)>,
    name: String,
    target_dir: Option<PathBuf>,
    /// Scenarios run at once (see [`Runner::concurrency`]).
    concurrency: usize,
    world: PhantomData<fn() -> W>,
}

/// Why a run could not begin (a scenario that fails is not this: it is in
/// the reports and the exit status).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run is set up wrong: a bad mode or environment variable, an
    /// unknown `@needs` tag, no stack to start, a report that cannot be
    /// written; the message says which and what to set.
    #[error("{0}")]
    Config(String),
    /// The stack would not start (or its `gantry` was not found); the
    /// error says which part and why.
    #[error("the stack did not start: {0}")]
    Stack(#[source] HarnessError),
    /// The stack file could not be read or used.
    #[error("the stack file: {0}")]
    File(#[from] crate::stack::file::StackFileError),
}

/// How a run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Steps that passed, over every scenario run.
    pub passed_steps: usize,
    /// Steps that failed, over every scenario run.
    pub failed_steps: usize,
    /// Scenarios not run here: their `@needs` are not met in this mode.
    pub not_run: usize,
    /// Whether anything failed (a step, a hook, a feature file that did not parse).
    pub has_failed: bool,
}

impl Outcome {
    /// A pass: nothing failed and something ran (a selection that runs
    /// nothing proves nothing).
    pub fn passed(&self) -> bool {
        !self.has_failed && self.passed_steps > 0
    }
}

impl<W: StackWorld + WorldInventory> Runner<W> {
    /// The scenarios in `features` (a folder of `.feature` files, or one).
    pub fn new(features: impl Into<PathBuf>) -> Self {
        Self {
            features: features.into(),
            source: None,
            programs: Vec::new(),
            name: "scenarios".to_owned(),
            target_dir: None,
            concurrency: 1,
            world: PhantomData,
        }
    }

    /// The stack to start: a stack file (`GANTRY_INFRA` overrides its provider).
    pub fn stack_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = Some(Source::File(path.into()));
        self
    }

    /// Runs `service` of the stack file with `program` (a test's own build
    /// of it, `env!("CARGO_BIN_EXE_<name>")`).
    pub fn program(mut self, service: &str, program: impl Into<PathBuf>) -> Self {
        self.programs.push((service.to_owned(), program.into()));
        self
    }

    /// The stack to start, as built in code (`GANTRY_INFRA`, when set,
    /// overrides its infrastructure).
    pub fn stack(mut self, builder: StackBuilder) -> Self {
        self.source = Some(Source::Builder(Box::new(builder)));
        self
    }

    /// The name of the reports' folder, `target/cucumber/<name>/`.
    pub fn reports_named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// Cargo's target folder, where reports and evidence go (pass
    /// `Path::new(env!("CARGO_TARGET_TMPDIR")).parent()`); else
    /// `CARGO_TARGET_DIR`, else the folder this test binary was built in.
    pub fn target_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.target_dir = Some(dir.into());
        self
    }

    /// Runs `n` scenarios at once (1, the default: one at a time). With one,
    /// a scenario has the shared stack to itself and may break it (it is
    /// mended after); with more, they share it at once and only send it
    /// requests: a scenario that breaks things starts a stack of its own
    /// ([`Place::own`] into its [`crate::steps::StepState::place`]), and one
    /// tagged `@serial` runs alone.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Runs the scenarios and exits: 0 when they passed, 1 when one failed
    /// or none ran, 2 when the run could not begin (said on stderr).
    pub async fn run_and_exit(self) -> ! {
        match self.run().await {
            Ok(outcome) if outcome.passed() => std::process::exit(0),
            Ok(outcome) => {
                if !outcome.has_failed {
                    eprintln!(
                        "gantry: no scenario ran: {} not run for their @needs (listed as SKIPPED), and a --name, --tags or --input given may select none of the rest",
                        outcome.not_run
                    );
                }
                std::process::exit(1)
            }
            Err(e) => {
                eprintln!("gantry: {e}");
                std::process::exit(2)
            }
        }
    }

    /// Runs the scenarios; `Err` when the run could not begin.
    pub async fn run(mut self) -> Result<Outcome, RunError> {
        // Beside the runner's own features folder, whichever features run.
        let environments = self.features.parent().map(|dir| dir.join(profile::DEFAULT_FILE));
        if let Some(other) = std::env::var_os(FEATURES_VAR) {
            self.features = PathBuf::from(other);
        }
        let mode = Mode::from_env_or_file(environments.as_deref()).map_err(RunError::Config)?;
        let parsed = needs::features(&self.features);
        needs::check_tags(&parsed).map_err(RunError::Config)?;
        let not_run = mode.not_run(&parsed);
        for s in &not_run {
            println!("{s}");
        }

        let target_dir = self.target_dir.clone().unwrap_or_else(target_dir);
        let reports = std::env::var_os("GANTRY_REPORTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir.join("cucumber").join(&self.name));
        std::fs::create_dir_all(&reports)
            .map_err(|e| RunError::Config(format!("creating the reports' folder {}: {e}", reports.display())))?;
        let create = |file: &str| {
            std::fs::File::create(reports.join(file))
                .map_err(|e| RunError::Config(format!("creating {}: {e}", reports.join(file).display())))
        };
        let (junit, json) = (create("junit.xml")?, create("cucumber.json")?);
        let evidence = Arc::new(Evidence::new(&target_dir.join("gantry")));

        // Cucumber replaces the filter given to `filter_run` with a `--name`
        // or `--tags` from the command line; taken out here and applied on
        // top of the mode's own, a command-line filter narrows what runs.
        let mut cli = cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::parsed();
        let selection = Selection {
            mode: mode.clone(),
            name: cli
                .re_filter
                .take()
                .map(|re| Box::new(move |name: &str| re.is_match(name)) as mode::NameFilter),
            tags: cli.tags_filter.take(),
        };

        let shared = Arc::new(self.start(&mode).await?);
        let concurrency = self.concurrency;
        let lender = shared.clone();
        let keeper = shared.clone();
        let kept = evidence.clone();
        let writer = Cucumber::<W, _, _, _, _, _>::new()
            .steps(crate::steps::collection::<W>())
            .max_concurrent_scenarios(concurrency)
            .with_writer(
                writer::Basic::stdout()
                    .summarized()
                    .tee::<W, _>(writer::JUnit::for_tee(junit, 0))
                    .tee::<W, _>(writer::Json::for_tee(json))
                    .normalized(),
            )
            // After `with_writer`, which replaces the writer and with it this
            // check: a step no phrase matches (a typo) fails the run.
            .fail_on_skipped()
            .before(move |_, _, _, world| {
                let lender = lender.clone();
                Box::pin(async move { world.step_state().place = lender.place(concurrency).await })
            })
            .after(move |_, _, scenario, finished, world| {
                let (keeper, kept) = (keeper.clone(), kept.clone());
                Box::pin(async move {
                    if let Some(world) = world {
                        world.scenario_ended().await;
                        let failed = matches!(
                            finished,
                            ScenarioFinished::StepFailed(..) | ScenarioFinished::BeforeHookFailed(_)
                        );
                        keeper.finish(scenario, failed, world.step_state(), &kept).await;
                    }
                })
            })
            .with_cli(cli)
            .filter_run(self.features.clone(), move |feature, rule, scenario| {
                selection.runs(feature, rule, scenario)
            })
            .await;
        let outcome = Outcome {
            passed_steps: writer.passed_steps(),
            failed_steps: writer.failed_steps(),
            not_run: not_run.len(),
            has_failed: writer.execution_has_failed(),
        };
        // Closes the reports (the JUnit one is written whole when the run ends).
        drop(writer);
        shared.stop().await;
        evidence.amend_junit(&reports.join("junit.xml"), &not_run);
        println!(
            "gantry: {} scenarios not run: their @needs are not met here (listed above as SKIPPED); reports in {}",
            not_run.len(),
            reports.display()
        );
        Ok(outcome)
    }

    /// The stack the scenarios share: started now when the harness runs it.
    async fn start(&self, mode: &Mode) -> Result<Shared, RunError> {
        let infra = match mode {
            Mode::External(d) => return Ok(Shared::new(Hold::Deployed(d.clone()))),
            Mode::Managed(infra) => *infra,
        };
        // The environment's choice, when it makes one, over the code's or the file's.
        let chosen = gantry_common::config::raw(mode::MODE_VAR).map(|_| infra);
        let builder = match &self.source {
            None => {
                return Err(RunError::Config(
                    "no stack to start: give the runner a stack file (Runner::stack_file) or a StackBuilder (Runner::stack), or set GANTRY_INFRA=external and GANTRY_GATEWAY_URL".to_owned(),
                ));
            }
            Some(Source::Builder(_)) if !self.programs.is_empty() => {
                return Err(RunError::Config(
                    "Runner::program names a service of a stack file: give one with Runner::stack_file, or set the program in the StackBuilder's ServiceSpec".to_owned(),
                ));
            }
            Some(Source::Builder(b)) => match chosen {
                Some(infra) => b.as_ref().clone().infra(infra),
                None => b.as_ref().clone(),
            },
            Some(Source::File(path)) => {
                let mut file = StackFile::load(path)?;
                for (service, program) in &self.programs {
                    file = file.with_program(service, program)?;
                }
                let binary = crate::gantry_binary().map_err(RunError::Stack)?;
                file.infra_from_env()?.builder(binary)
            }
        };
        let stack = builder
            .start(&mut crate::stack::print_progress("gantry: stack"))
            .await
            .map_err(RunError::Stack)?;
        Ok(Shared::new(Hold::Turns(SharedStack::new(stack))))
    }
}

/// The run's stack, and how scenarios get their place on it.
struct Shared {
    hold: Hold,
    /// The scenario after which the shared stack could not be mended: the
    /// scenarios after it do not run on a stack left broken.
    broken_by: Mutex<Option<String>>,
}

enum Hold {
    Turns(SharedStack),
    Deployed(Deployed),
}

impl Shared {
    fn new(hold: Hold) -> Self {
        Self {
            hold,
            broken_by: Mutex::new(None),
        }
    }

    /// A scenario's place, with where the shared stack's logs stood at its
    /// start: its turn with the stack when scenarios run one at a time, a
    /// watch of it when `concurrency` run at once. Panics (failing the
    /// scenario's before-hook, with the reason) once a scenario left the
    /// stack unmendable.
    async fn place(&self, concurrency: usize) -> Option<Place> {
        if let Some(name) = self.broken_by.lock().expect("not poisoned").as_deref() {
            panic!("the shared stack could not be mended after the scenario {name:?}: not run on a stack left broken");
        }
        Some(match &self.hold {
            Hold::Turns(shared) if concurrency > 1 => {
                let watch = shared.watch().await;
                let marks = watch.stack().log_marks().await;
                Place::watch(watch).since(marks)
            }
            Hold::Turns(shared) => {
                let mut lease = shared.lend().await;
                let marks = lease.stack().log_marks().await;
                Place::turn(lease).since(marks)
            }
            Hold::Deployed(d) => Place::deployed(d.target()),
        })
    }

    /// After a scenario: keeps its timelines, and its logs if it failed or
    /// left the stack unmendable; then ends its hold on the stack (mends
    /// the shared one, stops one of its own).
    async fn finish(
        &self,
        scenario: &Scenario,
        failed: bool,
        state: &mut crate::steps::StepState,
        evidence: &Evidence,
    ) {
        evidence.keep_timelines(scenario, &state.timelines);
        let Some(mut place) = state.place.take() else { return };
        if failed && let Some(dir) = evidence.folder(scenario) {
            let saved = save_logs(&mut place, &dir).await;
            evidence.kept(scenario, &dir, saved);
        }
        if let Err(e) = place.mend().await {
            if !failed && let Some(dir) = evidence.folder(scenario) {
                let saved = save_logs(&mut place, &dir).await;
                evidence.kept(scenario, &dir, saved);
            }
            *self.broken_by.lock().expect("not poisoned") = Some(scenario.name.clone());
            panic!("after {:?}, mending the stack failed: {e}", scenario.name);
        }
        if let Err(e) = place.release().await {
            eprintln!("gantry: {}: stopping its own stack: {e}", scenario.name);
        }
    }

    async fn stop(&self) {
        if let Hold::Turns(shared) = &self.hold
            && let Err(e) = shared.clone().stop().await
        {
            eprintln!("gantry: stopping the stack: {e}");
        }
    }
}

/// Copies the logs of the stack `place` holds into `dir`: its own whole,
/// the shared one's from the scenario's start on; `None` for a deployed one.
async fn save_logs(place: &mut Place, dir: &Path) -> Result<Option<Vec<SavedLog>>, HarnessError> {
    let marks: Option<LogMarks> = place.marks().cloned();
    match place.logs() {
        Some((stack, true)) => stack.save_logs(dir, None).await.map(Some),
        Some((stack, false)) => stack.save_logs(dir, marks.as_ref()).await.map(Some),
        None => Ok(None),
    }
}

/// Cargo's target folder, where reports and evidence go: `CARGO_TARGET_DIR`,
/// else the one this test binary was built in (`<target>/<profile>/deps/`),
/// else `target`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return std::path::absolute(&dir).unwrap_or(dir);
    }
    let exe = std::env::current_exe().ok();
    let deps = exe.as_deref().and_then(Path::parent).filter(|d| d.ends_with("deps"));
    // `<target>/<profile>/deps`, or `<target>/<triple>/<profile>/deps` with `--target`.
    let profile = deps.and_then(Path::parent);
    let target = profile.and_then(Path::parent).map(|t| {
        let is_triple = t
            .file_name()
            .is_some_and(|n| n.to_string_lossy().matches('-').count() >= 2);
        match t.parent() {
            Some(above) if is_triple && above.join("CACHEDIR.TAG").exists() => above.to_owned(),
            _ => t.to_owned(),
        }
    });
    target.unwrap_or_else(|| std::path::absolute("target").unwrap_or_else(|_| PathBuf::from("target")))
}
