//! The agent contract that teams' own Consul clients rely on, written
//! from Consul's HTTP API documentation (`/v1/agent/*`, `/v1/catalog/*`)
//! and its `agent/agent_endpoint.go`, `agent/agent.go` and
//! `structs.ValidateMetadata`: bodies as py-consul sends them, what a
//! re-registration keeps, metadata limits, extra checks, maintenance, and
//! the node. Each test runs against a fresh dev registry, and against real
//! Consul too when `CONSUL_HTTP_ADDR` is set.

mod support;

use serde_json::{Value, json};
use support::{Registry, registries, unique};

async fn agent_service(reg: &Registry, id: &str) -> Value {
    let a = reg.get(&format!("/v1/agent/service/{id}")).await;
    assert_eq!(a.status, 200, "{}: {}", reg.label, a.text);
    a.json()
}

async fn passing_ids(reg: &Registry, name: &str) -> Vec<String> {
    let a = reg.get(&format!("/v1/health/service/{name}?passing")).await;
    assert_eq!(a.status, 200, "{}: {}", reg.label, a.text);
    a.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Service"]["ID"].as_str().unwrap().to_owned())
        .collect()
}

/// A registration as py-consul sends it (lower-case keys, snake_case
/// aliases: Go's decoder matches keys whatever their case, and Consul
/// translates the aliases) registers the same service as Consul's own
/// spelling; `Meta` keys, which are data, keep their case. Weights,
/// `EnableTagOverride` and `TaggedAddresses` come back as sent.
#[tokio::test]
async fn a_lower_case_body_registers_as_consuls_own_spelling_would() {
    for reg in registries().await {
        let id = unique("lower");
        reg.register(json!({
            "name": id, "id": id, "address": "127.0.0.1", "port": 8080, "tags": ["py"],
            "meta": {"Team_Name": "core"},
            "enable_tag_override": true,
            "weights": {"passing": 3, "warning": 1},
            "tagged_addresses": {"wan": {"address": "198.51.100.7", "port": 80}},
            "checks": [{"ttl": "30s", "deregister_critical_service_after": "90s", "status": "passing"}],
        }))
        .await;
        let s = agent_service(&reg, &id).await;
        assert_eq!(s["Service"], id.as_str(), "{}: {s}", reg.label);
        assert_eq!(s["Port"], 8080);
        assert_eq!(s["Tags"], json!(["py"]));
        assert_eq!(
            s["Meta"],
            json!({"Team_Name": "core"}),
            "{}: meta keys are data",
            reg.label
        );
        assert_eq!(s["EnableTagOverride"], true, "{}", reg.label);
        assert_eq!(s["Weights"], json!({"Passing": 3, "Warning": 1}), "{}", reg.label);
        assert_eq!(
            s["TaggedAddresses"]["wan"]["Address"], "198.51.100.7",
            "{}: {s}",
            reg.label
        );
        assert_eq!(s["TaggedAddresses"]["wan"]["Port"], 80);
        let check = reg
            .check(&format!("service:{id}"))
            .await
            .unwrap_or_else(|| panic!("{}: no check", reg.label));
        assert_eq!(check["Type"], "ttl", "{}: {check}", reg.label);
        assert_eq!(check["Status"], "passing");
        assert_eq!(
            check["Definition"]["DeregisterCriticalServiceAfter"], "1m30s",
            "{}",
            reg.label
        );
        assert_eq!(passing_ids(&reg, &id).await, vec![id.clone()]);
        let catalog = reg.get(&format!("/v1/catalog/service/{id}")).await.json();
        assert_eq!(
            catalog[0]["ServiceWeights"],
            json!({"Passing": 3, "Warning": 1}),
            "{}",
            reg.label
        );
        assert_eq!(catalog[0]["ServiceEnableTagOverride"], true);
        reg.deregister(&id).await;
    }
}

