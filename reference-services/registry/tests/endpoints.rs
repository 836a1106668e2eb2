//! The contract of `/v1/health/checks/{service}`, `/v1/health/state/{state}`
//! and `/v1/agent/service/{id}`, written from Consul's API documentation:
//! each test runs against a fresh dev registry, and against real Consul too
//! when `CONSUL_HTTP_ADDR` is set.

mod support;

use serde_json::{Value, json};
use support::{Registry, registries, unique};

/// A service `id` (named `name`) with one TTL check `service:<id>`.
fn ttl_service(name: &str, id: &str, port: u16) -> Value {
    json!({
        "ID": id, "Name": name, "Address": "127.0.0.1", "Port": port,
        "Tags": ["contract"], "Meta": {"k": "v"},
        "Check": {"CheckID": format!("service:{id}"), "Name": "ttl", "TTL": "30s", "Notes": "n"},
    })
}

async fn set_ttl(reg: &Registry, id: &str, how: &str) {
    let a = reg
        .put(&format!("/v1/agent/check/{how}/service:{id}"), &Value::Null)
        .await;
    assert_eq!(a.status, 200, "{}: {how} {id}: {}", reg.label, a.text);
}

fn check_ids(answer: &Value) -> Vec<String> {
    answer
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {answer}"))
        .iter()
        .map(|c| c["CheckID"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `/v1/health/checks/{service}`: the checks of every instance, in Consul's
/// `HealthCheck` shape, not the node's Serf check, with a blocking index.
#[tokio::test]
async fn health_checks_lists_the_checks_of_every_instance() {
    for reg in registries().await {
        let name = unique("hc");
        let (a, b) = (format!("{name}-a"), format!("{name}-b"));
        reg.register(ttl_service(&name, &a, 9301)).await;
        reg.register(ttl_service(&name, &b, 9302)).await;
        set_ttl(&reg, &a, "pass").await;

        let answer = reg.get(&format!("/v1/health/checks/{name}")).await;
        assert_eq!(answer.status, 200, "{}: {}", reg.label, answer.text);
        let index: u64 = answer
            .header("X-Consul-Index")
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("{}: no X-Consul-Index", reg.label));
        let body = answer.json();
        let mut ids = check_ids(&body);
        ids.sort();
        assert_eq!(ids, [format!("service:{a}"), format!("service:{b}")], "{}", reg.label);
        for c in body.as_array().unwrap() {
            let id = c["ServiceID"].as_str().unwrap();
            assert_eq!(c["ServiceName"], json!(name), "{}", reg.label);
            assert_eq!(c["ServiceTags"], json!(["contract"]), "{}", reg.label);
            assert_eq!(c["Name"], "ttl", "{}", reg.label);
            assert_eq!(c["Notes"], "n", "{}", reg.label);
            assert_eq!(c["Type"], "ttl", "{}", reg.label);
            assert!(c["Node"].is_string(), "{}", reg.label);
            let want = if id == a { "passing" } else { "critical" };
            assert_eq!(c["Status"], want, "{}: {id}", reg.label);
        }

        // Blocking: a change to one instance's check wakes a query at `index`.
        let waiter = {
            let (reg, name) = (reg.clone(), name.clone());
            tokio::spawn(async move {
                reg.get(&format!("/v1/health/checks/{name}?index={index}&wait=30s"))
                    .await
            })
        };
        set_ttl(&reg, &b, "warn").await;
        let woke = tokio::time::timeout(reg.patience(), waiter)
            .await
            .unwrap_or_else(|_| panic!("{}: the blocking query did not wake", reg.label))
            .unwrap();
        let woke_index: u64 = woke.header("X-Consul-Index").unwrap().parse().unwrap();
        assert!(woke_index > index, "{}", reg.label);

        let unknown = reg.get(&format!("/v1/health/checks/{name}-none")).await;
        assert_eq!((unknown.status, unknown.json()), (200, json!([])), "{}", reg.label);
        for id in [a, b] {
            reg.deregister(&id).await;
        }
    }
}

/// `/v1/health/state/{state}`: the checks in one state, or `any`; the
/// node's Serf check is listed with the passing ones.
#[tokio::test]
async fn health_state_lists_the_checks_in_a_state() {
    for reg in registries().await {
        let name = unique("st");
        let (ok, warn, bad) = (format!("{name}-ok"), format!("{name}-warn"), format!("{name}-bad"));
        for (i, id) in [&ok, &warn, &bad].into_iter().enumerate() {
            reg.register(ttl_service(&name, id, 9310 + i as u16)).await;
        }
        set_ttl(&reg, &ok, "pass").await;
        set_ttl(&reg, &warn, "warn").await;

        let ours = |state: &str| {
            let (reg, name) = (reg.clone(), name.clone());
            let state = state.to_owned();
            async move {
                let a = reg.get(&format!("/v1/health/state/{state}")).await;
                assert_eq!(a.status, 200, "{}: {state}: {}", reg.label, a.text);
                assert!(a.header("X-Consul-Index").is_some(), "{}: {state}", reg.label);
                let body = a.json();
                let all = check_ids(&body);
                for c in body.as_array().unwrap() {
                    if state != "any" {
                        assert_eq!(c["Status"], json!(state), "{}: {c}", reg.label);
                    }
                }
                let mut mine: Vec<String> = all.iter().filter(|id| id.contains(&name)).cloned().collect();
                mine.sort();
                (mine, all.contains(&"serfHealth".to_owned()))
            }
        };
        let svc = |id: &String| format!("service:{id}");
        assert_eq!(ours("passing").await, (vec![svc(&ok)], true), "{}", reg.label);
        assert_eq!(ours("warning").await, (vec![svc(&warn)], false), "{}", reg.label);
        assert_eq!(ours("critical").await, (vec![svc(&bad)], false), "{}", reg.label);
        let mut every = vec![svc(&bad), svc(&ok), svc(&warn)];
        every.sort();
        assert_eq!(ours("any").await, (every, true), "{}", reg.label);

        // An unknown state: the dev registry refuses it; Consul answers an
        // empty list (its API client refuses it before sending).
        let unknown = reg.get("/v1/health/state/bogus").await;
        if reg.is_dev {
            assert_eq!(unknown.status, 400, "{}: {}", reg.label, unknown.text);
            assert!(
                unknown.text.contains("any, passing, warning or critical"),
                "{}",
                unknown.text
            );
        } else {
            assert_eq!((unknown.status, unknown.json()), (200, json!([])), "{}", reg.label);
        }
        for id in [ok, warn, bad] {
            reg.deregister(&id).await;
        }
    }
}

/// `/v1/agent/service/{id}`: the service in the agent's shape with its
/// `ContentHash` (also in `X-Consul-ContentHash`), 404 with Consul's text
/// for an unknown id, and hash-based blocking.
#[tokio::test]
async fn agent_service_answers_one_service_and_blocks_on_its_hash() {
    for reg in registries().await {
        let name = unique("as");
        let id = format!("{name}-1");
        reg.register(ttl_service(&name, &id, 9320)).await;

        let a = reg.get(&format!("/v1/agent/service/{id}")).await;
        assert_eq!(a.status, 200, "{}: {}", reg.label, a.text);
        let body = a.json();
        for (field, want) in [
            ("ID", json!(id)),
            ("Service", json!(name)),
            ("Tags", json!(["contract"])),
            ("Meta", json!({"k": "v"})),
            ("Port", json!(9320)),
            ("Address", json!("127.0.0.1")),
        ] {
            assert_eq!(body[field], want, "{}: {field} in {body}", reg.label);
        }
        let hash = body["ContentHash"].as_str().unwrap_or_default().to_owned();
        assert!(!hash.is_empty(), "{}: no ContentHash in {body}", reg.label);
        assert_eq!(a.header("X-Consul-ContentHash"), Some(hash.as_str()), "{}", reg.label);

        // Blocking on the hash: a re-registration at another port wakes it.
        let waiter = {
            let (reg, id, hash) = (reg.clone(), id.clone(), hash.clone());
            tokio::spawn(async move { reg.get(&format!("/v1/agent/service/{id}?hash={hash}&wait=30s")).await })
        };
        // Whether the query begins waiting before or after the change, it
        // must answer with the new service well inside its 30 s wait.
        reg.register(ttl_service(&name, &id, 9321)).await;
        let woke = tokio::time::timeout(reg.patience(), waiter)
            .await
            .unwrap_or_else(|_| panic!("{}: the hash-blocking query did not wake", reg.label))
            .unwrap();
        let body = woke.json();
        assert_eq!(body["Port"], 9321, "{}", reg.label);
        assert_ne!(body["ContentHash"], json!(hash), "{}", reg.label);

        let unknown = reg.get(&format!("/v1/agent/service/{name}-none")).await;
        assert_eq!(unknown.status, 404, "{}: {}", reg.label, unknown.text);
        assert_eq!(
            unknown.text.trim(),
            format!("unknown service ID: {name}-none"),
            "{}",
            reg.label
        );
        reg.deregister(&id).await;
    }
}

/// With ACLs on, the new reads show nothing without the token:
/// `/v1/agent/service/{id}` refuses with 403, the health lists come back
/// empty. (Checked where ACLs are on: the dev registry, and Consul when
/// `CONSUL_HTTP_TOKEN` is set.)
#[tokio::test]
async fn the_new_reads_show_nothing_without_the_token() {
    for reg in registries().await.into_iter().filter(|r| r.token.is_some()) {
        let name = unique("hid");
        let id = format!("{name}-1");
        reg.register(ttl_service(&name, &id, 9330)).await;
        let a = reg.get_anonymous(&format!("/v1/agent/service/{id}")).await;
        if a.status == 200 {
            eprintln!(
                "SKIPPED for {}: its ACLs are off (anonymous reads see everything)",
                reg.label
            );
            reg.deregister(&id).await;
            continue;
        }
        assert_eq!(a.status, 403, "{}: {}", reg.label, a.text);
        assert!(a.text.contains("Permission denied"), "{}: {}", reg.label, a.text);
        for path in [format!("/v1/health/checks/{name}"), "/v1/health/state/any".to_owned()] {
            let a = reg.get_anonymous(&path).await;
            assert_eq!(a.status, 200, "{}: {path}", reg.label);
            assert!(!a.text.contains(&name), "{}: {path} shows it: {}", reg.label, a.text);
        }
        reg.deregister(&id).await;
    }
}
