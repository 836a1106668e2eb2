//! Breaking and mending one instance of a service, by the service's name and
//! the instance's 1-based index: `When instance 2 of "greeter" is killed`.
//! The steps go through [`Faults`], which a [`Stack`] implements, so a world
//! whose stack is run some other way can implement it too.

use std::future::Future;
use std::pin::Pin;

use cucumber::step::{Collection, Context};

use super::StackWorld;
use super::args::{Args, StepFuture, here, re};
use crate::error::HarnessError;
use crate::stack::Stack;

/// What can be done to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL: gone at once, connections reset, nothing deregistered.
    Kill,
    /// SIGTERM and a graceful exit (it deregisters on the way out).
    Stop,
    /// SIGSTOP: hung, its sockets open and silent.
    Pause,
    /// SIGCONT after a pause.
    Resume,
    /// Stopped and started again with the same ports and environment.
    Restart,
    /// Started again after a kill or stop.
    StartAgain,
}

impl Fault {
    /// The words a step uses for it: `is killed`, `killed`, `starts again`, ….
    pub fn from_words(words: &str) -> Option<Self> {
        Some(match words.trim_start_matches("is ") {
            "killed" => Self::Kill,
            "stopped" => Self::Stop,
            "paused" => Self::Pause,
            "resumed" | "resumes" => Self::Resume,
            "restarted" => Self::Restart,
            "started again" | "starts again" => Self::StartAgain,
            _ => return None,
        })
    }
}

/// Why a fault could not be done.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// The service has fewer instances than the index a step named.
    #[error("there is no instance {n} of {service:?}: it has {count} (instances count from 1)")]
    NoSuchInstance {
        /// The service the step named.
        service: String,
        /// The 1-based index the step named.
        n: usize,
        /// How many instances the service has.
        count: usize,
    },
    /// The stack has no service (or no such instance) by that name: a typo
    /// in the step, or a service the stack does not run.
    #[error("the stack has no service {service:?} to break; it has {known}")]
    UnknownService {
        /// The service the step named.
        service: String,
        /// What the stack has, to compare with.
        known: String,
    },
    /// The harness failed to do the fault, e.g. a signal to a process
    /// that is not running; `source` says why.
    #[error("{fault:?} of instance {n} of {service:?} failed: {source}")]
    Harness {
        /// The fault that was asked for.
        fault: Fault,
        /// The service it was asked of.
        service: String,
        /// The 1-based index of the instance.
        n: usize,
        // Boxed: the harness's error is large, and this one is returned often.
        /// The harness's error.
        #[source]
        source: Box<HarnessError>,
    },
}

/// The future of [`Faults::inflict`].
pub type FaultFuture<'a> = Pin<Box<dyn Future<Output = Result<(), FaultError>> + 'a>>;

/// Instances a step can address by service name and 1-based index.
pub trait Faults {
    /// The id instance `n` of `service` registers and answers as (what its
    /// instance header says), e.g. `user-2`.
    fn instance_id(&self, service: &str, n: usize) -> Result<String, FaultError>;

    /// Does `fault` to instance `n` of `service`; returns once it is done
    /// (a kill reaped, a stop exited), not once the instance is ready again.
    fn inflict<'a>(&'a mut self, service: &'a str, n: usize, fault: Fault) -> FaultFuture<'a>;
}

/// Any part of the stack by name and index (`Stack::instance_mut`): its
/// services and gateways, and Redis and the registry (`"redis"`,
/// `"registry"`, instance 1), which are instances like any other.
impl Faults for Stack {
    fn instance_id(&self, service: &str, n: usize) -> Result<String, FaultError> {
        self.instance(service, n)
            .map(|i| i.id().to_owned())
            .map_err(|e| FaultError::UnknownService {
                service: service.to_owned(),
                known: e.to_string(),
            })
    }

    fn inflict<'a>(&'a mut self, service: &'a str, n: usize, fault: Fault) -> FaultFuture<'a> {
        Box::pin(async move {
            let failed = |source| FaultError::Harness {
                fault,
                service: service.to_owned(),
                n,
                source: Box::new(source),
            };
            let instance = self.instance_mut(service, n).map_err(failed)?;
            let done = match fault {
                Fault::Kill => instance.kill().await,
                Fault::Stop => instance.stop().await,
                Fault::Pause => instance.pause().await,
                Fault::Resume => instance.resume().await,
                Fault::Restart => instance.restart().await.map(drop),
                Fault::StartAgain => instance.start_again().await,
            };
            done.map_err(failed)
        })
    }
}

pub(super) fn add<W: StackWorld>(steps: Collection<W>) -> Collection<W> {
    let pattern = re(
        r#"^(?:instance (?P<n>\d+) of "(?P<service>[^"]+)"|the instance "(?P<id>[^"]+)") (?P<fault>is killed|is stopped|is paused|is resumed|resumes|is restarted|starts again)$"#,
    );
    steps
        .given(here!(), pattern.clone(), fault_step::<W>)
        .when(here!(), pattern, fault_step::<W>)
}

/// The world's [`Faults`], or a panic saying the step needs them.
pub(super) fn faults_of<W: StackWorld>(w: &mut W) -> &mut dyn Faults {
    w.faults()
        .expect("this step breaks instances: it needs a stack the harness runs (StackWorld::stack or ::faults)")
}

/// Does `fault` (in a step's words) to instance `n` of `service`.
pub(super) async fn inflict<W: StackWorld>(w: &mut W, service: &str, n: usize, words: &str) {
    let fault = Fault::from_words(words).unwrap_or_else(|| panic!("{words:?} is not a fault"));
    faults_of(w)
        .inflict(service, n, fault)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

fn fault_step<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let (service, n) = match args.opt("id") {
            // `greeter-2`, as an answer names its instance (kept from it).
            Some(id) => id
                .rsplit_once('-')
                .and_then(|(service, n)| Some((service.to_owned(), n.parse().ok()?)))
                .unwrap_or_else(|| panic!("{id:?} is not an instance id (<service>-<n>, e.g. greeter-2)")),
            None => (args.get("service").to_owned(), args.num("n")),
        };
        inflict(w, &service, n, args.get("fault")).await;
    })
}

#[cfg(test)]
mod tests {
    use super::Fault;

    #[test]
    fn the_words_of_the_steps_name_the_faults() {
        assert_eq!(Fault::from_words("is killed"), Some(Fault::Kill));
        assert_eq!(Fault::from_words("killed"), Some(Fault::Kill));
        assert_eq!(Fault::from_words("resumes"), Some(Fault::Resume));
        assert_eq!(Fault::from_words("starts again"), Some(Fault::StartAgain));
        assert_eq!(Fault::from_words("is restarted"), Some(Fault::Restart));
        assert_eq!(Fault::from_words("is deleted"), None);
    }
}
