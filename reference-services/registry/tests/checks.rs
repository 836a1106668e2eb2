//! The HTTP and TCP check contract, written from Consul's documented
//! behaviour (the agent's `CheckHTTP`, `CheckTCP` and `StatusHandler`):
//! each test runs against a fresh dev registry, and against real Consul too
//! when `CONSUL_HTTP_ADDR` is set (see `support` for what Consul then needs).

mod support;

use std::time::Duration;

use gantry_common::registry::RegistryClient;
use serde_json::{Value, json};
use support::{FixedServer, ScriptedServer, closed_port, registries, silent_server, unique};

/// How often the tests' checks run (Consul raises it to its one-second floor).
const INTERVAL: &str = "100ms";

/// A registration of service `id` with one check `check` (merged into
/// Consul's check fields), under the check id `service:<id>`.
fn registration(id: &str, check: Value) -> Value {
    let mut c = json!({"CheckID": format!("service:{id}"), "Name": "probe", "Interval": INTERVAL});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), check.as_object()) {
        c.extend(extra.clone());
    }
    json!({"ID": id, "Name": id, "Address": "127.0.0.1", "Port": 9200, "Check": c})
}

#[tokio::test]
async fn an_http_check_passes_on_2xx_and_turns_critical_on_500_with_the_status_line() {
    for reg in registries().await {
        let server = FixedServer::start(200).await;
        let id = unique("http");
        let check = format!("service:{id}");
        reg.register(registration(&id, json!({"HTTP": server.url}))).await;

        let output = reg.until_status(&check, "passing").await;
        assert_eq!(
            output,
            format!("HTTP GET {}: 200 OK Output: status 200", server.url),
            "{}",
            reg.label
        );

        server.set(500);
        let output = reg.until_status(&check, "critical").await;
        assert_eq!(
            output,
            format!("HTTP GET {}: 500 Internal Server Error Output: status 500", server.url),
            "{}",
            reg.label
        );
        let c = reg.check(&check).await.unwrap();
        assert_eq!(c["Type"], "http", "{}", reg.label);
        reg.deregister(&id).await;
    }
}

#[tokio::test]
async fn an_http_check_answered_429_is_a_warning() {
    for reg in registries().await {
        let server = FixedServer::start(429).await;
        let id = unique("busy");
        let check = format!("service:{id}");
        reg.register(registration(&id, json!({"HTTP": server.url}))).await;
        let output = reg.until_status(&check, "warning").await;
        assert_eq!(
            output,
            format!("HTTP GET {}: 429 Too Many Requests Output: status 429", server.url),
            "{}",
            reg.label
        );
        reg.deregister(&id).await;
    }
}

/// With `SuccessBeforePassing = 2`, one success after a failure leaves the
/// check critical; the second makes it pass. The server holds each run
/// until the test answers, and a run's result is recorded before the next
/// run starts, so "the next request arrived" means "the last result counted".
#[tokio::test]
async fn success_before_passing_needs_that_many_successes_in_a_row() {
    for reg in registries().await {
        let mut server = ScriptedServer::start().await;
        let id = unique("sbp");
        let check = format!("service:{id}");
        reg.register(registration(
            &id,
            json!({"HTTP": server.url, "SuccessBeforePassing": 2}),
        ))
        .await;
        let within = reg.patience();
        server.next(within).await.answer(500);
        server.next(within).await.answer(200);
        let third = server.next(within).await;
        assert_eq!(
            reg.check_state(&check).await.0,
            "critical",
            "{}: one success after a failure must not pass",
            reg.label
        );
        third.answer(200);
        reg.until_status(&check, "passing").await;
        reg.deregister(&id).await;
    }
}

/// With `FailuresBeforeCritical = 3` (and so, by default, as many before a
/// warning), a passing check stays passing through two failures and turns
/// critical on the third.
#[tokio::test]
async fn failures_before_critical_needs_that_many_failures_in_a_row() {
    for reg in registries().await {
        let mut server = ScriptedServer::start().await;
        let id = unique("fbc");
        let check = format!("service:{id}");
        reg.register(registration(
            &id,
            json!({"HTTP": server.url, "FailuresBeforeCritical": 3}),
        ))
        .await;
        let within = reg.patience();
        server.next(within).await.answer(200);
        server.next(within).await.answer(500);
        for failures in 1..=2 {
            let next = server.next(within).await;
            assert_eq!(
                reg.check_state(&check).await.0,
                "passing",
                "{}: {failures} failure(s) of 3 must leave it passing",
                reg.label
            );
            next.answer(500);
        }
        let output = reg.until_status(&check, "critical").await;
        assert!(
            output.contains(": 500 Internal Server Error Output:"),
            "{}: {output}",
            reg.label
        );
        reg.deregister(&id).await;
    }
}

