//! A bounded load driver, recording every answer's status, latency and the
//! instance that answered (from `X-Instance-Id`, or the header the spec
//! names). Two paces ([`Pace`]): a fixed number of callers, each sending its
//! next request once its last is answered (closed loop), or requests sent on
//! a schedule whether or not earlier ones were answered (open loop, with a
//! linear ramp-up), whose latency counts from when a request was due, so a
//! stall shows in every request it held up (no coordinated omission, as
//! wrk2 measures). Latency quantiles are exact: every sample is kept. It
//! always stops by itself, within its bounds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::drive::client::excerpt;

/// The most requests one run may send, whatever the spec says.
pub const MAX_REQUESTS: usize = 200_000;
/// The longest one run may last, whatever the spec says.
pub const MAX_DURATION: Duration = Duration::from_secs(60);
/// The header that names the instance that answered, as Gantry's services set it.
pub const DEFAULT_INSTANCE_HEADER: &str = "x-instance-id";
/// The most requests an open-loop run keeps unanswered at once: past it, a
/// due request waits (and its latency, counted from when it was due, grows).
pub const MAX_IN_FLIGHT: usize = 1024;
/// The highest rate an open-loop run may ask for.
pub const MAX_RATE: f64 = 20_000.0;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// [`LoadSpec::concurrency`] callers, each sending its next request once
    /// its last is answered: the rate is whatever the stack allows.
    Closed,
    /// `per_second` requests a second, sent when due whether or not earlier
    /// ones were answered; the rate grows linearly from 0 over `ramp_up`
    /// first. A request's latency counts from when it was due.
    Open {
        /// The rate once the ramp-up is over, in requests a second.
        per_second: f64,
        /// How long the rate takes to grow from 0 to `per_second`.
        ramp_up: Duration,
    },
}

impl Pace {
    /// When request `i` (from 0) is due, from the start of the run.
    pub fn due(&self, i: usize) -> Duration {
        let Pace::Open { per_second, ramp_up } = *self else {
            return Duration::ZERO;
        };
        let (i, ramp) = (i as f64, ramp_up.as_secs_f64());
        // Requests sent during the ramp: the area under a rate rising to `per_second`.
        let during_ramp = per_second * ramp / 2.0;
        let at = if i < during_ramp {
            (2.0 * ramp * i / per_second).sqrt()
        } else {
            ramp + (i - during_ramp) / per_second
        };
        Duration::from_secs_f64(at)
    }
}

/// What a load run sends, how fast and for how long. [`LoadSpec::get`]
/// starts one; its bounds are capped at [`MAX_REQUESTS`] and [`MAX_DURATION`].
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The whole URL every request goes to.
    pub url: String,
    /// Every request's method.
    pub method: reqwest::Method,
    /// Headers (name, value) sent with every request.
    pub headers: Vec<(String, String)>,
    /// Sent with every request, as JSON (`Content-Type: application/json`).
    pub json: Option<serde_json::Value>,
    /// Callers of a closed loop.
    pub concurrency: usize,
    /// Whether requests wait for answers (closed loop) or go on a schedule (open loop).
    pub pace: Pace,
    /// How long requests are sent for (the last answers may come after).
    pub duration: Duration,
    /// The run stops once it has sent this many, even before `duration`.
    pub max_requests: usize,
    /// The answer header that names the instance ([`DEFAULT_INSTANCE_HEADER`]).
    pub instance_header: String,
    /// A CA to trust besides the system's and `GANTRY_CA_CERT`'s (a stack's own).
    pub ca_cert: Option<PathBuf>,
}

