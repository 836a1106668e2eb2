#![warn(missing_docs)]
//! The Gantry harness: starts a stack (infrastructure and services as real
//! processes), breaks it on purpose, and drives it.

pub mod drive;
pub mod error;
pub mod faults;
/// The dev registry moved to its own crate (it is a deployed component);
/// this path keeps `gantry_harness::registry::…` working for callers.
pub use gantry_registry as registry;
pub mod report;
pub mod run;
#[cfg(feature = "cucumber")]
pub mod runner;
pub mod stack;
#[cfg(feature = "cucumber")]
pub mod steps;

pub use error::{HarnessError, NeverReady};
pub use run::binary::gantry_binary;
pub use stack::{
    Check, GantryStack, GatewaySpec, Infra, Instance, LogMarks, LogMatch, Progress, Ready, Registration, Role, Run,
    SavedLog, ServiceSpec, Stack, StackBuilder,
};
