//! What reaches an upstream, seen from the upstream: echo upstreams
//! (`gantry_harness::drive::echo`) registered as the only instances of a service
//! report every request they receive and count every attempt, including
//! attempts on an instance that is broken while its check passes, and
//! attempts on one whose check fails while it keeps answering.

use std::time::Duration;

use cucumber::gherkin::Step;
use cucumber::{given, then, when};
use gantry_common::registry::TtlState;
use gantry_common::session;
use gantry_gateway::policy::Outlier;
use gantry_harness::GantryStack as _;
use gantry_harness::drive::client::{Answer, Auth};
use gantry_harness::drive::echo::{EchoInstance, Mode, Received, attempts_allowed};
use gantry_harness::drive::metrics::Scrape;
use tokio::time::Instant;

use super::faults::takes_traffic_within;
use super::{counters, eventually};
use crate::world::GantryWorld;

/// How long the gateway may take to follow a registry change: its watch is
/// a blocking query, answered as soon as the passing set changes, so this
/// is a generous ceiling, not an expected time.
const SNAPSHOT_FOLLOWS_WITHIN: Duration = Duration::from_secs(5);

pub(crate) fn echo<'w>(w: &'w GantryWorld, id: &str) -> &'w EchoInstance {
    w.echoes
        .instances
        .iter()
        .find(|i| i.id() == id)
        .unwrap_or_else(|| panic!("no echo upstream {id:?} in this scenario"))
}

/// The last request echo `id` received.
pub(crate) fn last_received(w: &mut GantryWorld, id: &str) -> Received {
    echo(w, id)
        .echo
        .received()
        .pop()
        .unwrap_or_else(|| panic!("echo upstream {id} received nothing"))
}

/// `"a", "b" and "c"` → `[a, b, c]`.
fn quoted(list: &str) -> Vec<String> {
    list.split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The instances of `service` in the gateway's current snapshot, from the
/// per-instance series its admin `/metrics` renders for exactly those.
pub(crate) async fn gateway_instances(admin: &str, service: &str) -> Result<Vec<String>, String> {
    let scrape = Scrape::of(admin).await?;
    let prefix = format!("gantry_gateway_upstream_requests_total{{service=\"{service}\",instance=\"");
    let mut ids: Vec<String> = scrape
        .0
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix)?.split_once('"').map(|(id, _)| id.to_owned()))
        .collect();
    ids.sort();
    Ok(ids)
}

/// Waits until every gateway's snapshot of `service` satisfies `ok`.
pub(crate) async fn until_every_gateway(
    w: &GantryWorld,
    service: &str,
    what: &str,
    ok: impl Fn(&[String]) -> bool + Clone,
) {
    until_every_gateway_within(w, service, what, SNAPSHOT_FOLLOWS_WITHIN, ok).await;
}

/// [`until_every_gateway`] with a deadline of `within` for each gateway.
pub(crate) async fn until_every_gateway_within(
    w: &GantryWorld,
    service: &str,
    what: &str,
    within: Duration,
    ok: impl Fn(&[String]) -> bool + Clone,
) {
    for admin in w.target().admins.clone() {
        let service = service.to_owned();
        let ok = ok.clone();
        eventually(&format!("{what} ({admin})"), within, move || {
            let (admin, service, ok) = (admin.clone(), service.clone(), ok.clone());
            async move { gateway_instances(&admin, &service).await.is_ok_and(|ids| ok(&ids)) }
        })
        .await;
    }
}

/// The address the gateway sees this machine's connections come from.
pub(crate) async fn client_address(gateway: &str) -> String {
    let authority = gateway.trim_start_matches("http://").trim_end_matches('/');
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connecting to the gateway");
    stream.local_addr().expect("a local address").ip().to_string()
}

