//! When a run's result becomes the check's status: Consul's
//! `checks.StatusHandler`, which counts successes and failures in a row
//! against `SuccessBeforePassing`, `FailuresBeforeWarning` and
//! `FailuresBeforeCritical`.
//!
//! Both counters start *at* their thresholds, so the very first result of a
//! fresh check takes effect at once (Consul's comment: "in order to
//! immediately update status after first check"); the thresholds only hold
//! a status against results that contradict it.

use crate::catalog::Status;
use crate::definition::Thresholds;

#[derive(Debug, Clone)]
pub struct StatusHandler {
    thresholds: Thresholds,
    successes: u32,
    failures: u32,
}

impl StatusHandler {
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            successes: thresholds.success_before_passing,
            failures: thresholds.failures_before_critical,
        }
    }

    /// Counts one run's result; the status to record, if it takes effect.
    /// A warning counts as a success (as in Consul: only critical results
    /// are failures), and failures past `failures_before_warning` but short
    /// of `failures_before_critical` record a warning.
    pub fn update(&mut self, status: Status) -> Option<Status> {
        let t = self.thresholds;
        if status == Status::Critical {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.failures >= t.failures_before_critical {
                return Some(Status::Critical);
            }
            if self.failures >= t.failures_before_warning {
                return Some(Status::Warning);
            }
            None
        } else {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            (self.successes >= t.success_before_passing).then_some(status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    fn run(t: Thresholds, results: &[Status]) -> Vec<Option<Status>> {
        let mut h = StatusHandler::new(t);
        results.iter().map(|s| h.update(*s)).collect()
    }

    #[test]
    fn without_thresholds_every_result_takes_effect() {
        assert_eq!(
            run(Thresholds::default(), &[Passing, Critical, Warning, Passing]),
            [Some(Passing), Some(Critical), Some(Warning), Some(Passing)]
        );
    }

    /// Consul's TestStatusHandlerUpdateStatusAfterConsecutiveChecksThresholdIsReached,
    /// with SuccessBeforePassing 2, FailuresBeforeWarning 2, FailuresBeforeCritical 3.
    #[test]
    fn thresholds_hold_a_status_until_enough_results_in_a_row() {
        let t = Thresholds::new(2, 2, 3);
        assert_eq!(
            run(t, &[Passing, Critical, Critical, Critical, Passing, Passing]),
            [
                Some(Passing), // the first result takes effect at once
                None,          // one failure: still passing
                Some(Warning), // two: warning
                Some(Critical),
                None, // one success after failures: still critical
                Some(Passing),
            ]
        );
    }

    #[test]
    fn failures_before_warning_defaults_to_failures_before_critical() {
        let t = Thresholds::new(0, 0, 3);
        assert_eq!(t.failures_before_warning, 3);
        assert_eq!(
            run(t, &[Passing, Critical, Critical, Critical]),
            [Some(Passing), None, None, Some(Critical)]
        );
    }

    #[test]
    fn a_success_resets_the_failures_and_a_failure_the_successes() {
        let t = Thresholds::new(2, 0, 2);
        assert_eq!(
            run(t, &[Critical, Passing, Critical, Passing, Passing]),
            [Some(Critical), None, None, None, Some(Passing)]
        );
    }
}
