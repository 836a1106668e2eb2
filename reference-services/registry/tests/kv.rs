//! The KV contract, written from Consul's HTTP API documentation
//! (`/v1/kv`) and its `agent/kvs_endpoint.go` and `state/kvs.go`: each test
//! runs against a fresh dev registry, and against real Consul too when
//! `CONSUL_HTTP_ADDR` is set. Keys are unique per run, so a shared Consul
//! is left as found.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Registry, registries, unique};

fn entry(answer: &Value) -> &Value {
    let list = answer.as_array().unwrap_or_else(|| panic!("not a list: {answer}"));
    assert_eq!(list.len(), 1, "one entry for one key: {answer}");
    &list[0]
}

async fn put_text(reg: &Registry, path: &str, text: &str) -> String {
    let a = reg.put_bytes(path, text.to_owned()).await;
    assert_eq!(a.status, 200, "{}: PUT {path}: {}", reg.label, a.text);
    a.text.trim().to_owned()
}

async fn keys(reg: &Registry, query: &str) -> Vec<String> {
    let a = reg.get(&format!("/v1/kv/{query}")).await;
    assert_eq!(a.status, 200, "{}: {query}: {}", reg.label, a.text);
    serde_json::from_str(&a.text).unwrap()
}

/// A value goes in as bytes and comes out as a `DirEntry` (base64 value,
/// flags, indexes, no `Session` while not held), or bare with `?raw`; a key
/// that is not there is a 404 that still carries an index.
#[tokio::test]
async fn a_value_is_read_back_as_written_and_a_missing_key_is_404_with_an_index() {
    for reg in registries().await {
        let key = format!("{}/greeting", unique("kv"));
        assert_eq!(put_text(&reg, &format!("/v1/kv/{key}?flags=42"), "hello").await, "true");
        let a = reg.get(&format!("/v1/kv/{key}")).await;
        assert_eq!(a.status, 200, "{}: {}", reg.label, a.text);
        let body = a.json();
        let e = entry(&body);
        assert_eq!(e["Key"], key.as_str());
        assert_eq!(e["Value"], "aGVsbG8=", "{}: base64 of the bytes", reg.label);
        assert_eq!(e["Flags"], 42);
        assert_eq!(e["LockIndex"], 0);
        assert!(
            e.get("Session").is_none(),
            "{}: no Session while not held: {e}",
            reg.label
        );
        assert_eq!(e["CreateIndex"], e["ModifyIndex"]);
        assert_eq!(
            reg.index(&a),
            e["ModifyIndex"].as_u64().unwrap(),
            "{}: a key's read carries its ModifyIndex",
            reg.label
        );

        let raw = reg.get(&format!("/v1/kv/{key}?raw")).await;
        assert_eq!((raw.status, raw.text.as_str()), (200, "hello"), "{}", reg.label);
        assert!(
            raw.header("Content-Type").is_some_and(|t| t.starts_with("text/plain")),
            "{}: a raw value is never served as a page",
            reg.label
        );

        assert_eq!(put_text(&reg, &format!("/v1/kv/{key}"), "").await, "true");
        let body = reg.get(&format!("/v1/kv/{key}")).await.json();
        assert_eq!(
            entry(&body)["Value"],
            Value::Null,
            "{}: an empty value is null",
            reg.label
        );
        assert_eq!(
            entry(&body)["Flags"],
            0,
            "{}: flags are not kept by a write without them",
            reg.label
        );

        let missing = reg.get(&format!("/v1/kv/{key}-not-there")).await;
        assert_eq!(missing.status, 404, "{}", reg.label);
        assert!(missing.text.is_empty(), "{}: {}", reg.label, missing.text);
        assert!(reg.index(&missing) >= 1);

        assert_eq!(reg.delete(&format!("/v1/kv/{key}")).await.text.trim(), "true");
        assert_eq!(reg.get(&format!("/v1/kv/{key}")).await.status, 404, "{}", reg.label);
    }
}

/// `?cas=0` creates only; `?cas=<ModifyIndex>` writes only over that
/// version; a stale one answers `false` and changes nothing. The same on
/// a delete.
#[tokio::test]
async fn check_and_set_writes_only_over_the_version_read() {
    for reg in registries().await {
        let path = format!("/v1/kv/{}/config", unique("cas"));
        assert_eq!(put_text(&reg, &format!("{path}?cas=0"), "v1").await, "true");
        assert_eq!(
            put_text(&reg, &format!("{path}?cas=0"), "v1'").await,
            "false",
            "{}",
            reg.label
        );
        let read = reg.get(&path).await.json();
        let at = entry(&read)["ModifyIndex"].as_u64().unwrap();
        assert_eq!(put_text(&reg, &format!("{path}?cas={at}"), "v2").await, "true");
        assert_eq!(
            put_text(&reg, &format!("{path}?cas={at}"), "v3").await,
            "false",
            "{}: stale",
            reg.label
        );
        let read = reg.get(&format!("{path}?raw")).await;
        assert_eq!(read.text, "v2", "{}: the stale write changed nothing", reg.label);
        let now = entry(&reg.get(&path).await.json())["ModifyIndex"].as_u64().unwrap();
        assert_eq!(
            reg.delete(&format!("{path}?cas={at}")).await.text.trim(),
            "false",
            "{}",
            reg.label
        );
        assert_eq!(
            reg.delete(&format!("{path}?cas={now}")).await.text.trim(),
            "true",
            "{}",
            reg.label
        );
        assert_eq!(reg.get(&path).await.status, 404);
    }
}

