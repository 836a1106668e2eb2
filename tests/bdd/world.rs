//! The state one scenario carries from step to step.

use std::collections::HashMap;
use std::time::Duration;

use gantry_common::registry::RegistryClient;
use gantry_harness::Stack;
use gantry_harness::drive::client::{Answer, Credentials, UserClient};
use gantry_harness::drive::echo::{Echo, EchoInstance};
use gantry_harness::drive::load::LoadReport;
use gantry_harness::runner::{Place, Target};
use gantry_harness::steps::{StackWorld, StepState};
use tokio::time::Instant;

#[derive(Debug, Default, cucumber::World)]
pub struct GantryWorld {
    /// The `GANTRY_*` settings the fresh stack was started with (steps/sick.rs
    /// derives the bounds its mechanisms promise from them).
    pub settings: Vec<(String, String)>,
    /// The status and body of a large POST (steps/sick.rs).
    pub large: Option<(u16, String)>,
    /// What a component started alone printed and how it ended (steps/configuration.rs).
    pub exited: Option<std::process::Output>,
    /// The shared steps' state: the last answer, the answers of a batch,
    /// users by the name the scenario gives them, the last load, and where
    /// the scenario runs (the shared stack, one of its own, a deployed one).
    pub steps: StepState,
    pub request_timeout: Option<Duration>,
    pub previous_token: Option<String>,
    /// Each user's cookie and token as they were just before their last
    /// logout or refresh: what a thief would replay.
    pub before: HashMap<String, Credentials>,
    /// When a step deleted a session in Redis behind the gateways' backs.
    pub session_deleted_at: Option<tokio::time::Instant>,
    /// Session lookups Redis had counted before the step that measures them.
    pub hget_before: u64,
    /// `(instance id, when it passed)` of an instance started by a step.
    pub added: Option<(String, tokio::time::Instant)>,
    /// Gateway retry and ejection counters before a step that must not move them.
    pub counters_before: Option<(f64, f64)>,
    /// Raw connections a step left stalled (half a request head sent).
    pub stalled: Vec<tokio::net::TcpStream>,
    /// When the first of them was opened.
    pub stalled_since: Option<tokio::time::Instant>,
    /// A raw keep-alive connection that was answered once.
    pub kept: Option<tokio::net::TcpStream>,
    /// The client connection cap the scenario's gateway was started with.
    pub connection_cap: Option<usize>,
    /// Echo upstreams registered in the fresh stack (steps/upstream.rs).
    pub echoes: Echoes,
    /// A rogue server and its registration attempts (steps/trust.rs).
    pub rogue: Option<Rogue>,
    /// The routes file the scenario's gateways read (steps/routes.rs),
    /// removed when the scenario ends.
    pub routes: Option<crate::steps::routes::RoutesFile>,
}

/// The shared steps of `gantry_harness::steps` run on this world.
impl StackWorld for GantryWorld {
    fn gateway_url(&self) -> String {
        self.gateway()
    }

    fn step_state(&mut self) -> &mut StepState {
        &mut self.steps
    }

    /// The shared stack is registered in only by a scenario's own stack's
    /// steps: scenarios beside it must not find strangers in it.
    fn registry(&mut self) -> Option<RegistryClient> {
        self.steps.place.as_mut().and_then(Place::stack).map(|s| s.registry())
    }

    /// Raw connections first: a gateway drains open connections before it
    /// stops, and a half-sent request head is not done yet. Echoes stop
    /// heartbeating before the registry they report to stops.
    async fn scenario_ended(&mut self) {
        self.stalled.clear();
        self.kept = None;
        self.echoes = Echoes::default();
        self.rogue = None;
    }
}

/// Echo upstreams a step registered, and what the steps remember about them.
#[derive(Debug, Default)]
pub struct Echoes {
    pub instances: Vec<EchoInstance>,
    /// `(requests, connections closed unanswered)` of each echo when the
    /// last batch of requests started.
    pub before: HashMap<String, (usize, usize)>,
    /// The echo switched to closing connections, when, and the gateway's
    /// `(retries, ejections)` of the service at that moment.
    pub broken: Option<(String, Instant, (f64, f64))>,
    /// Requests a step sent, `(method, path with query, body)`, in order.
    pub sent: Vec<(String, String, String)>,
}

/// A server an attacker would advertise: an echo, which counts every
/// connection, so traffic sent to it would not go unnoticed.
#[derive(Debug)]
pub struct Rogue {
    pub server: Echo,
    /// How the registry answered each attempt to register it: status, body.
    pub registrations: Vec<(u16, String)>,
}

impl GantryWorld {
    pub fn target(&self) -> &Target {
        self.steps
            .place
            .as_ref()
            .map(Place::target)
            .expect("the runner gives every scenario its place before its first step")
    }

    pub fn gateway(&self) -> String {
        self.target().gateway().to_owned()
    }

    /// The gateway's admin listener (`/metrics`, the detailed `/readyz`).
    pub fn admin(&self) -> String {
        self.target().admin().to_owned()
    }

    /// The scenario's own stack (scenarios beside it share the run's stack,
    /// which none may break).
    pub fn stack(&mut self) -> &mut Stack {
        self.steps
            .place
            .as_mut()
            .and_then(Place::stack)
            .expect("this step needs a fresh stack (Given a fresh stack …)")
    }

    /// Runs the rest of the scenario on `stack`, its own: stopped when the
    /// scenario ends, its logs kept whole if it fails.
    pub fn own(&mut self, stack: Stack) {
        self.steps.place = Some(Place::own(stack));
    }

    /// Reads the gateways' addresses again after a step started one.
    pub fn refresh_target(&mut self) {
        if let Some(place) = self.steps.place.as_mut() {
            place.refresh();
        }
    }

    pub fn user(&self, name: &str) -> &UserClient {
        self.steps.user(name)
    }

    pub fn user_mut(&mut self, name: &str) -> &mut UserClient {
        self.steps.user_mut(name)
    }

    /// The first user the scenario named (the one steps that need any user take).
    pub fn any_user(&self) -> UserClient {
        self.steps
            .users
            .values()
            .next()
            .cloned()
            .expect("a user: log one in first (Given a logged-in user …)")
    }

    pub fn last(&self) -> &Answer {
        self.steps.last()
    }

    pub fn load(&self) -> &LoadReport {
        self.steps.load()
    }
}
