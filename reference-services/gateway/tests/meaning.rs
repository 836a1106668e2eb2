//! One request, one meaning: what the gateway routes on and what the
//! service then reads are the same request. Each test is one way a careful
//! attacker tried to make them differ (issue "Edge, part 2"), sent as raw
//! bytes so no client library tidies it first, against a gateway on port 0
//! over a routes file with an open, a locked, a prefix-stripping and a
//! host-bound route, each to an echo upstream that reports what reached it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gantry_common::jwt::{JwtConfig, KeyKind, Signer, now_secs};
use gantry_harness::drive::echo::{EchoInstance, Received};
use gantry_harness::drive::raw::read_response;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

mod support;
use support::SLACK;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-meaning-tests";

const ROUTES: &str = r#"
jwks_service = "locked"

[[services]]
name = "open"
[[services]]
name = "locked"
[[services]]
name = "api"
[[services]]
name = "hosted"

[[routes]]
prefix = "/open"
service = "open"
identity = "none"

[[routes]]
prefix = "/locked"
service = "locked"
identity = "required"
identity_headers = true

[[routes]]
prefix = "/api"
service = "api"
strip_prefix = true

[[routes]]
prefix = "/hosted"
host = "public.example"
service = "hosted"

[[routes]]
prefix = "/maybe"
service = "locked"
identity = "optional"
"#;

struct Fixture {
    gateway: SocketAddr,
    open: EchoInstance,
    locked: EchoInstance,
    api: EchoInstance,
    hosted: EchoInstance,
    _dir: tempfile::TempDir,
    _served: support::Gateway,
    _registry: support::Registry,
}

impl Fixture {
    /// A gateway over `routes` ([`ROUTES`] plus `extra`), once it has found
    /// every echo.
    async fn start(extra: &str) -> Self {
        let registry = support::registry().await;
        let ttl = Duration::from_secs(30);
        let echo = |name: &'static str| {
            let client = registry.client.clone();
            async move {
                EchoInstance::start(client, name, &format!("{name}-1"), ttl)
                    .await
                    .unwrap()
            }
        };
        let (open, locked, api, hosted) = (
            echo("open").await,
            echo("locked").await,
            echo("api").await,
            echo("hosted").await,
        );
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = support::config(dir.path(), &format!("{ROUTES}\n{extra}"), &registry.client);
        cfg.jwt = JwtConfig {
            kind: KeyKind::Hs256,
            secret: Some(Arc::from(SECRET)),
            ..cfg.jwt
        };
        let served = support::serve(cfg, None).await;
        for name in ["open", "locked", "api", "hosted"] {
            support::until_instances(&served.admin, name, &[&format!("{name}-1")]).await;
        }
        Self {
            gateway: served.addr,
            open,
            locked,
            api,
            hosted,
            _dir: dir,
            _served: served,
            _registry: registry,
        }
    }

    /// Sends `head` (request line and headers, without the blank line) on
    /// a new connection: the status and the whole response.
    async fn send(&self, head: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.gateway).await.unwrap();
        s.write_all(format!("{head}\r\n\r\n").as_bytes()).await.unwrap();
        timeout(SLACK, read_response(&mut s)).await.expect("an answer in time")
    }

    /// No echo received anything: the request stopped at the gateway.
    fn nothing_arrived(&self) {
        for e in [&self.open, &self.locked, &self.api, &self.hosted] {
            assert_eq!(e.echo.requests(), 0, "{} received {:?}", e.id(), e.echo.received());
        }
    }
}

/// A token for user `u_7`, named `eve`.
fn token() -> String {
    let cfg = JwtConfig::from_env().expect("the default JWT config");
    let now = now_secs();
    Signer::hs256(SECRET).sign(&serde_json::json!({
        "sub": "u_7", "iss": cfg.issuer, "aud": cfg.audience, "username": "eve",
        "iat": now, "exp": now + 600, "jti": "meaning-test",
    }))
}

/// What the echo behind the gateway received, from its answer.
fn received(status: u16, response: &str) -> Received {
    assert_eq!(status, 200, "{response}");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Received::from_json(body).unwrap_or_else(|e| panic!("not an echo answer ({e}): {response}"))
}

/// A 400 with the JSON error `code`.
fn refused(status: u16, response: &str, code: &str) {
    assert_eq!(status, 400, "{response}");
    assert!(response.contains(&format!("\"error\":\"{code}\"")), "{response}");
}