/// `?recurse` lists a prefix in key order, `?keys&separator=/` lists it as
/// folders, `DELETE ?recurse` removes a subtree, and an empty prefix is 404.
#[tokio::test]
async fn a_prefix_is_listed_whole_or_by_folder_and_deleted_as_a_tree() {
    for reg in registries().await {
        let p = unique("tree");
        for k in ["b/d", "a", "b/c", "e/f/g"] {
            put_text(&reg, &format!("/v1/kv/{p}/{k}"), k).await;
        }
        let a = reg.get(&format!("/v1/kv/{p}/?recurse")).await;
        assert_eq!(a.status, 200, "{}: {}", reg.label, a.text);
        let listed: Vec<String> = a
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Key"].as_str().unwrap().to_owned())
            .collect();
        let want: Vec<String> = ["a", "b/c", "b/d", "e/f/g"]
            .iter()
            .map(|k| format!("{p}/{k}"))
            .collect();
        assert_eq!(listed, want, "{}: in key order", reg.label);
        assert_eq!(
            keys(&reg, &format!("{p}/?keys&separator=/")).await,
            [format!("{p}/a"), format!("{p}/b/"), format!("{p}/e/")],
            "{}",
            reg.label
        );
        assert_eq!(keys(&reg, &format!("{p}/?keys")).await, want, "{}", reg.label);
        assert_eq!(reg.delete(&format!("/v1/kv/{p}/b/?recurse")).await.text.trim(), "true");
        assert_eq!(
            keys(&reg, &format!("{p}/?keys")).await,
            [format!("{p}/a"), format!("{p}/e/f/g")],
            "{}",
            reg.label
        );
        reg.delete(&format!("/v1/kv/{p}/?recurse")).await;
        assert_eq!(
            reg.get(&format!("/v1/kv/{p}/?recurse")).await.status,
            404,
            "{}",
            reg.label
        );
        assert_eq!(reg.get(&format!("/v1/kv/{p}/?keys")).await.status, 404, "{}", reg.label);
    }
}

/// A blocking read of a key answers when that key changes, with the new
/// value and index; a read of a prefix wakes for a delete under it (the
/// tombstone's index); a change elsewhere leaves the index where it was.
#[tokio::test]
async fn a_blocking_read_wakes_when_its_key_or_prefix_changes() {
    for reg in registries().await {
        let p = unique("watch");
        let key = format!("/v1/kv/{p}/leader");
        put_text(&reg, &key, "a").await;
        let first = reg.get(&key).await;
        let index = reg.index(&first);

        // A write to another key does not move this key's index.
        put_text(&reg, &format!("/v1/kv/{p}-other"), "x").await;
        let unmoved = reg.get(&format!("{key}?index={index}&wait=300ms")).await;
        assert_eq!(reg.index(&unmoved), index, "{}: another key's write", reg.label);

        let waiter = {
            let (reg, key) = (reg.clone(), key.clone());
            tokio::spawn(async move { reg.get(&format!("{key}?index={index}&wait=30s")).await })
        };
        // The read is parked before the write (or the write is seen at once).
        tokio::task::yield_now().await;
        put_text(&reg, &key, "b").await;
        let woke = tokio::time::timeout(Duration::from_secs(20), waiter)
            .await
            .unwrap_or_else(|_| panic!("{}: the blocked read did not wake", reg.label))
            .unwrap();
        assert!(reg.index(&woke) > index, "{}", reg.label);
        assert_eq!(entry(&woke.json())["Value"], "Yg==", "{}: the new value", reg.label);

        let tree = reg.get(&format!("/v1/kv/{p}/?recurse")).await;
        let tree_index = reg.index(&tree);
        reg.delete(&key).await;
        let after = reg
            .get(&format!("/v1/kv/{p}/?recurse&index={tree_index}&wait=20s"))
            .await;
        assert!(
            reg.index(&after) > tree_index,
            "{}: a delete moves its prefix's index",
            reg.label
        );
        reg.delete(&format!("/v1/kv/{p}-other")).await;
    }
}

