//! The gateway's declarative configuration: which services it knows and
//! which routes lead to them, read from the TOML file `GANTRY_GATEWAY_CONFIG`
//! names (as Kong's declarative config and Traefik's dynamic configuration
//! are), or the built-in reference routes when it names none.
//!
//! ```toml
//! # Which service's /.well-known/jwks.json holds the token keys (default "auth").
//! jwks_service = "auth"
//!
//! [[services]]
//! name = "greeter"            # the service's name in the registry
//! lb = "p2c"                  # or "round_robin"; default GANTRY_LB
//! connect_timeout = "1s"      # default GANTRY_CONNECT_TIMEOUT
//! request_timeout = "30s"     # per try; default GANTRY_REQUEST_TIMEOUT
//! retries = 2                 # 0 to 5; default GANTRY_MAX_RETRIES
//! retry_on = ["connect-failure", "reset", "gateway-error"]   # [] retries nothing
//! retriable_status_codes = [] # retried with "retriable-status-codes" in retry_on
//! retry_budget = 20           # percent of requests in flight that may be retries
//! consecutive_5xx = 5         # outlier detection: 5xx answers in a row eject; 0 is off
//! consecutive_gateway_failure = 0        # 502/503/504 in a row; 0 is off
//! consecutive_local_origin_failure = 1   # refused, reset, timed out in a row
//! base_ejection_time = "1s"   # × ejections in a row ...
//! max_ejection_time = "30s"   # ... up to this
//! max_ejection_percent = 50   # of the service's instances at once (one always may)
//!
//! [[routes]]
//! prefix = "/greet"           # whole segments: /greet and /greet/x, not /greetings
//! host = "api.example.com"    # optional: only for this Host (port ignored, any case)
//! methods = ["GET", "POST"]   # optional: other methods get 405 with an Allow header
//! service = "greeter"
//! identity = "required"       # "none" (default), "optional" or "required"
//! identity_headers = true     # send X-User-Id / X-Username from the verified token
//! strip_prefix = true         # /greet/x reaches the service as /x
//! pass_credentials = false    # true: Authorization and the SESSION cookie as sent
//!
//! [edge]                      # optional; these are the defaults
//! escaped_slashes = "reject"  # %2F, %5C or \ in a path: "reject" (400), "keep" or "unescape"
//! headers_with_underscores = "drop"   # or "reject" (400) or "allow"
//! trusted_proxies = []        # peers whose X-Forwarded-*, X-Real-IP, Forwarded are kept
//! ```
//!
//! | key | where | default | meaning |
//! |---|---|---|---|
//! | `jwks_service` | top | `"auth"` | the service whose `/.well-known/jwks.json` the gateway trusts for token keys; must be declared when a route needs identity |
//! | `name` | `[[services]]` | required | the registry name: 1 to 64 letters, digits, `-`, `_`, `.`, starting with a letter or digit (the harness's rule too) |
//! | `lb` | `[[services]]` | `GANTRY_LB` | `round_robin` or `p2c` |
//! | `connect_timeout` | `[[services]]` | `GANTRY_CONNECT_TIMEOUT` | a duration such as `500ms` or `1s` |
//! | `request_timeout` | `[[services]]` | `GANTRY_REQUEST_TIMEOUT` | per attempt, to the response headers |
//! | `retries` | `[[services]]` | `GANTRY_MAX_RETRIES` | 0 to 5 further attempts on other instances |
//! | `retry_on`, `retriable_status_codes`, `retry_budget` | `[[services]]` | `GANTRY_RETRY_ON`, … | what is retried and how much (Envoy's retry policy and retry budget; [`crate::policy`] has the table) |
//! | `consecutive_5xx`, `consecutive_gateway_failure`, `consecutive_local_origin_failure`, `base_ejection_time`, `max_ejection_time`, `max_ejection_percent` | `[[services]]` | `GANTRY_CONSECUTIVE_5XX`, … | passive outlier detection, as Envoy's ([`crate::policy`]) |
//! | `prefix` | `[[routes]]` | required | `/` or a path without a trailing `/` |
//! | `host` | `[[routes]]` | any host | a host name without a port |
//! | `methods` | `[[routes]]` | any method | HTTP methods in capitals; exact, so `HEAD` is not implied by `GET` |
//! | `service` | `[[routes]]` | required | a name from `[[services]]` |
//! | `identity` | `[[routes]]` | `"none"` | `required`: 401 without a valid token or session; `optional`: verified when presented (401 if bad), passed on without one |
//! | `identity_headers` | `[[routes]]` | `false` | set `X-User-Id` (the token's `sub`) and `X-Username` (its `username`); needs `identity` other than `none` |
//! | `strip_prefix` | `[[routes]]` | `false` | remove the prefix from the path the service sees (`/greet` becomes `/`) |
//! | `pass_credentials` | `[[routes]]` | `false` | `true`: the service receives `Authorization` and the `SESSION` cookie as the client sent them (a service that checks credentials itself, as auth does for logout); `false`: only what the gateway verified reaches it (the bearer token, or the session's token as `Authorization`), and with `identity = "none"` no credential at all |
//! | `escaped_slashes` | `[edge]` | `"reject"` | what a path with `%2F`, `%5C` or `\` gets: `reject` (400), `keep` (passed on escaped; never a segment separator) or `unescape` (decoded to `/`, then normalised) |
//! | `headers_with_underscores` | `[edge]` | `"drop"` | a request header whose name has `_`: `drop` it, `reject` the request (400), or `allow` it |
//! | `trusted_proxies` | `[edge]` | none | addresses or blocks (`"10.0.0.0/8"`, `"::1"`) of proxies in front: their `X-Forwarded-For` is appended to and their `X-Forwarded-Proto`/`-Host`/`-Port`, `X-Real-IP` and `Forwarded` kept; from anyone else these are replaced by what the gateway saw |
//!
//! Before any route is looked up, a request gets one meaning
//! ([`crate::stages::normalize`]): its path normalised (unreserved escapes
//! decoded, `.`/`..` segments resolved, repeated `/` merged; routing,
//! `strip_prefix` and the forwarded path all use it), exactly one valid
//! `Host` (the target's authority for an absolute-form request), at most one
//! `Authorization`; each mistake is a 400 with a JSON reason.
//!
//! Routes are tried longest prefix first, and a route with a host before one
//! without for the same prefix. Two routes with the same host and prefix are
//! allowed only when their methods do not overlap. The gateway's own
//! `GET /healthz`, `/readyz` and `/openapi.json` are answered before any
//! route, so a catch-all `prefix = "/"` cannot hide them from health checks.
//! Client-sent identity headers never reach a service, whatever the route says.
//!
//! Every mistake is reported with the file, the line, and what was expected;
//! a file with one is refused whole (at start, the gateway does not start;
//! on a reload, the routes in force stay).

