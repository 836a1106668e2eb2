//! A routes file end to end: a fresh stack whose gateway reads a file the
//! scenario writes, with an echo upstream behind each service it names, so
//! what reached a service (and what did not) can be seen where it arrives;
//! raw HTTP/1.1 requests for the paths and headers an HTTP client would
//! tidy up before sending; and reloads as an operator does them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cucumber::gherkin::Step;
use cucumber::{given, then, when};
use gantry_common::session;
use gantry_gateway::Declared;
use gantry_harness::drive::client::{Answer, Sent};
use gantry_harness::drive::echo::EchoInstance;
use gantry_harness::drive::metrics::Scrape;
use gantry_harness::drive::raw::read_to_close;
use gantry_harness::stack::role::GATEWAY;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::eventually;
use super::upstream::{client_address, echo, last_received, until_every_gateway};
use crate::target;
use crate::world::GantryWorld;

/// How long one raw answer, or one reload, may take before the step fails:
/// a ceiling, not an expected time.
const WITHIN: Duration = Duration::from_secs(10);

/// The routes a scenario's gateway starts on: Gantry's reference routes,
/// to the stack's own auth and user services, so it can be ready before
/// any echo upstream exists.
const REFERENCE_ROUTES: &str = r#"[[services]]
name = "auth"

[[services]]
name = "user"

[[routes]]
prefix = "/auth"
service = "auth"
pass_credentials = true

[[routes]]
prefix = "/users"
service = "user"
identity = "required"
"#;

/// The scenario's routes file, in a directory of its own under cargo's
/// directory for tests' temporary files; removed when the scenario ends.
#[derive(Debug)]
pub struct RoutesFile {
    path: PathBuf,
}

impl RoutesFile {
    fn create() -> Self {
        let name = format!("routes-{}", gantry_common::jwt::random_id(8));
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Self {
            path: dir.join("routes.toml"),
        }
    }

    /// Replaces the file whole: written beside it, then renamed over it, so
    /// a gateway reading it meanwhile reads the old file or the new one,
    /// never half of one.
    fn write(&self, text: &str) {
        let next = self.path.with_extension("toml.next");
        std::fs::write(&next, text).unwrap_or_else(|e| panic!("writing {}: {e}", next.display()));
        std::fs::rename(&next, &self.path).unwrap_or_else(|e| panic!("replacing {}: {e}", self.path.display()));
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_else(|e| panic!("reading {}: {e}", self.path.display()))
    }
}

