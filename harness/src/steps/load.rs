//! Load, and how it was answered: `When 400 requests are sent to /hello with
//! 8 concurrent callers while instance 2 of "greeter" is killed`, then
//! `Then no request failed` and `Then the answers are spread evenly over 3
//! instances by a chi-square test`, `Then instance 2 of "greeter" answered
//! at most 15% of the requests`,
//! `Then the 99th percentile of latency is at least 200 ms`. An open loop:
//! `When POST requests are sent to /orders with JSON {"item": "tea"} at 200
//! per second for 10 seconds after a ramp-up of 2 seconds as "alice"`, then
//! `Then the 99th percentile of latency is under 50 ms` (a bound the team
//! states for its own stack: the library holds none). Which instance
//! answered comes from the header [`StepConfig::instance_header`] names. A
//! load that lasts prints its progress every [`PROGRESS_EVERY`].
//!
//! [`StepConfig::instance_header`]: super::StepConfig::instance_header

use std::collections::BTreeMap;

use cucumber::step::{Collection, Context};
use tokio::sync::watch;

use super::StackWorld;
use super::args::{Args, StepFuture, here, re};
use super::faults::{faults_of, inflict};
use super::http::{auth_for, url_of};
use crate::drive::client::Auth;
use crate::drive::load::{self, LoadSpec, MAX_DURATION};
use crate::report::stats::EvenSplit;

/// The share of a load's requests answered before its fault: traffic runs
/// before, during and after it.
const FAULT_AFTER_SHARE: usize = 3;
/// How often a running load says how far it got.
pub const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// What both paces' phrases say of each request: method, body, headers.
const REQUEST: &str = r#"(?:(?P<method>GET|POST|PUT|PATCH|DELETE) )?requests are sent to (?P<target>\S+)(?: with JSON (?P<json>\{.*\}|\[.*\]))?(?: with headers? (?P<headers>"[^"]*"(?:,? "[^"]*")*))?"#;

pub(super) fn add<W: StackWorld>(steps: Collection<W>) -> Collection<W> {
    steps
        .when(
            here!(),
            re(&format!(
                r#"^(?P<n>\d+) {REQUEST} with (?P<callers>\d+) concurrent callers?(?: as "(?P<user>[^"]+)")?(?: while instance (?P<instance>\d+) of "(?P<service>[^"]+)" is (?P<fault>killed|stopped|paused|restarted))?$"#
            )),
            sent::<W>,
        )
        .when(
            here!(),
            re(&format!(
                r#"^{REQUEST} at (?P<rate>\d+(?:\.\d+)?) per second for (?P<secs>\d+) seconds?(?: after a ramp-up of (?P<ramp>\d+) seconds?)?(?: as "(?P<user>[^"]+)")?$"#
            )),
            paced::<W>,
        )
        .then(here!(), re(r"^no request failed$"), none_failed::<W>)
        .then(
            here!(),
            re(r"^the answers are spread evenly over (?P<n>\d+) instances by a chi-square test$"),
            spread::<W>,
        )
        .then(
            here!(),
            re(r"^the answers came from (?P<n>\d+) instances?$"),
            came_from::<W>,
        )
        .then(
            here!(),
            re(r#"^no answer came from (?:instance (?P<n>\d+) of "(?P<service>[^"]+)"|"(?P<id>[^"]+)")$"#),
            none_from::<W>,
        )
        .then(
            here!(),
            re(r#"^instance (?P<n>\d+) of "(?P<service>[^"]+)" answered (?P<bound>at most|at least) (?P<percent>\d+)% of the requests$"#),
            share_of::<W>,
        )
        .then(
            here!(),
            re(r"^the (?P<q>\d+(?:\.\d+)?)th percentile of latency is (?P<bound>at least|under) (?P<ms>\d+) ms$"),
            quantile::<W>,
        )
}

/// The share of the last load instance `n` of `service` answered: what a
/// balancer that steers away from a slow instance must show.
fn share_of<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let id = faults_of(w)
            .instance_id(args.get("service"), args.num("n"))
            .unwrap_or_else(|e| panic!("{e}"));
        let by = by_instance(w);
        let total: usize = by.values().sum();
        let mine = by.get(&id).copied().unwrap_or(0);
        let percent: usize = args.num("percent");
        let share = 100.0 * mine as f64 / total.max(1) as f64;
        println!("    {id} answered {mine} of {total} ({share:.1} %): {by:?}");
        match args.get("bound") {
            "at most" => assert!(
                share <= percent as f64,
                "{id} answered {share:.1} % (> {percent} %): {by:?}"
            ),
            _ => assert!(
                share >= percent as f64,
                "{id} answered {share:.1} % (< {percent} %): {by:?}"
            ),
        }
    })
}