#[given(regex = r#"^echo upstreams? (.+) (?:is|are) the only instances? of "(\w+)"$"#)]
async fn echoes_only(w: &mut GantryWorld, list: String, service: String) {
    assert_eq!(
        service, "user",
        "only the user service's own instances can be stopped here"
    );
    let ids = quoted(&list);
    for id in &ids {
        let started = EchoInstance::in_stack(w.stack(), &service, id)
            .await
            .unwrap_or_else(|e| panic!("echo upstream {id}: {e}"));
        w.echoes.instances.push(started);
    }
    // The real instances leave as in a deploy: SIGTERM, they deregister.
    for process in w.stack().users_mut() {
        process.stop().await.expect("stopping a real user instance");
    }
    let mut expected = ids.clone();
    expected.sort();
    until_every_gateway(
        w,
        &service,
        &format!("the gateway to route {service} to {expected:?} only"),
        move |now| now == expected.as_slice(),
    )
    .await;
}

// ---- what arrives ----------------------------------------------------------

#[when(regex = r#"^"(\w+)" calls (/\S+) by (session|bearer) with these headers:$"#)]
async fn calls_with_headers(w: &mut GantryWorld, step: &Step, name: String, path: String, how: String) {
    let table = step.table.as_ref().expect("a table of header names and values");
    let headers: Vec<(&str, &str)> = table
        .rows
        .iter()
        .map(|row| (row[0].as_str(), row[1].as_str()))
        .collect();
    let auth = if how == "session" { Auth::Session } else { Auth::Bearer };
    let answer = w.user(&name).get_with(&path, auth, &headers).await.expect("request");
    w.steps.last = Some(answer);
}

#[then(regex = r#"^the answer came from echo upstream "([\w-]+)" and is what it received$"#)]
async fn answer_from_echo(w: &mut GantryWorld, id: String) {
    let last = w.last().clone();
    assert_eq!(last.status, 200, "{}", last.body);
    assert_eq!(last.instance(), Some(id.as_str()), "answered by {:?}", last.instance());
    let answered = Received::from_json(&last.body).expect("an echo's answer");
    assert_eq!(
        answered,
        last_received(w, &id),
        "the answer is not the echo's last request"
    );
}

#[then(regex = r#"^echo upstream "([\w-]+)" received none of the headers (.+)$"#)]
async fn received_none_of(w: &mut GantryWorld, id: String, names: String) {
    let got = last_received(w, &id);
    let arrived: Vec<&str> = names
        .split(", ")
        .map(str::trim)
        .filter(|n| got.header(n).is_some())
        .collect();
    assert!(
        arrived.is_empty(),
        "{arrived:?} reached the upstream; it received {:?}",
        got.headers
    );
}

#[then(regex = r#"^echo upstream "([\w-]+)" received "([\w-]+): ([^"]*)"$"#)]
async fn received_header(w: &mut GantryWorld, id: String, name: String, value: String) {
    let got = last_received(w, &id);
    assert_eq!(got.header_values(&name), [value.as_str()], "{:?}", got.headers);
}

#[then(
    regex = r#"^echo upstream "([\w-]+)" received "Authorization: Bearer" with the JWT of "(\w+)"'s session in Redis$"#
)]
async fn received_session_jwt(w: &mut GantryWorld, id: String, name: String) {
    let cookie = w.user(&name).cookie.clone().expect("a session cookie");
    let sid = session::from_cookie_header(&cookie)
        .expect("a SESSION cookie")
        .to_owned();
    let redis = w.target().redis_url.clone().expect("this step needs Redis access");
    let client = redis::Client::open(redis.as_str()).expect("REDIS_URL parses");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to Redis");
    let jwt: String = redis::cmd("HGET")
        .arg(session::key(&sid))
        .arg(session::JWT_FIELD)
        .query_async(&mut conn)
        .await
        .expect("the session's JWT in Redis");
    let got = last_received(w, &id);
    assert_eq!(
        got.header_values("authorization"),
        [format!("Bearer {jwt}").as_str()],
        "the upstream did not get the session's token (it received {:?})",
        got.headers
    );
}

