//! Waiting for real readiness: a condition is polled until it holds, the
//! process it depends on dies, or a deadline passes.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::HarnessError;
use crate::run::process::Process;

/// Pause between two checks of a readiness condition.
pub const POLL: Duration = Duration::from_millis(25);

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
        if started.elapsed() > timeout {
            return Err(HarnessError::NotReady {
                what: what.to_owned(),
                waited: timeout,
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
