//! Faults between hops, through the fault proxy's links (a stack started
//! with `StackBuilder::fault_links`): an instance made sick rather than
//! dead, or one of its hops to Redis or the registry slowed or cut.
//!
//! ```gherkin
//! When instance 2 of "greeter" answers 503 to every request
//! When instance 2 of "greeter" answers 500 to the first 3 requests
//! When instance 2 of "greeter" answers 503 to 30% of requests
//! When instance 2 of "greeter" gets 200 ms of latency
//! When instance 2 of "greeter" gets 200 ms of latency with 50 ms of jitter
//! When instance 2 of "greeter" resets connections mid-response
//! When instance 2 of "greeter" hangs after the headers
//! When instance 2 of "greeter" is blackholed      (a partition: data waits)
//! When instance 2 of "greeter" goes silent        (half-open: data vanishes)
//! When instance 2 of "greeter" is limited to 64 KB/s
//! When instance 2 of "greeter" closes connections slowly, after 3000 ms
//! When the hop from instance 1 of "gateway" to "redis" is cut
//! When "echo-1" resets connections mid-response       (a link by its name)
//! When instance 2 of "greeter" heals
//! Then the link to instance 2 of "greeter" saw at most 12 requests
//! Then the timeline of the fault on instance 2 of "greeter" is reported
//! ```
//!
//! HTTP faults (`answers`, `hangs`) act per request at the instance's own
//! link, so the registry's check, which goes to the instance itself, keeps
//! passing: the instance is sick, not gone. `heals` removes every fault of
//! the link and lets it listen again.

use cucumber::step::{Collection, Context};

use super::StackWorld;
use super::args::{Args, StepFuture, here, re};
use super::faults::faults_of;
use crate::faults::{Kind, LinkHandle, Stream, Toxic};
use crate::report::timeline::FaultTimeline;

/// What a step does to a link.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkFault {
    /// These toxics are added.
    Toxics(Vec<Toxic>),
    /// The link refuses connections and closes those open.
    Cut,
    /// Every toxic goes and the link listens again.
    Heal,
}

impl LinkFault {
    /// The fault a step's words name, e.g. `answers 503 to every request`.
    pub fn from_words(words: &str) -> Option<Self> {
        let caps = |pattern: &str| re(pattern).captures(words);
        let num = |c: &regex::Captures<'_>, i: usize| c.get(i).and_then(|m| m.as_str().parse::<u64>().ok());
        let down = |kind: Kind| Some(Self::Toxics(vec![Toxic::new(kind, Stream::Downstream)]));
        if let Some(c) = caps(r"^answers (\d{3}) to every request$") {
            return down(Kind::HttpError {
                status: num(&c, 1)? as u16,
                first: 0,
            });
        }
        if let Some(c) = caps(r"^answers (\d{3}) to the first (\d+) requests?$") {
            return down(Kind::HttpError {
                status: num(&c, 1)? as u16,
                first: num(&c, 2)?,
            });
        }
        if let Some(c) = caps(r"^answers (\d{3}) to (\d+)% of requests$") {
            let share = num(&c, 2)? as f32 / 100.0;
            let toxic = Toxic::new(
                Kind::HttpError {
                    status: num(&c, 1)? as u16,
                    first: 0,
                },
                Stream::Downstream,
            );
            return Some(Self::Toxics(vec![toxic.with_toxicity(share)]));
        }
        if let Some(c) = caps(r"^gets (\d+) ms of latency(?: with (\d+) ms of jitter)?$") {
            return down(Kind::Latency {
                latency: num(&c, 1)?,
                jitter: num(&c, 2).unwrap_or(0),
            });
        }
        if let Some(c) = caps(r"^is limited to (\d+) KB/s$") {
            return down(Kind::Bandwidth { rate: num(&c, 1)? });
        }
        if let Some(c) = caps(r"^closes connections slowly, after (\d+) ms$") {
            return down(Kind::SlowClose { delay: num(&c, 1)? });
        }
        Some(match words {
            "resets connections mid-response" => return down(Kind::ResetPeer { timeout: 0 }),
            "hangs after the headers" => return down(Kind::HttpHang {}),
            // A partition: nothing gets through either way and nothing is
            // closed; what was sent waits and arrives, in order, after it.
            "is blackholed" => Self::Toxics(vec![
                Toxic::new(Kind::Blackhole {}, Stream::Upstream),
                Toxic::new(Kind::Blackhole {}, Stream::Downstream),
            ]),
            // A half-open connection (a NAT or a peer that forgot it): bytes
            // vanish, nothing is closed; afterwards it is reset.
            "goes silent" => Self::Toxics(vec![
                Toxic::new(Kind::Timeout { timeout: 0 }, Stream::Upstream),
                Toxic::new(Kind::Timeout { timeout: 0 }, Stream::Downstream),
            ]),
            "is cut" => Self::Cut,
            "heals" => Self::Heal,
            _ => return None,
        })
    }

    /// Does it to `link`.
    pub async fn apply(&self, link: &LinkHandle) -> Result<(), crate::faults::FaultError> {
        match self {
            LinkFault::Toxics(toxics) => {
                for t in toxics {
                    link.add(t.clone()).await?;
                }
                Ok(())
            }
            LinkFault::Cut => link.disable().await,
            LinkFault::Heal => {
                link.clear().await?;
                link.enable().await
            }
        }
    }
}

/// The words [`LinkFault::from_words`] knows, for the step's pattern.
const FAULTS: &str = r"answers \d{3} to (?:every request|the first \d+ requests?|\d+% of requests)|gets \d+ ms of latency(?: with \d+ ms of jitter)?|resets connections mid-response|hangs after the headers|is blackholed|goes silent|is cut|is limited to \d+ KB/s|closes connections slowly, after \d+ ms|heals";