/// A latency quantile of the last load against a bound: at least (an
/// injected delay shows where it should) or under (the team's own goal for
/// its stack, which it states; the library holds none).
fn quantile<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let q: f64 = args.num::<f64>("q") / 100.0;
        let bound = std::time::Duration::from_millis(args.num("ms"));
        let report = w.step_state().load();
        let got = report.quantile(q);
        let what = format!("the {}th percentile of latency is {got:?}", args.get("q"));
        println!("    {what}");
        match args.get("bound") {
            "under" => assert!(got < bound, "{what}, not under {bound:?}: {}", report.summary()),
            _ => assert!(got >= bound, "{what}, under {bound:?}: {}", report.summary()),
        }
    })
}

/// The load a step describes, presenting the user's token or cookie.
fn spec<W: StackWorld>(w: &mut W, target: &str, user: Option<&str>) -> LoadSpec {
    let config = w.step_config();
    let ca = w.ca_cert();
    let mut spec = LoadSpec::get(url_of(w, target))
        .instance_header(&config.instance_header)
        .trusting(ca.as_deref());
    if let Some(name) = user {
        let auth = auth_for(w, name, None);
        let creds = w.step_state().user(name).credentials();
        spec = match (auth, creds.token, creds.cookie) {
            (Auth::Bearer, Some(token), _) => spec.header("authorization", &format!("Bearer {token}")),
            (Auth::Session, _, Some(cookie)) => spec.header("cookie", &cookie),
            (auth, ..) => panic!("{name:?} holds nothing to present as {auth:?}: log them in first"),
        };
    }
    spec
}

/// The requests [`REQUEST`] describes: method, JSON body, headers
/// (`"Name: value"`, comma-separated), as the user if one is named.
fn request<W: StackWorld>(w: &mut W, args: &Args) -> LoadSpec {
    let mut spec = spec(w, args.get("target"), args.opt("user"));
    if let Some(method) = args.opt("method") {
        spec = spec.method(method.parse().expect("the pattern's methods are HTTP methods"));
    }
    if let Some(json) = args.opt("json") {
        let body = serde_json::from_str(json).unwrap_or_else(|e| panic!("the load's body {json:?} is not JSON: {e}"));
        spec = spec.json(body);
    }
    for header in args.opt("headers").map(quoted).unwrap_or_default() {
        let (name, value) = header
            .split_once(':')
            .unwrap_or_else(|| panic!("the header {header:?} is not \"Name: value\""));
        spec = spec.header(name.trim(), value.trim());
    }
    spec
}

/// The strings in double quotes in `list` (`"a: 1", "b: 2"`).
fn quoted(list: &str) -> Vec<&str> {
    list.split('"').skip(1).step_by(2).collect()
}

/// Starts `spec`, saying every [`PROGRESS_EVERY`] how many requests were
/// answered while it lasts; the count is also returned, to act on.
fn run_showing_progress(spec: LoadSpec) -> (tokio::task::JoinHandle<load::LoadReport>, watch::Receiver<usize>) {
    let (done, answered) = watch::channel(0);
    let what = format!("{} {}", spec.method, spec.url);
    let running = tokio::spawn(load::run_observed(spec, done));
    let mut progress = answered.clone();
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut every = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => eprintln!(
                    "    … {what}: {} answered after {:.0} s",
                    *progress.borrow(),
                    started.elapsed().as_secs_f64()
                ),
                // The load ended: its sender is gone.
                changed = progress.changed() => if changed.is_err() { break },
            }
        }
    });
    (running, answered)
}

/// Keeps `report` as the last load, its answers replacing the last batch's.
fn keep<W: StackWorld>(w: &mut W, what: &str, report: load::LoadReport) {
    println!("    {what}: {}", report.summary());
    let state = w.step_state();
    state.answers.clear();
    state.load = Some(report);
}