impl Drop for RoutesFile {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The step's doc string, as the file's text.
fn doc_string(step: &Step) -> String {
    let text = step.docstring.as_deref().expect("a doc string: the routes file");
    text.trim_start_matches('\n').to_owned()
}

fn routes_file(w: &GantryWorld) -> &RoutesFile {
    w.routes
        .as_ref()
        .expect("a routes file first (Given a fresh stack with echo upstreams behind this routes file)")
}

// ---- the stack --------------------------------------------------------------

/// A gateway is ready only once every service its file declares has a
/// passing instance, and an echo upstream can only register once the
/// stack's registry runs. So the stack starts with its gateway on the
/// reference routes, an echo registers for each service of the scenario's
/// file that the stack does not run itself (auth, user), with the service's
/// name as its instance id, and then the gateway is restarted on the
/// scenario's file: from then on it is a gateway started on that file with
/// its upstreams up, as in a deployment where the services come up first.
/// No reload is involved, so scenarios of reloading do not depend on it.
#[given("a fresh stack with echo upstreams behind this routes file:")]
async fn fresh_stack_behind(w: &mut GantryWorld, step: &Step) {
    let text = doc_string(step);
    // A mistake in the feature is reported here, not as a gateway that
    // does not start.
    let declared = Declared::parse(&text, Path::new("the scenario's routes file")).unwrap_or_else(|e| panic!("{e}"));
    let file = RoutesFile::create();
    file.write(REFERENCE_ROUTES);
    let builder = target::builder().users(1).gateway_routes(&file.path);
    super::stack::start_fresh(w, builder).await;
    w.routes = Some(file);

    let own: Vec<String> = w.stack().services().into_iter().map(str::to_owned).collect();
    let echoed: Vec<String> = declared
        .services
        .iter()
        .map(|s| s.name.clone())
        .filter(|name| !own.contains(name))
        .collect();
    for service in &echoed {
        let started = EchoInstance::in_stack(w.stack(), service, service)
            .await
            .unwrap_or_else(|e| panic!("echo upstream {service}: {e}"));
        w.echoes.instances.push(started);
    }

    routes_file(w).write(&text);
    for n in 1..=w.target().gateways.len() {
        w.stack()
            .restart_gateway(n)
            .await
            .unwrap_or_else(|e| panic!("gateway-{n} did not start on the scenario's routes file: {e}"));
    }
    w.refresh_target();
    for service in echoed {
        let what = format!("the gateway to route {service} to its echo upstream");
        let only = [service.clone()];
        until_every_gateway(w, &service, &what, move |now| now == only).await;
    }
}

// ---- raw requests -----------------------------------------------------------

/// `host:port` of a `http://host:port` URL.
fn authority(url: &str) -> &str {
    assert!(
        url.starts_with("http://"),
        "raw requests are plain HTTP; the gateway is {url}"
    );
    url.trim_start_matches("http://").trim_end_matches('/')
}

/// A whole answer read off a connection the gateway closed after it.
fn parse_answer(raw: &str, sent: Sent) -> Answer {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no whole answer before the connection closed: {raw:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {raw:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("not a header line: {line:?}"));
        let name = HeaderName::from_bytes(name.trim().as_bytes()).expect("a header name");
        headers.append(name, HeaderValue::from_str(value.trim()).expect("a header value"));
    }
    // The gateway's own answers and the echoes' have a Content-Length.
    assert!(
        headers.get("transfer-encoding").is_none(),
        "a chunked answer, which this step does not decode: {raw:?}"
    );
    Answer {
        status,
        headers,
        body: body.to_owned(),
        sent: Some(sent),
    }
}

/// Sends `request line` byte for byte, as an HTTP client would not: it
/// resolves `..` and `%2e%2e`, merges nothing it should keep, and sends one
/// `Host`. The head is the line, a `Host` with the gateway's address unless
/// the table gives one (or two), the user's credential when the step names
/// one, the table's headers in order, and `Connection: close`, so the answer
/// ends where the connection does. The answer is the last one for the
/// library's checks (`the status is 401`, `the JSON at "/error" is …`).
#[when(regex = r#"^the raw request "([^"]+)" is sent(?: as "(\w+)" by (bearer|session))?(?: with headers:)?$"#)]
async fn raw_request(w: &mut GantryWorld, step: &Step, line: String, user: String, how: String) {
    let gateway = w.gateway();
    let rows: Vec<(String, String)> = step
        .table
        .as_ref()
        .map(|t| t.rows.iter().map(|r| (r[0].clone(), r[1].clone())).collect())
        .unwrap_or_default();
    let mut head = format!("{line}\r\n");
    if !rows.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        head += &format!("Host: {}\r\n", authority(&gateway));
    }
    if !user.is_empty() {
        let u = w.user(&user);
        match how.as_str() {
            "bearer" => head += &format!("Authorization: Bearer {}\r\n", u.token.as_deref().expect("a token")),
            _ => head += &format!("Cookie: {}\r\n", u.cookie.as_deref().expect("a session cookie")),
        }
    }
    for (name, value) in &rows {
        head += &format!("{name}: {value}\r\n");
    }
    head += "Connection: close\r\n\r\n";

    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().expect("a request line: METHOD target HTTP/1.1");
    let sent = Sent {
        method: reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method"),
        url: match target.starts_with('/') {
            true => format!("{gateway}{target}"),
            false => target.to_owned(),
        },
        request_id: None,
        trace_id: None,
    };
    let mut stream = TcpStream::connect(authority(&gateway))
        .await
        .expect("connecting to the gateway");
    stream.write_all(head.as_bytes()).await.expect("sending the request");
    let raw = tokio::time::timeout(WITHIN, read_to_close(&mut stream))
        .await
        .unwrap_or_else(|_| panic!("no answer to {line:?} within {WITHIN:?}"));
    w.steps.record(parse_answer(&raw, sent));
}

// ---- what reached the echo upstreams -----------------------------------------

/// The requests an echo received, as `METHOD path?query`, for messages.
fn log_of(w: &GantryWorld, id: &str) -> Vec<String> {
    echo(w, id)
        .echo
        .received()
        .iter()
        .map(|r| match &r.query {
            Some(q) => format!("{} {}?{q}", r.method, r.path),
            None => format!("{} {}", r.method, r.path),
        })
        .collect()
}

#[then(regex = r#"^echo upstream "([\w-]+)" received nothing$"#)]
async fn received_nothing(w: &mut GantryWorld, id: String) {
    let log = log_of(w, &id);
    assert!(log.is_empty(), "{id} received {log:?}");
}

/// A table with the header row `| method | path |`; a path may carry its
/// query. In order, and nothing else.
#[then(regex = r#"^echo upstream "([\w-]+)" received exactly these requests:$"#)]
async fn received_exactly(w: &mut GantryWorld, step: &Step, id: String) {
    let table = step.table.as_ref().expect("a table: method, path");
    let expected: Vec<String> = table
        .rows
        .iter()
        .skip(1)
        .map(|r| format!("{} {}", r[0], r[1]))
        .collect();
    assert_eq!(log_of(w, &id), expected, "what {id} received");
}

/// CGI, WSGI, Rack and PHP read `X_User_Id` as `X-User-Id`: a name with an
/// underscore is an alias of a name the gateway may set or strip.
#[then(regex = r#"^echo upstream "([\w-]+)" received no header with an underscore in its name$"#)]
async fn no_underscores(w: &mut GantryWorld, id: String) {
    let got = last_received(w, &id);
    let aliases: Vec<&(String, String)> = got.headers.iter().filter(|(n, _)| n.contains('_')).collect();
    assert!(aliases.is_empty(), "{id} received {aliases:?}");
}

