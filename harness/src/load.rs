//! A bounded load driver: a fixed number of concurrent callers, for a fixed
//! time or number of requests, recording every answer's status, latency and
//! `X-Instance-Id`. Loopback only; it always stops by itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The most requests one run may send, whatever the spec says.
pub const MAX_REQUESTS: usize = 200_000;
/// The longest one run may last, whatever the spec says.
pub const MAX_DURATION: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub concurrency: usize,
    pub duration: Duration,
    pub max_requests: usize,
}

impl LoadSpec {
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: Vec::new(),
            concurrency: 8,
            duration: Duration::from_secs(5),
            max_requests: MAX_REQUESTS,
        }
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
}

#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub samples: Vec<Sample>,
    pub elapsed: Duration,
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
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(spec.concurrency)
        .build()
        .expect("an HTTP client without TLS always builds");
    let spec = Arc::new(spec);
    let issued = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + spec.duration;
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|_| {
            let (http, spec, issued) = (http.clone(), spec.clone(), issued.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < spec.max_requests {
                    let mut req = http.get(&spec.url);
                    for (k, v) in &spec.headers {
                        req = req.header(k, v);
                    }
                    let sent = Instant::now();
                    let sample = match req.send().await {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let instance = resp
                                .headers()
                                .get("x-instance-id")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let body = resp.bytes().await;
                            Sample {
                                status: if body.is_ok() { status } else { 0 },
                                latency: sent.elapsed(),
                                instance,
                                sent_at: sent - started,
                                error: body.err().map(|e| e.to_string()),
                            }
                        }
                        Err(e) => Sample {
                            status: 0,
                            latency: sent.elapsed(),
                            instance: None,
                            sent_at: sent - started,
                            error: Some(e.to_string()),
                        },
                    };
                    samples.push(sample);
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
    report
}
