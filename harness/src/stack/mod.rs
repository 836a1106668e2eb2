//! The one place that knows how to start and stop a whole stack: Redis, the
//! registry, the services and the gateways, each described by a
//! [`ServiceSpec`] and run as a real process (or container).
//!
//! Split along its seams: [`spec`] says what a service is, [`infra`] what
//! Redis and the registry are, [`builder`] describes a stack and brings it
//! up, [`group`] starts instances from specs through the one
//! start-on-a-free-port routine in [`launch`], [`readiness`] knows when
//! they are up, [`instance`] breaks them, [`running`] is the stack once up,
//! [`gantry`] what only Gantry's own stack has, [`file`] reads `stack.toml`.

pub mod builder;
pub mod file;
pub mod gantry;
mod group;
pub mod infra;
pub mod instance;
pub mod launch;
pub mod logs;
mod placeholders;
pub mod progress;
pub mod readiness;
pub mod role;
pub mod running;
pub mod spec;

pub use builder::{DEFAULT_CHECK_TTL, GatewaySpec, StackBuilder};
pub use gantry::GantryStack;
pub use infra::{Infra, RegistryKind, which};
pub use instance::Instance;
pub use logs::{LogMarks, SavedLog};
pub use progress::{Progress, print_progress};
pub use readiness::redis_url;
pub(crate) use readiness::wait_passing;
pub use role::Role;
pub use running::Stack;
pub use spec::{Check, LogMatch, Mount, READY_TIMEOUT, Ready, Registration, Run, ServiceSpec};