/// Registering again keeps each check's status and output (Consul's agent
/// restores them from its snapshot), so an idempotent re-registration
/// does not drop a healthy instance out of `?passing`; a check the body
/// leaves out stays unless `?replace-existing-checks`.
#[tokio::test]
async fn a_re_registration_keeps_check_status_and_omitted_checks_unless_replacing() {
    for reg in registries().await {
        let id = unique("again");
        let body = |checks: Value| json!({"ID": id, "Name": id, "Port": 9400, "Checks": checks});
        let main = json!({"CheckID": format!("{id}-main"), "Name": "main", "TTL": "60s"});
        let extra = json!({"CheckID": format!("{id}-extra"), "Name": "extra", "TTL": "60s"});
        reg.register(body(json!([main, extra]))).await;
        for check in ["main", "extra"] {
            let a = reg
                .put(&format!("/v1/agent/check/pass/{id}-{check}?note=fine"), &Value::Null)
                .await;
            assert_eq!(a.status, 200, "{}: {}", reg.label, a.text);
        }
        assert_eq!(passing_ids(&reg, &id).await, vec![id.clone()]);

        reg.register(body(json!([main]))).await;
        assert_eq!(
            reg.check_state(&format!("{id}-main")).await,
            ("passing".to_owned(), "fine".to_owned()),
            "{}: status and output kept",
            reg.label
        );
        assert!(
            reg.check(&format!("{id}-extra")).await.is_some(),
            "{}: omitted, kept",
            reg.label
        );
        assert_eq!(
            passing_ids(&reg, &id).await,
            vec![id.clone()],
            "{}: still passing",
            reg.label
        );

        let a = reg
            .put(
                "/v1/agent/service/register?replace-existing-checks=true",
                &body(json!([main])),
            )
            .await;
        assert_eq!(a.status, 200, "{}: {}", reg.label, a.text);
        assert!(
            reg.check(&format!("{id}-extra")).await.is_none(),
            "{}: replaced away",
            reg.label
        );
        reg.deregister(&id).await;
    }
}

/// Consul's limits on `Meta` (64 pairs, keys of letters, digits, `_` and
/// `-` up to 128 characters, not starting `consul-`, values up to 512
/// characters): 400 `Invalid Service Meta`, so a registration that would
/// fail in production fails in tests too.
#[tokio::test]
async fn metadata_past_consuls_limits_is_refused() {
    for reg in registries().await {
        let id = unique("meta");
        let too_many: serde_json::Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
        let cases = [
            ("65 pairs", Value::Object(too_many)),
            ("a reserved prefix", json!({"consul-version": "1"})),
            ("a dot in a key", json!({"app.version": "1"})),
            ("a long key", json!({ "k".repeat(129): "v" })),
            ("a long value", json!({"k": "v".repeat(513)})),
        ];
        for (what, meta) in cases {
            let a = reg
                .put(
                    "/v1/agent/service/register",
                    &json!({"ID": id, "Name": id, "Meta": meta}),
                )
                .await;
            assert_eq!(a.status, 400, "{}: {what}: {}", reg.label, a.text);
            assert!(
                a.text.contains("Invalid Service Meta"),
                "{}: {what}: {}",
                reg.label,
                a.text
            );
        }
        let at_limits: serde_json::Map<String, Value> = (0..64)
            .map(|i| (format!("{i}-{}", "k".repeat(120)), json!("v".repeat(512))))
            .collect();
        reg.register(json!({"ID": id, "Name": id, "Meta": at_limits})).await;
        reg.deregister(&id).await;
    }
}

/// `/v1/agent/check/register` with a `ServiceID` adds a check to that
/// service (it then counts for `?passing`), and deregistering it by id
/// removes it.
#[tokio::test]
async fn a_check_registered_on_its_own_joins_its_service() {
    for reg in registries().await {
        let id = unique("extra");
        reg.register(json!({"ID": id, "Name": id, "Check": {"TTL": "60s", "Status": "passing"}}))
            .await;
        assert_eq!(passing_ids(&reg, &id).await, vec![id.clone()]);
        let check = format!("{id}-disk");
        let a = reg
            .put(
                "/v1/agent/check/register",
                &json!({"id": check, "name": "disk", "service_id": id, "ttl": "60s"}),
            )
            .await;
        assert_eq!(a.status, 200, "{}: {}", reg.label, a.text);
        let c = reg
            .check(&check)
            .await
            .unwrap_or_else(|| panic!("{}: no {check}", reg.label));
        assert_eq!(c["ServiceID"], id.as_str(), "{}: {c}", reg.label);
        assert_eq!(c["Status"], "critical", "{}: a new check starts critical", reg.label);
        assert!(
            passing_ids(&reg, &id).await.is_empty(),
            "{}: its service fails with it",
            reg.label
        );
        let a = reg
            .put(&format!("/v1/agent/check/deregister/{check}"), &Value::Null)
            .await;
        assert_eq!(a.status, 200, "{}: {}", reg.label, a.text);
        assert!(reg.check(&check).await.is_none());
        assert_eq!(passing_ids(&reg, &id).await, vec![id.clone()]);
        reg.deregister(&id).await;
    }
}