impl LoadSpec {
    /// GETs of `url` by 8 callers in a closed loop for 5 s, at most
    /// [`MAX_REQUESTS`] of them.
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: reqwest::Method::GET,
            headers: Vec::new(),
            json: None,
            concurrency: 8,
            pace: Pace::Closed,
            duration: Duration::from_secs(5),
            max_requests: MAX_REQUESTS,
            instance_header: DEFAULT_INSTANCE_HEADER.to_owned(),
            ca_cert: None,
        }
    }

    /// Trusts `ca_cert` too, for an `https://` gateway with a private CA.
    pub fn trusting(mut self, ca_cert: Option<&std::path::Path>) -> Self {
        self.ca_cert = ca_cert.map(PathBuf::from);
        self
    }

    /// Reads which instance answered from `name` instead of `X-Instance-Id`.
    pub fn instance_header(mut self, name: &str) -> Self {
        self.instance_header = name.to_owned();
        self
    }

    /// Every request with `method` instead of GET.
    pub fn method(mut self, method: reqwest::Method) -> Self {
        self.method = method;
        self
    }

    /// Every request with `body`, as JSON.
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.json = Some(body);
        self
    }

    /// Every request with header `name: value` too.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `n` callers in a closed loop (1 to 256).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.clamp(1, 256);
        self
    }

    /// Requests sent on a schedule, `per_second` once `ramp_up` is over
    /// ([`Pace::Open`]; at most [`MAX_RATE`]).
    pub fn open_loop(mut self, per_second: f64, ramp_up: Duration) -> Self {
        let per_second = if per_second.is_finite() {
            per_second.clamp(0.1, MAX_RATE)
        } else {
            1.0
        };
        self.pace = Pace::Open {
            per_second,
            ramp_up: ramp_up.min(MAX_DURATION),
        };
        self
    }

    /// Sends for `d` (at most [`MAX_DURATION`]).
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration = d.min(MAX_DURATION);
        self
    }

    /// Sends at most `n` requests (at most [`MAX_REQUESTS`]).
    pub fn requests(mut self, n: usize) -> Self {
        self.max_requests = n.min(MAX_REQUESTS);
        self
    }
}

/// One answer (or transport failure, status 0).
#[derive(Debug, Clone)]
pub struct Sample {
    /// The HTTP status; 0 when no whole answer came (see `error`).
    pub status: u16,
    /// From sending (in an open loop, from when it was due) to the whole body read.
    pub latency: Duration,
    /// The instance that answered, from the spec's instance header.
    pub instance: Option<String>,
    /// When the request was sent (in an open loop, when it was due), from
    /// the start of the run.
    pub sent_at: Duration,
    /// Why no whole answer came: a connection refused or reset, a timeout.
    pub error: Option<String>,
    /// The answer's `X-Request-Id`, for finding a failure in the logs.
    pub request_id: Option<String>,
    /// The start of the body of an answer that was not 2xx (2xx bodies are
    /// not kept: a run holds many thousands).
    pub body: Option<String>,
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sent at {:.3} s, ", self.sent_at.as_secs_f64())?;
        match &self.error {
            Some(e) if self.status == 0 => write!(f, "no answer ({e})")?,
            _ => write!(f, "answered {}", self.status)?,
        }
        if let Some(instance) = &self.instance {
            write!(f, " by {instance}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (X-Request-Id {id})")?;
        }
        if let Some(body) = &self.body {
            write!(f, ": {body}")?;
        }
        Ok(())
    }
}

/// Everything a load run saw: one sample per request, in the order they were sent.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// One per request, ordered by `sent_at`.
    pub samples: Vec<Sample>,
    /// From the start of the run until its last answer came.
    pub elapsed: Duration,
    /// The callers that sent them at once (closed loop).
    pub concurrency: usize,
    /// How the requests were paced (`None` in an empty report).
    pub pace: Option<Pace>,
    /// When the run started (samples' `sent_at` count from it).
    pub started: Option<Instant>,
}

