//! `PUT /v1/agent/service/register`: the body as Consul's agent takes it,
//! checked with Consul's rules (and its words) before anything changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde::Deserialize;
use tokio::time::Instant;

use serde_json::Value;

use super::{decode, refuse, written};
use crate::catalog::{CheckSpec, Extras, Status, Weights};
use crate::definition::{CheckKind, DEFAULT_CHECK_TIMEOUT, HttpTarget, Probe, Target, Thresholds};
use crate::state::Registry;
use gantry_common::config::parse_duration;
use gantry_common::registry::ServiceRecord;

/// The longest duration Consul accepts (Go's `time.Duration`, int64
/// nanoseconds, about 292 years); longer ones are refused with 400.
pub const MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

/// A service definition as Consul's agent decodes it: every field it
/// knows is named (those the dev registry does not model are read and
/// ignored), and any other key is refused, as Consul's decoder
/// (`DisallowUnknownFields`) refuses it, so a misspelt field fails here
/// as it would in production.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[allow(dead_code)]
struct RegisterBody {
    #[serde(rename = "ID", default)]
    id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
    #[serde(default)]
    check: Option<CheckBody>,
    #[serde(default)]
    checks: Option<Vec<CheckBody>>,
    #[serde(default)]
    weights: Option<WeightsBody>,
    #[serde(default)]
    enable_tag_override: Option<bool>,
    #[serde(default)]
    tagged_addresses: Option<BTreeMap<String, TaggedAddressBody>>,
    // Known to Consul, not modelled here (Connect, gateways, Enterprise).
    #[serde(default)]
    kind: Option<Value>,
    #[serde(default)]
    socket_path: Option<Value>,
    #[serde(default)]
    token: Option<Value>,
    #[serde(default)]
    locality: Option<Value>,
    #[serde(default)]
    proxy: Option<Value>,
    #[serde(default)]
    connect: Option<Value>,
    #[serde(default)]
    namespace: Option<Value>,
    #[serde(default)]
    partition: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WeightsBody {
    #[serde(default)]
    passing: i64,
    #[serde(default)]
    warning: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaggedAddressBody {
    #[serde(default)]
    address: String,
    #[serde(default)]
    port: u16,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct CheckBody {
    #[serde(rename = "CheckID")]
    pub(super) check_id: Option<String>,
    pub(super) name: Option<String>,
    notes: Option<String>,
    #[serde(rename = "TTL")]
    ttl: Option<String>,
    #[serde(rename = "HTTP")]
    http: Option<String>,
    method: Option<String>,
    header: Option<BTreeMap<String, Vec<String>>>,
    body: Option<String>,
    /// Accepted and ignored: the dev registry runs `http://` checks only.
    #[serde(rename = "TLSSkipVerify")]
    _tls_skip_verify: Option<bool>,
    #[serde(rename = "TCP")]
    tcp: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
    deregister_critical_service_after: Option<String>,
    success_before_passing: Option<u32>,
    failures_before_warning: Option<u32>,
    failures_before_critical: Option<u32>,
    status: Option<String>,
    // Check kinds Consul has and the dev registry does not run: named here
    // so that a registration using one is refused rather than misread.
    #[serde(rename = "GRPC")]
    grpc: Option<serde_json::Value>,
    #[serde(rename = "H2PING")]
    h2ping: Option<serde_json::Value>,
    #[serde(rename = "UDP")]
    udp: Option<serde_json::Value>,
    args: Option<serde_json::Value>,
    script_args: Option<serde_json::Value>,
    #[serde(rename = "DockerContainerID")]
    docker_container_id: Option<serde_json::Value>,
    alias_service: Option<serde_json::Value>,
    alias_node: Option<serde_json::Value>,
    #[serde(rename = "OSService")]
    os_service: Option<serde_json::Value>,
}

pub(super) type Refusal = Box<Response>;

fn invalid(text: impl std::fmt::Display) -> Refusal {
    Box::new(refuse(StatusCode::BAD_REQUEST, format!("Invalid check: {text}")))
}

/// Reads a JSON body as Consul's decoder would (see [`super::decode`]):
/// `fold` renames the keys of each struct-shaped object first.
pub(super) fn decode_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    fold: impl FnOnce(&mut Value),
) -> Result<T, Refusal> {
    let decode_failed =
        |e: serde_json::Error| Box::new(refuse(StatusCode::BAD_REQUEST, format!("Request decode failed: {e}")));
    let mut value: Value = serde_json::from_slice(body).map_err(decode_failed)?;
    fold(&mut value);
    serde_json::from_value(value).map_err(decode_failed)
}

/// Folds a check's keys onto [`CheckBody`]'s fields.
pub(super) fn fold_check(check: &mut Value) {
    decode::fold_as::<CheckBody>(check);
}

/// Folds a registration's keys, and its checks' and weights', onto fields.
fn fold_registration(body: &mut Value) {
    let Some(object) = decode::fold_as::<RegisterBody>(body) else {
        return;
    };
    if let Some(check) = object.get_mut("Check") {
        fold_check(check);
    }
    if let Some(Value::Array(checks)) = object.get_mut("Checks") {
        checks.iter_mut().for_each(fold_check);
    }
    if let Some(weights) = object.get_mut("Weights") {
        decode::fold_as::<WeightsBody>(weights);
    }
    if let Some(Value::Object(tagged)) = object.get_mut("TaggedAddresses") {
        for address in tagged.values_mut() {
            decode::fold_as::<TaggedAddressBody>(address);
        }
    }
}

/// `?replace-existing-checks`: checks the body leaves out are removed.
#[derive(Deserialize, Default)]
pub struct RegisterQuery {
    #[serde(rename = "replace-existing-checks")]
    replace_existing_checks: Option<String>,
}

pub async fn register(State(reg): State<Arc<Registry>>, Query(q): Query<RegisterQuery>, body: Bytes) -> Response {
    let body: RegisterBody = match decode_body(&body, fold_registration) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(name) = body.name.filter(|n| !n.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "Missing service name");
    };
    let meta = body.meta.unwrap_or_default();
    if let Err(e) = validate_meta(&meta) {
        return refuse(StatusCode::BAD_REQUEST, format!("Invalid Service Meta: {e}"));
    }
    let weights = match body.weights.map(weights).transpose() {
        Ok(w) => w.unwrap_or(Extras::default().weights),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("Invalid Weights: {e}")),
    };
    let extras = Extras {
        weights,
        enable_tag_override: body.enable_tag_override.unwrap_or(false),
        tagged_addresses: body
            .tagged_addresses
            .unwrap_or_default()
            .into_iter()
            .map(|(k, a)| (k, (a.address, a.port)))
            .collect(),
    };
    let replace = matches!(
        q.replace_existing_checks.as_deref(),
        Some("" | "1" | "true" | "True" | "TRUE" | "t" | "T")
    );
    let address = body.address.unwrap_or_default();
    if matches!(address.as_str(), "0.0.0.0" | "::" | "[::]") {
        return refuse(StatusCode::BAD_REQUEST, "Invalid service address");
    }
    let id = body.id.filter(|i| !i.is_empty()).unwrap_or_else(|| name.clone());
    let port = body.port.unwrap_or(0);
    let mut extras = extras;
    add_default_tagged_addresses(&mut extras, &address, port);
    let mut specs = Vec::new();
    let bodies: Vec<CheckBody> = body.check.into_iter().chain(body.checks.unwrap_or_default()).collect();
    let numbered = bodies.len() > 1;
    for (i, check) in bodies.into_iter().enumerate() {
        // Consul numbers the default ids when a service has several checks.
        let default_id = if numbered {
            format!("service:{id}:{}", i + 1)
        } else {
            format!("service:{id}")
        };
        match check_spec(check, default_id, &name) {
            Ok(spec) => specs.push(spec),
            Err(r) => return *r,
        }
    }
    written(reg.write(|c| {
        let record = ServiceRecord {
            id,
            name,
            address,
            port,
            tags: body.tags.unwrap_or_default(),
            meta,
        };
        c.register(record, extras, specs, replace, Instant::now())
    }))
}