/// `consul maint -service`: a critical `_service_maintenance:<id>` check
/// carrying the reason takes the instance out of `?passing` until
/// maintenance ends; an unknown service is 404, a missing `enable` 400.
#[tokio::test]
async fn a_service_in_maintenance_leaves_passing_until_it_ends() {
    for reg in registries().await {
        let id = unique("maint");
        reg.register(json!({"ID": id, "Name": id, "Check": {"TTL": "60s", "Status": "passing"}}))
            .await;
        let on = reg
            .put(
                &format!("/v1/agent/service/maintenance/{id}?enable=true&reason=deploying"),
                &Value::Null,
            )
            .await;
        assert_eq!(on.status, 200, "{}: {}", reg.label, on.text);
        let check = reg
            .check(&format!("_service_maintenance:{id}"))
            .await
            .unwrap_or_else(|| panic!("{}: no maintenance check", reg.label));
        assert_eq!(check["Status"], "critical", "{}", reg.label);
        assert_eq!(check["Notes"], "deploying");
        assert_eq!(check["ServiceID"], id.as_str());
        assert!(passing_ids(&reg, &id).await.is_empty(), "{}", reg.label);
        let off = reg
            .put(
                &format!("/v1/agent/service/maintenance/{id}?enable=false"),
                &Value::Null,
            )
            .await;
        assert_eq!(off.status, 200, "{}: {}", reg.label, off.text);
        assert!(reg.check(&format!("_service_maintenance:{id}")).await.is_none());
        assert_eq!(passing_ids(&reg, &id).await, vec![id.clone()], "{}", reg.label);

        let unknown = reg
            .put(
                &format!("/v1/agent/service/maintenance/{id}-nope?enable=true"),
                &Value::Null,
            )
            .await;
        assert_eq!(unknown.status, 404, "{}: {}", reg.label, unknown.text);
        let missing = reg
            .put(&format!("/v1/agent/service/maintenance/{id}"), &Value::Null)
            .await;
        assert_eq!(missing.status, 400, "{}: {}", reg.label, missing.text);
        reg.deregister(&id).await;
    }
}

/// The node as clients read it: `/v1/agent/self` names it and its
/// datacenter (Go's `Agent().NodeName()`, Fabio at start), it is a member
/// and a catalog node whose services include ours, and the status
/// endpoints name a leader and its peers.
#[tokio::test]
async fn the_agent_names_its_node_which_lists_its_services() {
    for reg in registries().await {
        let node = reg.node_name().await;
        let me = reg.get("/v1/agent/self").await.json();
        assert!(
            me["Config"]["Datacenter"].as_str().is_some_and(|d| !d.is_empty()),
            "{}: {me}",
            reg.label
        );
        assert_eq!(me["Member"]["Name"], node.as_str(), "{}", reg.label);
        let members = reg.get("/v1/agent/members").await.json();
        assert!(
            members.as_array().unwrap().iter().any(|m| m["Name"] == node.as_str()),
            "{}: {members}",
            reg.label
        );
        let nodes = reg.get("/v1/catalog/nodes").await;
        assert!(reg.index(&nodes) >= 1);
        assert!(
            nodes
                .json()
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["Node"] == node.as_str()),
            "{}: {}",
            reg.label,
            nodes.text
        );
        let id = unique("onnode");
        reg.register(json!({"ID": id, "Name": id, "Port": 9500})).await;
        let on_node = reg.get(&format!("/v1/catalog/node/{node}")).await.json();
        assert_eq!(on_node["Node"]["Node"], node.as_str(), "{}", reg.label);
        assert_eq!(on_node["Services"][&id]["Port"], 9500, "{}: {on_node}", reg.label);
        let peers = reg.get("/v1/status/peers").await.json();
        assert!(!peers.as_array().unwrap().is_empty(), "{}: {peers}", reg.label);
        reg.deregister(&id).await;
    }
}
