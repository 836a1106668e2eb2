//! Without the `containers` feature: no container can run. Every start
//! fails saying so, and nothing else is ever called, since no container
//! or network can exist (the types have no values).

use super::{ContainerState, HostReach, Request};
use crate::error::HarnessError;

/// Why no container runs: the reason every start gives.
const OFF: &str = "gantry-harness was built without its `containers` feature: containers cannot run; build it with the feature, or use GANTRY_INFRA=local and no image";

fn off(name: &str) -> HarnessError {
    HarnessError::Container {
        name: name.to_owned(),
        detail: OFF.to_owned(),
    }
}

/// A container: none can exist without the feature.
#[derive(Debug)]
pub enum Container {}

impl Container {
    /// Its name in the stack.
    pub fn name(&self) -> &str {
        match *self {}
    }
    /// Kills it.
    pub async fn kill(&mut self) -> Result<(), HarnessError> {
        match *self {}
    }
    /// Stops it.
    pub async fn stop(&mut self) -> Result<(), HarnessError> {
        match *self {}
    }
    /// Starts it again.
    pub async fn start_again(&mut self) -> Result<(), HarnessError> {
        match *self {}
    }
    /// Pauses it.
    pub async fn pause(&self) -> Result<(), HarnessError> {
        match *self {}
    }
    /// Resumes it.
    pub async fn resume(&self) -> Result<(), HarnessError> {
        match *self {}
    }
    /// What it is doing.
    pub async fn state(&self) -> Result<ContainerState, HarnessError> {
        match *self {}
    }
    /// What its HEALTHCHECK says.
    pub async fn health(&self) -> Result<Option<String>, HarnessError> {
        match *self {}
    }
    /// Removes it.
    pub async fn remove(&mut self) -> Result<(), HarnessError> {
        match *self {}
    }
    /// Its output.
    pub async fn logs(&self) -> String {
        match *self {}
    }
    /// Its stdout and stderr.
    pub async fn log_bytes(&self) -> (Vec<u8>, Vec<u8>) {
        match *self {}
    }
}

/// A stack's network: none can exist without the feature.
#[derive(Debug)]
pub enum StackNetwork {}

impl StackNetwork {
    /// Fails: no network without containers.
    pub async fn create(_stack: &str) -> Result<Self, HarnessError> {
        Err(off("network"))
    }
    /// Its name.
    pub fn name(&self) -> &str {
        match *self {}
    }
    /// How its containers reach the host.
    pub fn reach(&self) -> &HostReach {
        match *self {}
    }
    /// Removes it.
    pub async fn remove(&self) {
        match *self {}
    }
}

/// Always the reason: the feature is off.
pub async fn unavailable_because(_images: &[&str]) -> Option<String> {
    Some(OFF.to_owned())
}

/// Fails: the feature is off.
pub async fn start(request: Request<'_>) -> Result<Container, HarnessError> {
    Err(off(request.name))
}

/// Nothing to guard.
pub fn guard_signals() {}

/// Nothing to remove.
pub async fn remove_own_containers() {}
