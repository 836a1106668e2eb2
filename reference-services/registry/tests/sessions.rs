//! The session and lock contract, written from Consul's HTTP API
//! documentation (`/v1/session`, `/v1/kv` `?acquire`/`?release`) and its
//! `agent/session_endpoint.go` and `state/session.go`: leader election as
//! `consul lock`, Go's `api.Lock` and py-consul's `kv.put(acquire=…)` do
//! it. Each test runs against a fresh dev registry, and against real
//! Consul too when `CONSUL_HTTP_ADDR` is set.

mod support;

use serde_json::{Value, json};
use support::{Registry, eventually, registries, unique};

async fn create(reg: &Registry, body: Value) -> String {
    let a = reg.put("/v1/session/create", &body).await;
    assert_eq!(a.status, 200, "{}: create {body}: {}", reg.label, a.text);
    a.json()["ID"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no ID in {}", reg.label, a.text))
        .to_owned()
}

async fn destroy(reg: &Registry, id: &str) {
    let a = reg.put(&format!("/v1/session/destroy/{id}"), &Value::Null).await;
    assert_eq!((a.status, a.text.trim()), (200, "true"), "{}", reg.label);
}

async fn info(reg: &Registry, id: &str) -> Vec<Value> {
    let a = reg.get(&format!("/v1/session/info/{id}")).await;
    assert_eq!(a.status, 200, "{}: {}", reg.label, a.text);
    a.json().as_array().cloned().unwrap_or_default()
}

/// `true` or `false`: the answer of a lock operation.
async fn lock(reg: &Registry, path: &str, value: &str) -> bool {
    let a = reg.put_bytes(path, value.to_owned()).await;
    assert_eq!(a.status, 200, "{}: {path}: {}", reg.label, a.text);
    match a.text.trim() {
        "true" => true,
        "false" => false,
        other => panic!("{}: {path} answered {other:?}", reg.label),
    }
}

async fn holder(reg: &Registry, key: &str) -> (Option<String>, u64) {
    let a = reg.get(&format!("/v1/kv/{key}")).await;
    assert_eq!(a.status, 200, "{}: {}", reg.label, a.text);
    let e = &a.json()[0];
    (
        e["Session"].as_str().map(str::to_owned),
        e["LockIndex"].as_u64().unwrap(),
    )
}

/// A session is created with Consul's defaults (this node, `release`, a
/// 15 s lock-delay in nanoseconds, the node's `serfHealth`), read back by
/// id, in the list and by node, and gone once destroyed (`[]`, not 404).
#[tokio::test]
async fn a_session_is_created_with_consuls_defaults_listed_and_destroyed() {
    for reg in registries().await {
        let node = reg.node_name().await;
        let name = unique("election");
        let id = create(&reg, json!({"Name": name})).await;
        let found = info(&reg, &id).await;
        assert_eq!(found.len(), 1, "{}: {found:?}", reg.label);
        let s = &found[0];
        assert_eq!(s["ID"], id.as_str());
        assert_eq!(s["Name"], name.as_str());
        assert_eq!(s["Node"], node.as_str(), "{}", reg.label);
        assert_eq!(s["Behavior"], "release");
        assert_eq!(s["LockDelay"], 15_000_000_000u64, "{}: nanoseconds", reg.label);
        assert_eq!(s["NodeChecks"], json!(["serfHealth"]), "{}", reg.label);
        assert_eq!(s["TTL"], "");
        let listed = reg.get("/v1/session/list").await.json();
        assert!(
            listed.as_array().unwrap().iter().any(|s| s["ID"] == id.as_str()),
            "{}",
            reg.label
        );
        let on_node = reg.get(&format!("/v1/session/node/{node}")).await.json();
        assert!(
            on_node.as_array().unwrap().iter().any(|s| s["ID"] == id.as_str()),
            "{}",
            reg.label
        );
        destroy(&reg, &id).await;
        assert!(info(&reg, &id).await.is_empty(), "{}", reg.label);
    }
}

/// A TTL session renews (answering itself in a list), a TTL outside
/// 10 s–24 h is refused, and renewing a session that is gone is a 404 that
/// tells its holder to start over.
#[tokio::test]
async fn a_ttl_session_renews_and_a_bad_ttl_or_a_gone_session_is_refused() {
    for reg in registries().await {
        let id = create(&reg, json!({"TTL": "15s", "Behavior": "delete"})).await;
        let a = reg.put(&format!("/v1/session/renew/{id}"), &Value::Null).await;
        assert_eq!(a.status, 200, "{}: {}", reg.label, a.text);
        let renewed = a.json();
        assert_eq!(renewed[0]["ID"], id.as_str(), "{}", reg.label);
        assert_eq!(renewed[0]["TTL"], "15s");
        assert_eq!(renewed[0]["Behavior"], "delete");
        destroy(&reg, &id).await;
        let gone = reg.put(&format!("/v1/session/renew/{id}"), &Value::Null).await;
        assert_eq!(gone.status, 404, "{}: {}", reg.label, gone.text);
        assert!(gone.text.contains("not found"), "{}: {}", reg.label, gone.text);
        let short = reg.put("/v1/session/create", &json!({"TTL": "5s"})).await;
        // Consul answers 500 here (an RPC error); the dev registry 400.
        assert_ne!(short.status, 200, "{}", reg.label);
        assert!(
            short.text.contains("Invalid Session TTL"),
            "{}: {}",
            reg.label,
            short.text
        );
    }
}

/// One holder at a time: a second session's `?acquire` is `false`, only
/// the holder may `?release`, the key shows its `Session`, and `LockIndex`
/// counts each new holder.
#[tokio::test]
async fn a_lock_has_one_holder_and_its_lock_index_counts_new_holders() {
    for reg in registries().await {
        let key = format!("{}/leader", unique("lock"));
        let path = format!("/v1/kv/{key}");
        let s1 = create(&reg, json!({"LockDelay": "0s"})).await;
        let s2 = create(&reg, json!({"LockDelay": "0s"})).await;
        assert!(
            lock(&reg, &format!("{path}?acquire={s1}"), "node-1").await,
            "{}",
            reg.label
        );
        assert!(
            !lock(&reg, &format!("{path}?acquire={s2}"), "node-2").await,
            "{}",
            reg.label
        );
        assert_eq!(holder(&reg, &key).await, (Some(s1.clone()), 1), "{}", reg.label);
        assert!(
            lock(&reg, &format!("{path}?acquire={s1}"), "node-1'").await,
            "{}: the holder again",
            reg.label
        );
        assert_eq!(
            holder(&reg, &key).await.1,
            1,
            "{}: the same holder is no new lock",
            reg.label
        );
        assert!(
            !lock(&reg, &format!("{path}?release={s2}"), "").await,
            "{}: not the holder",
            reg.label
        );
        assert!(
            lock(&reg, &format!("{path}?release={s1}"), "node-1 done").await,
            "{}",
            reg.label
        );
        assert_eq!(holder(&reg, &key).await, (None, 1), "{}", reg.label);
        assert_eq!(
            reg.get(&format!("{path}?raw")).await.text,
            "node-1 done",
            "{}: release writes",
            reg.label
        );
        assert!(
            lock(&reg, &format!("{path}?acquire={s2}"), "node-2").await,
            "{}",
            reg.label
        );
        assert_eq!(holder(&reg, &key).await, (Some(s2.clone()), 2), "{}", reg.label);
        let unknown = reg
            .put_bytes(&format!("{path}?acquire=00000000-0000-4000-8000-000000000000"), "x")
            .await;
        assert_ne!(unknown.status, 200, "{}: a session that does not exist", reg.label);
        destroy(&reg, &s1).await;
        destroy(&reg, &s2).await;
        reg.delete(&path).await;
    }
}

/// When its session ends, a lock is released (`release`) and closed to
/// others for the lock-delay, or its key deleted (`delete`).
#[tokio::test]
async fn a_destroyed_session_releases_or_deletes_its_locks_and_the_lock_delay_holds() {
    for reg in registries().await {
        let p = unique("ended");
        let (released, deleted) = (format!("{p}/released"), format!("{p}/deleted"));
        let holder_id = create(&reg, json!({})).await;
        let ephemeral = create(&reg, json!({"Behavior": "delete"})).await;
        let other = create(&reg, json!({})).await;
        assert!(lock(&reg, &format!("/v1/kv/{released}?acquire={holder_id}"), "x").await);
        assert!(lock(&reg, &format!("/v1/kv/{deleted}?acquire={ephemeral}"), "x").await);
        destroy(&reg, &holder_id).await;
        destroy(&reg, &ephemeral).await;
        assert_eq!(
            holder(&reg, &released).await.0,
            None,
            "{}: released, still there",
            reg.label
        );
        assert_eq!(reg.get(&format!("/v1/kv/{deleted}")).await.status, 404, "{}", reg.label);
        assert!(
            !lock(&reg, &format!("/v1/kv/{released}?acquire={other}"), "y").await,
            "{}: within the 15 s lock-delay",
            reg.label
        );
        destroy(&reg, &other).await;
        reg.delete(&format!("/v1/kv/{p}/?recurse")).await;
    }
}

/// A session tied to a service's check ends when that check turns
/// critical, and its lock is released: the failover of leader election.
#[tokio::test]
async fn a_session_ends_when_a_check_it_names_turns_critical() {
    for reg in registries().await {
        let id = unique("leader");
        let check = format!("service:{id}");
        reg.register(json!({
            "ID": id, "Name": id, "Port": 9300,
            "Check": {"CheckID": check, "TTL": "60s", "Status": "passing"},
        }))
        .await;
        let session = create(&reg, json!({"ServiceChecks": [{"ID": check}], "LockDelay": "0s"})).await;
        assert_eq!(info(&reg, &session).await[0]["ServiceChecks"][0]["ID"], check.as_str());
        let key = format!("{id}/lock");
        assert!(lock(&reg, &format!("/v1/kv/{key}?acquire={session}"), "me").await);
        let a = reg.put(&format!("/v1/agent/check/fail/{check}"), &Value::Null).await;
        assert_eq!(a.status, 200, "{}: {}", reg.label, a.text);
        eventually(
            &format!("{}: the session to end", reg.label),
            reg.patience(),
            || async { info(&reg, &session).await.is_empty().then_some(()) },
        )
        .await;
        assert_eq!(holder(&reg, &key).await.0, None, "{}: the lock is free", reg.label);
        let refused = reg
            .put("/v1/session/create", &json!({"ServiceChecks": [{"ID": check}]}))
            .await;
        assert_ne!(refused.status, 200, "{}: a critical check takes no session", reg.label);
        assert!(refused.text.contains("critical"), "{}: {}", reg.label, refused.text);
        reg.deregister(&id).await;
        reg.delete(&format!("/v1/kv/{key}")).await;
    }
}
