//! A client for the part of Consul's HTTP API the stack uses: agent service
//! registration with TTL checks, check updates, and health queries with
//! blocking. It speaks to real Consul and to Gantry's dev registry alike.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{self, ConfigError};

mod check;
mod kv;

pub use check::{AgentRegistration, CheckDefinition, CheckState};
pub use kv::KvEntry;

/// Where Consul's agent listens unless `CONSUL_HTTP_ADDR` says otherwise.
pub const DEFAULT_CONSUL_HTTP_ADDR: &str = "http://127.0.0.1:8500";
/// How long to wait to connect to the registry.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one blocking query may wait for a change unless
/// `GANTRY_WATCH_WAIT` says otherwise (Consul's `wait`).
pub const DEFAULT_WATCH_WAIT: Duration = Duration::from_secs(30);
/// How long a non-blocking registry call may take.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A registry call that failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry at {addr} is unreachable: {source}")]
    Unreachable {
        addr: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("registry answered {status} to {what}: {body}")]
    Status { what: String, status: u16, body: String },
    #[error("registry answered {what} with a body we cannot read: {source}")]
    Decode {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("registry answered {what} with {detail}")]
    Malformed { what: String, detail: String },
}

impl RegistryError {
    /// True when the registry does not know the service or check (it was
    /// restarted, or reaped us): the caller should register again.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::Status { status: 404, .. })
            || matches!(self, RegistryError::Status { status: 500, body, .. } if body.contains("Unknown"))
    }
}

/// Who an instance is and where it answers: the one record the agent is
/// told ([`AgentRegistration`]), the catalog holds and a health query
/// returns ([`Instance`]). Read from JSON in the shape of a health entry's
/// `Service` (`ID`, `Service`, `Address`, `Port`, `Tags`, `Meta`; Consul
/// sends `null` for empty tags and meta).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceRecord {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Service")]
    pub name: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub meta: BTreeMap<String, String>,
}

impl ServiceRecord {
    /// The id of the instance's own check, as Consul names a service's check.
    pub fn check_id(&self) -> String {
        format!("service:{}", self.id)
    }
}

/// `null` read as the empty value, as Consul's Go decoder leaves a nil slice or map.
fn null_as_empty<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One healthy (or not) instance, as `/v1/health/service/<name>` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub service: ServiceRecord,
    /// True when every check of the instance (and its node) is passing.
    pub passing: bool,
}