use std::path::Path;
#[cfg(test)]
use std::time::Duration;

use http::Method;
use serde::Deserialize;
use toml::Spanned;

use crate::edge::EdgePolicy;
use gantry_common::file::{self, FileDuration, FileError};

use crate::policy::{Bounded, FileRetryOn, LbPolicy, MAX_RETRIES, Overrides};

/// The service whose JWKS is trusted unless the file says otherwise.
pub const DEFAULT_JWKS_SERVICE: &str = "auth";

/// Whether a route needs a verified caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityMode {
    /// Nothing is verified; credentials pass through untouched.
    #[default]
    None,
    /// Credentials are verified when presented (401 if bad); a request
    /// without any goes on without an identity.
    Optional,
    /// 401 without a verified identity.
    Required,
}

/// One `[[services]]` entry; settings it leaves out take the gateway's
/// defaults (`GANTRY_LB` and the like), resolved when the snapshot is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    pub policy: Overrides,
}

impl ServiceSpec {
    /// A service with every setting left to the gateway's defaults.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            policy: Overrides::default(),
        }
    }
}

/// One `[[routes]]` entry, checked: its service is declared, its methods
/// are methods, and it does not collide with another route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub prefix: String,
    /// Lower-cased, without a port.
    pub host: Option<String>,
    /// `None`: any method.
    pub methods: Option<Vec<Method>>,
    /// Index into [`Declared::services`].
    pub service: usize,
    pub identity: IdentityMode,
    pub identity_headers: bool,
    pub strip_prefix: bool,
    /// Whether the service receives the credentials the client sent as
    /// they came; otherwise only the one the gateway verified.
    pub pass_credentials: bool,
}

