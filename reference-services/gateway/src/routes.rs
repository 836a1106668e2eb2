//! The route table: which request goes to which service, decided without
//! allocating. Built once per configuration, sorted so the first match is
//! the right one: longest prefix first, and for the same prefix a route with
//! a host before one without.

use http::{HeaderValue, Method};

use crate::declared::{Declared, IdentityMode};
use crate::snapshot::ServiceId;

/// One route, ready for the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub service: ServiceId,
    pub identity: IdentityMode,
    /// Pass the verified caller on as `X-User-Id` / `X-Username`.
    pub identity_headers: bool,
    /// Remove [`Route::prefix`] from the path the service sees.
    pub strip_prefix: bool,
    /// Pass the client's credentials on as sent, not only the verified one.
    pub pass_credentials: bool,
    pub prefix: Box<str>,
    /// `None`: any method.
    methods: Option<Box<[Method]>>,
}

impl Route {
    fn accepts(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }
}

/// The routes sharing one host and prefix (they differ in methods), with
/// the `Allow` value a 405 sends, made once here rather than per request.
#[derive(Debug)]
struct Group {
    /// Lower-cased; `None` matches any host.
    host: Option<Box<str>>,
    prefix: Box<str>,
    routes: Box<[Route]>,
    allow: HeaderValue,
}

/// What the table says about one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    Found(&'a Route),
    /// A route has this path, not for this method: 405 with this `Allow`.
    WrongMethod(&'a HeaderValue),
    NotFound,
}

/// Every route of one configuration, in the order they are tried.
#[derive(Debug)]
pub struct RouteTable {
    groups: Box<[Group]>,
}

impl RouteTable {
    /// The table for `declared`, whose routes are already checked (no two
    /// in one group accept the same method).
    pub fn new(declared: &Declared) -> Self {
        let mut groups: Vec<Group> = Vec::new();
        for spec in &declared.routes {
            let route = Route {
                service: ServiceId(spec.service),
                identity: spec.identity,
                identity_headers: spec.identity_headers,
                strip_prefix: spec.strip_prefix,
                pass_credentials: spec.pass_credentials,
                prefix: spec.prefix.as_str().into(),
                methods: spec.methods.as_ref().map(|m| m.clone().into_boxed_slice()),
            };
            let host = spec.host.as_deref().map(str::to_ascii_lowercase);
            match groups
                .iter_mut()
                .find(|g| *g.prefix == *spec.prefix && g.host.as_deref() == host.as_deref())
            {
                Some(group) => {
                    let mut routes = std::mem::take(&mut group.routes).into_vec();
                    routes.push(route);
                    group.routes = routes.into_boxed_slice();
                }
                None => groups.push(Group {
                    host: host.map(Into::into),
                    prefix: spec.prefix.as_str().into(),
                    routes: Box::new([route]),
                    allow: HeaderValue::from_static(""),
                }),
            }
        }
        for group in &mut groups {
            group.allow = allow_header(&group.routes);
        }
        // Stable: routes that tie keep the file's order.
        groups.sort_by_key(|g| (std::cmp::Reverse(g.prefix.len()), g.host.is_none()));
        Self {
            groups: groups.into_boxed_slice(),
        }
    }

    /// The route for a request to `host` (the `Host` header or the URI's
    /// authority, port and all; `None` if the request named none), `path`
    /// and `method`.
    pub fn find<'a>(&'a self, host: Option<&str>, path: &str, method: &Method) -> Lookup<'a> {
        let host = host.map(without_port);
        for group in &self.groups {
            if !prefix_matches(&group.prefix, path) {
                continue;
            }
            if let Some(want) = &group.host
                && !host.is_some_and(|h| h.eq_ignore_ascii_case(want))
            {
                continue;
            }
            return match group.routes.iter().find(|r| r.accepts(method)) {
                Some(route) => Lookup::Found(route),
                None => Lookup::WrongMethod(&group.allow),
            };
        }
        Lookup::NotFound
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.routes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// A prefix matches whole segments: `/users` matches `/users` and
/// `/users/me`, not `/usersx`; `/` matches every path.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The path a service sees when its route strips `prefix` from `path`,
/// which the prefix matched: `/greet/x` becomes `/x`, `/greet` and
/// `/greet/` become `/`.
pub fn strip_prefix<'a>(prefix: &str, path: &'a str) -> &'a str {
    if prefix == "/" {
        return path;
    }
    match path.strip_prefix(prefix) {
        Some("") | None => "/",
        Some(rest) => rest,
    }
}