/// `instance N of "svc"`, `the hop from instance N of "svc" to "redis"`, or
/// a link by its name (`"echo-1"`, `"user-2.redis"`).
const TARGET: &str = r#"(?:(?:the hop from )?instance (?P<n>\d+) of "(?P<service>[^"]+)"(?: to "(?P<to>redis|registry)")?|"(?P<id>[^"]+)")"#;

pub(super) fn add<W: StackWorld>(steps: Collection<W>) -> Collection<W> {
    let pattern = re(&format!("^{TARGET} (?P<fault>{FAULTS})$"));
    let seen = re(&format!(
        r"^the link to {TARGET} saw (?P<bound>at most|at least) (?P<count>\d+) requests?$"
    ));
    let timeline = re(&format!(r"^the timeline of the fault on {TARGET} is reported$"));
    steps
        .given(here!(), pattern.clone(), fault_step::<W>)
        .when(here!(), pattern, fault_step::<W>)
        .then(here!(), seen, seen_step::<W>)
        .then(here!(), timeline, timeline_step::<W>)
}

/// Prints the last fault's [`FaultTimeline`] on the link, with the last
/// load, and keeps it for the scenario's evidence.
fn timeline_step<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let link = link_of(w, &args);
        let events = link.events().await.unwrap_or_else(|e| panic!("{e}"));
        let state = w.step_state();
        let timeline = FaultTimeline::build(link.name(), &events, state.load.as_ref())
            .unwrap_or_else(|| panic!("the link {} was never given a fault", link.name()));
        println!("    {}", timeline.to_string().replace('\n', "\n    "));
        state.timelines.push(timeline);
    })
}

/// The link a step names, by the instance's id.
pub(super) fn link_of<W: StackWorld>(w: &mut W, args: &Args) -> LinkHandle {
    let name = match args.opt("id") {
        Some(name) => name.to_owned(),
        None => {
            let id = faults_of(w)
                .instance_id(args.get("service"), args.num("n"))
                .unwrap_or_else(|e| panic!("{e}"));
            match args.opt("to") {
                Some(to) => format!("{id}.{to}"),
                None => id,
            }
        }
    };
    let proxy = w
        .fault_links()
        .expect("this step needs a stack with fault links (StackBuilder::fault_links(true))");
    LinkHandle::new(&proxy, &name)
}

fn fault_step<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let words = args.get("fault");
        let fault = LinkFault::from_words(words).unwrap_or_else(|| panic!("{words:?} is not a link fault"));
        let link = link_of(w, &args);
        fault
            .apply(&link)
            .await
            .unwrap_or_else(|e| panic!("{words} on the link {}: {e}", link.name()));
    })
}

fn seen_step<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let link = link_of(w, &args);
        let seen = link.requests().await.unwrap_or_else(|e| panic!("{e}"));
        let count: usize = args.num("count");
        match args.get("bound") {
            "at most" => assert!(
                seen <= count,
                "the link {} saw {seen} requests, more than {count}",
                link.name()
            ),
            _ => assert!(
                seen >= count,
                "the link {} saw {seen} requests, fewer than {count}",
                link.name()
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_name_the_faults() {
        let one = |w: &str| match LinkFault::from_words(w) {
            Some(LinkFault::Toxics(t)) if t.len() == 1 => t[0].clone(),
            other => panic!("{w}: {other:?}"),
        };
        assert_eq!(
            one("answers 503 to every request").kind,
            Kind::HttpError { status: 503, first: 0 }
        );
        assert_eq!(
            one("answers 500 to the first 3 requests").kind,
            Kind::HttpError { status: 500, first: 3 }
        );
        assert_eq!(one("answers 503 to 30% of requests").toxicity, 0.3);
        assert_eq!(
            one("gets 200 ms of latency with 50 ms of jitter").kind,
            Kind::Latency {
                latency: 200,
                jitter: 50
            }
        );
        assert_eq!(one("is limited to 64 KB/s").kind, Kind::Bandwidth { rate: 64 });
        assert_eq!(
            one("resets connections mid-response").kind,
            Kind::ResetPeer { timeout: 0 }
        );
        assert_eq!(LinkFault::from_words("heals"), Some(LinkFault::Heal));
        assert_eq!(LinkFault::from_words("is cut"), Some(LinkFault::Cut));
        assert!(matches!(LinkFault::from_words("is blackholed"), Some(LinkFault::Toxics(t)) if t.len() == 2));
        assert!(matches!(LinkFault::from_words("goes silent"), Some(LinkFault::Toxics(t)) if t.len() == 2));
        assert_eq!(LinkFault::from_words("is killed"), None);
        // Every phrase the pattern admits is one the parser knows.
        let pattern = re(&format!("^{TARGET} (?P<fault>{FAULTS})$"));
        for words in [
            "answers 503 to every request",
            "answers 429 to the first 1 request",
            "closes connections slowly, after 3000 ms",
            "hangs after the headers",
        ] {
            let step = format!("instance 2 of \"greeter\" {words}");
            assert!(pattern.is_match(&step), "{step}");
            assert!(LinkFault::from_words(words).is_some(), "{words}");
        }
        assert!(pattern.is_match("the hop from instance 1 of \"gateway\" to \"redis\" is cut"));
        assert!(pattern.is_match("\"echo-1\" resets connections mid-response"));
        assert!(
            !pattern.is_match("instance 2 of \"greeter\" is killed"),
            "the process faults keep theirs"
        );
        assert!(!pattern.is_match("\"alice\" is logged in"));
    }
}
