//! The one routine that starts anything of a stack on a free port: pick a
//! port, start, wait until ready, and try another port when the chosen one
//! was taken in the moment between choosing and binding it (another stack
//! starting at the same time). Redis, the registry, services and gateways,
//! processes and containers alike go through it.

use crate::error::HarnessError;
use crate::run::ports::free_port;

/// How many ports to try before giving up.
pub const PORT_ATTEMPTS: usize = 5;

/// Runs `attempt(port)` (start and wait ready) on `fixed` or a free port,
/// again on another free port while it fails because the port was taken.
/// A failed attempt must leave nothing running.
pub async fn on_free_port<T>(
    fixed: Option<u16>,
    mut attempt: impl AsyncFnMut(u16) -> Result<T, HarnessError>,
) -> Result<T, HarnessError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let port = match fixed {
            Some(p) => p,
            None => any_port()?,
        };
        match attempt(port).await {
            Ok(t) => return Ok(t),
            Err(e) if tries < PORT_ATTEMPTS && port_was_taken(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// A port that is free now.
pub fn any_port() -> Result<u16, HarnessError> {
    free_port().map_err(|e| HarnessError::Io("finding a free port".into(), e))
}

/// True when `e` says a port was already in use: a process that exited
/// (or never got ready) saying so, or a container Docker could not publish.
pub fn port_was_taken(e: &HarnessError) -> bool {
    const IN_USE: &str = "ddress already in use";
    match e {
        HarnessError::Exited { tail, .. } => tail.contains(IN_USE),
        HarnessError::NeverReady(n) => n.tail.contains(IN_USE),
        HarnessError::Container { detail, .. } => crate::run::containers::port_was_taken(detail),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_retried_on_another_and_other_errors_are_not() {
        let mut ports = Vec::new();
        let got = on_free_port(None, async |port| {
            ports.push(port);
            if ports.len() < 3 {
                Err(HarnessError::Exited {
                    name: "x".into(),
                    status: "exit status: 1".into(),
                    log: "x.log".into(),
                    tail: "bind: Address already in use".into(),
                })
            } else {
                Ok(port)
            }
        })
        .await
        .unwrap();
        assert_eq!(ports.len(), 3);
        assert_eq!(Some(&got), ports.last());

        let mut calls = 0;
        let e = on_free_port(Some(1), async |_| {
            calls += 1;
            Err::<(), _>(HarnessError::NotRunning("y".into()))
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 1, "{e}");
    }
}