/// Consul's limits and refusals: a value over 512 KiB is 413, an empty
/// key 400, two of `cas`/`acquire`/`release` 400, and (with ACLs on) a key
/// read without a token 403.
#[tokio::test]
async fn oversized_values_empty_keys_and_conflicting_flags_are_refused() {
    for reg in registries().await {
        let key = format!("/v1/kv/{}", unique("limits"));
        let big = reg.put_bytes(&key, vec![b'x'; 512 * 1024 + 1]).await;
        assert_eq!(big.status, 413, "{}: {}", reg.label, big.text);
        assert!(big.text.contains("too large"), "{}: {}", reg.label, big.text);
        let fits = reg.put_bytes(&key, vec![b'x'; 512 * 1024]).await;
        assert_eq!(fits.status, 200, "{}: exactly the limit: {}", reg.label, fits.text);

        let empty = reg.put_bytes("/v1/kv/", "v").await;
        assert_eq!(empty.status, 400, "{}", reg.label);
        assert!(empty.text.contains("Missing key name"), "{}: {}", reg.label, empty.text);

        let both = reg.put_bytes(&format!("{key}?cas=0&release=x"), "v").await;
        assert_eq!(both.status, 400, "{}", reg.label);
        assert!(both.text.contains("Conflicting flags"), "{}: {}", reg.label, both.text);

        if reg.token.is_some() {
            let anonymous = reg.get_anonymous(&key).await;
            assert_eq!(anonymous.status, 403, "{}: {}", reg.label, anonymous.text);
        }
        reg.delete(&key).await;
    }
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// `/v1/txn` applies KV operations all or nothing (Consul's
/// `txn_endpoint.go`): on success 200 with a result per read and write
/// (writes without their value); when any operation fails, 409 naming
/// each failure by position, and none of its writes is kept.
#[tokio::test]
async fn a_transaction_is_all_or_nothing() {
    for reg in registries().await {
        let p = unique("txn");
        let (a, b) = (format!("{p}/a"), format!("{p}/b"));
        let ok = reg
            .put(
                "/v1/txn",
                &serde_json::json!([
                    {"KV": {"Verb": "set", "Key": a, "Value": b64("1")}},
                    {"KV": {"Verb": "set", "Key": b, "Value": b64("2"), "Flags": 7}},
                    {"KV": {"Verb": "get", "Key": a}},
                ]),
            )
            .await;
        assert_eq!(ok.status, 200, "{}: {}", reg.label, ok.text);
        let body = ok.json();
        let results = body["Results"].as_array().unwrap();
        assert_eq!(results.len(), 3, "{}: {body}", reg.label);
        assert_eq!(
            results[0]["KV"]["Value"],
            Value::Null,
            "{}: a write's result has no value",
            reg.label
        );
        assert_eq!(results[1]["KV"]["Flags"], 7);
        assert_eq!(
            results[2]["KV"]["Value"],
            b64("1").as_str(),
            "{}: a read sees the write before it",
            reg.label
        );
        assert_eq!(
            results[0]["KV"]["ModifyIndex"], results[1]["KV"]["ModifyIndex"],
            "{}: one index for the transaction",
            reg.label
        );
        let at = results[0]["KV"]["ModifyIndex"].as_u64().unwrap();

        let failed = reg
            .put(
                "/v1/txn",
                &serde_json::json!([
                    {"KV": {"Verb": "set", "Key": a, "Value": b64("changed")}},
                    {"KV": {"Verb": "cas", "Key": b, "Value": b64("x"), "Index": at + 1000}},
                    {"KV": {"Verb": "check-not-exists", "Key": a}},
                ]),
            )
            .await;
        assert_eq!(failed.status, 409, "{}: {}", reg.label, failed.text);
        let errors = failed.json()["Errors"].as_array().cloned().unwrap();
        let positions: Vec<u64> = errors.iter().map(|e| e["OpIndex"].as_u64().unwrap()).collect();
        assert_eq!(positions, [1, 2], "{}: {errors:?}", reg.label);
        assert!(
            errors[0]["What"].as_str().unwrap().contains("stale"),
            "{}: {errors:?}",
            reg.label
        );
        assert_eq!(
            reg.get(&format!("/v1/kv/{a}?raw")).await.text,
            "1",
            "{}: the failed transaction's set was not kept",
            reg.label
        );

        let cleanup = reg
            .put(
                "/v1/txn",
                &serde_json::json!([{"KV": {"Verb": "delete-tree", "Key": format!("{p}/")}}]),
            )
            .await;
        assert_eq!(cleanup.status, 200, "{}: {}", reg.label, cleanup.text);
        assert_eq!(reg.get(&format!("/v1/kv/{a}")).await.status, 404);
    }
}
