//! The stacks scenarios start for themselves: of the infrastructure this
//! run uses. Which stack a scenario runs against, and which scenarios run
//! where, is the runner's ([`gantry_harness::runner`]), as for a team.

use gantry_harness::runner::Mode;
use gantry_harness::{Infra, StackBuilder};

/// A stack builder for this mode's infrastructure.
pub fn builder() -> StackBuilder {
    let infra = match Mode::from_env() {
        Ok(Mode::Managed(infra)) => infra,
        _ => Infra::Local,
    };
    StackBuilder::new(env!("CARGO_BIN_EXE_gantry")).infra(infra)
}
