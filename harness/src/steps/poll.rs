//! Checks that may take a deadline: looked at once without one, polled
//! until they hold with one. Never a sleep standing in for a condition.

use std::future::Future;
use std::time::Duration;

use crate::run::wait;

/// Runs `check` once when `within` is zero, else until it holds or `within`
/// passes; panics with the last reason it gave (and what was awaited).
pub(crate) async fn check<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    if within.is_zero() {
        if let Err(why) = check().await {
            panic!("{why}");
        }
        return;
    }
    let ready = || {
        let done = check();
        async move { done.await.map(|()| true) }
    };
    if let Err(e) = wait::until(what, within, None, ready).await {
        panic!("{e}");
    }
}
