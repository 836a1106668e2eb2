//! Sick rather than dead: a fresh stack with the fault proxy's links in
//! every hop (`features/sick.feature`), and the bounds the gateway's outlier
//! detection promises, derived from the settings the stack was given.

use std::time::Duration;

use cucumber::{given, then, when};
use gantry_common::config::parse_duration;
use gantry_common::registry::DEFAULT_CALL_TIMEOUT;
use gantry_common::watch::{DEFAULT_WATCH_WAIT, MAX_RETRY_BACKOFF};
use gantry_gateway::policy::{MIN_RETRY_CONCURRENCY, Outlier};
use gantry_harness::drive::client::Auth;
use gantry_harness::drive::echo::{Received, attempts_allowed};
use gantry_harness::drive::metrics::Scrape;

use super::stack;
use super::upstream::{gateway_instances, until_every_gateway_within};
use crate::target;
use crate::world::GantryWorld;

#[given(
    regex = r"^a fresh stack with fault links(?: and (\d+) user instances?)?(?: and (\d+) gateways)?(?: where (GANTRY_\w+ is \S+(?: and GANTRY_\w+ is \S+)*))?$"
)]
async fn fresh_with_links(w: &mut GantryWorld, users: String, gateways: String, settings: String) {
    let mut builder = target::builder().users(users.parse().unwrap_or(1)).fault_links(true);
    if let Ok(n) = gateways.parse() {
        builder = builder.gateways(n);
    }
    for setting in settings.split(" and ").filter(|s| !s.is_empty()) {
        let (var, value) = setting.split_once(" is ").expect("`GANTRY_X is value`");
        builder = builder.env(var, value);
        w.settings.push((var.to_owned(), value.to_owned()));
    }
    stack::start_fresh(w, builder).await;
}

/// The outlier detection the fresh stack's gateways run: the defaults with
/// the scenario's `GANTRY_*` settings on top.
fn outlier(w: &GantryWorld) -> Outlier {
    let mut o = Outlier::DEFAULT;
    for (var, value) in &w.settings {
        let number = || value.parse::<u32>().expect("a number");
        let duration = || parse_duration(value).expect("a duration");
        match var.as_str() {
            "GANTRY_CONSECUTIVE_5XX" => o.consecutive_5xx = number(),
            "GANTRY_CONSECUTIVE_LOCAL_ORIGIN_FAILURE" => o.consecutive_local_origin_failure = number(),
            "GANTRY_BASE_EJECTION_TIME" => o.base_ejection_time = duration(),
            "GANTRY_MAX_EJECTION_TIME" => o.max_ejection_time = duration(),
            _ => {}
        }
    }
    o
}

/// An instance that answers 5xx to everything is ejected after
/// `consecutive_5xx` of them, for `base_ejection_time` × its ejections in a
/// row; so from the fault on, each ejection cycle sends it at most
/// `consecutive_5xx` requests, plus those already on their way when the
/// last one came back (one per other caller). A gateway without outlier
/// detection sends it its full share (a third, with three instances).
#[then(regex = r#"^instance (\d+) of "([\w-]+)" was sent no more requests than its ejections allow$"#)]
async fn within_ejections(w: &mut GantryWorld, n: usize, service: String) {
    let o = outlier(w);
    assert!(o.consecutive_5xx > 0, "the scenario switched consecutive_5xx off");
    let link = w.stack().link(&service, n).unwrap_or_else(|e| panic!("{e}"));
    let seen = link.requests().await.unwrap_or_else(|e| panic!("{e}"));
    let since = link
        .faulted_for()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("the instance has a fault");
    let callers = w.steps.load().concurrency;
    let cycles = attempts_allowed(since, |k| o.ejection_time(k));
    let per_cycle = o.consecutive_5xx as usize + callers.saturating_sub(1);
    let bound = cycles * per_cycle;
    println!(
        "    {} was sent {seen} requests in the {:.1} s since its fault: at most {cycles} ejection cycles of {per_cycle} allowed ({bound})",
        link.name(),
        since.as_secs_f64()
    );
    assert!(
        seen >= o.consecutive_5xx as usize,
        "{} was hardly tried ({seen}): the check proves nothing",
        link.name()
    );
    assert!(
        seen <= bound,
        "{} was sent {seen} requests in {since:?}: more than outlier detection allows ({bound})",
        link.name()
    );
}

/// While cut off from the registry a gateway serves from its last snapshot:
/// it keeps routing to an instance the registry has dropped meanwhile, for
/// as long as the step looks (polling all the while). Time passing is the
/// subject here: it is what lets the registry's answers go unheard.
#[then(regex = r#"^for (\d+) seconds the gateway keeps "([\w-]+)" among its instances of "(\w+)"$"#)]
async fn keeps_for(w: &mut GantryWorld, secs: u64, id: String, service: String) {
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    let admins = w.target().admins.clone();
    while tokio::time::Instant::now() < until {
        for admin in &admins {
            let ids = gateway_instances(admin, &service)
                .await
                .unwrap_or_else(|e| panic!("{admin}: {e}"));
            assert!(
                ids.contains(&id),
                "the gateway at {admin} dropped {id} while cut off: {ids:?}"
            );
        }
        tokio::time::sleep(gantry_harness::run::wait::POLL).await;
    }
}