/// A TCP check passes while something listens and is critical where
/// nothing does (registered passing, so critical is the check's finding).
#[tokio::test]
async fn a_tcp_check_passes_on_a_listening_port_and_fails_on_a_closed_one() {
    for reg in registries().await {
        let (listener, open) = support::check_listener().await;
        let closed = closed_port().await;
        let up = unique("tcpup");
        let down = unique("tcpdown");
        reg.register(registration(&up, json!({"TCP": open}))).await;
        reg.register(registration(&down, json!({"TCP": closed, "Status": "passing"})))
            .await;

        let output = reg.until_status(&format!("service:{up}"), "passing").await;
        assert_eq!(output, format!("TCP connect {open}: Success"), "{}", reg.label);
        let output = reg.until_status(&format!("service:{down}"), "critical").await;
        assert!(
            output.starts_with("dial tcp ") && output.ends_with("connection refused"),
            "{}: {output}",
            reg.label
        );
        let c = reg.check(&format!("service:{up}")).await.unwrap();
        assert_eq!(c["Type"], "tcp", "{}", reg.label);
        drop(listener);
        for id in [up, down] {
            reg.deregister(&id).await;
        }
    }
}

/// A server that accepts and never answers fails the check once its
/// `Timeout` runs out, and the output says it timed out.
#[tokio::test]
async fn an_http_check_with_no_answer_within_its_timeout_is_critical() {
    for reg in registries().await {
        let url = silent_server().await;
        let id = unique("slow");
        let check = format!("service:{id}");
        reg.register(registration(
            &id,
            json!({"HTTP": url, "Timeout": "300ms", "Status": "passing"}),
        ))
        .await;
        let output = reg.until_status(&check, "critical").await;
        assert!(
            output.starts_with(&format!("Get \"{url}\": ")) && output.contains("Client.Timeout exceeded"),
            "{}: {output}",
            reg.label
        );
        reg.deregister(&id).await;
    }
}

/// A blocking query on `?passing` wakes when an HTTP check flips, both ways.
#[tokio::test]
async fn a_blocking_query_on_passing_wakes_when_an_http_check_flips() {
    for reg in registries().await {
        let server = FixedServer::start(200).await;
        let id = unique("flip");
        reg.register(registration(&id, json!({"HTTP": server.url}))).await;
        let client = RegistryClient::new(&reg.base).with_token(reg.token.clone());
        let seen = support::eventually("the instance to pass", reg.patience(), || async {
            let seen = client.health_service(&id, true, None, Duration::ZERO).await.unwrap();
            (!seen.value.is_empty()).then_some(seen)
        })
        .await;

        // The wait is longer than the test's patience: only a wake-up answers in time.
        let wait = reg.patience() * 2;
        let waiter = {
            let (client, id) = (client.clone(), id.clone());
            tokio::spawn(async move {
                let mut seen = seen;
                while !seen.value.is_empty() {
                    seen = client.health_service(&id, true, Some(seen.index), wait).await.unwrap();
                }
                seen
            })
        };
        server.set(503);
        let gone = tokio::time::timeout(reg.patience(), waiter)
            .await
            .unwrap_or_else(|_| panic!("{}: no wake-up when the check failed", reg.label))
            .unwrap();
        assert!(gone.value.is_empty(), "{}", reg.label);

        server.set(200);
        let back = tokio::time::timeout(reg.patience(), async {
            let mut seen = gone;
            while seen.value.is_empty() {
                seen = client.health_service(&id, true, Some(seen.index), wait).await.unwrap();
            }
            seen
        })
        .await
        .unwrap_or_else(|_| panic!("{}: no wake-up when the check passed again", reg.label));
        assert_eq!(back.value.len(), 1, "{}", reg.label);
        reg.deregister(&id).await;
    }
}