/// As Consul's agent: an IPv4 address adds `lan_ipv4` and `wan_ipv4`, an
/// IPv6 one `lan_ipv6` and `wan_ipv6`, unless the registration gave them.
fn add_default_tagged_addresses(extras: &mut Extras, address: &str, port: u16) {
    let names = match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => ["lan_ipv4", "wan_ipv4"],
        Ok(std::net::IpAddr::V6(_)) => ["lan_ipv6", "wan_ipv6"],
        Err(_) => return,
    };
    for name in names {
        extras
            .tagged_addresses
            .entry(name.to_owned())
            .or_insert_with(|| (address.to_owned(), port));
    }
}

/// Consul's limits on service metadata (`structs.ValidateMetadata`), with
/// its words.
fn validate_meta(meta: &BTreeMap<String, String>) -> Result<(), String> {
    const MAX_PAIRS: usize = 64;
    const MAX_KEY: usize = 128;
    const MAX_VALUE: usize = 512;
    const RESERVED: &str = "consul-";
    if meta.len() > MAX_PAIRS {
        return Err(format!(
            "Node metadata cannot contain more than {MAX_PAIRS} key/value pairs"
        ));
    }
    for (key, value) in meta {
        let problem = if key.is_empty() {
            "Key cannot be blank".to_owned()
        } else if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            "Key contains invalid characters".to_owned()
        } else if key.len() > MAX_KEY {
            format!("Key is too long (limit: {MAX_KEY} characters)")
        } else if key.starts_with(RESERVED) {
            format!("Key prefix '{RESERVED}' is reserved for internal use")
        } else if value.len() > MAX_VALUE {
            format!("Value is too long (limit: {MAX_VALUE} characters)")
        } else {
            continue;
        };
        return Err(format!("Couldn't load metadata pair ('{key}', '{value}'): {problem}"));
    }
    Ok(())
}

