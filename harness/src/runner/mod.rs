//! One call that runs a team's scenarios the way Gantry runs its own: the
//! world's steps plus the library's, a step no phrase matches failing the
//! run, JUnit and Cucumber JSON reports, a failed scenario's logs kept,
//! `@needs:*` tags, `--name`/`--tags` narrowing what runs, one shared stack
//! (lent to one scenario at a time and mended after it, or used by several
//! beside each other), and the same scenarios against a deployed stack
//! (`GANTRY_INFRA=external` with `GANTRY_GATEWAY_URL`).
//!
//! ```ignore
//! #[derive(Debug, Default, cucumber::World)]
//! struct World { steps: StepState }
//!
//! impl StackWorld for World {
//!     fn gateway_url(&self) -> String { self.steps.gateway_url() }
//!     fn step_state(&mut self) -> &mut StepState { &mut self.steps }
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
//! `GANTRY_FEATURES` runs other feature files with the same stack and steps.
//! Where things go: reports in `target/cucumber/<name>/` (`junit.xml`,
//! `cucumber.json`; `GANTRY_REPORTS` elsewhere), a failed scenario's logs in
//! `target/gantry/<run>/<scenario>/` (`GANTRY_RUN_ID` names the run).

pub mod evidence;
pub mod mode;
pub mod needs;
pub mod place;

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cucumber::codegen::WorldInventory;
use cucumber::event::ScenarioFinished;
use cucumber::gherkin::Scenario;
use cucumber::writer::Stats as _;
use cucumber::{Cucumber, WriterExt as _, writer};

pub use evidence::Evidence;
pub use mode::{Deployed, Mode, Selection};
pub use needs::Need;
pub use place::{Place, Target};

use crate::error::HarnessError;
use crate::stack::file::StackFile;
use crate::stack::{LogMarks, Progress, SavedLog, StackBuilder};
use crate::steps::{SharedStack, StackWorld};

/// Runs the feature files there instead of the runner's own (a folder or
/// one file): the same stack and steps against other scenarios.
pub const FEATURES_VAR: &str = "GANTRY_FEATURES";

/// How the scenarios share the stack the runner starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// One scenario at a time, each given the whole stack to break and
    /// mended after it ([`crate::steps::Lease::mend`]). The default.
    Turns,
    /// Up to this many at once (`@serial` ones alone), none of which may
    /// break it: a scenario that breaks things starts a stack of its own.
    Beside(usize),
}

/// What the runner starts when the harness runs the stack.
enum Source {
    File {
        path: PathBuf,
        /// Services whose program is given here: `(service, program)`.
        programs: Vec<(String, PathBuf)>,
    },
    Builder(Box<StackBuilder>),
}

/// A run of a team's scenarios. See the module's documentation.
pub struct Runner<W> {
    features: PathBuf,
    source: Option<Source>,
    name: String,
    sharing: Sharing,
    world: PhantomData<fn() -> W>,
}

/// Why a run could not begin (a scenario that fails is not this: it is in
/// the reports and the exit status).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(String),
    #[error("the stack did not start: {0}")]
    Stack(#[source] HarnessError),
    #[error("the stack file: {0}")]
    File(#[from] crate::stack::file::StackFileError),
}

/// How a run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub passed: usize,
    pub failed: usize,
    /// Scenarios not run here: their `@needs` are not met in this mode.
    pub not_run: usize,
    /// Whether anything failed (a step, a hook, a feature file that did not parse).
    pub has_failed: bool,
}

impl Outcome {
    /// A pass: nothing failed and something ran (a selection that runs
    /// nothing proves nothing).
    pub fn passed(&self) -> bool {
        !self.has_failed && self.passed > 0
    }
}

impl<W: StackWorld + WorldInventory> Runner<W> {
    /// The scenarios in `features` (a folder of `.feature` files, or one).
    pub fn new(features: impl Into<PathBuf>) -> Self {
        Self {
            features: features.into(),
            source: None,
            name: "scenarios".to_owned(),
            sharing: Sharing::Turns,
            world: PhantomData,
        }
    }