/// The client is not a trusted proxy (`[edge] trusted_proxies` is empty), so
/// the X-Forwarded-For it sent is replaced by the address it connected from.
#[then(
    regex = r#"^echo upstream "([\w-]+)" received X-Forwarded-For with only the client's address, not the "([^"]+)" it claimed$"#
)]
async fn received_forwarded_for(w: &mut GantryWorld, id: String, claimed: String) {
    let client = client_address(&w.gateway()).await;
    let got = last_received(w, &id);
    assert_eq!(
        got.header_values("x-forwarded-for"),
        [client.as_str()],
        "the claimed {claimed} must not reach the upstream: {:?}",
        got.headers
    );
}

#[then(regex = r#"^echo upstream "([\w-]+)" received the X-Request-Id the gateway answered with$"#)]
async fn received_request_id(w: &mut GantryWorld, id: String) {
    let answered = w
        .last()
        .header("x-request-id")
        .expect("the gateway answers with X-Request-Id")
        .to_owned();
    assert!(!answered.is_empty());
    let got = last_received(w, &id);
    assert_eq!(
        got.header_values("x-request-id"),
        [answered.as_str()],
        "{:?}",
        got.headers
    );
}

#[when(regex = r#"^"(\w+)" sends these requests by bearer:$"#)]
async fn sends_requests(w: &mut GantryWorld, step: &Step, name: String) {
    let table = step.table.as_ref().expect("a table: method, path, body");
    let token = w.user(&name).token.clone().expect("a token");
    let gateway = w.gateway();
    let http = w.target().http_builder().build().expect("an HTTP client");
    let mut sent = Vec::new();
    w.steps.answers.clear();
    for row in table.rows.iter().skip(1) {
        let (method, path, body) = (row[0].clone(), row[1].clone(), row[2].clone());
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut req = http.request(m, format!("{gateway}{path}")).bearer_auth(&token);
        if !body.is_empty() {
            req = req.header("content-type", "application/json").body(body.clone());
        }
        w.steps.answers.push(Answer::send(req).await.expect("request"));
        sent.push((method, path, body));
    }
    w.echoes.sent = sent;
}

#[then(regex = r#"^each reached echo upstream "([\w-]+)" with its method, path, query and body unchanged$"#)]
async fn reached_unchanged(w: &mut GantryWorld, id: String) {
    let sent = &w.echoes.sent;
    let log = echo(w, &id).echo.received();
    assert!(log.len() >= sent.len(), "{id} received {} requests", log.len());
    let arrived = &log[log.len() - sent.len()..];
    for ((method, path, body), got) in sent.iter().zip(arrived) {
        let (p, q) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (path.as_str(), None),
        };
        let what = format!("{method} {path}");
        assert_eq!(got.method, *method, "{what}");
        assert_eq!(got.path, p, "{what}");
        assert_eq!(got.query, q, "{what}");
        assert_eq!(got.body, *body, "{what}");
        assert_eq!(got.body_len, body.len(), "{what}");
        if !body.is_empty() {
            assert_eq!(got.header("content-type"), Some("application/json"), "{what}");
        }
    }
    for (a, got) in w.steps.answers.iter().zip(arrived) {
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(Received::from_json(&a.body).ok().as_ref(), Some(got));
    }
}

// ---- ejection and health ---------------------------------------------------

#[when(regex = r#"^"(\w+)" sends (\d+) requests to (/\S+) one at a time$"#)]
async fn one_at_a_time(w: &mut GantryWorld, name: String, n: usize, path: String) {
    w.echoes.before = w
        .echoes
        .instances
        .iter()
        .map(|i| (i.id().to_owned(), (i.echo.requests(), i.echo.closed_unanswered())))
        .collect();
    let user = w.user(&name).clone();
    w.steps.answers.clear();
    for _ in 0..n {
        w.steps
            .answers
            .push(user.get(&path, Auth::Bearer).await.expect("request"));
    }
}

#[when(regex = r#"^echo upstream "([\w-]+)" starts closing every connection while its check keeps passing$"#)]
async fn starts_closing(w: &mut GantryWorld, id: String) {
    let before = counters(&w.admin()).await;
    echo(w, &id).echo.set_mode(Mode::CloseConnections);
    w.echoes.broken = Some((id, Instant::now(), before));
}