/// A whole configuration, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub services: Vec<ServiceSpec>,
    pub routes: Vec<RouteSpec>,
    /// Index into `services` of the JWKS source; `None` only when no route
    /// needs identity and the file names no `jwks_service`.
    pub jwks_service: Option<usize>,
    /// The `[edge]` table: what ambiguous requests get.
    pub edge: EdgePolicy,
}

/// Why a routes file was refused: the file front end every Gantry file shares.
pub type DeclaredError = FileError;

impl Declared {
    /// Gantry's own stack: `/auth` to auth with no identity (and the
    /// credentials auth reads itself for logout and refresh), `/users` to
    /// user with identity required, keys from auth.
    pub fn reference() -> Self {
        let route = |prefix: &str, service, identity| RouteSpec {
            prefix: prefix.to_owned(),
            host: None,
            methods: None,
            service,
            identity,
            identity_headers: false,
            strip_prefix: false,
            pass_credentials: identity == IdentityMode::None,
        };
        Self {
            services: vec![ServiceSpec::named("auth"), ServiceSpec::named("user")],
            routes: vec![
                route("/auth", 0, IdentityMode::None),
                route("/users", 1, IdentityMode::Required),
            ],
            jwks_service: Some(0),
            edge: EdgePolicy::default(),
        }
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, DeclaredError> {
        Self::parse(&file::read(path)?, path)
    }

    /// Checks `text`, the contents of the file at `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, DeclaredError> {
        let raw: RawFile = file::parse(text, path)?;
        let invalid = |at: usize, found: String, expected: &str| FileError::invalid(path, text, at, found, expected);

        let mut services: Vec<ServiceSpec> = Vec::with_capacity(raw.services.len());
        for s in raw.services {
            let at = s.name.span().start;
            let name = s.name.into_inner();
            if !gantry_common::name::is_service_name(&name) {
                return Err(invalid(
                    at,
                    format!("service name {name:?}"),
                    gantry_common::name::SERVICE_NAME_RULE,
                ));
            }
            if services.iter().any(|known| known.name == name) {
                return Err(invalid(
                    at,
                    format!("service {name:?} is declared twice"),
                    "each service once in [[services]]",
                ));
            }
            let ejection = |t: Option<FileDuration>| t.map(|t| t.0);
            let number = |n: Option<Bounded<0, 1000>>| n.map(|n| n.0);
            services.push(ServiceSpec {
                name,
                policy: Overrides {
                    lb: s.lb,
                    connect_timeout: s.connect_timeout.map(|d| d.0),
                    request_timeout: s.request_timeout.map(|d| d.0),
                    retries: s.retries.map(|n| n.0),
                    retry_on: s.retry_on.map(|r| r.0),
                    retriable_status_codes: s
                        .retriable_status_codes
                        .map(|codes| codes.iter().map(|c| c.0 as u16).collect()),
                    retry_budget: s.retry_budget.map(|n| n.0),
                    consecutive_5xx: number(s.consecutive_5xx),
                    consecutive_gateway_failure: number(s.consecutive_gateway_failure),
                    consecutive_local_origin_failure: number(s.consecutive_local_origin_failure),
                    base_ejection_time: ejection(s.base_ejection_time),
                    max_ejection_time: ejection(s.max_ejection_time),
                    max_ejection_percent: s.max_ejection_percent.map(|n| n.0),
                },
            });
        }
        let service_index = |name: &str| services.iter().position(|s| s.name == name);
        let declared_names = || {
            let names: Vec<String> = services.iter().map(|s| format!("{:?}", s.name)).collect();
            if names.is_empty() {
                "a service declared in [[services]] (there are none)".to_owned()
            } else {
                format!("one of the services declared in [[services]]: {}", names.join(", "))
            }
        };

        let mut routes: Vec<RouteSpec> = Vec::with_capacity(raw.routes.len());
        let mut route_lines: Vec<usize> = Vec::with_capacity(raw.routes.len());
        // Where each route says it needs identity, for the JWKS check below.
        let mut identity_at: Vec<usize> = Vec::with_capacity(raw.routes.len());
        for r in raw.routes {
            let at = r.prefix.span().start;
            let prefix = r.prefix.into_inner();
            if let Err(why) = check_prefix(&prefix) {
                return Err(invalid(at, format!("prefix {prefix:?} {why}"), PREFIX_EXPECTED));
            }
            let host = match r.host {
                None => None,
                Some(h) => {
                    let host_at = h.span().start;
                    let host = h.into_inner();
                    if !is_host(&host) {
                        return Err(invalid(
                            host_at,
                            format!("host {host:?}"),
                            "a host name without a port or scheme, e.g. \"api.example.com\"",
                        ));
                    }
                    Some(host.to_ascii_lowercase())
                }
            };
            let service_at = r.service.span().start;
            let service_name = r.service.into_inner();
            let Some(service) = service_index(&service_name) else {
                return Err(invalid(
                    service_at,
                    format!("route {prefix:?} names service {service_name:?}, which is not declared"),
                    &declared_names(),
                ));
            };
            let identity_offset = r.identity.as_ref().map_or(at, |i| i.span().start);
            let identity = r.identity.map(Spanned::into_inner).unwrap_or_default();
            let identity_headers = match r.identity_headers {
                Some(h) if *h.get_ref() && identity == IdentityMode::None => {
                    return Err(invalid(
                        h.span().start,
                        format!("route {prefix:?} asks for identity_headers with identity = \"none\""),
                        "identity = \"optional\" or \"required\" (there is no identity to pass on otherwise)",
                    ));
                }
                other => other.is_some_and(Spanned::into_inner),
            };
            let methods = match r.methods {
                None => None,
                Some(list) => {
                    let list_at = list.span().start;
                    let list = list.into_inner();
                    if list.is_empty() {
                        return Err(invalid(
                            list_at,
                            "an empty methods list".to_owned(),
                            "at least one method, or no `methods` key for any method",
                        ));
                    }
                    let mut methods: Vec<Method> = Vec::with_capacity(list.len());
                    for m in list {
                        if !methods.contains(&m.0) {
                            methods.push(m.0);
                        }
                    }
                    Some(methods)
                }
            };
            let route = RouteSpec {
                prefix,
                host,
                methods,
                service,
                identity,
                identity_headers,
                strip_prefix: r.strip_prefix.unwrap_or(false),
                pass_credentials: r.pass_credentials.unwrap_or(false),
            };
            if let Some(i) = routes.iter().position(|other| collides(other, &route)) {
                return Err(invalid(
                    at,
                    format!(
                        "route {:?}{} duplicates the route on line {}",
                        route.prefix,
                        route
                            .host
                            .as_ref()
                            .map(|h| format!(" (host {h:?})"))
                            .unwrap_or_default(),
                        route_lines[i],
                    ),
                    "one route per host and prefix, or routes whose `methods` do not overlap",
                ));
            }
            route_lines.push(file::position(text, at).0);
            identity_at.push(identity_offset);
            routes.push(route);
        }

        let jwks_service = match raw.jwks_service {
            Some(name) => {
                let name_at = name.span().start;
                let name = name.into_inner();
                Some(service_index(&name).ok_or_else(|| {
                    invalid(
                        name_at,
                        format!("jwks_service {name:?} is not declared"),
                        &declared_names(),
                    )
                })?)
            }
            None => service_index(DEFAULT_JWKS_SERVICE),
        };
        if jwks_service.is_none()
            && let Some(i) = routes.iter().position(|r| r.identity != IdentityMode::None)
        {
            return Err(invalid(
                identity_at[i],
                format!(
                    "route {:?} needs identity, but no service {DEFAULT_JWKS_SERVICE:?} is declared to fetch token keys from",
                    routes[i].prefix
                ),
                "jwks_service = \"<a declared service>\" at the top of the file, naming the service that serves /.well-known/jwks.json",
            ));
        }
        Ok(Self {
            services,
            routes,
            jwks_service,
            edge: raw.edge,
        })
    }

