//! The team's world: the library's step state, and the header its services
//! name themselves in. Both runners (`stack.rs`, `images.rs`) use it.

use gantry_harness::steps::{StackWorld, StepConfig, StepState};

#[derive(Debug, Default, cucumber::World)]
pub struct World {
    steps: StepState,
}

impl StackWorld for World {
    fn gateway_url(&self) -> String {
        self.steps.gateway_url()
    }
    fn step_state(&mut self) -> &mut StepState {
        &mut self.steps
    }
    fn step_config(&self) -> StepConfig {
        let instance_header = "X-Served-By".into();
        StepConfig {
            instance_header,
            ..StepConfig::default()
        }
    }
}