    /// The stack to start: a stack file (`GANTRY_INFRA` overrides its provider).
    pub fn stack_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = Some(Source::File {
            path: path.into(),
            programs: Vec::new(),
        });
        self
    }

    /// Runs `service` of the stack file with `program` (a test's own build
    /// of it, `env!("CARGO_BIN_EXE_<name>")`).
    pub fn program(mut self, service: &str, program: impl Into<PathBuf>) -> Self {
        if let Some(Source::File { programs, .. }) = &mut self.source {
            programs.push((service.to_owned(), program.into()));
        }
        self
    }

    /// The stack to start, as built in code (`GANTRY_INFRA` overrides its infrastructure).
    pub fn stack(mut self, builder: StackBuilder) -> Self {
        self.source = Some(Source::Builder(Box::new(builder)));
        self
    }

    /// The name of the reports' folder, `target/cucumber/<name>/`.
    pub fn reports_named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.sharing = sharing;
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
                        "gantry: no scenario ran: the --name, --tags or --input given selects none this mode can run"
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
        if let Some(other) = std::env::var_os(FEATURES_VAR) {
            self.features = PathBuf::from(other);
        }
        let mode = Mode::from_env().map_err(RunError::Config)?;
        let parsed = needs::features(&self.features);
        needs::check_tags(&parsed).map_err(RunError::Config)?;
        let not_run = mode.not_run(&parsed);
        for s in &not_run {
            println!("{s}");
        }

        let target_dir = target_dir();
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
        let concurrent = match self.sharing {
            Sharing::Turns => 1,
            Sharing::Beside(n) => n.max(1),
        };
        let lender = shared.clone();
        let keeper = shared.clone();
        let kept = evidence.clone();
        let writer = Cucumber::<W, _, _, _, _, _>::new()
            .steps(crate::steps::collection::<W>())
            .max_concurrent_scenarios(concurrent)
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
                Box::pin(async move { world.step_state().place = lender.place().await })
            })
            .after(move |_, _, scenario, finished, world| {
                let (keeper, kept) = (keeper.clone(), kept.clone());
                Box::pin(async move {
                    if let Some(world) = world {
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
            passed: writer.passed_steps(),
            failed: writer.failed_steps(),
            not_run: not_run.len(),
            has_failed: writer.execution_has_failed(),
        };
        // Closes the reports (the JUnit one is written whole when the run ends).
        drop(writer);
        if let Some(shared) = Arc::into_inner(shared) {
            shared.stop().await;
        }
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
            Mode::External(d) => return Ok(Shared::Deployed(d.clone())),
            Mode::Managed(infra) => *infra,
        };
        let builder = match &self.source {
            None => {
                return Err(RunError::Config(
                    "no stack to start: give the runner a stack file (Runner::stack_file) or a StackBuilder (Runner::stack), or set GANTRY_INFRA=external and GANTRY_GATEWAY_URL".to_owned(),
                ));
            }
            Some(Source::Builder(b)) => b.as_ref().clone().infra(infra),
            Some(Source::File { path, programs }) => {
                let mut file = StackFile::load(path)?;
                for (service, program) in programs {
                    file = file.with_program(service, program)?;
                }
                let binary = crate::gantry_binary().map_err(RunError::Stack)?;
                file.infra_from_env()?.builder(binary)
            }
        };
        let stack = builder
            .start(&mut |p| {
                if let Progress::Note(note) = p {
                    eprintln!("gantry: {note}");
                } else {
                    eprintln!("gantry: {p:?}");
                }
            })
            .await
            .map_err(RunError::Stack)?;
        Ok(match self.sharing {
            Sharing::Turns => Shared::Turns(SharedStack::new(stack)),
            Sharing::Beside(_) => Shared::Beside(Target::of(&stack), SharedStack::new(stack)),
        })
    }
}

/// The run's stack, and how scenarios get their place on it.
enum Shared {
    Turns(SharedStack),
    Beside(Target, SharedStack),
    Deployed(Deployed),
}

impl Shared {
    /// A scenario's place, with where the shared stack's logs stood at its start.
    async fn place(&self) -> Option<Place> {
        Some(match self {
            Shared::Turns(shared) => {
                let mut lease = shared.lend().await;
                let marks = lease.stack().log_marks().await;
                Place::turn(lease).since(marks)
            }
            Shared::Beside(target, shared) => {
                let marks = shared.log_marks().await;
                let place = Place::beside(target.clone());
                match marks {
                    Some(m) => place.since(m),
                    None => place,
                }
            }
            Shared::Deployed(d) => Place::deployed(d),
        })
    }

    /// After a scenario: keeps its timelines, and its logs if it failed;
    /// then ends its hold on the stack (mends the shared one on its turn,
    /// stops its own).
    async fn finish(
        &self,
        scenario: &Scenario,
        failed: bool,
        state: &mut crate::steps::StepState,
        evidence: &Evidence,
    ) {
        evidence.keep_timelines(scenario, &state.timelines);
        let mut place = state.place.take();
        if failed && let Some(dir) = evidence.folder(scenario) {
            let saved = self.save_logs(place.as_mut(), &dir).await;
            evidence.kept(scenario, &dir, saved);
        }
        if let Some(place) = place
            && let Err(e) = place.release().await
        {
            panic!("after {:?}, mending the stack failed: {e}", scenario.name);
        }
    }

    async fn save_logs(&self, place: Option<&mut Place>, dir: &Path) -> Result<Option<Vec<SavedLog>>, HarnessError> {
        let Some(place) = place else { return Ok(None) };
        let marks: Option<LogMarks> = place.marks().cloned();
        match place.logs() {
            Some((stack, true)) => stack.save_logs(dir, None).await.map(Some),
            Some((stack, false)) => stack.save_logs(dir, marks.as_ref()).await.map(Some),
            None => match self {
                Shared::Beside(_, shared) if place.is_beside() => shared.save_logs(dir, marks.as_ref()).await,
                _ => Ok(None),
            },
        }
    }

    async fn stop(self) {
        let shared = match self {
            Shared::Turns(s) | Shared::Beside(_, s) => s,
            Shared::Deployed(_) => return,
        };
        if let Err(e) = shared.stop().await {
            eprintln!("gantry: stopping the stack: {e}");
        }
    }
}

/// Cargo's target folder, where reports and evidence go: `CARGO_TARGET_DIR`,
/// else the one this test binary was built in (`<target>/<profile>/deps/`),
/// else `target`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|a| a.file_name().is_some_and(|n| n == "deps"))
                .and_then(|deps| deps.parent()?.parent())
                .map(Path::to_owned)
        })
        .unwrap_or_else(|| PathBuf::from("target"))
}