/// Consul's `ValidateWeights`: a passing weight of at least 1, both at
/// most 65535.
fn weights(w: WeightsBody) -> Result<Weights, &'static str> {
    if w.passing < 1 {
        return Err("Passing must be greater than 0");
    }
    if w.warning < 0 {
        return Err("Warning must be greater or equal than 0");
    }
    match (u16::try_from(w.passing), u16::try_from(w.warning)) {
        (Ok(passing), Ok(warning)) => Ok(Weights {
            passing: passing.into(),
            warning: warning.into(),
        }),
        _ => Err("DNS Weight must be between 0 and 65535"),
    }
}

/// One check of a registration, checked as Consul's `CheckType.Validate`.
pub(super) fn check_spec(check: CheckBody, default_id: String, service: &str) -> Result<CheckSpec, Refusal> {
    let unsupported = [
        ("GRPC", check.grpc.is_some()),
        ("H2PING", check.h2ping.is_some()),
        ("UDP", check.udp.is_some()),
        ("Args", check.args.is_some() || check.script_args.is_some()),
        ("DockerContainerID", check.docker_container_id.is_some()),
        (
            "AliasService",
            check.alias_service.is_some() || check.alias_node.is_some(),
        ),
        ("OSService", check.os_service.is_some()),
    ];
    if let Some((kind, _)) = unsupported.iter().find(|(_, present)| *present) {
        return Err(invalid(format_args!(
            "the dev registry runs TTL, HTTP and TCP checks only, not {kind} checks"
        )));
    }
    let ttl = optional_duration("TTL", check.ttl.as_deref())?;
    let interval = optional_duration("Interval", check.interval.as_deref())?;
    let http = check.http.filter(|h| !h.is_empty());
    let tcp = check.tcp.filter(|t| !t.is_empty());
    if interval.is_some() && ttl.is_some() {
        return Err(invalid("Interval and TTL cannot both be specified"));
    }
    let target = match (http, tcp) {
        (None, None) => None,
        (Some(url), None) => Some(Target::Http(Box::new(http_target(
            url,
            check.method.as_deref(),
            check.header.unwrap_or_default(),
            check.body.unwrap_or_default(),
        )?))),
        (None, Some(addr)) => Some(Target::Tcp(tcp_target(addr)?)),
        (Some(_), Some(_)) => return Err(invalid("HTTP and TCP cannot both be specified")),
    };
    let kind = match target {
        None => CheckKind::Ttl(ttl.ok_or_else(|| invalid("TTL must be > 0 for TTL checks"))?),
        Some(target) => CheckKind::Probe(Probe {
            target,
            interval: interval
                .ok_or_else(|| invalid("Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks"))?,
            timeout: optional_duration("Timeout", check.timeout.as_deref())?.unwrap_or(DEFAULT_CHECK_TIMEOUT),
            thresholds: Thresholds::new(
                check.success_before_passing.unwrap_or(0),
                check.failures_before_warning.unwrap_or(0),
                check.failures_before_critical.unwrap_or(0),
            ),
        }),
    };
    let deregister_after = optional_duration(
        "DeregisterCriticalServiceAfter",
        check.deregister_critical_service_after.as_deref(),
    )?;
    let status = match check.status.as_deref() {
        None | Some("") => Status::Critical,
        Some(s) => Status::parse(s).ok_or_else(|| {
            Box::new(refuse(
                StatusCode::BAD_REQUEST,
                format!("Status for checks must 'passing', 'warning', 'critical', not {s:?}"),
            ))
        })?,
    };
    Ok(CheckSpec {
        id: check.check_id.filter(|c| !c.is_empty()).unwrap_or(default_id),
        name: check
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("Service '{service}' check")),
        notes: check.notes.unwrap_or_default(),
        kind,
        status,
        deregister_after,
    })
}

