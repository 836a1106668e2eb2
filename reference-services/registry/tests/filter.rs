//! The `?filter=` contract, written from Consul's HTTP API documentation
//! ("Filtering") and go-bexpr v0.1.2, the evaluator Consul 1.20 uses: each
//! test runs against a fresh dev registry, and against real Consul too
//! when `CONSUL_HTTP_ADDR` is set.

mod support;

use serde_json::{Value, json};
use support::{Registry, registries, unique};

fn url_encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn filtered_ids(reg: &Registry, path: &str, filter: &str, id_of: fn(&Value) -> Option<&str>) -> Vec<String> {
    let a = reg.get(&format!("{path}?filter={}", url_encoded(filter))).await;
    assert_eq!(a.status, 200, "{}: {path} {filter}: {}", reg.label, a.text);
    let body = a.json();
    let mut ids: Vec<String> = match &body {
        Value::Array(list) => list.iter().filter_map(id_of).map(str::to_owned).collect(),
        Value::Object(map) => map.values().filter_map(id_of).map(str::to_owned).collect(),
        other => panic!("{}: {other}", reg.label),
    };
    ids.sort();
    ids
}

/// One expression language on every listing: health entries (a selector
/// through `Checks` matches when any check does), catalog entries, and the
/// agent's own map of services.
#[tokio::test]
async fn a_filter_keeps_the_entries_its_expression_admits() {
    for reg in registries().await {
        let name = unique("filtered");
        for (n, version, tags, status) in [
            (1, "1", json!(["blue"]), "passing"),
            (2, "2", json!(["blue", "canary"]), "passing"),
            (3, "2", json!([]), "critical"),
        ] {
            reg.register(json!({
                "ID": format!("{name}-{n}"), "Name": name, "Port": 9600 + n, "Tags": tags,
                "Meta": {"version": version},
                "Check": {"TTL": "60s", "Status": status},
            }))
            .await;
        }
        let health = format!("/v1/health/service/{name}");
        let health_id: fn(&Value) -> Option<&str> = |e| e["Service"]["ID"].as_str();
        let ids = |list: &[u16]| -> Vec<String> { list.iter().map(|n| format!("{name}-{n}")).collect() };
        assert_eq!(
            filtered_ids(&reg, &health, r#"Service.Meta.version == "2""#, health_id).await,
            ids(&[2, 3])
        );
        assert_eq!(
            filtered_ids(&reg, &health, "canary in Service.Tags", health_id).await,
            ids(&[2])
        );
        assert_eq!(
            filtered_ids(&reg, &health, "Service.Tags is empty", health_id).await,
            ids(&[3])
        );
        assert_eq!(
            filtered_ids(&reg, &health, "Checks.Status == critical", health_id).await,
            ids(&[3]),
            "{}: any check",
            reg.label
        );
        assert_eq!(
            filtered_ids(
                &reg,
                &health,
                r#"Service.Port == 9601 or (blue in Service.Tags and not Service.Meta.version == "1")"#,
                health_id
            )
            .await,
            ids(&[1, 2])
        );
        let catalog_id: fn(&Value) -> Option<&str> = |e| e["ServiceID"].as_str();
        assert_eq!(
            filtered_ids(
                &reg,
                &format!("/v1/catalog/service/{name}"),
                "ServicePort != 9602",
                catalog_id
            )
            .await,
            ids(&[1, 3])
        );
        let agent_id: fn(&Value) -> Option<&str> = |e| e["ID"].as_str();
        assert_eq!(
            filtered_ids(
                &reg,
                "/v1/agent/services",
                &format!(r#"Service == "{name}" and Meta.version == "1""#),
                agent_id
            )
            .await,
            ids(&[1])
        );
        for n in 1..=3 {
            reg.deregister(&format!("{name}-{n}")).await;
        }
    }
}

/// A malformed expression is refused naming where it went wrong
/// (`line:column (offset)`), and so is a field no entry has: a typo never
/// filters silently. Consul answers these 500; the dev registry 400.
#[tokio::test]
async fn a_malformed_or_unknown_filter_is_refused_naming_the_fault() {
    for reg in registries().await {
        for (filter, names) in [
            ("Service.Service = web", "1:17 (16)"),
            ("Service.Nope == web", "Service.Nope"),
        ] {
            let a = reg
                .get(&format!("/v1/health/service/web?filter={}", url_encoded(filter)))
                .await;
            assert_ne!(a.status, 200, "{}: {filter}", reg.label);
            assert!(
                a.text.contains("Failed to create boolean expression evaluator") && a.text.contains(names),
                "{}: {filter}: {}",
                reg.label,
                a.text
            );
        }
    }
}