/// A 401 from the locked route's identity check.
fn unauthorized(status: u16, response: &str) {
    assert_eq!(status, 401, "{response}");
    assert!(
        response.to_ascii_lowercase().contains("www-authenticate: bearer"),
        "{response}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_cannot_walk_from_an_open_route_into_a_locked_one() {
    let f = Fixture::start("").await;
    let (status, text) = f.send("GET /open/../locked/x HTTP/1.1\r\nHost: gw.test").await;
    unauthorized(status, &text);
    f.nothing_arrived();
    // With a token it reaches the locked service, as /locked/x.
    let (status, text) = f
        .send(&format!(
            "GET /open/../locked/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {}",
            token()
        ))
        .await;
    assert_eq!(received(status, &text).path, "/locked/x");
    assert_eq!(f.open.echo.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_dot_segments_are_decoded_before_routing() {
    let f = Fixture::start("").await;
    for path in ["/open/%2e%2e/locked/x", "/open/%2E%2E/locked/x", "/open/.%2e/locked/x"] {
        let (status, text) = f.send(&format!("GET {path} HTTP/1.1\r\nHost: gw.test")).await;
        unauthorized(status, &text);
    }
    f.nothing_arrived();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_slashes_are_merged_before_routing() {
    let f = Fixture::start("").await;
    let (status, text) = f.send("GET //locked/x HTTP/1.1\r\nHost: gw.test").await;
    unauthorized(status, &text);
    let (status, text) = f.send("GET /open//x///y HTTP/1.1\r\nHost: gw.test").await;
    assert_eq!(received(status, &text).path, "/open/x/y");
    assert_eq!(f.locked.echo.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreserved_escapes_are_decoded_before_routing() {
    let f = Fixture::start("").await;
    let (status, text) = f.send("GET /%6cocked/x HTTP/1.1\r\nHost: gw.test").await;
    unauthorized(status, &text);
    f.nothing_arrived();
    // What stays escaped reaches the service escaped, in capitals.
    let (status, text) = f.send("GET /open/a%3ab%7e HTTP/1.1\r\nHost: gw.test").await;
    assert_eq!(received(status, &text).path, "/open/a%3Ab~");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_is_normalised_before_its_prefix_is_stripped() {
    let f = Fixture::start("").await;
    let (status, text) = f.send("GET /api/x/../admin/y?q=/../z HTTP/1.1\r\nHost: gw.test").await;
    let got = received(status, &text);
    assert_eq!((got.path.as_str(), got.query.as_deref()), ("/admin/y", Some("q=/../z")));
    // Walking out of the prefix leaves the route altogether.
    let (status, text) = f.send("GET /api/../open/x HTTP/1.1\r\nHost: gw.test").await;
    assert_eq!(received(status, &text).instance, "open-1");
    assert_eq!(f.api.echo.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_slashes_are_refused_by_default() {
    let f = Fixture::start("").await;
    for path in [
        "/open%2F..%2Flocked/x",
        "/open/..%2flocked",
        "/open/%5C../locked",
        "/open/a%zz",
    ] {
        let (status, text) = f.send(&format!("GET {path} HTTP/1.1\r\nHost: gw.test")).await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("\"error\":\""), "a JSON reason: {text}");
    }
    f.nothing_arrived();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_slashes_can_be_unescaped_and_then_routed() {
    let f = Fixture::start("[edge]\nescaped_slashes = \"unescape\"\n").await;
    let (status, text) = f.send("GET /open%2F..%2Flocked/x HTTP/1.1\r\nHost: gw.test").await;
    unauthorized(status, &text);
    let (status, text) = f.send("GET /open%2Fx HTTP/1.1\r\nHost: gw.test").await;
    assert_eq!(received(status, &text).path, "/open/x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_sets_the_host_the_service_reads() {
    let f = Fixture::start("").await;
    let (status, text) = f
        .send("GET http://public.example/hosted/x HTTP/1.1\r\nHost: evil.example")
        .await;
    let got = received(status, &text);
    assert_eq!(got.instance, "hosted-1");
    assert_eq!(got.header_values("host"), ["public.example"]);
    assert_eq!(got.header_values("x-forwarded-host"), ["public.example"]);
    // The other way round: Host names the bound host, the target another.
    let (status, text) = f
        .send("GET http://evil.example/hosted/x HTTP/1.1\r\nHost: public.example")
        .await;
    assert_eq!(status, 404, "{text}");
    assert_eq!(f.hosted.echo.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_host_headers_are_refused() {
    let f = Fixture::start("").await;
    let (status, text) = f
        .send("GET /hosted/x HTTP/1.1\r\nHost: public.example\r\nHost: evil.example")
        .await;
    refused(status, &text, "bad_host");
    let (status, text) = f.send("GET /open/x HTTP/1.1").await;
    refused(status, &text, "bad_host");
    f.nothing_arrived();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_is_not_an_authority_is_refused() {
    let f = Fixture::start("").await;
    for host in [
        "public.example:80@evil.example",
        "public.example/x",
        "public.example:8o",
    ] {
        let (status, text) = f.send(&format!("GET /hosted/x HTTP/1.1\r\nHost: {host}")).await;
        refused(status, &text, "bad_host");
    }
    let (status, text) = f
        .send("GET http://u@public.example/hosted/x HTTP/1.1\r\nHost: public.example")
        .await;
    refused(status, &text, "bad_host");
    f.nothing_arrived();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_names_with_underscores_never_arrive() {
    let f = Fixture::start("").await;
    let (status, text) = f
        .send("GET /open/x HTTP/1.1\r\nHost: gw.test\r\nX_User_Id: admin\r\nX_Probe: 1\r\nX-Probe: 2")
        .await;
    let got = received(status, &text);
    assert_eq!(got.header("x_user_id"), None);
    assert_eq!(got.header("x_probe"), None);
    assert_eq!(got.header_values("x-probe"), ["2"]);
    // Verified or not, the identity a route sets cannot be claimed in another spelling.
    let (status, text) = f
        .send(&format!(
            "GET /locked/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {}\r\nX_User_Id: admin",
            token()
        ))
        .await;
    let got = received(status, &text);
    assert_eq!(got.header("x_user_id"), None);
    assert_eq!(got.header_values("x-user-id"), ["u_7"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_names_with_underscores_can_be_refused_and_identity_stays_unclaimable_when_allowed() {
    let f = Fixture::start("[edge]\nheaders_with_underscores = \"reject\"\n").await;
    let (status, text) = f.send("GET /open/x HTTP/1.1\r\nHost: gw.test\r\nX_Probe: 1").await;
    refused(status, &text, "underscore_header");
    f.nothing_arrived();
    let f = Fixture::start("[edge]\nheaders_with_underscores = \"allow\"\n").await;
    let (status, text) = f
        .send("GET /open/x HTTP/1.1\r\nHost: gw.test\r\nX_Probe: 1\r\nX_User_Id: admin\r\nRemote_User: admin")
        .await;
    let got = received(status, &text);
    assert_eq!(got.header_values("x_probe"), ["1"]);
    assert_eq!(got.header("x_user_id"), None);
    assert_eq!(got.header("remote_user"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_authorization_is_refused() {
    let f = Fixture::start("").await;
    let (status, text) = f
        .send(&format!(
            "GET /locked/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {}\r\nAuthorization: Bearer forged",
            token()
        ))
        .await;
    refused(status, &text, "ambiguous_credentials");
    f.nothing_arrived();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_route_gets_no_credential_and_a_locked_one_only_the_verified_one() {
    let f = Fixture::start("").await;
    let bearer = token();
    let (status, text) = f
        .send(&format!(
            "GET /open/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {bearer}\r\nCookie: theme=dark; SESSION=abc"
        ))
        .await;
    let got = received(status, &text);
    assert_eq!(got.header("authorization"), None);
    assert_eq!(got.header_values("cookie"), ["theme=dark"]);
    let (status, text) = f
        .send(&format!(
            "GET /locked/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {bearer}\r\nCookie: SESSION=abc"
        ))
        .await;
    let got = received(status, &text);
    assert_eq!(
        got.header_values("authorization"),
        [format!("Bearer {bearer}").as_str()]
    );
    assert_eq!(got.header("cookie"), None);
    // An optional route with a credential it cannot verify as a bearer
    // (Basic): no identity, and the unverified header stays behind.
    let (status, text) = f
        .send("GET /maybe/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Basic YWRtaW46YWRtaW4=")
        .await;
    assert_eq!(received(status, &text).header("authorization"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_can_pass_credentials_on_as_sent() {
    let extra =
        "[[services]]\nname = \"idp\"\n[[routes]]\nprefix = \"/idp\"\nservice = \"open\"\npass_credentials = true\n";
    let f = Fixture::start(extra).await;
    let (status, text) = f
        .send("GET /idp/logout HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer t\r\nCookie: SESSION=abc")
        .await;
    let got = received(status, &text);
    assert_eq!(got.header_values("authorization"), ["Bearer t"]);
    assert_eq!(got.header_values("cookie"), ["SESSION=abc"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_separated_by_a_tab_is_recognised() {
    let f = Fixture::start("").await;
    let (status, text) = f
        .send(&format!(
            "GET /locked/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: bearer\t{}",
            token()
        ))
        .await;
    assert_eq!(received(status, &text).header_values("x-user-id"), ["u_7"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_the_gateways_not_the_clients() {
    let f = Fixture::start("").await;
    let (status, text) = f
        .send(
            "GET /open/x HTTP/1.1\r\nHost: gw.test\r\nX-Forwarded-For: 203.0.113.7\r\nX-Real-IP: 203.0.113.7\r\n\
             Forwarded: for=203.0.113.7\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Port: 443\r\n\
             X-Forwarded-Proto: https",
        )
        .await;
    let got = received(status, &text);
    assert_eq!(got.header_values("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(got.header_values("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(got.header("forwarded"), None);
    assert_eq!(got.header_values("x-forwarded-host"), ["gw.test"]);
    assert_eq!(
        got.header_values("x-forwarded-port"),
        [f.gateway.port().to_string().as_str()]
    );
    assert_eq!(got.header_values("x-forwarded-proto"), ["http"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_says_who_the_client_was() {
    let f = Fixture::start("[edge]\ntrusted_proxies = [\"127.0.0.0/8\"]\n").await;
    let (status, text) = f
        .send(
            "GET /open/x HTTP/1.1\r\nHost: gw.test\r\nX-Forwarded-For: 203.0.113.7\r\nX-Real-IP: 203.0.113.7\r\n\
             X-Forwarded-Proto: https",
        )
        .await;
    let got = received(status, &text);
    assert_eq!(got.header_values("x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(got.header_values("x-real-ip"), ["203.0.113.7"]);
    assert_eq!(got.header_values("x-forwarded-proto"), ["https"]);
}