/// `host` without a `:port`, keeping an IPv6 literal's brackets whole.
fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// The methods a group's routes accept, as an `Allow` value.
fn allow_header(routes: &[Route]) -> HeaderValue {
    let mut names: Vec<&str> = Vec::new();
    for route in routes {
        for m in route.methods.iter().flatten() {
            if !names.contains(&m.as_str()) {
                names.push(m.as_str());
            }
        }
    }
    HeaderValue::from_str(&names.join(", ")).expect("method names are header values")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn table(text: &str) -> (Declared, RouteTable) {
        let d = Declared::parse(text, Path::new("t.toml")).unwrap();
        let t = RouteTable::new(&d);
        (d, t)
    }

    /// The service name a request reaches, or what the table says instead.
    fn to(d: &Declared, t: &RouteTable, host: Option<&str>, method: Method, path: &str) -> String {
        match t.find(host, path, &method) {
            Lookup::Found(r) => d.services[r.service.0].name.clone(),
            Lookup::WrongMethod(allow) => format!("405 {}", allow.to_str().unwrap()),
            Lookup::NotFound => "404".into(),
        }
    }

    #[test]
    fn the_reference_table_matches_whole_segments() {
        let d = Declared::reference();
        let t = RouteTable::new(&d);
        let get = |path| to(&d, &t, Some("localhost:8000"), Method::GET, path);
        assert_eq!(get("/users/me"), "user");
        assert_eq!(get("/users"), "user");
        assert_eq!(get("/auth/login"), "auth");
        assert_eq!(get("/usersx"), "404");
        assert_eq!(get("/"), "404");
        assert_eq!(get("/internal/users"), "404");
        let Lookup::Found(users) = t.find(None, "/users/me", &Method::GET) else {
            panic!("no route")
        };
        assert_eq!(users.identity, IdentityMode::Required);
        assert_eq!(t.len(), 2);
    }

    const SERVICES: &str = "[[services]]\nname = \"a\"\n[[services]]\nname = \"b\"\n[[services]]\nname = \"c\"\n";

    #[test]
    fn the_longest_prefix_wins_whatever_the_file_order() {
        let (d, t) = table(&format!(
            "{SERVICES}[[routes]]\nprefix = \"/\"\nservice = \"a\"\n\
             [[routes]]\nprefix = \"/api\"\nservice = \"b\"\n\
             [[routes]]\nprefix = \"/api/v2\"\nservice = \"c\"\n"
        ));
        let get = |path| to(&d, &t, None, Method::GET, path);
        assert_eq!(get("/api/v2/x"), "c");
        assert_eq!(get("/api/v2"), "c");
        assert_eq!(get("/api/v20"), "b");
        assert_eq!(get("/api"), "b");
        assert_eq!(get("/apis"), "a");
        assert_eq!(get("/"), "a");
    }

    #[test]
    fn a_host_route_comes_before_a_hostless_one_and_ignores_case_and_port() {
        let (d, t) = table(&format!(
            "{SERVICES}[[routes]]\nprefix = \"/x\"\nservice = \"a\"\n\
             [[routes]]\nprefix = \"/x\"\nhost = \"API.example.com\"\nservice = \"b\"\n\
             [[routes]]\nprefix = \"/v6\"\nhost = \"only.example\"\nservice = \"c\"\n"
        ));
        let at = |host| to(&d, &t, host, Method::GET, "/x/1");
        assert_eq!(at(Some("api.example.com")), "b");
        assert_eq!(at(Some("Api.Example.Com:8443")), "b");
        assert_eq!(at(Some("other.example.com")), "a");
        assert_eq!(at(Some("[::1]:8000")), "a");
        assert_eq!(at(None), "a");
        // A host-only route does not answer other hosts, nor a missing one.
        assert_eq!(to(&d, &t, Some("only.example:1"), Method::GET, "/v6"), "c");
        assert_eq!(to(&d, &t, Some("else.example"), Method::GET, "/v6"), "404");
        assert_eq!(to(&d, &t, None, Method::GET, "/v6"), "404");
    }

    #[test]
    fn methods_pick_among_routes_and_others_get_405_with_allow() {
        let (d, t) = table(&format!(
            "{SERVICES}[[routes]]\nprefix = \"/m\"\nmethods = [\"GET\", \"HEAD\"]\nservice = \"a\"\n\
             [[routes]]\nprefix = \"/m\"\nmethods = [\"POST\"]\nservice = \"b\"\n"
        ));
        assert_eq!(to(&d, &t, None, Method::GET, "/m"), "a");
        assert_eq!(to(&d, &t, None, Method::HEAD, "/m/x"), "a");
        assert_eq!(to(&d, &t, None, Method::POST, "/m"), "b");
        assert_eq!(to(&d, &t, None, Method::DELETE, "/m"), "405 GET, HEAD, POST");
        assert_eq!(to(&d, &t, None, Method::DELETE, "/mm"), "404");
    }

    #[test]
    fn strip_prefix_keeps_what_follows_the_prefix() {
        assert_eq!(strip_prefix("/greet", "/greet"), "/");
        assert_eq!(strip_prefix("/greet", "/greet/"), "/");
        assert_eq!(strip_prefix("/greet", "/greet/x"), "/x");
        assert_eq!(strip_prefix("/greet", "/greet/x/y/"), "/x/y/");
        assert_eq!(strip_prefix("/greet", "/greet//x"), "//x");
        assert_eq!(strip_prefix("/", "/greet/x"), "/greet/x");
        // `/greetings` is not under `/greet`: the table never routes it there.
        assert!(!prefix_matches("/greet", "/greetings"));
        assert!(prefix_matches("/greet", "/greet/"));
    }

    #[test]
    fn ports_come_off_hosts_and_ipv6_literals_stay_whole() {
        assert_eq!(without_port("a.example:80"), "a.example");
        assert_eq!(without_port("a.example"), "a.example");
        assert_eq!(without_port("[::1]:80"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
    }
}