/// No credential: neither `Authorization` nor a `SESSION` cookie (other
/// cookies may pass). No `SESSION` cookie: the replayable session id stays
/// at the gateway even where the verified token goes on.
#[then(regex = r#"^echo upstream "([\w-]+)" received no (credential|SESSION cookie)$"#)]
async fn no_credential(w: &mut GantryWorld, id: String, what: String) {
    let got = last_received(w, &id);
    let sessions: Vec<&str> = got
        .header_values("cookie")
        .into_iter()
        .filter(|c| session::from_cookie_header(c).is_some())
        .collect();
    assert!(sessions.is_empty(), "{id} received the session cookie: {sessions:?}");
    if what == "credential" {
        assert_eq!(
            got.header_values("authorization"),
            Vec::<&str>::new(),
            "{id} received a credential"
        );
    }
}

/// `"X-Real-IP and X-Forwarded-For"`: each arrives once, as the address the
/// gateway saw this machine's connection come from, whatever the client
/// said.
#[then(regex = r#"^echo upstream "([\w-]+)" received the client's address as (.+)$"#)]
async fn received_client_address(w: &mut GantryWorld, id: String, names: String) {
    let client = client_address(&w.gateway()).await;
    let got = last_received(w, &id);
    for name in names.split(" and ").flat_map(|n| n.split(", ")) {
        assert_eq!(
            got.header_values(name.trim()),
            [client.as_str()],
            "{name}; {id} received {:?}",
            got.headers
        );
    }
}

/// Exactly one of each, from the verified token: `sub` (the id the user was
/// registered with) and `username`.
#[then(regex = r#"^echo upstream "([\w-]+)" received the X-User-Id and X-Username of "(\w+)"$"#)]
async fn received_identity(w: &mut GantryWorld, id: String, name: String) {
    let user = w.user(&name).clone();
    let user_id = user.id.clone().expect("a registered user's id");
    let got = last_received(w, &id);
    assert_eq!(got.header_values("x-user-id"), [user_id.as_str()], "{:?}", got.headers);
    assert_eq!(
        got.header_values("x-username"),
        [user.username.as_str()],
        "{:?}",
        got.headers
    );
}

// ---- reloading ----------------------------------------------------------------

#[when("the routes file becomes:")]
async fn routes_file_becomes(w: &mut GantryWorld, step: &Step) {
    routes_file(w).write(&doc_string(step));
}

/// Reloads a gateway has done, whatever their result.
async fn reloads(admin: &str) -> f64 {
    let scrape = Scrape::of(admin).await.expect("the gateway's /metrics");
    scrape.value("gantry_gateway_config_reloads_total{result=\"ok\"}")
        + scrape.value("gantry_gateway_config_reloads_total{result=\"error\"}")
}

/// As an operator does it: `gantry gateway reload --pid <pid>`, which sends
/// the gateway SIGHUP. Done when every gateway has counted one more reload,
/// whatever its result, which the scenario then checks.
#[when("every gateway is told to reload its routes file")]
async fn reload(w: &mut GantryWorld) {
    let admins = w.target().admins.clone();
    let mut before = Vec::new();
    for admin in &admins {
        before.push(reloads(admin).await);
    }
    let stack = w.stack();
    let binary = stack.binary().to_owned();
    let pids: Vec<u32> = stack
        .instances(GATEWAY)
        .expect("the stack's gateways")
        .iter()
        .map(|g| g.pid().unwrap_or_else(|| panic!("{} is not a running process", g.id())))
        .collect();
    for pid in pids {
        let out = tokio::process::Command::new(&binary)
            .args(["gateway", "reload", "--pid", &pid.to_string()])
            .output()
            .await
            .expect("running gantry gateway reload");
        assert!(
            out.status.success(),
            "gantry gateway reload --pid {pid}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (admin, before) in admins.into_iter().zip(before) {
        eventually(&format!("{admin} to count the reload"), WITHIN, || {
            let admin = admin.clone();
            async move { reloads(&admin).await > before }
        })
        .await;
    }
}

/// What the operator reads: the file and line of the mistake, and that the
/// routes in force stay. `text` is found in the routes file to say which
/// line that is.
#[then(regex = r#"^every gateway's log says the routes file was refused at the line with "([^"]+)"$"#)]
async fn log_names_the_line(w: &mut GantryWorld, text: String) {
    let file = routes_file(w);
    let line = file
        .text()
        .lines()
        .position(|l| l.contains(&text))
        .unwrap_or_else(|| panic!("{text:?} is not in the routes file"))
        + 1;
    let at = format!("{}:{line}:", file.path.display());
    let stack = w.stack();
    for gateway in stack.instances(GATEWAY).expect("the stack's gateways") {
        let what = format!("{}'s log to say the routes file was refused at {at}", gateway.id());
        eventually(&what, WITHIN, || {
            let at = at.clone();
            async move {
                let tail = gateway.log_tail(100).await;
                tail.lines()
                    .any(|l| l.contains("routes file not reloaded") && l.contains(&at))
            }
        })
        .await;
    }
}
