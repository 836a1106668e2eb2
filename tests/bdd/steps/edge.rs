//! The gateway's edge: slow and stalled clients, the connection cap, and
//! what the public port tells strangers. Raw TCP where an HTTP client would
//! hide what is being checked (half-sent heads, a connection kept alive).

use std::time::Duration;

use cucumber::{given, then, when};
use gantry_harness::GantryStack as _;
use gantry_harness::drive::metrics::Scrape;
use gantry_harness::drive::raw::{read_response, read_to_close};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::eventually;
use crate::target;
use crate::world::GantryWorld;

/// How long one raw-TCP answer may take before the step fails.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// `host:port` of a `http://host:port` URL.
fn authority(url: &str) -> &str {
    url.trim_start_matches("http://").trim_end_matches('/')
}

/// A connection that sent half a request head and nothing since.
async fn half_a_head(gateway: &str) -> TcpStream {
    let mut s = TcpStream::connect(authority(gateway)).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    s
}

async fn open_connections(admin: &str) -> f64 {
    Scrape::of(admin)
        .await
        .expect("the gateway's metrics")
        .value("gantry_gateway_connections_open")
}

#[when(regex = r"^(\d+) clients each send half a request header and then nothing$")]
async fn half_headers(w: &mut GantryWorld, n: usize) {
    let gateway = w.gateway();
    w.stalled_since = Some(tokio::time::Instant::now());
    for _ in 0..n {
        w.stalled.push(half_a_head(&gateway).await);
    }
}

/// `http://host:port` of every auth and user instance of this scenario's stack.
fn instance_urls(w: &mut GantryWorld) -> Vec<String> {
    let stack = w.stack();
    let mut addrs = stack.auth_addrs();
    addrs.extend(stack.user_addrs());
    addrs.into_iter().map(|a| format!("http://{a}")).collect()
}

#[when(regex = r"^(\d+) clients each send half a request header to every auth and user instance and then nothing$")]
async fn half_headers_to_instances(w: &mut GantryWorld, n: usize) {
    let urls = instance_urls(w);
    w.stalled_since = Some(tokio::time::Instant::now());
    for url in &urls {
        for _ in 0..n {
            w.stalled.push(half_a_head(url).await);
        }
    }
}

#[then("every auth and user instance answers /healthz")]
async fn instances_answer(w: &mut GantryWorld) {
    for url in instance_urls(w) {
        let r = reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap_or_else(|e| panic!("{url}/healthz: {e}"));
        assert_eq!(r.status(), 200, "{url}/healthz");
    }
}

#[then(regex = r"^the (?:gateway closes|instances close) all of those connections within (\d+) seconds$")]
async fn closes_stalled(w: &mut GantryWorld, secs: u64) {
    let since = w.stalled_since.expect("stalled connections first");
    let deadline = since + Duration::from_secs(secs);
    let closing = std::mem::take(&mut w.stalled).into_iter().map(|mut s| {
        tokio::spawn(async move {
            let said = tokio::time::timeout_at(deadline, read_to_close(&mut s)).await;
            said.map_err(|_| ())
        })
    });
    let mut held = 0;
    let count = closing.len();
    for task in closing {
        match task.await.expect("the reading task") {
            Ok(said) => assert!(said.is_empty() || said.starts_with("HTTP/1.1 408"), "{said:?}"),
            Err(()) => held += 1,
        }
    }
    println!(
        "    {} of {count} stalled connections closed after {:?}",
        count - held,
        since.elapsed()
    );
    assert_eq!(
        held, 0,
        "{held} of {count} stalled connections were still open after {secs} s"
    );
}

#[then("/metrics is not served on the public port")]
async fn no_public_metrics(w: &mut GantryWorld) {
    let r = reqwest::get(format!("{}/metrics", w.gateway()))
        .await
        .expect("GET /metrics");
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("gantry_gateway_"), "{body}");
}

#[then("the public /readyz says whether the gateway is ready and nothing more")]
async fn public_readyz(w: &mut GantryWorld) {
    let r = reqwest::get(format!("{}/readyz", w.gateway()))
        .await
        .expect("GET /readyz");
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.expect("a JSON body");
    let expected = if status == 200 { "ready" } else { "not_ready" };
    assert_eq!(body, serde_json::json!({ "status": expected }), "status {status}");
}

