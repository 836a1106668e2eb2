//! What a fault cost, on one timeline: from the fault proxy's record of a
//! link (when the fault began and healed, every request the instance got
//! and how it was answered) and the load driver's samples (what clients
//! saw). Times are from the fault's start.
//!
//! - **first client error**: the first sample that failed after the fault;
//! - **sent to the instance**: requests the gateway sent the sick instance;
//! - **bursts**: those requests grouped by pauses of [`GAP`] or more — with
//!   outlier detection, each burst is one ejection cycle, and the first
//!   burst's end is when the gateway set the instance aside;
//! - **back after heal**: from the heal to the first request the instance
//!   answered with a 2xx.
//!
//! Printed by the scenarios and written beside their evidence; asserted
//! only where a mechanism promises a bound (see `tests/bdd/steps/sick.rs`).

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::drive::load::LoadReport;
use crate::faults::LinkEvent;

/// Requests this far apart belong to different bursts: much more than the
/// time between two requests a balancer sends one instance under load,
/// much less than an ejection.
pub const GAP: Duration = Duration::from_millis(200);

/// One burst of requests to the instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Burst {
    /// From the fault's start.
    pub from_ms: u64,
    /// Its last request, from the fault's start.
    pub to_ms: u64,
    /// How many requests it holds.
    pub requests: usize,
}

/// A fault's cost, from the fault's start.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FaultTimeline {
    /// The link that was faulted, e.g. `greeter-2`.
    pub link: String,
    /// The toxics' types, in the order added.
    pub faults: Vec<&'static str>,
    /// When every toxic was removed; `None` when the fault never healed.
    pub healed_after_ms: Option<u64>,
    /// Requests the sick instance got from the fault to its heal.
    pub sent_to_instance: usize,
    /// Of those, answered with an error (5xx) or severed.
    pub spoiled: usize,
    /// Those requests grouped by pauses of [`GAP`] or more, in order.
    pub bursts: Vec<Burst>,
    /// From the heal to the instance's first 2xx.
    pub back_after_heal_ms: Option<u64>,
    /// The load's requests sent from the fault to its heal.
    pub load_requests: usize,
    /// Of those, how many failed (not 2xx, or no answer).
    pub load_failures: usize,
    /// When the first of those failures was sent; `None` when none failed.
    pub first_client_error_ms: Option<u64>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl FaultTimeline {
    /// The timeline of the last fault on `link` (its `events`), with the
    /// load that ran meanwhile, if any. `None` when the link never faulted.
    pub fn build(link: &str, events: &[(Instant, LinkEvent)], load: Option<&LoadReport>) -> Option<Self> {
        let start = events.iter().rposition(|(_, e)| matches!(e, LinkEvent::Faulted(_)))?;
        // The fault's first toxic: faults added in a row are one fault.
        let first = events[..=start]
            .iter()
            .rposition(|(_, e)| !matches!(e, LinkEvent::Faulted(_)))
            .map_or(0, |i| i + 1);
        let at = events[first].0;
        let faults = events[first..=start]
            .iter()
            .filter_map(|(_, e)| match e {
                LinkEvent::Faulted(kind) => Some(*kind),
                _ => None,
            })
            .collect();
        let after = &events[start + 1..];
        let healed = after.iter().position(|(_, e)| *e == LinkEvent::Healed);
        let (sick, rest) = match healed {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, &after[after.len()..]),
        };
        let mut bursts: Vec<Burst> = Vec::new();
        let (mut sent, mut spoiled) = (0, 0);
        for (t, e) in sick {
            let LinkEvent::Request(status) = e else { continue };
            sent += 1;
            if *status == 0 || *status >= 500 {
                spoiled += 1;
            }
            let now = ms(t.duration_since(at));
            match bursts.last_mut() {
                Some(b) if now.saturating_sub(b.to_ms) < ms(GAP) => {
                    b.to_ms = now;
                    b.requests += 1;
                }
                _ => bursts.push(Burst {
                    from_ms: now,
                    to_ms: now,
                    requests: 1,
                }),
            }
        }
        let healed_at = healed.map(|i| after[i].0);
        let back_after_heal_ms = healed_at.and_then(|h| {
            rest.iter()
                .find(|(_, e)| matches!(e, LinkEvent::Request(s) if (200..300).contains(s)))
                .map(|(t, _)| ms(t.duration_since(h)))
        });
        let (mut load_requests, mut load_failures, mut first_client_error_ms) = (0, 0, None);
        if let Some(report) = load
            && let Some(started) = report.started
        {
            for s in &report.samples {
                let sent_at = started + s.sent_at;
                if sent_at < at || healed_at.is_some_and(|h| sent_at > h) {
                    continue;
                }
                load_requests += 1;
                if !(200..300).contains(&s.status) {
                    load_failures += 1;
                    first_client_error_ms.get_or_insert(ms(sent_at.duration_since(at)));
                }
            }
        }
        Some(Self {
            link: link.to_owned(),
            faults,
            healed_after_ms: healed_at.map(|h| ms(h.duration_since(at))),
            sent_to_instance: sent,
            spoiled,
            bursts,
            back_after_heal_ms,
            load_requests,
            load_failures,
            first_client_error_ms,
        })
    }
}

impl fmt::Display for FaultTimeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or = |v: Option<u64>, none: &str| v.map_or(none.to_owned(), |v| format!("{v} ms"));
        writeln!(f, "timeline of {} ({}):", self.link, self.faults.join(" + "))?;
        writeln!(
            f,
            "  clients: {} requests during the fault, {} failed, first error at {}",
            self.load_requests,
            self.load_failures,
            or(self.first_client_error_ms, "none")
        )?;
        writeln!(
            f,
            "  instance: sent {} requests ({} spoiled) in {} bursts",
            self.sent_to_instance,
            self.spoiled,
            self.bursts.len()
        )?;
        for b in &self.bursts {
            writeln!(f, "    {}–{} ms: {} requests", b.from_ms, b.to_ms, b.requests)?;
        }
        if let Some(first) = self.bursts.first() {
            writeln!(f, "  set aside at {} ms (end of the first burst)", first.to_ms)?;
        }
        write!(
            f,
            "  healed at {}, back in traffic {} after",
            or(self.healed_after_ms, "never"),
            or(self.back_after_heal_ms, "not yet")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_errors_and_the_return_are_read_off_the_events() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let events = vec![
            (at(0), LinkEvent::Request(200)),
            (at(100), LinkEvent::Faulted("http_error")),
            (at(110), LinkEvent::Request(503)),
            (at(120), LinkEvent::Request(503)),
            (at(1200), LinkEvent::Request(503)),
            (at(2000), LinkEvent::Healed),
            (at(2500), LinkEvent::Request(503)),
            (at(3000), LinkEvent::Request(200)),
        ];
        let t = FaultTimeline::build("user-2", &events, None).unwrap();
        assert_eq!(t.faults, ["http_error"]);
        assert_eq!((t.sent_to_instance, t.spoiled), (3, 3));
        assert_eq!(
            t.bursts,
            [
                Burst {
                    from_ms: 10,
                    to_ms: 20,
                    requests: 2
                },
                Burst {
                    from_ms: 1100,
                    to_ms: 1100,
                    requests: 1
                }
            ]
        );
        assert_eq!(t.healed_after_ms, Some(1900));
        assert_eq!(t.back_after_heal_ms, Some(1000));
        assert!(t.to_string().contains("set aside at 20 ms"), "{t}");
        assert!(FaultTimeline::build("x", &events[..1], None).is_none());
    }
}