impl LoadReport {
    /// Answers that were not 2xx, transport failures included.
    pub fn failures(&self) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| !(200..300).contains(&s.status))
            .collect()
    }

    /// How many answers each instance gave; `<none>` counts those that
    /// named none (failures included).
    pub fn by_instance(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for s in &self.samples {
            *out.entry(s.instance.clone().unwrap_or_else(|| "<none>".into()))
                .or_default() += 1;
        }
        out
    }

    /// The slowest request's latency (zero when there were none).
    pub fn max_latency(&self) -> Duration {
        self.samples.iter().map(|s| s.latency).max().unwrap_or_default()
    }

    /// The `q` quantile (0..=1) of latencies.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut l: Vec<Duration> = self.samples.iter().map(|s| s.latency).collect();
        if l.is_empty() {
            return Duration::ZERO;
        }
        l.sort_unstable();
        let i = ((l.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        l[i]
    }

    /// Answers per second over the run.
    pub fn rate(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// One line for a log or a failure: count, time, pace, failures, p50,
    /// p99, max latency and answers by instance.
    pub fn summary(&self) -> String {
        let pace = match self.pace {
            Some(Pace::Open { per_second, ramp_up }) if ramp_up.is_zero() => format!(" (open loop, {per_second}/s)"),
            Some(Pace::Open { per_second, ramp_up }) => {
                format!(
                    " (open loop, {per_second}/s after a {:.1} s ramp-up)",
                    ramp_up.as_secs_f64()
                )
            }
            _ => String::new(),
        };
        format!(
            "{} requests in {:.1} s{pace}, {} failed, p50 {:?}, p99 {:?}, max {:?}, by instance {:?}",
            self.samples.len(),
            self.elapsed.as_secs_f64(),
            self.failures().len(),
            self.quantile(0.5),
            self.quantile(0.99),
            self.max_latency(),
            self.by_instance()
        )
    }
}

/// Runs `spec` to completion.
pub async fn run(spec: LoadSpec) -> LoadReport {
    run_observed(spec, watch::Sender::new(0)).await
}

/// Runs `spec` to completion, counting finished requests in `done`, so a
/// step can act (break an instance) once a share of them has been answered.
pub async fn run_observed(spec: LoadSpec, done: watch::Sender<usize>) -> LoadReport {
    // One client for all callers, keeping connections alive: over TLS that
    // is one handshake per connection, not one per request.
    let idle = match spec.pace {
        Pace::Closed => spec.concurrency,
        Pace::Open { .. } => MAX_IN_FLIGHT,
    };
    let http = crate::drive::client::http_builder(spec.ca_cert.as_deref())
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(idle)
        .build()
        .unwrap_or_else(|e| panic!("building the load's HTTP client: {e}"));
    let spec = Arc::new(spec);
    let started = Instant::now();
    let mut samples = match spec.pace {
        Pace::Closed => closed(http, spec.clone(), started, done).await,
        Pace::Open { .. } => open(http, spec.clone(), started, done).await,
    };
    samples.sort_by_key(|s| s.sent_at);
    LoadReport {
        samples,
        elapsed: started.elapsed(),
        concurrency: spec.concurrency,
        pace: Some(spec.pace),
        started: Some(started),
    }
}

/// [`Pace::Closed`]: each caller sends its next request once its last is answered.
async fn closed(
    http: reqwest::Client,
    spec: Arc<LoadSpec>,
    started: Instant,
    done: watch::Sender<usize>,
) -> Vec<Sample> {
    let issued = Arc::new(AtomicUsize::new(0));
    let deadline = started + spec.duration;
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|_| {
            let (http, spec, issued, done) = (http.clone(), spec.clone(), issued.clone(), done.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < spec.max_requests {
                    samples.push(send(&http, &spec, started, Instant::now()).await);
                    done.send_modify(|n| *n += 1);
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for w in workers {
        if let Ok(mine) = w.await {
            samples.extend(mine);
        }
    }
    samples
}

/// [`Pace::Open`]: each request is sent when due, answered or not the ones
/// before it (at most [`MAX_IN_FLIGHT`] unanswered), its latency counted
/// from when it was due.
async fn open(http: reqwest::Client, spec: Arc<LoadSpec>, started: Instant, done: watch::Sender<usize>) -> Vec<Sample> {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..spec.max_requests {
        let due = spec.pace.due(i);
        if due >= spec.duration {
            break;
        }
        tokio::time::sleep_until(started + due).await;
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (http, spec, done) = (http.clone(), spec.clone(), done.clone());
        requests.spawn(async move {
            let sample = send(&http, &spec, started, started + due).await;
            drop(permit);
            done.send_modify(|n| *n += 1);
            sample
        });
    }
    let mut samples = Vec::with_capacity(requests.len());
    while let Some(sample) = requests.join_next().await {
        if let Ok(sample) = sample {
            samples.push(sample);
        }
    }
    samples
}

/// Sends one request of `spec`, due at `due`: its latency counts from then.
async fn send(http: &reqwest::Client, spec: &LoadSpec, started: Instant, due: Instant) -> Sample {
    let mut req = http.request(spec.method.clone(), &spec.url);
    for (k, v) in &spec.headers {
        req = req.header(k, v);
    }
    if let Some(json) = &spec.json {
        req = req.json(json);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let instance = header(&spec.instance_header);
            let request_id = header("x-request-id");
            let body = resp.bytes().await;
            let kept = match &body {
                Ok(b) if !(200..300).contains(&status) => Some(excerpt(&String::from_utf8_lossy(b))),
                _ => None,
            };
            Sample {
                status: if body.is_ok() { status } else { 0 },
                latency: due.elapsed(),
                instance,
                sent_at: due - started,
                error: body.err().map(|e| e.to_string()),
                request_id,
                body: kept,
            }
        }
        Err(e) => Sample {
            status: 0,
            latency: due.elapsed(),
            instance: None,
            sent_at: due - started,
            error: Some(e.to_string()),
            request_id: None,
            body: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::echo::Echo;

    #[tokio::test]
    async fn every_request_goes_with_the_method_and_the_json_body() {
        let echo = Echo::start("echo-1").await.expect("an echo server");
        let spec = LoadSpec::get(format!("http://{}/orders", echo.addr()))
            .method(reqwest::Method::POST)
            .json(serde_json::json!({"item": "tea"}))
            .requests(12)
            .concurrency(3);
        let report = run(spec).await;
        assert_eq!(report.samples.len(), 12, "{}", report.summary());
        let received = echo.received();
        assert_eq!(received.len(), 12);
        for r in &received {
            assert_eq!(
                (r.method.as_str(), r.path.as_str(), r.body.as_str()),
                ("POST", "/orders", r#"{"item":"tea"}"#)
            );
            assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
        }
    }

    #[test]
    fn an_open_loop_is_due_evenly_after_a_linear_ramp() {
        let steady = Pace::Open {
            per_second: 100.0,
            ramp_up: Duration::ZERO,
        };
        assert_eq!(steady.due(0), Duration::ZERO);
        assert_eq!(steady.due(150), Duration::from_millis(1500));
        let ramped = Pace::Open {
            per_second: 100.0,
            ramp_up: Duration::from_secs(2),
        };
        // Half the steady rate's requests during the ramp, slow then fast.
        assert_eq!(ramped.due(100), Duration::from_secs(2));
        assert!(ramped.due(1) > Duration::from_millis(150), "{:?}", ramped.due(1));
        assert!(ramped.due(99) - ramped.due(98) < Duration::from_millis(11));
        assert_eq!(ramped.due(200), Duration::from_secs(3));
        assert_eq!(Pace::Closed.due(7), Duration::ZERO);
    }

    #[tokio::test]
    async fn an_open_loop_sends_what_its_rate_and_time_say() {
        let echo = Echo::start("echo-1").await.expect("an echo server");
        let spec = LoadSpec::get(format!("http://{}/ping", echo.addr()))
            .open_loop(40.0, Duration::ZERO)
            .duration(Duration::from_millis(500));
        let report = run(spec).await;
        assert_eq!(report.samples.len(), 20, "{}", report.summary());
        assert!(report.failures().is_empty(), "{}", report.summary());
        assert_eq!(echo.requests(), 20);
        let last = report.samples.last().expect("samples");
        assert_eq!(last.sent_at, Duration::from_millis(475), "due times, in order");
    }

    /// A server that answers nothing until `hold` has passed, then everything.
    async fn stalled_server(hold: Duration) -> std::net::SocketAddr {
        let until = Instant::now() + hold;
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || async move {
                tokio::time::sleep_until(until).await;
                "ok"
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Coordinated omission: one caller of a closed loop waits out a stall
    /// and records it once; an open loop records it in every request that
    /// was due during it.
    #[tokio::test]
    async fn an_open_loop_counts_a_stall_in_every_request_it_held_up() {
        let hold = Duration::from_millis(600);
        let slow = |r: &LoadReport| {
            r.samples
                .iter()
                .filter(|s| s.latency >= Duration::from_millis(200))
                .count()
        };

        let addr = stalled_server(hold).await;
        let closed = run(LoadSpec::get(format!("http://{addr}/"))
            .concurrency(1)
            .duration(Duration::from_secs(1)))
        .await;
        assert_eq!(
            slow(&closed),
            1,
            "the closed loop saw the stall once: {}",
            closed.summary()
        );

        let addr = stalled_server(hold).await;
        let open = run(LoadSpec::get(format!("http://{addr}/"))
            .open_loop(100.0, Duration::ZERO)
            .duration(Duration::from_secs(1)))
        .await;
        assert!(open.failures().is_empty(), "{}", open.summary());
        // The 40 due in the stall's first 400 ms each waited about 200 ms
        // or more (the stall began a moment before the run).
        assert!(
            slow(&open) >= 35,
            "the open loop saw it in every request it held up: {}",
            open.summary()
        );
    }
}
