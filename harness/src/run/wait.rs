//! Waiting for real readiness: a condition is polled until it holds, the
//! process it depends on dies, or a deadline passes.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::HarnessError;
use crate::run::process::Process;

/// Pause between two checks of a readiness condition.
pub const POLL: Duration = Duration::from_millis(25);

/// The one way to poll: a deadline that paces the tries of a loop the caller
/// writes itself (when each try needs `&mut` state a closure cannot borrow,
/// or records what it saw). [`until`] is this loop for a closure.
///
/// ```ignore
/// let deadline = Deadline::after(within);
/// loop {
///     if condition_holds().await { break }
///     assert!(deadline.again().await, "it never held: {last}");
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    pace: Duration,
}

impl Deadline {
    /// Tries may go on until `within` from now, [`POLL`] apart.
    pub fn after(within: Duration) -> Self {
        Self {
            at: Instant::now() + within,
            pace: POLL,
        }
    }

    /// Tries `pace` apart instead, where each try costs the system under test
    /// something (a refresh that rotates a session).
    pub fn every(self, pace: Duration) -> Self {
        Self { pace, ..self }
    }

    /// False once the deadline has passed; else waits the pause between two
    /// tries and returns true.
    pub async fn again(&self) -> bool {
        if Instant::now() >= self.at {
            return false;
        }
        tokio::time::sleep(self.pace).await;
        true
    }
}

/// Polls `ready` until it returns `Ok(true)`. Fails with the process's log
/// tail if `process` exits first, or with the last reason after `timeout`.
pub async fn until<F, Fut>(
    what: &str,
    timeout: Duration,
    mut process: Option<&mut Process>,
    mut ready: F,
) -> Result<Duration, HarnessError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, String>>,
{
    let started = Instant::now();
    let deadline = Deadline::after(timeout);
    loop {
        let last = match ready().await {
            Ok(true) => return Ok(started.elapsed()),
            Ok(false) => "not ready yet".to_owned(),
            Err(why) => why,
        };
        if let Some(p) = process.as_deref_mut()
            && let Some(status) = p.exited()
        {
            return Err(HarnessError::Exited {
                name: p.name().to_owned(),
                status: status.to_string(),
                log: p.log_path().display().to_string(),
                tail: p.log_tail(20),
            });
        }
        if !deadline.again().await {
            return Err(HarnessError::NotReady {
                what: what.to_owned(),
                waited: timeout,
                last,
            });
        }
    }
}