/// A service whose HTTP or TCP check stays critical past
/// `DeregisterCriticalServiceAfter` is removed, and its check stops
/// running. Consul enforces a one-minute floor (and reaps every 30 s), so
/// this runs against the dev registry only.
#[tokio::test]
async fn a_service_whose_check_stays_critical_is_deregistered_after_its_grace() {
    let reg = registries().await.remove(0);
    let server = FixedServer::start(200).await;
    let http = unique("reaphttp");
    let tcp = unique("reaptcp");
    reg.register(registration(
        &http,
        json!({"HTTP": server.url, "DeregisterCriticalServiceAfter": "300ms"}),
    ))
    .await;
    reg.register(registration(
        &tcp,
        json!({"TCP": closed_port().await, "DeregisterCriticalServiceAfter": "300ms"}),
    ))
    .await;
    reg.until_status(&format!("service:{http}"), "passing").await;
    server.set(500);
    for id in [&http, &tcp] {
        support::eventually(&format!("{id} to be deregistered"), reg.patience(), || async {
            let a = reg.get(&format!("/v1/agent/service/{id}")).await;
            (a.status == 404).then_some(())
        })
        .await;
    }
    // Its check no longer runs: the server sees no more requests.
    let hits = server.hits();
    let again = support::FixedServer::start(200).await;
    let probe = unique("probe");
    reg.register(registration(&probe, json!({"HTTP": again.url}))).await;
    reg.until_status(&format!("service:{probe}"), "passing").await;
    support::eventually("three runs of the new check", reg.patience(), || async {
        (again.hits() >= 3).then_some(())
    })
    .await;
    assert_eq!(server.hits(), hits, "the removed service's check still runs");
}

/// Deregistering a service stops its check: the server sees no request after.
#[tokio::test]
async fn deregistering_a_service_stops_its_check() {
    let reg = registries().await.remove(0);
    let server = FixedServer::start(200).await;
    let other = FixedServer::start(200).await;
    let id = unique("stop");
    let witness = unique("witness");
    reg.register(registration(&id, json!({"HTTP": server.url}))).await;
    reg.register(registration(&witness, json!({"HTTP": other.url}))).await;
    reg.until_status(&format!("service:{id}"), "passing").await;
    reg.deregister(&id).await;
    let hits = server.hits();
    // The witness check, on the same interval, runs three more times.
    let from = other.hits();
    support::eventually("three more runs of the witness check", reg.patience(), || async {
        (other.hits() >= from + 3).then_some(())
    })
    .await;
    assert!(
        server.hits() <= hits + 1,
        "the deregistered check kept running ({} requests after)",
        server.hits() - hits
    );
}

/// What a Consul agent refuses in a check definition, the dev registry
/// refuses too, with Consul's reason.
#[tokio::test]
async fn invalid_check_definitions_are_refused_with_400() {
    for reg in registries().await {
        let id = unique("bad");
        for (check, reason) in [
            (json!({"HTTP": "http://127.0.0.1:1/"}), "Interval must be > 0"),
            (json!({"TCP": "127.0.0.1:1"}), "Interval must be > 0"),
            (
                json!({"HTTP": "http://127.0.0.1:1/", "Interval": "1s", "TTL": "10s"}),
                "Interval and TTL cannot both be specified",
            ),
        ] {
            let body = json!({"ID": id, "Name": id, "Check": check});
            let a = reg.put("/v1/agent/service/register", &body).await;
            assert_eq!(a.status, 400, "{}: {check}: {}", reg.label, a.text);
            assert!(a.text.contains(reason), "{}: {check}: {}", reg.label, a.text);
        }
    }
}

/// Fields of the check as every registry reports them.
#[tokio::test]
async fn checks_report_their_definition_fields() {
    for reg in registries().await {
        let server = FixedServer::start(200).await;
        let id = unique("fields");
        let check = format!("service:{id}");
        reg.register(registration(
            &id,
            json!({"HTTP": server.url, "Notes": "why this check", "Name": "web"}),
        ))
        .await;
        reg.until_status(&check, "passing").await;
        let c = reg.check(&check).await.unwrap();
        for (field, want) in [
            ("CheckID", json!(check)),
            ("Name", json!("web")),
            ("Notes", json!("why this check")),
            ("ServiceID", json!(id)),
            ("ServiceName", json!(id)),
            ("Type", json!("http")),
        ] {
            assert_eq!(c[field], want, "{}: {field} in {c}", reg.label);
        }
        reg.deregister(&id).await;
    }
}
