//! Where one scenario runs: the addresses and secrets of its stack, and how
//! it holds the stack (its turn with the shared one, one of its own, or a
//! deployed one it cannot touch).

use std::path::{Path, PathBuf};

use gantry_common::registry::RegistryClient;

use super::{Lease, Watch};
use crate::drive::client::UserClient;
use crate::stack::{LogMarks, Stack};

/// The addresses and secrets of a stack, whatever runs it.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Every gateway's URL; the first is where paths go.
    pub gateways: Vec<String>,
    /// Each gateway's admin listener, where known (a deployed stack's from
    /// `GANTRY_GATEWAY_ADMIN_URL`).
    pub admins: Vec<String>,
    /// `REDIS_URL` (password included), where known.
    pub redis_url: Option<String>,
    /// A client of the registry the services are in, where known.
    pub registry: Option<RegistryClient>,
    /// The key tokens are signed with, where known.
    pub signing_seed: Option<[u8; 32]>,
    /// `host:port` of each instance of every service (the gateways' too),
    /// by service, in index order: a harness-run stack's (what
    /// `{url:greeter-2}` in a step names).
    pub instances: std::collections::BTreeMap<String, Vec<String>>,
    /// The CA of a harness-run stack whose gateways speak TLS. A deployed
    /// stack's private CA is given by `GANTRY_CA_CERT` instead, which every
    /// client trusts anyway.
    pub ca_cert: Option<PathBuf>,
}

impl Target {
    /// Where `stack` answers.
    pub fn of(stack: &Stack) -> Self {
        Self {
            gateways: stack.gateway_urls().to_vec(),
            admins: stack.gateway_admin_urls().to_vec(),
            redis_url: Some(stack.redis_url().to_owned()),
            registry: Some(stack.registry()),
            signing_seed: Some(stack.signing_seed()),
            instances: stack
                .services()
                .into_iter()
                .map(|s| {
                    let all = stack.instances(s).unwrap_or_default();
                    (s.to_owned(), all.iter().map(|i| i.addr()).collect())
                })
                .collect(),
            ca_cert: stack.ca_cert().map(Path::to_owned),
        }
    }

    /// The first gateway, where paths go (empty when there is none).
    pub fn gateway(&self) -> &str {
        self.gateways.first().map_or("", String::as_str)
    }

    /// What every client of this target's gateways is built from: it trusts
    /// the system's roots, `GANTRY_CA_CERT` and the stack's own CA, so an
    /// `https://` gateway is called as an `http://` one is.
    pub fn http_builder(&self) -> reqwest::ClientBuilder {
        crate::drive::client::http_builder(self.ca_cert.as_deref())
    }

    /// The first gateway's admin listener (`/metrics`).
    pub fn admin(&self) -> &str {
        self.admins
            .first()
            .expect("this step reads the gateway's metrics: set GANTRY_GATEWAY_ADMIN_URL to its admin listener")
    }

    /// A user of the first gateway, called `name`.
    pub fn user(&self, name: &str) -> UserClient {
        UserClient::new(self.gateway(), name).trusting(self.ca_cert.as_deref())
    }
}

/// Where a scenario runs, put into its world's [`super::StepState`] by the
/// runner ([`crate::runner::Runner`]) before its first step and taken back
/// after its last.
#[derive(Debug)]
pub struct Place {
    target: Target,
    hold: Hold,
    /// Where the shared stack's logs stood when the scenario began, so a
    /// failure keeps only what was written during it.
    marks: Option<LogMarks>,
}

#[derive(Debug)]
enum Hold {
    /// Its turn with the run's shared stack: mended when it ends.
    Turn(Lease),
    /// The run's shared stack, watched with the scenarios running beside
    /// it: not to be broken.
    Watch(Watch),
    /// A stack of its own (`@needs:fresh-stack`): stopped when it ends.
    Own(Box<Stack>),
    /// A deployed stack: not the harness's to break.
    Deployed,
}

impl Place {
    /// Its turn with the run's shared stack.
    pub fn turn(mut lease: Lease) -> Self {
        let target = Target::of(lease.stack());
        Self {
            target,
            hold: Hold::Turn(lease),
            marks: None,
        }
    }

    /// The run's shared stack, with the scenarios running beside it: its
    /// steps send requests; its faults need a stack of its own
    /// ([`Place::own`]).
    pub fn watch(watch: Watch) -> Self {
        Self {
            target: Target::of(watch.stack()),
            hold: Hold::Watch(watch),
            marks: None,
        }
    }

    /// A deployed stack, answering at `target`.
    pub fn deployed(target: Target) -> Self {
        Self {
            target,
            hold: Hold::Deployed,
            marks: None,
        }
    }

    /// A stack the scenario started for itself: its steps and faults go
    /// there, its logs are kept whole if it fails, and it stops when the
    /// scenario ends.
    pub fn own(stack: Stack) -> Self {
        Self {
            target: Target::of(&stack),
            hold: Hold::Own(Box::new(stack)),
            marks: None,
        }
    }

    /// The place, with where the shared stack's logs stood at its start.
    pub(crate) fn since(self, marks: LogMarks) -> Self {
        Self {
            marks: Some(marks),
            ..self
        }
    }

    pub(crate) fn marks(&self) -> Option<&LogMarks> {
        self.marks.as_ref()
    }

    /// The addresses and secrets of the stack it holds.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Reads the addresses again from the stack it holds, after a step
    /// changed them (started another gateway).
    pub fn refresh(&mut self) {
        let target = match &mut self.hold {
            Hold::Turn(lease) => Target::of(lease.stack()),
            Hold::Watch(watch) => Target::of(watch.stack()),
            Hold::Own(stack) => Target::of(stack),
            Hold::Deployed => return,
        };
        self.target = target;
    }

    /// The first gateway's URL.
    pub fn gateway_url(&self) -> String {
        self.target.gateway().to_owned()
    }

    /// The stack, when the scenario may break it (its turn, or its own).
    pub fn stack(&mut self) -> Option<&mut Stack> {
        match &mut self.hold {
            Hold::Turn(lease) => Some(lease.stack()),
            Hold::Own(stack) => Some(stack),
            Hold::Watch(_) | Hold::Deployed => None,
        }
    }

    /// The stack whose logs a failure of this scenario keeps, and whether
    /// whole (its own) or from the scenario's start on (the shared one);
    /// `None` for a deployed one, whose logs are its own.
    pub(crate) fn logs(&mut self) -> Option<(&Stack, bool)> {
        match &mut self.hold {
            Hold::Turn(lease) => Some((lease.stack(), false)),
            Hold::Watch(watch) => Some((watch.stack(), false)),
            Hold::Own(stack) => Some((stack, true)),
            Hold::Deployed => None,
        }
    }

    /// Gives the shared stack, on the scenario's turn, back what the
    /// scenario broke ([`Lease::mend`]).
    pub(crate) async fn mend(&mut self) -> Result<(), crate::HarnessError> {
        match &mut self.hold {
            Hold::Turn(lease) => lease.mend().await,
            Hold::Own(_) | Hold::Watch(_) | Hold::Deployed => Ok(()),
        }
    }

    /// Ends the scenario's hold: its own stack stops; the shared one is
    /// free for the next scenario.
    pub(crate) async fn release(self) -> Result<(), crate::HarnessError> {
        match self.hold {
            Hold::Own(stack) => stack.stop(&mut |_| {}).await,
            Hold::Turn(_) | Hold::Watch(_) | Hold::Deployed => Ok(()),
        }
    }
}