    /// Whether some route verifies callers (and so the JWKS is needed).
    pub fn needs_identity(&self) -> bool {
        self.routes.iter().any(|r| r.identity != IdentityMode::None)
    }
}

const PREFIX_EXPECTED: &str = "a path starting with '/' without a trailing '/', '?', '#' or spaces, e.g. \"/greet\"";

fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if !prefix.starts_with('/') {
        return Err("does not start with '/'");
    }
    if prefix.len() > 1 && prefix.ends_with('/') {
        return Err("ends with '/' (prefixes match whole segments already)");
    }
    if prefix.contains(['?', '#']) || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("holds '?', '#', a space or a control character");
    }
    Ok(())
}

fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
}

/// Whether two routes would both answer some request: the same host and
/// prefix, and a method both accept.
fn collides(a: &RouteSpec, b: &RouteSpec) -> bool {
    a.prefix == b.prefix
        && a.host == b.host
        && match (&a.methods, &b.methods) {
            (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
            _ => true,
        }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    jwks_service: Option<Spanned<String>>,
    #[serde(default)]
    services: Vec<RawService>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    edge: EdgePolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    lb: Option<LbPolicy>,
    connect_timeout: Option<FileDuration>,
    request_timeout: Option<FileDuration>,
    retries: Option<Bounded<0, MAX_RETRIES>>,
    retry_on: Option<FileRetryOn>,
    retriable_status_codes: Option<Vec<Bounded<100, 599>>>,
    retry_budget: Option<Bounded<0, 100>>,
    consecutive_5xx: Option<Bounded<0, 1000>>,
    consecutive_gateway_failure: Option<Bounded<0, 1000>>,
    consecutive_local_origin_failure: Option<Bounded<0, 1000>>,
    base_ejection_time: Option<FileDuration>,
    max_ejection_time: Option<FileDuration>,
    max_ejection_percent: Option<Bounded<0, 100>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: Spanned<String>,
    host: Option<Spanned<String>>,
    methods: Option<Spanned<Vec<FileMethod>>>,
    service: Spanned<String>,
    identity: Option<Spanned<IdentityMode>>,
    identity_headers: Option<Spanned<bool>>,
    strip_prefix: Option<bool>,
    pass_credentials: Option<bool>,
}

/// An HTTP method as HTTP spells it (capitals).
struct FileMethod(Method);

/// The methods a route may name: the standard ones (RFC 9110, and PATCH).
const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::CONNECT,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];