fn http_target(
    url: String,
    method: Option<&str>,
    header: BTreeMap<String, Vec<String>>,
    body: String,
) -> Result<HttpTarget, Refusal> {
    let uri: Uri = url
        .parse()
        .map_err(|e| invalid(format_args!("HTTP {url:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(invalid(format_args!(
                "HTTP {url:?}: the dev registry runs http:// checks only (it has no TLS)"
            )));
        }
        _ => return Err(invalid(format_args!("HTTP {url:?} is not an http:// URL"))),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(format_args!("HTTP {url:?} has no host")));
    }
    let method = match method.filter(|m| !m.is_empty()) {
        None => Method::GET,
        Some(m) => {
            Method::from_bytes(m.as_bytes()).map_err(|_| invalid(format_args!("Method {m:?} is not an HTTP method")))?
        }
    };
    let mut headers = HeaderMap::new();
    for (name, values) in header {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format_args!("Header {name:?} is not a header name")))?;
        for value in values {
            let value = HeaderValue::from_str(&value).map_err(|_| {
                invalid(format_args!(
                    "Header {name:?} has a value that is not a header value: {value:?}"
                ))
            })?;
            headers.append(header_name.clone(), value);
        }
    }
    Ok(HttpTarget {
        url,
        uri,
        method,
        headers,
        body,
    })
}

/// `host:port`, as Go's `net.Dial` needs it.
fn tcp_target(addr: String) -> Result<String, Refusal> {
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(addr),
        _ => Err(invalid(format_args!("TCP {addr:?} is not host:port"))),
    }
}

/// A check's duration field: `None` when absent, empty or zero (Consul's
/// "not set"), refused with 400 when it is not a duration or longer than
/// Consul accepts.
fn optional_duration(field: &str, text: Option<&str>) -> Result<Option<Duration>, Refusal> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    match parse_duration(text) {
        None => Err(invalid(format_args!("{field} {text:?} is not a duration such as 10s"))),
        Some(d) if d > MAX_DURATION => Err(invalid(format_args!(
            "{field} {text:?} is out of range: at most {}h",
            MAX_DURATION.as_secs() / 3600
        ))),
        Some(d) if d.is_zero() => Ok(None),
        Some(d) => Ok(Some(d)),
    }
}
