//! A bounded load driver: a fixed number of concurrent callers, for a fixed
//! time or number of requests, recording every answer's status, latency and
//! the instance that answered (from `X-Instance-Id`, or the header the spec
//! names). Loopback only; it always stops by itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::drive::client::excerpt;

/// The most requests one run may send, whatever the spec says.
pub const MAX_REQUESTS: usize = 200_000;
/// The longest one run may last, whatever the spec says.
pub const MAX_DURATION: Duration = Duration::from_secs(60);
/// The header that names the instance that answered, as Gantry's services set it.
pub const DEFAULT_INSTANCE_HEADER: &str = "x-instance-id";

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub url: String,
    pub method: reqwest::Method,
    pub headers: Vec<(String, String)>,
    /// Sent with every request, as JSON (`Content-Type: application/json`).
    pub json: Option<serde_json::Value>,
    pub concurrency: usize,
    pub duration: Duration,
    pub max_requests: usize,
    /// The answer header that names the instance ([`DEFAULT_INSTANCE_HEADER`]).
    pub instance_header: String,
    /// A CA to trust besides the system's and `GANTRY_CA_CERT`'s (a stack's own).
    pub ca_cert: Option<PathBuf>,
}

impl LoadSpec {
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: reqwest::Method::GET,
            headers: Vec::new(),
            json: None,
            concurrency: 8,
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

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.clamp(1, 256);
        self
    }

    pub fn duration(mut self, d: Duration) -> Self {
        self.duration = d.min(MAX_DURATION);
        self
    }

    pub fn requests(mut self, n: usize) -> Self {
        self.max_requests = n.min(MAX_REQUESTS);
        self
    }
}

/// One answer (or transport failure, status 0).
#[derive(Debug, Clone)]
pub struct Sample {
    pub status: u16,
    pub latency: Duration,
    pub instance: Option<String>,
    /// When the request was sent, from the start of the run.
    pub sent_at: Duration,
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

#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub samples: Vec<Sample>,
    pub elapsed: Duration,
    /// The callers that sent them at once.
    pub concurrency: usize,
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

    pub fn by_instance(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for s in &self.samples {
            *out.entry(s.instance.clone().unwrap_or_else(|| "<none>".into()))
                .or_default() += 1;
        }
        out
    }

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

    pub fn summary(&self) -> String {
        format!(
            "{} requests in {:.1} s, {} failed, p50 {:?}, p99 {:?}, max {:?}, by instance {:?}",
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
    // One client for all callers, keeping a connection per caller alive:
    // over TLS that is one handshake per caller, not one per request.
    let http = crate::drive::client::http_builder(spec.ca_cert.as_deref())
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(spec.concurrency)
        .build()
        .unwrap_or_else(|e| panic!("building the load's HTTP client: {e}"));
    let spec = Arc::new(spec);
    let issued = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + spec.duration;
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|_| {
            let (http, spec, issued, done) = (http.clone(), spec.clone(), issued.clone(), done.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < spec.max_requests {
                    let mut req = http.request(spec.method.clone(), &spec.url);
                    for (k, v) in &spec.headers {
                        req = req.header(k, v);
                    }
                    if let Some(json) = &spec.json {
                        req = req.json(json);
                    }
                    let sent = Instant::now();
                    let sample = match req.send().await {
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
                                latency: sent.elapsed(),
                                instance,
                                sent_at: sent - started,
                                error: body.err().map(|e| e.to_string()),
                                request_id,
                                body: kept,
                            }
                        }
                        Err(e) => Sample {
                            status: 0,
                            latency: sent.elapsed(),
                            instance: None,
                            sent_at: sent - started,
                            error: Some(e.to_string()),
                            request_id: None,
                            body: None,
                        },
                    };
                    samples.push(sample);
                    done.send_modify(|n| *n += 1);
                }
                samples
            })
        })
        .collect();
    let mut report = LoadReport::default();
    for w in workers {
        if let Ok(samples) = w.await {
            report.samples.extend(samples);
        }
    }
    report.samples.sort_by_key(|s| s.sent_at);
    report.elapsed = started.elapsed();
    report.concurrency = spec.concurrency;
    report.started = Some(started);
    report
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
}