/// An open loop: requests sent when due, answered or not.
fn paced<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let secs: u64 = args.num("secs");
        assert!(
            std::time::Duration::from_secs(secs) <= MAX_DURATION,
            "a load lasts at most {MAX_DURATION:?}"
        );
        let ramp = std::time::Duration::from_secs(args.opt("ramp").map_or(0, |r| r.parse().expect("digits")));
        let spec = request(w, &args)
            .open_loop(args.num("rate"), ramp)
            .duration(ramp + std::time::Duration::from_secs(secs));
        let what = format!("{} {}", spec.method, spec.url);
        let (running, _) = run_showing_progress(spec);
        keep(w, &what, running.await.expect("the load task"));
    })
}

fn sent<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let n: usize = args.num("n");
        let spec = request(w, &args)
            .requests(n)
            .concurrency(args.num("callers"))
            .duration(MAX_DURATION);
        let (method, url) = (spec.method.clone(), spec.url.clone());
        let report = match args.opt("fault") {
            None => run_showing_progress(spec).0.await.expect("the load task"),
            Some(fault) => {
                let (service, instance) = (args.get("service"), args.num("instance"));
                // Fail before any load when the instance does not exist.
                faults_of(w)
                    .instance_id(service, instance)
                    .unwrap_or_else(|e| panic!("{e}"));
                let (running, mut answered) = run_showing_progress(spec);
                let share = n / FAULT_AFTER_SHARE;
                if answered.wait_for(|count| *count >= share).await.is_err() {
                    // The load ended before: its report says why.
                    let report = running.await.expect("the load task");
                    panic!("the load ended before {share} answers: {}", report.summary());
                }
                inflict(w, service, instance, fault).await;
                running.await.expect("the load task")
            }
        };
        assert_eq!(
            report.samples.len(),
            n,
            "{method} {url}: the load stopped early (it may last {MAX_DURATION:?}): {}",
            report.summary()
        );
        keep(w, &format!("{method} {url}"), report);
    })
}

fn none_failed<W: StackWorld>(w: &mut W, _: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let report = w.step_state().load();
        let failures = report.failures();
        let first: Vec<String> = failures.iter().take(3).map(|s| s.to_string()).collect();
        assert!(
            failures.is_empty(),
            "{} of {} requests failed; the first: {}",
            failures.len(),
            report.samples.len(),
            first.join("; ")
        );
    })
}

/// Answers per instance of the last load (or of the answers, when no load ran).
fn by_instance<W: StackWorld>(w: &mut W) -> BTreeMap<String, usize> {
    let header = w.step_config().instance_header;
    let state = w.step_state();
    if let Some(report) = &state.load {
        return report.by_instance();
    }
    let mut out = BTreeMap::new();
    for a in &state.answers {
        *out.entry(a.header(&header).unwrap_or("<none>").to_owned()).or_default() += 1;
    }
    assert!(!out.is_empty(), "no requests were made");
    out
}

fn spread<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let instances: usize = Args::of(w, ctx).num("n");
        let significance = w.step_config().significance;
        let by = by_instance(w);
        assert_eq!(
            by.len(),
            instances,
            "expected answers from {instances} instances: {by:?}"
        );
        let counts: Vec<usize> = by.values().copied().collect();
        let verdict = EvenSplit::test(&counts, significance).unwrap_or_else(|e| panic!("{e}: {by:?}"));
        println!("    split {by:?}: {verdict}");
        assert!(verdict.is_even(), "uneven: {by:?}, {verdict}");
    })
}

fn came_from<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let n: usize = Args::of(w, ctx).num("n");
        let by = by_instance(w);
        assert_eq!(by.len(), n, "expected answers from {n} instances: {by:?}");
    })
}

fn none_from<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let id = match args.opt("id") {
            Some(id) => id.to_owned(),
            None => faults_of(w)
                .instance_id(args.get("service"), args.num("n"))
                .unwrap_or_else(|e| panic!("{e}")),
        };
        let by = by_instance(w);
        assert!(!by.contains_key(&id), "{id} answered {} times: {by:?}", by[&id]);
    })
}
