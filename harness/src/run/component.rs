//! A piece of infrastructure a test can break, whichever provider runs it.

use crate::error::HarnessError;
use crate::run::containers::Container;
use crate::run::process::Process;

/// What an instance runs as: the faults a test inflicts (kill, stop, pause,
/// start again) work the same on either.
// A stack holds two of these; their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Component {
    /// A process on the host (a command).
    Process(Process),
    /// A Docker container (an image).
    Container(Container),
}

impl Component {
    /// Its name in the stack, e.g. `greeter-2`.
    pub fn name(&self) -> &str {
        match self {
            Component::Process(p) => p.name(),
            Component::Container(c) => c.name(),
        }
    }

    /// SIGKILL.
    pub async fn kill(&mut self) -> Result<(), HarnessError> {
        match self {
            Component::Process(p) => p.kill().await,
            Component::Container(c) => c.kill().await,
        }
    }

    /// SIGTERM and wait; SIGKILL if it does not stop in time.
    pub async fn stop(&mut self) -> Result<(), HarnessError> {
        match self {
            Component::Process(p) => p.stop().await,
            Component::Container(c) => c.stop().await,
        }
    }

    /// Starts it again on the same port, after a kill or stop.
    pub async fn start_again(&mut self) -> Result<(), HarnessError> {
        match self {
            Component::Process(p) => p.start_again(),
            Component::Container(c) => c.start_again().await,
        }
    }

    /// SIGSTOP / `docker pause`.
    pub async fn pause(&mut self) -> Result<(), HarnessError> {
        match self {
            Component::Process(p) => p.pause(),
            Component::Container(c) => c.pause().await,
        }
    }

    /// SIGCONT / `docker unpause`.
    pub async fn resume(&mut self) -> Result<(), HarnessError> {
        match self {
            Component::Process(p) => p.resume(),
            Component::Container(c) => c.resume().await,
        }
    }

    /// Stops it for good (a container is removed).
    pub async fn shut_down(&mut self) -> Result<(), HarnessError> {
        match self {
            Component::Process(p) => p.stop().await,
            Component::Container(c) => c.remove().await,
        }
    }

    /// The last `lines` lines of its output.
    pub async fn log_tail(&self, lines: usize) -> String {
        match self {
            Component::Process(p) => p.log_tail(lines),
            Component::Container(c) => {
                let all = c.logs().await;
                let all: Vec<&str> = all.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
        }
    }

    /// Where its output is: a file, or the container's logs.
    pub fn log_place(&self) -> String {
        match self {
            Component::Process(p) => p.log_path().display().to_string(),
            Component::Container(c) => format!("the logs of container {}", c.name()),
        }
    }

    /// The process id, for a process that is running (never a container's).
    pub fn pid(&self) -> Option<u32> {
        match self {
            Component::Process(p) => p.pid(),
            Component::Container(_) => None,
        }
    }
}