/// Consul's `HealthServiceNodes` element, as much of it as we read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry {
    node: HealthNode,
    service: ServiceRecord,
    #[serde(default)]
    checks: Vec<HealthCheck>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthNode {
    #[serde(default)]
    address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthCheck {
    status: String,
}

impl From<HealthEntry> for Instance {
    fn from(e: HealthEntry) -> Self {
        let mut service = e.service;
        if service.address.is_empty() {
            service.address = e.node.address;
        }
        Instance {
            passing: e.checks.iter().all(|c| c.status == "passing"),
            service,
        }
    }
}

/// A registry result together with the `X-Consul-Index` it was read at.
#[derive(Debug, Clone)]
pub struct Indexed<T> {
    pub value: T,
    pub index: u64,
}

/// A handle on a Consul agent's HTTP API. Cheap to clone. With a token
/// (`CONSUL_HTTP_TOKEN`, or [`RegistryClient::with_token`]) every call carries
/// it as `X-Consul-Token`, as Consul's own clients do.
#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// How long a blocking query waits for a change (Consul's `wait`;
    /// `GANTRY_WATCH_WAIT`): also the most a watch can stay stuck on a
    /// connection that went silent before it asks again.
    watch_wait: std::time::Duration,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl RegistryClient {
    /// A client for the agent at `addr` (`host:port` or a URL, as `CONSUL_HTTP_ADDR` allows).
    pub fn new(addr: &str) -> Self {
        let base = if addr.contains("://") {
            addr.trim_end_matches('/').to_owned()
        } else {
            format!("http://{}", addr.trim_end_matches('/'))
        };
        let http = reqwest::Client::builder()
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client without TLS always builds");
        Self {
            http,
            base,
            token: None,
            watch_wait: DEFAULT_WATCH_WAIT,
        }
    }

    /// `CONSUL_HTTP_ADDR` (default [`DEFAULT_CONSUL_HTTP_ADDR`]), `CONSUL_HTTP_TOKEN`
    /// and `GANTRY_WATCH_WAIT` (default 30 s, from 1 s to 10 min).
    pub fn from_env() -> Result<Self, ConfigError> {
        let addr = config::string_or("CONSUL_HTTP_ADDR", DEFAULT_CONSUL_HTTP_ADDR);
        if addr.starts_with("https://") {
            return Err(ConfigError::new(
                "CONSUL_HTTP_ADDR",
                addr,
                "an http:// address (TLS to the agent is not supported; use a local agent)",
            ));
        }
        let mut client = Self::new(&addr);
        client.token = config::raw("CONSUL_HTTP_TOKEN");
        client.watch_wait = config::duration_in(
            "GANTRY_WATCH_WAIT",
            DEFAULT_WATCH_WAIT,
            std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(600),
        )?;
        Ok(client)
    }

    /// The same client presenting `token` (Consul's ACL token, sent as
    /// `X-Consul-Token` on every call); `None` calls anonymously.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// How long this client's blocking queries wait for a change.
    pub fn watch_wait(&self) -> std::time::Duration {
        self.watch_wait
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            req = req.header("X-Consul-Token", token);
        }
        req
    }

    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> Result<reqwest::Response, RegistryError> {
        let resp = req.send().await.map_err(|source| RegistryError::Unreachable {
            addr: self.base.clone(),
            source,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        Err(RegistryError::Status {
            what: what.to_owned(),
            status: status.as_u16(),
            body: body.chars().take(300).collect(),
        })
    }

    pub async fn deregister(&self, service_id: &str) -> Result<(), RegistryError> {
        let req = self
            .request(
                reqwest::Method::PUT,
                &format!("/v1/agent/service/deregister/{service_id}"),
            )
            .timeout(DEFAULT_CALL_TIMEOUT);
        self.send("service deregister", req).await.map(drop)
    }

    /// Sets a TTL check to `pass`, `warn` or `fail`.
    pub async fn update_ttl(&self, check_id: &str, state: TtlState, note: &str) -> Result<(), RegistryError> {
        let req = self
            .request(
                reqwest::Method::PUT,
                &format!("/v1/agent/check/{}/{check_id}", state.verb()),
            )
            .query(&[("note", note)])
            .timeout(DEFAULT_CALL_TIMEOUT);
        self.send("check update", req).await.map(drop)
    }

    /// `GET /v1/health/service/<name>`; with `index`, a blocking query that
    /// returns when the result changes or `wait` passes.
    pub async fn health_service(
        &self,
        name: &str,
        passing_only: bool,
        index: Option<u64>,
        wait: Duration,
    ) -> Result<Indexed<Vec<Instance>>, RegistryError> {
        let mut req = self.request(reqwest::Method::GET, &format!("/v1/health/service/{name}"));
        let mut timeout = DEFAULT_CALL_TIMEOUT;
        if passing_only {
            req = req.query(&[("passing", "true")]);
        }
        if let Some(index) = index {
            req = req.query(&[("index", index.to_string()), ("wait", config::format_duration(wait))]);
            // Consul adds up to wait/16 of jitter; leave room for it.
            timeout += wait + wait / 16;
        }
        let resp = self.send("health query", req.timeout(timeout)).await?;
        let index = consul_index(resp.headers());
        let entries: Vec<HealthEntry> = resp.json().await.map_err(|source| RegistryError::Decode {
            what: "health query".into(),
            source,
        })?;
        Ok(Indexed {
            value: entries.into_iter().map(Instance::from).collect(),
            index,
        })
    }

    /// `GET /v1/status/leader`: answers once the agent can serve reads.
    pub async fn leader(&self) -> Result<String, RegistryError> {
        let req = self
            .request(reqwest::Method::GET, "/v1/status/leader")
            .timeout(DEFAULT_CALL_TIMEOUT);
        let resp = self.send("leader query", req).await?;
        resp.json().await.map_err(|source| RegistryError::Decode {
            what: "leader query".into(),
            source,
        })
    }
}

/// The value of `X-Consul-Index`, 0 when absent or unreadable.
fn consul_index(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The states a TTL check can be set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlState {
    Pass,
    Warn,
    Fail,
}

impl TtlState {
    fn verb(self) -> &'static str {
        match self {
            TtlState::Pass => "pass",
            TtlState::Warn => "warn",
            TtlState::Fail => "fail",
        }
    }
}
