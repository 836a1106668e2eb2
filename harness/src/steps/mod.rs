//! Cucumber steps for testing any HTTP services behind a gateway, for a
//! team's own `World`: HTTP calls and assertions on their answers, logins,
//! load with a fault in the middle, an even spread over instances, and the
//! registry and Redis as the stack sees them.
//!
//! A team implements [`StackWorld`] on its world and runs its features with
//! the library's steps next to its own (`#[given]`/`#[when]`/`#[then]`
//! steps stay as they are):
//!
//! ```ignore
//! #[derive(Debug, Default, cucumber::World)]
//! struct MyWorld { steps: StepState, stack: Option<Stack> }
//!
//! impl StackWorld for MyWorld {
//!     fn gateway_url(&self) -> String { self.stack.as_ref().map(|s| s.gateway_url().to_owned()).unwrap_or_default() }
//!     fn step_state(&mut self) -> &mut StepState { &mut self.steps }
//!     fn stack(&mut self) -> Option<&mut Stack> { self.stack.as_mut() }
//! }
//!
//! // In main: the world's own steps plus the library's.
//! MyWorld::cucumber().steps(gantry_harness::steps::collection::<MyWorld>()).run("features").await;
//! ```
//!
//! Cucumber's attribute macros register steps for one concrete world (through
//! `inventory`), so a library cannot use them for a world it does not know.
//! The steps here are plain generic functions added to a
//! [`cucumber::step::Collection`] for the team's world: [`collection`] is the
//! world's own macro steps plus these, [`add`] adds these to any collection.
//!
//! # The phrases
//!
#![doc = include_str!("../../STEPS.md")]

pub mod answer;
mod args;
pub mod config;
pub mod faults;
pub mod http;
pub mod links;
pub mod load;
pub mod login;
pub mod metrics;
pub mod place;
mod poll;
pub mod redis;
pub mod registry;
pub mod request;
pub mod shared;
pub mod state;
pub mod traffic;

use std::fmt::Debug;

use cucumber::codegen::WorldInventory;
use cucumber::step::Collection;
use gantry_common::registry::RegistryClient;

pub use config::StepConfig;
pub use faults::{Fault, FaultError, Faults};
pub use shared::{Lease, SharedStack, Watch};
pub use state::StepState;

use crate::stack::Stack;

/// What the library's steps need of a team's `World`. Only
/// [`gateway_url`](StackWorld::gateway_url) and
/// [`step_state`](StackWorld::step_state) must be written; the rest have
/// defaults that read where [`crate::runner::Runner`] put the scenario
/// ([`StepState::place`]): its stack, or a deployed one's addresses.
pub trait StackWorld: cucumber::World + Debug {
    /// Where paths (`/users/me`) are sent: the gateway in front of the services.
    fn gateway_url(&self) -> String;

    /// The library's state in this world: the last answer, named users, the
    /// last load. Keep one [`StepState`] in the world and return it.
    fn step_state(&mut self) -> &mut StepState;

    /// How logins work and which header names the instance; Gantry's by default.
    fn step_config(&self) -> StepConfig {
        StepConfig::default()
    }

    /// The gateway's admin listener, for the metric steps.
    fn admin_url(&mut self) -> Option<String> {
        if let Some(place) = &self.step_state().place {
            return place.target().admins.first().cloned();
        }
        self.stack().and_then(|s| s.gateway_admin_urls().first().cloned())
    }

    /// A CA the gateway's certificate is from, for `https://` gateways with
    /// a private CA (besides `GANTRY_CA_CERT`, which every client trusts):
    /// the running stack's own, by default.
    fn ca_cert(&mut self) -> Option<std::path::PathBuf> {
        if let Some(place) = &self.step_state().place {
            return place.target().ca_cert.clone();
        }
        self.stack().and_then(|s| s.ca_cert().map(std::path::Path::to_owned))
    }

    /// The stack this scenario may break, when the harness runs it.
    fn stack(&mut self) -> Option<&mut Stack> {
        self.step_state().place.as_mut().and_then(place::Place::stack)
    }

    /// What breaks and mends instances: the stack by default.
    fn faults(&mut self) -> Option<&mut dyn Faults> {
        self.stack().map(|s| s as &mut dyn Faults)
    }

    /// The fault proxy whose links are in the stack's hops (the link steps).
    fn fault_links(&mut self) -> Option<crate::faults::FaultProxy> {
        self.stack().and_then(|s| s.faults().cloned())
    }

    /// A client of the registry the services register in.
    fn registry(&mut self) -> Option<RegistryClient> {
        if let Some(place) = &self.step_state().place {
            return place.target().registry.clone();
        }
        self.stack().map(|s| s.registry())
    }

    /// Called by [`crate::runner::Runner`] when the scenario ends, before
    /// its logs are kept and its stack is mended or stopped: where a world
    /// lets go of what it holds on the stack (connections, servers it
    /// registered).
    fn scenario_ended(&mut self) -> impl std::future::Future<Output = ()> + Send {
        async {}
    }

    /// `REDIS_URL` of the stack's Redis.
    fn redis_url(&mut self) -> Option<String> {
        if let Some(place) = &self.step_state().place {
            return place.target().redis_url.clone();
        }
        self.stack().map(|s| s.redis_url().to_owned())
    }
}

/// The world's own macro-registered steps plus the library's: what
/// `W::cucumber().steps(...)` takes.
pub fn collection<W: StackWorld + WorldInventory>() -> Collection<W> {
    add(W::collection())
}

/// `steps` with the library's steps added.
pub fn add<W: StackWorld>(steps: Collection<W>) -> Collection<W> {
    let steps = http::add(steps);
    let steps = answer::add(steps);
    let steps = login::add(steps);
    let steps = load::add(steps);
    let steps = traffic::add(steps);
    let steps = faults::add(steps);
    let steps = links::add(steps);
    let steps = registry::add(steps);
    let steps = redis::add(steps);
    metrics::add(steps)
}

#[cfg(test)]
mod tests;
