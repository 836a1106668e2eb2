//! The Gantry harness: starts a stack (infrastructure and services as real
//! processes), breaks it on purpose, and drives it.

pub mod binary;
pub mod client;
pub mod component;
pub mod containers;
pub mod echo;
pub mod error;
pub mod evidence;
pub mod load;
pub mod metrics;
pub mod nginx;
pub mod ports;
pub mod process;
pub mod raw;
pub mod redis_stats;
/// The dev registry moved to its own crate (it is a deployed component);
/// this path keeps `gantry_harness::registry::…` working for callers.
pub use gantry_registry as registry;
pub mod stack;
pub mod stats;
pub mod steps;
pub mod tls;
pub mod wait;

pub use binary::gantry_binary;
pub use error::{HarnessError, NeverReady};
pub use stack::{
    Check, GantryStack, GatewaySpec, Infra, Instance, LogMarks, LogMatch, Progress, Ready, Registration, Role, Run,
    SavedLog, ServiceSpec, Stack, StackBuilder,
};