#[then("the admin listener serves the gateway's metrics")]
async fn admin_metrics(w: &mut GantryWorld) {
    let scrape = Scrape::of(&w.admin()).await.expect("the admin /metrics");
    scrape.value("gantry_gateway_requests_total{route=\"none\",status=\"2xx\"}");
    scrape.value("gantry_gateway_connections_open");
}

#[then("the admin listener's /readyz lists the instances and any problems")]
async fn admin_readyz(w: &mut GantryWorld) {
    let r = reqwest::get(format!("{}/readyz", w.admin()))
        .await
        .expect("GET /readyz");
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.expect("a JSON body");
    assert!(body["instances"]["user"].as_u64().is_some_and(|n| n >= 1), "{body}");
    assert!(body["problems"].as_array().is_some_and(Vec::is_empty), "{body}");
}

#[then("the answer is a 5xx JSON error naming no instance, address or system error")]
async fn names_nothing_inside(w: &mut GantryWorld) {
    let stack = w.stack();
    let mut secrets: Vec<String> = stack.user_addrs();
    secrets.extend(stack.auth_addrs());
    secrets.extend((1..=stack.user_addrs().len()).map(|i| format!("user-{i}")));
    secrets.extend(["os error", "refused", "127.0.0.1"].map(String::from));
    let last = w.last();
    assert!((500..600).contains(&last.status), "{}: {}", last.status, last.body);
    assert!(last.error_code().is_some(), "not a JSON error: {}", last.body);
    for secret in &secrets {
        assert!(
            !last.body.contains(secret.as_str()),
            "the answer names {secret:?}: {}",
            last.body
        );
    }
}

#[given(regex = r"^a fresh stack whose gateway allows (\d+) client connections$")]
async fn fresh_with_cap(w: &mut GantryWorld, cap: usize) {
    // A long header timeout, so the stalled connections of the scenario are
    // not cut off (and their places given back) while it runs.
    let builder = target::builder()
        .users(1)
        .gateway_env(1, "GANTRY_MAX_CONNECTIONS", cap.to_string())
        .gateway_env(1, "GANTRY_HEADER_TIMEOUT", "120s");
    super::stack::start_fresh(w, builder).await;
    w.connection_cap = Some(cap);
}

#[given("a client with a kept-alive connection to the gateway")]
async fn kept_alive(w: &mut GantryWorld) {
    let mut s = TcpStream::connect(authority(&w.gateway())).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let (status, _) = tokio::time::timeout(ANSWER_WITHIN, read_response(&mut s))
        .await
        .expect("an answer");
    assert_eq!(status, 200);
    w.kept = Some(s);
}

#[when("stalled connections fill the gateway's connection cap")]
async fn fill_the_cap(w: &mut GantryWorld) {
    let cap = w.connection_cap.expect("a stack with a connection cap");
    let (gateway, admin) = (w.gateway(), w.admin());
    let open = open_connections(&admin).await as usize;
    for _ in open..cap {
        w.stalled.push(half_a_head(&gateway).await);
    }
    // Done when the gateway has taken every one of them up.
    eventually("the gateway to hold its cap of connections", ANSWER_WITHIN, || {
        let admin = admin.clone();
        async move { open_connections(&admin).await as usize >= cap }
    })
    .await;
}

#[then("a new connection is answered 503 and closed")]
async fn refused(w: &mut GantryWorld) {
    let mut s = TcpStream::connect(authority(&w.gateway())).await.expect("connect");
    let said = tokio::time::timeout(ANSWER_WITHIN, read_to_close(&mut s))
        .await
        .expect("refused and closed, not held");
    assert!(said.starts_with("HTTP/1.1 503"), "{said:?}");
    assert!(said.contains("\"error\":\"too_many_connections\""), "{said:?}");
}

#[then("the kept-alive connection is still answered")]
async fn kept_answered(w: &mut GantryWorld) {
    let s = w.kept.as_mut().expect("a kept-alive connection");
    for _ in 0..3 {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let (status, _) = tokio::time::timeout(ANSWER_WITHIN, read_response(s))
            .await
            .expect("an answer");
        assert_eq!(status, 200);
    }
}
