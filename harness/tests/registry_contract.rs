//! The registry contract: what the stack relies on from Consul's HTTP API,
//! exercised through the same client the services use. Runs against the dev
//! registry always, and against real Consul too when `CONSUL_HTTP_ADDR` is set,
//! so the two cannot drift.

use std::collections::BTreeMap;
use std::time::Duration;

use gantry_common::registry::{RegistryClient, ServiceRegistration, TtlState};
use tokio::net::TcpListener;

/// The registries to check: a fresh dev registry, plus real Consul if configured.
async fn registries() -> Vec<(String, RegistryClient)> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gantry_harness::registry::run(listener, std::future::pending()));
    let mut out = vec![("dev registry".to_owned(), RegistryClient::new(&addr.to_string()))];
    if let Ok(consul) = std::env::var("CONSUL_HTTP_ADDR") {
        out.push((format!("consul at {consul}"), RegistryClient::from_env().unwrap()));
    }
    out
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        gantry_common::jwt::random_id(6).to_lowercase().replace(['-', '_'], "x")
    )
}

fn registration(name: &str, id: &str, port: u16, ttl: Duration) -> ServiceRegistration {
    ServiceRegistration {
        id: id.to_owned(),
        name: name.to_owned(),
        address: "127.0.0.1".to_owned(),
        port,
        tags: vec!["contract".to_owned()],
        meta: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        ttl,
        deregister_critical_after: Duration::from_secs(90),
    }
}

#[tokio::test]
async fn a_ttl_service_is_passing_only_after_its_check_passes() {
    for (label, client) in registries().await {
        let name = unique("svc");
        let reg = registration(&name, &format!("{name}-1"), 9001, Duration::from_secs(30));
        client.register(&reg).await.unwrap();

        let all = client.health_service(&name, false, None, Duration::ZERO).await.unwrap();
        assert_eq!(all.value.len(), 1, "{label}");
        assert!(!all.value[0].passing, "{label}: TTL checks start critical");
        assert!(all.index >= 1, "{label}: X-Consul-Index is at least 1");
        let passing = client.health_service(&name, true, None, Duration::ZERO).await.unwrap();
        assert!(passing.value.is_empty(), "{label}");

        client.update_ttl(&reg.check_id(), TtlState::Pass, "ok").await.unwrap();
        let passing = client.health_service(&name, true, None, Duration::ZERO).await.unwrap();
        assert_eq!(passing.value.len(), 1, "{label}");
        let i = &passing.value[0];
        assert_eq!(
            (i.id.as_str(), i.address.as_str(), i.port),
            (reg.id.as_str(), "127.0.0.1", 9001),
            "{label}"
        );
        assert_eq!(i.tags, vec!["contract".to_owned()], "{label}");
        assert_eq!(i.meta.get("k").map(String::as_str), Some("v"), "{label}");

        client.update_ttl(&reg.check_id(), TtlState::Warn, "meh").await.unwrap();
        let passing = client.health_service(&name, true, None, Duration::ZERO).await.unwrap();
        assert!(passing.value.is_empty(), "{label}: a warning is not passing");

        client.deregister(&reg.id).await.unwrap();
        let all = client.health_service(&name, false, None, Duration::ZERO).await.unwrap();
        assert!(all.value.is_empty(), "{label}");
    }
}

#[tokio::test]
async fn an_expired_ttl_drops_out_of_passing() {
    for (label, client) in registries().await {
        let name = unique("ttl");
        let reg = registration(&name, &format!("{name}-1"), 9002, Duration::from_secs(1));
        client.register(&reg).await.unwrap();
        client.update_ttl(&reg.check_id(), TtlState::Pass, "").await.unwrap();
        let first = client.health_service(&name, true, None, Duration::ZERO).await.unwrap();
        assert_eq!(first.value.len(), 1, "{label}");
        // No more heartbeats: a blocking query must wake when the TTL runs out.
        let next = client
            .health_service(&name, true, Some(first.index), Duration::from_secs(10))
            .await
            .unwrap();
        assert!(next.index > first.index, "{label}: the index moved");
        assert!(next.value.is_empty(), "{label}: the expired instance left ?passing");
        client.deregister(&reg.id).await.unwrap();
    }
}

#[tokio::test]
async fn a_blocking_query_wakes_on_change_and_times_out_without_one() {
    for (label, client) in registries().await {
        let name = unique("blk");
        let a = registration(&name, &format!("{name}-a"), 9003, Duration::from_secs(30));
        client.register(&a).await.unwrap();
        client.update_ttl(&a.check_id(), TtlState::Pass, "").await.unwrap();
        let first = client.health_service(&name, true, None, Duration::ZERO).await.unwrap();

        // Nothing changes: the query returns after `wait` with the same index.
        let idle = client
            .health_service(&name, true, Some(first.index), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(idle.index, first.index, "{label}");
        assert_eq!(idle.value.len(), 1, "{label}");

        // A second instance arrives while a query blocks: it wakes with both.
        let waiter = {
            let client = client.clone();
            let name = name.clone();
            tokio::spawn(async move {
                client
                    .health_service(&name, true, Some(first.index), Duration::from_secs(20))
                    .await
            })
        };
        let b = registration(&name, &format!("{name}-b"), 9004, Duration::from_secs(30));
        client.register(&b).await.unwrap();
        client.update_ttl(&b.check_id(), TtlState::Pass, "").await.unwrap();
        let mut woke = waiter.await.unwrap().unwrap();
        // Consul may wake on the registration (b still critical) before the pass.
        while woke.value.len() < 2 {
            woke = client
                .health_service(&name, true, Some(woke.index), Duration::from_secs(20))
                .await
                .unwrap();
        }
        assert!(woke.index > first.index, "{label}");
        for r in [a, b] {
            client.deregister(&r.id).await.unwrap();
        }
    }
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    for (label, client) in registries().await {
        let err = client
            .update_ttl("service:nope-nope", TtlState::Pass, "")
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{label}: {err}");
        let err = client.deregister("nope-nope").await.unwrap_err();
        assert!(err.is_not_found(), "{label}: {err}");
    }
}

/// Consul enforces a one-minute floor on `DeregisterCriticalServiceAfter`,
/// so this runs against the dev registry only.
#[tokio::test]
async fn a_critical_service_is_reaped_after_its_grace() {
    let (_, client) = registries().await.remove(0);
    let name = unique("reap");
    let mut reg = registration(&name, &format!("{name}-1"), 9005, Duration::from_millis(500));
    reg.deregister_critical_after = Duration::from_millis(500);
    client.register(&reg).await.unwrap();
    let mut seen = client.health_service(&name, false, None, Duration::ZERO).await.unwrap();
    assert_eq!(seen.value.len(), 1);
    while !seen.value.is_empty() {
        seen = client
            .health_service(&name, false, Some(seen.index), Duration::from_secs(10))
            .await
            .unwrap();
    }
    let err = client.deregister(&reg.id).await.unwrap_err();
    assert!(err.is_not_found(), "reaped means gone: {err}");
}