#[then(
    regex = r#"^echo upstream "([\w-]+)" was tried at least once, and no more often than the gateway's ejection backoff allows$"#
)]
async fn tried_within_backoff(w: &mut GantryWorld, id: String) {
    let (broken, since, _) = w.echoes.broken.clone().expect("an echo that was broken");
    assert_eq!(broken, id);
    let elapsed = since.elapsed();
    let attempts = echo(w, &id).echo.closed_unanswered();
    // The gateway ejects an instance at its first refused or reset attempt
    // (consecutive_local_origin_failure 1) for base_ejection_time (1 s) × its
    // ejections in a row, at most 30 s: until it succeeds it is tried again
    // only when its ejection has run out, i.e. 1, 3, 6, 10 … s after the first
    // failure. Requests were
    // sent one at a time and each tries an instance at most once, so within
    // `elapsed` at most `attempts_allowed` attempts reach it: 1 for a hundred
    // quick requests (well under a second), 2 or 3 on a slow machine. A
    // gateway that never ejects tries it first on nearly every request (99
    // of 100 when consecutive_local_origin_failure was set to 0).
    let bound = attempts_allowed(elapsed, |n| Outlier::DEFAULT.ejection_time(n));
    println!(
        "    {id} was tried {attempts} times in {} ms (the backoff allows {bound})",
        elapsed.as_millis()
    );
    assert!(attempts >= 1, "the gateway never tried {id}: the check proves nothing");
    assert!(
        attempts <= bound,
        "{id} was tried {attempts} times in {elapsed:?}: it was not ejected (the backoff allows {bound})"
    );
}

#[then(regex = r#"^the gateway's /metrics counted the ejection of an instance of "user"$"#)]
async fn ejection_counted(w: &mut GantryWorld) {
    let (_, _, (_, ejections_before)) = w.echoes.broken.clone().expect("an echo that was broken");
    let (_, ejections) = counters(&w.admin()).await;
    assert!(
        ejections > ejections_before,
        "gantry_gateway_upstream_ejections_total{{service=\"user\"}} stayed at {ejections}"
    );
}

#[when(regex = r#"^the registry check of echo upstream "([\w-]+)" (fails|passes again)$"#)]
async fn set_check(w: &mut GantryWorld, id: String, how: String) {
    let state = if how == "fails" { TtlState::Fail } else { TtlState::Pass };
    echo(w, &id)
        .registration
        .set_check(state)
        .await
        .expect("the registry takes the check update");
}

#[then(regex = r#"^the gateway drops "([\w-]+)" from its instances of "(\w+)"$"#)]
async fn gateway_drops(w: &mut GantryWorld, id: String, service: String) {
    let what = format!("the gateway to drop {id} from {service}");
    until_every_gateway(w, &service, &what, move |now| !now.contains(&id)).await;
}

#[then(regex = r#"^echo upstream "([\w-]+)" received (none|all) of them$"#)]
async fn received_share(w: &mut GantryWorld, id: String, share: String) {
    let (before, _) = w.echoes.before.get(&id).copied().expect("requests counted before");
    let got = echo(w, &id).echo.requests() - before;
    let sent = w.steps.answers.len();
    assert!(sent > 0, "no requests were sent");
    let expected = if share == "none" { 0 } else { sent };
    assert_eq!(got, expected, "{id} received {got} of the {sent} requests");
}

#[then(regex = r#"^echo upstream "([\w-]+)" still answers when called directly$"#)]
async fn answers_directly(w: &mut GantryWorld, id: String) {
    let addr = echo(w, &id).echo.addr();
    let r = reqwest::get(format!("http://{addr}/direct"))
        .await
        .expect("a direct call");
    assert_eq!(r.status(), 200);
}

#[then(regex = r#"^echo upstream "([\w-]+)" takes traffic again$"#)]
async fn echo_takes_traffic(w: &mut GantryWorld, id: String) {
    let before = echo(w, &id).echo.requests();
    takes_traffic_within(w, &id, SNAPSHOT_FOLLOWS_WITHIN).await;
    assert!(
        echo(w, &id).echo.requests() > before,
        "{id} answered but logged nothing"
    );
}