impl<'de> Deserialize<'de> for FileMethod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match METHODS.iter().find(|m| m.as_str() == text) {
            Some(m) => Ok(FileMethod(m.clone())),
            None => Err(serde::de::Error::custom(format!(
                "{text:?} is not an HTTP method: expected one of {} (in capitals)",
                METHODS.iter().map(Method::as_str).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::{EscapedSlashes, Underscores};

    fn parse(text: &str) -> Result<Declared, DeclaredError> {
        Declared::parse(text, Path::new("gateway.toml"))
    }

    /// The error for `text`, which must be refused, as the operator sees it.
    fn refused(text: &str) -> (Option<usize>, String) {
        let e = parse(text).expect_err("the file should be refused");
        (e.line(), e.to_string())
    }

    const GOOD: &str = r#"
jwks_service = "auth"

[[services]]
name = "auth"

[[services]]
name = "greeter"
lb = "p2c"
connect_timeout = "250ms"
request_timeout = "5s"
retries = 1
retry_on = ["5xx", "retriable-status-codes"]
retriable_status_codes = [409]
consecutive_5xx = 3
max_ejection_percent = 100

[[routes]]
prefix = "/auth"
service = "auth"

[[routes]]
prefix = "/greet"
host = "API.Example.com"
methods = ["GET", "POST"]
service = "greeter"
identity = "optional"
identity_headers = true
strip_prefix = true
pass_credentials = true

[edge]
escaped_slashes = "unescape"
headers_with_underscores = "reject"
trusted_proxies = ["10.0.0.0/8", "::1"]
"#;

    #[test]
    fn a_full_file_reads_as_written() {
        let d = parse(GOOD).unwrap();
        assert_eq!(d.services.len(), 2);
        assert_eq!(
            d.services[1],
            ServiceSpec {
                name: "greeter".into(),
                policy: Overrides {
                    lb: Some(LbPolicy::P2c),
                    connect_timeout: Some(Duration::from_millis(250)),
                    request_timeout: Some(Duration::from_secs(5)),
                    retries: Some(1),
                    retry_on: Some(crate::policy::RetryOn::parse(["5xx", "retriable-status-codes"]).unwrap()),
                    retriable_status_codes: Some(vec![409]),
                    consecutive_5xx: Some(3),
                    max_ejection_percent: Some(100),
                    ..Overrides::default()
                },
            }
        );
        assert_eq!(d.services[0], ServiceSpec::named("auth"));
        assert_eq!(
            d.routes[1],
            RouteSpec {
                prefix: "/greet".into(),
                host: Some("api.example.com".into()),
                methods: Some(vec![Method::GET, Method::POST]),
                service: 1,
                identity: IdentityMode::Optional,
                identity_headers: true,
                strip_prefix: true,
                pass_credentials: true,
            }
        );
        assert_eq!(d.routes[0].identity, IdentityMode::None);
        assert!(!d.routes[0].strip_prefix && !d.routes[0].identity_headers && !d.routes[0].pass_credentials);
        assert_eq!(d.edge.escaped_slashes, EscapedSlashes::Unescape);
        assert_eq!(d.edge.headers_with_underscores, Underscores::Reject);
        assert!(d.edge.trusts("10.9.8.7".parse().unwrap()) && d.edge.trusts("::1".parse().unwrap()));
        assert!(!d.edge.trusts("127.0.0.1".parse().unwrap()));
        assert_eq!(d.jwks_service, Some(0));
        assert!(d.needs_identity());
    }

    #[test]
    fn the_reference_routes_are_todays() {
        let d = Declared::reference();
        let names: Vec<&str> = d.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["auth", "user"]);
        assert!(d.services.iter().all(|s| *s == ServiceSpec::named(&s.name)));
        let routes: Vec<(&str, &str, IdentityMode)> = d
            .routes
            .iter()
            .map(|r| (r.prefix.as_str(), d.services[r.service].name.as_str(), r.identity))
            .collect();
        assert_eq!(
            routes,
            [
                ("/auth", "auth", IdentityMode::None),
                ("/users", "user", IdentityMode::Required)
            ]
        );
        assert!(
            d.routes
                .iter()
                .all(|r| r.host.is_none() && r.methods.is_none() && !r.strip_prefix && !r.identity_headers)
        );
        assert_eq!(d.jwks_service, Some(0));
        // Auth reads the session cookie and bearer itself (logout, refresh).
        assert!(d.routes[0].pass_credentials && !d.routes[1].pass_credentials);
        assert_eq!(d.edge, EdgePolicy::default());
    }

    #[test]
    fn a_bad_edge_table_names_its_line() {
        let (line, msg) = refused("[edge]\nescaped_slashes = \"decode\"\n");
        assert_eq!(line, Some(2), "{msg}");
        assert!(msg.contains("reject") && msg.contains("unescape"), "{msg}");
        let (line, msg) = refused("[edge]\n\ntrusted_proxies = [\"10.0.0.0/40\"]\n");
        assert_eq!(line, Some(3), "{msg}");
        assert!(msg.contains("prefix length"), "{msg}");
        let (line, msg) = refused("[edge]\nmerge_slashes = false\n");
        assert_eq!(line, Some(2), "{msg}");
    }

    #[test]
    fn the_example_file_is_the_reference_routes() {
        let example = include_str!("../gateway.example.toml");
        assert_eq!(parse(example).unwrap(), Declared::reference());
    }

    #[test]
    fn the_default_jwks_service_is_auth_and_a_file_without_identity_needs_none() {
        let d = parse("[[services]]\nname = \"a\"\n[[routes]]\nprefix = \"/\"\nservice = \"a\"\n").unwrap();
        assert_eq!(d.jwks_service, None);
        assert!(!d.needs_identity());
    }

    #[test]
    fn an_unknown_key_names_its_line_and_the_keys_expected() {
        let (line, e) =
            refused("[[services]]\nname = \"a\"\n\n[[routes]]\nprefix = \"/a\"\nservice = \"a\"\nhots = \"x\"\n");
        assert_eq!(line, Some(7), "{e}");
        assert!(e.starts_with("gateway.toml:7:"), "{e}");
        assert!(e.contains("hots") && e.contains("`host`"), "{e}");
    }

    #[test]
    fn a_route_to_an_unknown_service_names_the_declared_ones() {
        let (line, e) = refused("[[services]]\nname = \"a\"\n[[routes]]\nprefix = \"/a\"\nservice = \"b\"\n");
        assert_eq!(line, Some(5), "{e}");
        assert!(e.contains("\"b\", which is not declared"), "{e}");
        assert!(
            e.contains("expected one of the services declared in [[services]]: \"a\""),
            "{e}"
        );
    }

    #[test]
    fn a_duplicate_route_names_both_lines() {
        let text = "[[services]]\nname = \"a\"\n\
                    [[routes]]\nprefix = \"/a\"\nservice = \"a\"\n\
                    [[routes]]\nprefix = \"/a\"\nservice = \"a\"\nmethods = [\"GET\"]\n";
        let (line, e) = refused(text);
        assert_eq!(line, Some(7), "{e}");
        assert!(e.contains("duplicates the route on line 4"), "{e}");
        // The same prefix on another host, or with other methods, is no duplicate.
        let split = "[[services]]\nname = \"a\"\n\
                     [[routes]]\nprefix = \"/a\"\nservice = \"a\"\nmethods = [\"POST\"]\n\
                     [[routes]]\nprefix = \"/a\"\nservice = \"a\"\nmethods = [\"GET\"]\n\
                     [[routes]]\nprefix = \"/a\"\nhost = \"x.example\"\nservice = \"a\"\n";
        assert_eq!(parse(split).unwrap().routes.len(), 3);
    }

    #[test]
    fn a_bad_duration_names_its_line_and_the_form_expected() {
        let (line, e) = refused("[[services]]\nname = \"a\"\nconnect_timeout = \"soon\"\n");
        assert_eq!(line, Some(3), "{e}");
        assert!(
            e.contains("\"soon\" is not a duration") && e.contains("\"500ms\""),
            "{e}"
        );
        let (line, e) = refused("[[services]]\nname = \"a\"\nrequest_timeout = \"0s\"\n");
        assert_eq!(line, Some(3), "{e}");
    }

    #[test]
    fn a_bad_method_names_its_line_and_the_methods_expected() {
        let (line, e) = refused(
            "[[services]]\nname = \"a\"\n[[routes]]\nprefix = \"/a\"\nservice = \"a\"\nmethods = [\"GET\", \"get\"]\n",
        );
        assert_eq!(line, Some(6), "{e}");
        assert!(
            e.contains("\"get\" is not an HTTP method") && e.contains("GET, HEAD, POST"),
            "{e}"
        );
    }

    #[test]
    fn other_mistakes_each_name_a_line() {
        let cases: [(&str, usize, &str); 15] = [
            ("[[services]]\nname = \"a\"\nlb = \"random\"\n", 3, "round_robin"),
            ("[[services]]\nname = \"a\"\nretries = 9\n", 3, "from 0 to 5"),
            ("[[services]]\nname = \"a\"\nretry_budget = 101\n", 3, "from 0 to 100"),
            (
                "[[services]]\nname = \"a\"\nretry_on = [\"always\"]\n",
                3,
                "\"always\" is not a retry condition",
            ),
            (
                "[[services]]\nname = \"a\"\nretriable_status_codes = [99]\n",
                3,
                "from 100 to 599",
            ),
            (
                "[[services]]\nname = \"a\"\nconsecutive_5xx = -1\n",
                3,
                "from 0 to 1000",
            ),
            (
                "[[services]]\nname = \"a\"\nbase_ejection_time = \"never\"\n",
                3,
                "is not a duration",
            ),
            (
                "[[services]]\nname = \"a\"\n[[services]]\nname = \"a\"\n",
                4,
                "declared twice",
            ),
            ("[[services]]\nname = \"a b\"\n", 2, "letters, digits"),
            (
                "[[services]]\nname = \"a\"\n[[routes]]\nprefix = \"a\"\nservice = \"a\"\n",
                4,
                "does not start with '/'",
            ),
            (
                "[[services]]\nname = \"a\"\n[[routes]]\nprefix = \"/a/\"\nservice = \"a\"\n",
                4,
                "trailing",
            ),
            (
                "[[services]]\nname = \"a\"\n[[routes]]\nprefix = \"/a\"\nservice = \"a\"\nidentity = \"maybe\"\n",
                6,
                "`required`",
            ),
            (
                "[[services]]\nname = \"a\"\n[[routes]]\nprefix = \"/a\"\nservice = \"a\"\nidentity_headers = true\n",
                6,
                "identity = \"optional\" or \"required\"",
            ),
            (
                "[[services]]\nname = \"a\"\n[[routes]]\nprefix = \"/a\"\nservice = \"a\"\nhost = \"a.example:80\"\n",
                6,
                "without a port",
            ),
            (
                "[[services]]\nname = \"a\"\n\n[[routes]]\nprefix = \"/a\"\nservice = \"a\"\nidentity = \"required\"\n",
                7,
                "jwks_service",
            ),
        ];
        for (text, want_line, want_text) in cases {
            let (line, e) = refused(text);
            assert_eq!(line, Some(want_line), "{text:?}: {e}");
            assert!(e.contains(want_text), "{text:?}: {e} does not say {want_text:?}");
            assert!(e.starts_with(&format!("gateway.toml:{want_line}:")), "{e}");
        }
    }

    #[test]
    fn not_toml_at_all_is_refused_with_a_line() {
        let (line, e) = refused("[[services]]\nname = \n");
        assert_eq!(line, Some(2), "{e}");
    }

    #[test]
    fn an_unreadable_file_names_the_file() {
        let e = Declared::load(Path::new("/nonexistent/gateway.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/gateway.toml: could not be read"),
            "{e}"
        );
    }
}