/// A change the registry made while a gateway's hop to it was blackholed
/// reaches the gateway once the hop heals: the blocking query stuck on the
/// silent connection gives up after its own timeout (the call timeout plus
/// the watch's wait and Consul's jitter of wait/16), the watch backs off at
/// most [`MAX_RETRY_BACKOFF`] and asks again. That is the bound, from the
/// scenario's `GANTRY_WATCH_WAIT`.
#[then(regex = r#"^once its registry watch gives up, the gateway drops "([\w-]+)" from its instances of "(\w+)"$"#)]
async fn drops_after_watch(w: &mut GantryWorld, id: String, service: String) {
    let wait = w
        .settings
        .iter()
        .find(|(k, _)| k == "GANTRY_WATCH_WAIT")
        .map_or(DEFAULT_WATCH_WAIT, |(_, v)| parse_duration(v).expect("a duration"));
    let bound = DEFAULT_CALL_TIMEOUT + wait + wait / 16 + MAX_RETRY_BACKOFF + Duration::from_secs(1);
    let what = format!("the gateway to drop {id} from {service} (within {bound:?})");
    until_every_gateway_within(w, &service, &what, bound, move |now| !now.contains(&id)).await;
}

/// The retry budget's promise, read off the gateway's gauge of the most
/// retries it ever had in flight at once: at most `GANTRY_RETRY_BUDGET`
/// percent (20) of the service's requests in flight — at most the load's
/// callers — or 10, whichever is more. Without a budget, with every instance
/// failing, nearly every caller is retrying at once.
#[then(regex = r#"^the gateway never had more retries to "([\w-]+)" in flight than its budget allows$"#)]
async fn retries_within_budget(w: &mut GantryWorld, service: String) {
    let budget: usize = w
        .settings
        .iter()
        .find(|(k, _)| k == "GANTRY_RETRY_BUDGET")
        .map_or(20, |(_, v)| v.parse().expect("a percent"));
    let callers = w.steps.load().concurrency;
    let allowed = (callers * budget / 100).max(MIN_RETRY_CONCURRENCY);
    let scrape = Scrape::of(&w.admin()).await.expect("the gateway's /metrics");
    let label = format!("service=\"{service}\"");
    let peak = scrape.value(&format!("gantry_gateway_upstream_retries_in_flight_max{{{label}}}")) as usize;
    let retries = scrape.value(&format!("gantry_gateway_upstream_retries_total{{{label}}}"));
    let refused = scrape.value(&format!("gantry_gateway_upstream_retry_overflow_total{{{label}}}"));
    println!(
        "    at most {peak} retries in flight at once ({allowed} allowed with {callers} callers); {retries} retries made, {refused} refused by the budget"
    );
    assert!(retries > 0.0, "nothing was retried: the check proves nothing");
    assert!(
        peak <= allowed,
        "{peak} retries were in flight at once: the budget allows {allowed}"
    );
}

/// A logout through one gateway in particular (the others learn of it
/// only through the revocation feed).
#[when(regex = r#"^"(\w+)" logs out by (session|bearer) through gateway (\d+)$"#)]
async fn logs_out_through(w: &mut GantryWorld, name: String, by: String, n: usize) {
    let gateway = w.target().gateways[n - 1].clone();
    let auth = if by == "session" { Auth::Session } else { Auth::Bearer };
    stack::log_out_via(w, &name, auth, Some(&gateway)).await;
}

/// A large request body through the gateway: the echo upstream sends it
/// back, so the answer is as large.
#[when(regex = r#"^"(\w+)" posts (\d+) bytes to (/\S+)$"#)]
async fn posts_bytes(w: &mut GantryWorld, name: String, n: usize, path: String) {
    let token = w.user(&name).token.clone().expect("a logged-in user");
    let url = format!("{}{path}", w.gateway());
    let answer = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .body(vec![b'g'; n])
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = answer.status().as_u16();
    let body = answer
        .text()
        .await
        .unwrap_or_else(|e| panic!("reading the answer of POST {url}: {e}"));
    w.large = Some((status, body));
}

/// What the echo upstream received and sent back arrived whole.
#[then(regex = r#"^the answer carried all (\d+) bytes back$"#)]
async fn carried_back(w: &mut GantryWorld, n: usize) {
    let (status, body) = w.large.take().expect("a large POST first");
    assert_eq!(status, 200, "{}", &body[..body.len().min(300)]);
    let got = Received::from_json(&body).unwrap_or_else(|e| panic!("not the echo's JSON ({e}): {} bytes", body.len()));
    assert_eq!(got.body_len, n, "the echo received {} bytes", got.body_len);
    assert!(
        got.body.len() == n && got.body.bytes().all(|b| b == b'g'),
        "the body came back changed"
    );
}

/// The echo upstreams of the scenario received `n` requests with `method`
/// between them: a request the gateway must not repeat reached one of them
/// once.
#[then(regex = r#"^the echo upstreams received (\d+) (GET|POST|PUT|DELETE) requests? between them$"#)]
async fn echoes_received(w: &mut GantryWorld, n: usize, method: String) {
    let got: usize = w
        .echoes
        .instances
        .iter()
        .map(|e| e.echo.received().iter().filter(|r| r.method == method).count())
        .sum();
    assert_eq!(got, n, "the echo upstreams received {got} {method} requests, not {n}");
}
