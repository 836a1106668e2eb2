//! One stack for a whole run of scenarios: what a runner needs when starting
//! a stack costs more than its scenarios do. Either lent to one scenario at
//! a time, which may break it: the scenario holds a [`Lease`] from its
//! before-hook to its after-hook, which [`Lease::mend`]s what it left
//! broken, so a scenario that fails half-way through a fault does not fail
//! the next. Or watched by several scenarios at once, which only send it
//! requests ([`SharedStack::watch`]); one that breaks things starts a stack
//! of its own.
//!
//! ```ignore
//! #[derive(Debug, Default, cucumber::World)]
//! struct World { steps: StepState, stack: Option<Lease> }
//! // StackWorld::stack: self.stack.as_mut().map(Lease::stack)
//! let shared = SharedStack::new(builder.start(&mut |_| {}).await?);
//! let lender = shared.clone();
//! World::cucumber()
//!     .before(move |_, _, _, w| { let s = lender.clone(); Box::pin(async move { w.stack = Some(s.lend().await) }) })
//!     .after(|_, _, _, _, w| Box::pin(async move { if let Some(l) = w.and_then(|w| w.stack.as_mut()) { l.mend().await.unwrap() } }))
//!     …
//! shared.stop().await?;
//! ```

use std::sync::Arc;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::error::HarnessError;
use crate::run::containers::ContainerState;
use crate::stack::Stack;

/// A running stack scenarios take turns with, or watch together. Clones share it.
#[derive(Debug, Clone)]
pub struct SharedStack {
    inner: Arc<RwLock<Option<Stack>>>,
}

/// The stack, held by one scenario until it is dropped.
#[derive(Debug)]
pub struct Lease {
    guard: OwnedRwLockWriteGuard<Option<Stack>>,
}

/// The stack, watched by one of the scenarios sharing it until it is
/// dropped: no turn is taken, and nothing may be broken.
#[derive(Debug)]
pub struct Watch {
    guard: OwnedRwLockReadGuard<Option<Stack>>,
}

impl SharedStack {
    /// Shares `stack`, already started, for the run.
    pub fn new(stack: Stack) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Some(stack))),
        }
    }

    /// The stack, once no other scenario holds or watches it.
    pub async fn lend(&self) -> Lease {
        Lease {
            guard: self.inner.clone().write_owned().await,
        }
    }

    /// The stack, shared with the other scenarios watching it (it waits
    /// only while one holds a [`Lease`]).
    pub async fn watch(&self) -> Watch {
        Watch {
            guard: self.inner.clone().read_owned().await,
        }
    }

    /// Stops the stack gracefully, once no scenario holds or watches it.
    pub async fn stop(self) -> Result<(), HarnessError> {
        match self.inner.write().await.take() {
            Some(stack) => stack.stop(&mut |_| {}).await,
            None => Ok(()),
        }
    }
}

impl Watch {
    /// The stack, to read its addresses and send it requests.
    pub fn stack(&self) -> &Stack {
        self.guard
            .as_ref()
            .expect("the shared stack is watched only before it is stopped")
    }
}

impl Lease {
    /// The stack, for this scenario alone: it may break it.
    pub fn stack(&mut self) -> &mut Stack {
        self.guard
            .as_mut()
            .expect("the shared stack is lent only before it is stopped")
    }

    /// The first gateway's URL.
    pub fn gateway_url(&self) -> String {
        self.guard
            .as_ref()
            .map(|s| s.gateway_url().to_owned())
            .unwrap_or_default()
    }

    /// Starts again, and waits until ready, every instance of a service
    /// (or gateway) that is not running: what a scenario killed or stopped
    /// and did not start again, or what crashed. A paused one is resumed.
    /// Every fault link heals (no toxics, listening).
    pub async fn mend(&mut self) -> Result<(), HarnessError> {
        let stack = self.stack();
        if let Some(faults) = stack.faults() {
            faults
                .reset()
                .await
                .map_err(|e| HarnessError::Faults(format!("healing the links: {e}")))?;
        }
        let services: Vec<String> = stack.services().into_iter().map(str::to_owned).collect();
        for service in services {
            let indices: Vec<usize> = stack.instances(&service)?.iter().map(|i| i.index()).collect();
            for n in indices {
                let instance = stack.instance_mut(&service, n)?;
                if let Some(container) = instance.container() {
                    match container.state().await? {
                        ContainerState::Stopped => {
                            instance.start_again().await?;
                            instance.wait_ready().await?;
                        }
                        ContainerState::Paused => instance.resume().await?,
                        ContainerState::Running => {}
                    }
                    continue;
                }
                let Some(process) = instance.process_mut() else {
                    continue;
                };
                if process.pid().is_none() {
                    // Killed or stopped by a step.
                    instance.start_again().await?;
                    instance.wait_ready().await?;
                } else if process.exited().is_some() {
                    // Crashed: reaped and started again.
                    instance.restart().await?;
                } else {
                    // SIGCONT does nothing to a process that is not stopped.
                    instance.resume().await?;
                }
            }
        }
        Ok(())
    }
}
