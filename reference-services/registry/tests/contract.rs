//! The registry contract: what the stack relies on from Consul's HTTP API,
//! exercised through the same client the services use. Runs against the dev
//! registry always (with ACLs on, as the harness runs it), and against real
//! Consul too when `CONSUL_HTTP_ADDR` is set (with `CONSUL_HTTP_TOKEN` when its
//! ACLs are on), so the two cannot drift.

use std::collections::BTreeMap;
use std::time::Duration;

use gantry_common::registration::Registration;
use gantry_common::registry::{AgentRegistration, RegistryClient, ServiceRecord, TtlState};
use gantry_registry::Options;
use tokio::net::TcpListener;

/// The registries to check: a fresh dev registry with ACLs on and a client
/// holding its token, plus real Consul if configured.
async fn registries() -> Vec<(String, RegistryClient)> {
    let dev = dev_registry(Some(TOKEN)).await;
    let mut out = vec![(
        "dev registry".to_owned(),
        RegistryClient::new(&dev).with_token(Some(TOKEN.to_owned())),
    )];
    if let Ok(consul) = std::env::var("CONSUL_HTTP_ADDR") {
        out.push((format!("consul at {consul}"), RegistryClient::from_env().unwrap()));
    }
    out
}

/// The dev registry's management token in these tests.
const TOKEN: &str = "6c1b4d7e-2f0a-4e8b-9c3d-5a6f7e8d9c0b";

/// A dev registry on a free port, ACLs on when `token` is given; its `host:port`.
async fn dev_registry(token: Option<&str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = Options {
        acl_token: token.map(str::to_owned),
        ..Options::default()
    };
    tokio::spawn(gantry_registry::run(listener, options, std::future::pending()));
    addr.to_string()
}

/// A registry whose ACLs are on: a client with the management token, its
/// base URL and the token.
struct Guarded {
    label: String,
    client: RegistryClient,
    base: String,
    token: String,
}

/// The registries whose ACLs these tests can check: the dev registry with a
/// token, and real Consul when `CONSUL_HTTP_TOKEN` is set and its ACLs are on
/// (a Consul without ACLs is skipped, saying so).
async fn guarded_registries() -> Vec<Guarded> {
    let dev = dev_registry(Some(TOKEN)).await;
    let mut out = vec![Guarded {
        label: "dev registry".into(),
        client: RegistryClient::new(&dev).with_token(Some(TOKEN.into())),
        base: format!("http://{dev}"),
        token: TOKEN.into(),
    }];
    if let Ok(consul) = std::env::var("CONSUL_HTTP_ADDR") {
        let Some(token) = std::env::var("CONSUL_HTTP_TOKEN").ok().filter(|t| !t.is_empty()) else {
            eprintln!("SKIPPED the ACL contract for consul at {consul}: CONSUL_HTTP_TOKEN is not set");
            return out;
        };
        let client = RegistryClient::from_env().unwrap();
        let base = client.base_url().to_owned();
        // Are its ACLs on? An anonymous registration says.
        let probe = unique("aclprobe");
        let (status, _) = put(&base, "/v1/agent/service/register", &json_registration(&probe, 1), &[]).await;
        if status == 200 {
            client.deregister(&probe).await.unwrap();
            eprintln!("SKIPPED the ACL contract for consul at {consul}: its ACLs are off (anonymous writes succeed)");
        } else {
            out.push(Guarded {
                label: format!("consul at {consul}"),
                client,
                base,
                token,
            });
        }
    }
    out
}

/// `PUT base+path` with `body` and `headers`: `(status, body)`.
async fn put(base: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .put(format!("{base}{path}"))
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A registration body as Consul's agent API takes it, with a 30 s TTL check.
fn json_registration(id: &str, port: u16) -> String {
    serde_json::json!({
        "ID": id,
        "Name": id,
        "Address": "127.0.0.1",
        "Port": port,
        "Check": {"CheckID": format!("service:{id}"), "TTL": "30s"},
    })
    .to_string()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        gantry_common::jwt::random_id(6).to_lowercase().replace(['-', '_'], "x")
    )
}

fn registration(name: &str, id: &str, port: u16, ttl: Duration) -> AgentRegistration {
    let record = ServiceRecord {
        id: id.to_owned(),
        name: name.to_owned(),
        address: "127.0.0.1".to_owned(),
        port,
        tags: vec!["contract".to_owned()],
        meta: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
    };
    AgentRegistration::with_ttl(record, ttl, Duration::from_secs(90))
}

#[tokio::test]
async fn a_ttl_service_is_passing_only_after_its_check_passes() {
    for (label, client) in registries().await {
        let name = unique("svc");
        let reg = registration(&name, &format!("{name}-1"), 9001, Duration::from_secs(30));
        client.register_agent(&reg).await.unwrap();

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
            (i.service.id.as_str(), i.service.address.as_str(), i.service.port),
            (reg.service.id.as_str(), "127.0.0.1", 9001),
            "{label}"
        );
        assert_eq!(i.service.tags, vec!["contract".to_owned()], "{label}");
        assert_eq!(i.service.meta.get("k").map(String::as_str), Some("v"), "{label}");

        client.update_ttl(&reg.check_id(), TtlState::Warn, "meh").await.unwrap();
        let passing = client.health_service(&name, true, None, Duration::ZERO).await.unwrap();
        assert!(passing.value.is_empty(), "{label}: a warning is not passing");

        client.deregister(&reg.service.id).await.unwrap();
        let all = client.health_service(&name, false, None, Duration::ZERO).await.unwrap();
        assert!(all.value.is_empty(), "{label}");
    }
}

#[tokio::test]
async fn an_expired_ttl_drops_out_of_passing() {
    for (label, client) in registries().await {
        let name = unique("ttl");
        let reg = registration(&name, &format!("{name}-1"), 9002, Duration::from_secs(1));
        client.register_agent(&reg).await.unwrap();
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
        client.deregister(&reg.service.id).await.unwrap();
    }
}

#[tokio::test]
async fn a_blocking_query_wakes_on_change_and_times_out_without_one() {
    for (label, client) in registries().await {
        let name = unique("blk");
        let a = registration(&name, &format!("{name}-a"), 9003, Duration::from_secs(30));
        client.register_agent(&a).await.unwrap();
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
        client.register_agent(&b).await.unwrap();
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
            client.deregister(&r.service.id).await.unwrap();
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
    client.register_agent(&reg).await.unwrap();
    let mut seen = client.health_service(&name, false, None, Duration::ZERO).await.unwrap();
    assert_eq!(seen.value.len(), 1);
    while !seen.value.is_empty() {
        seen = client
            .health_service(&name, false, Some(seen.index), Duration::from_secs(10))
            .await
            .unwrap();
    }
    let err = client.deregister(&reg.service.id).await.unwrap_err();
    assert!(err.is_not_found(), "reaped means gone: {err}");
}

/// With ACLs on, nothing changes the catalog without the token: not a new
/// service, not a re-registration of an existing ID at another address, not
/// its check, not its removal. An unknown token is refused outright.
#[tokio::test]
async fn writes_without_the_token_are_refused_with_403() {
    for Guarded {
        label, client, base, ..
    } in guarded_registries().await
    {
        let name = unique("acl");
        let reg = registration(&name, &format!("{name}-1"), 9101, Duration::from_secs(30));
        client.register_agent(&reg).await.unwrap();
        client.update_ttl(&reg.check_id(), TtlState::Pass, "ok").await.unwrap();

        let anonymous = RegistryClient::new(&base);
        let mut rogue = reg.clone();
        rogue.service.port = 6666;
        let newcomer = registration(&name, &format!("{name}-rogue"), 6666, Duration::from_secs(30));
        for (what, result) in [
            (
                "re-registering the ID elsewhere",
                anonymous.register_agent(&rogue).await,
            ),
            ("registering a new ID", anonymous.register_agent(&newcomer).await),
            (
                "failing its check",
                anonymous.update_ttl(&reg.check_id(), TtlState::Fail, "").await,
            ),
            (
                "warning its check",
                anonymous.update_ttl(&reg.check_id(), TtlState::Warn, "").await,
            ),
            ("deregistering it", anonymous.deregister(&reg.service.id).await),
        ] {
            let err = result.expect_err(&format!("{label}: {what} without a token must fail"));
            let text = err.to_string();
            assert!(
                text.contains("403") && text.contains("Permission denied"),
                "{label}: {what}: {text}"
            );
        }
        let check = format!("/v1/agent/check/update/service:{}", reg.service.id);
        let (status, body) = put(&base, &check, r#"{"Status":"critical"}"#, &[]).await;
        assert_eq!(status, 403, "{label}: check update: {body}");

        let wrong = RegistryClient::new(&base).with_token(Some("00000000-1111-4222-8333-444444444444".into()));
        let err = wrong.register_agent(&rogue).await.unwrap_err().to_string();
        assert!(err.contains("403") && err.contains("ACL not found"), "{label}: {err}");

        // Nothing moved: one instance, where it registered, still passing.
        let seen = client.health_service(&name, true, None, Duration::ZERO).await.unwrap();
        let found: Vec<_> = seen
            .value
            .iter()
            .map(|i| (i.service.id.as_str(), i.service.port))
            .collect();
        assert_eq!(found, [(reg.service.id.as_str(), 9101)], "{label}");
        client.deregister(&reg.service.id).await.unwrap();
    }
}

/// The token is accepted in each place Consul reads it from.
#[tokio::test]
async fn the_token_is_taken_from_the_header_the_bearer_scheme_or_the_query() {
    for Guarded {
        label,
        client,
        base,
        token,
    } in guarded_registries().await
    {
        let id = unique("tok");
        let body = json_registration(&id, 9102);
        let bearer = format!("Bearer {token}");
        let path = "/v1/agent/service/register";
        for (how, path, headers) in [
            (
                "X-Consul-Token",
                path.to_owned(),
                vec![("X-Consul-Token", token.as_str())],
            ),
            (
                "Authorization: Bearer",
                path.to_owned(),
                vec![("Authorization", bearer.as_str())],
            ),
            ("?token=", format!("{path}?token={token}"), vec![]),
        ] {
            let (status, text) = put(&base, &path, &body, &headers).await;
            assert_eq!(status, 200, "{label}: token by {how}: {text}");
        }
        client.deregister(&id).await.unwrap();
    }
}

/// Reads without the token see nothing (ACL default policy deny), and are
/// told so; the leader is public, as in Consul.
#[tokio::test]
async fn reads_without_the_token_see_nothing() {
    for Guarded {
        label, client, base, ..
    } in guarded_registries().await
    {
        let name = unique("hidden");
        let reg = registration(&name, &format!("{name}-1"), 9103, Duration::from_secs(30));
        client.register_agent(&reg).await.unwrap();
        client.update_ttl(&reg.check_id(), TtlState::Pass, "ok").await.unwrap();
        let seen = client.health_service(&name, false, None, Duration::ZERO).await.unwrap();
        assert_eq!(seen.value.len(), 1, "{label}: the token sees it");

        let anonymous = RegistryClient::new(&base);
        let hidden = anonymous
            .health_service(&name, false, None, Duration::ZERO)
            .await
            .unwrap();
        assert!(hidden.value.is_empty(), "{label}: {:?}", hidden.value);
        let resp = reqwest::get(format!("{base}/v1/health/service/{name}")).await.unwrap();
        assert_eq!(
            resp.headers()
                .get("X-Consul-Results-Filtered-By-ACLs")
                .and_then(|v| v.to_str().ok()),
            Some("true"),
            "{label}"
        );
        // Every read: answered, with nothing of the service in it, and (in
        // the dev registry, whose every read filters alike) saying so.
        for path in [
            format!("/v1/health/service/{name}?passing"),
            format!("/v1/catalog/service/{name}"),
            "/v1/catalog/services".to_owned(),
            "/v1/agent/services".to_owned(),
            "/v1/agent/checks".to_owned(),
        ] {
            let resp = reqwest::get(format!("{base}{path}")).await.unwrap();
            assert_eq!(resp.status(), 200, "{label}: {path}");
            let filtered = resp.headers().get("X-Consul-Results-Filtered-By-ACLs").cloned();
            let body = resp.text().await.unwrap();
            assert!(!body.contains(&name), "{label}: {path} shows it: {body}");
            if label == "dev registry" {
                assert_eq!(
                    filtered.as_ref().and_then(|v| v.to_str().ok()),
                    Some("true"),
                    "{label}: {path}"
                );
            }
        }
        assert!(anonymous.leader().await.is_ok(), "{label}: the leader needs no token");
        client.deregister(&reg.service.id).await.unwrap();
    }
}

/// Without a token configured the dev registry is open, as Consul is with
/// ACLs off: the harness never runs it so, but a bare `gantry registry` does.
#[tokio::test]
async fn without_a_configured_token_the_dev_registry_is_open() {
    let addr = dev_registry(None).await;
    let anonymous = RegistryClient::new(&addr);
    let name = unique("open");
    let reg = registration(&name, &format!("{name}-1"), 9104, Duration::from_secs(30));
    anonymous.register_agent(&reg).await.unwrap();
    let seen = anonymous
        .health_service(&name, false, None, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(seen.value.len(), 1);
}

/// A duration beyond what Consul accepts (Go's ~292 years) is refused with
/// 400 and a reason, and TTLs still expire. (The dev registry used to accept
/// it; the grace then overflowed `Instant` in its reaper, which died, and no
/// TTL ever expired again.)
#[tokio::test]
async fn a_duration_too_large_is_refused_with_400_and_ttls_still_expire() {
    for (label, client) in registries().await {
        let base = client.base_url().to_owned();
        let token = if label == "dev registry" {
            TOKEN.to_owned()
        } else {
            std::env::var("CONSUL_HTTP_TOKEN").unwrap_or_default()
        };
        let headers = [("X-Consul-Token", token.as_str())];
        let name = unique("huge");
        // 3,000,000 h (342 years) is past Go's limit yet a deadline `Instant`
        // holds; 10^19 s is past both.
        for (field, check) in [
            (
                "DeregisterCriticalServiceAfter",
                serde_json::json!({"TTL": "10s", "DeregisterCriticalServiceAfter": "9999999999999999999s"}),
            ),
            (
                "DeregisterCriticalServiceAfter",
                serde_json::json!({"TTL": "10s", "DeregisterCriticalServiceAfter": "3000000h"}),
            ),
            ("TTL", serde_json::json!({"TTL": "9999999999999999999s"})),
            ("TTL", serde_json::json!({"TTL": "3000000h"})),
        ] {
            let body = serde_json::json!({"ID": name, "Name": name, "Check": check}).to_string();
            let (status, text) = put(&base, "/v1/agent/service/register", &body, &headers).await;
            assert_eq!(status, 400, "{label}: {field}: {text}");
            if label == "dev registry" {
                assert!(
                    text.contains(field) && text.contains("out of range"),
                    "{label}: the reason names the field: {text}"
                );
            }
        }
        let all = client.health_service(&name, false, None, Duration::ZERO).await.unwrap();
        assert!(all.value.is_empty(), "{label}: nothing was registered");

        // The reaper is alive: a TTL still runs out and wakes a blocking query.
        let reg = registration(&name, &format!("{name}-1"), 9105, Duration::from_secs(1));
        client.register_agent(&reg).await.unwrap();
        client.update_ttl(&reg.check_id(), TtlState::Pass, "").await.unwrap();
        let mut seen = client.health_service(&name, true, None, Duration::ZERO).await.unwrap();
        assert_eq!(seen.value.len(), 1, "{label}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !seen.value.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{label}: a 1 s TTL did not expire within 10 s"
            );
            seen = client
                .health_service(&name, true, Some(seen.index), Duration::from_secs(2))
                .await
                .unwrap();
        }
        client.deregister(&reg.service.id).await.unwrap();
    }
}

/// A TCP proxy to `target` that holds each chunk it forwards for a random
/// 0–20 ms, so requests in flight on different connections land in any
/// order, as on a busy network. Its `host:port`.
async fn jittery_proxy(target: String) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf) {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..20))).await;
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                continue;
            };
            let ((cr, cw), (sr, sw)) = (client.into_split(), server.into_split());
            tokio::spawn(pump(cr, sw));
            tokio::spawn(pump(sr, cw));
        }
    });
    addr
}

/// A [`Registration`] keeps reporting the state its check was last set to:
/// its heartbeat neither passes a check the service failed, nor (racing a
/// change) lands after it with the state from before, however the network
/// orders their requests.
#[tokio::test]
async fn a_registration_reports_the_check_state_it_was_set_to() {
    let dev = dev_registry(Some(TOKEN)).await;
    let client = RegistryClient::new(&dev).with_token(Some(TOKEN.to_owned()));
    let through_proxy = RegistryClient::new(&jittery_proxy(dev).await).with_token(Some(TOKEN.to_owned()));
    let name = unique("setchk");
    // A heartbeat every 100 ms, the fastest a Registration beats.
    let reg = registration(&name, &format!("{name}-1"), 9106, Duration::from_millis(300));
    let registration = Registration::start(through_proxy, reg).await.unwrap();
    let passing = || async {
        !client
            .health_service(&name, true, None, Duration::ZERO)
            .await
            .unwrap()
            .value
            .is_empty()
    };
    assert!(passing().await, "a started registration passes");

    // Failed, it stays failed across several heartbeats.
    registration.set_check(TtlState::Fail).await.unwrap();
    let watch_until = tokio::time::Instant::now() + Duration::from_millis(500);
    while tokio::time::Instant::now() < watch_until {
        assert!(!passing().await, "a heartbeat passed a failed check");
    }

    // Flipped back and forth while the heartbeat runs, the registry holds
    // each state as soon as it was set.
    let flip_until = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut state = TtlState::Pass;
    while tokio::time::Instant::now() < flip_until {
        registration.set_check(state).await.unwrap();
        assert_eq!(
            passing().await,
            state == TtlState::Pass,
            "a heartbeat undid set_check({state:?})"
        );
        state = if state == TtlState::Pass {
            TtlState::Fail
        } else {
            TtlState::Pass
        };
    }
    registration.deregister().await.unwrap();
}

/// `?tag=` on `/v1/health/service` and `/v1/catalog/service`, any number of
/// times: only instances carrying every tag given (Consul's HTTP API docs,
/// "Filtering by tag"; `agent/health_endpoint.go` reads every `tag` value).
/// Traefik's `traefik.enable=true` and consul-template's `tag.name` rely on it.
#[tokio::test]
async fn a_tag_filter_keeps_the_instances_carrying_every_tag_given() {
    for g in guarded_registries().await {
        let name = unique("tagged");
        for (n, tags) in [(1, vec!["v1", "blue"]), (2, vec!["v1"]), (3, vec!["v2", "blue"])] {
            let mut reg = registration(&name, &format!("{name}-{n}"), 9100 + n, Duration::from_secs(30));
            reg.service.tags = tags.into_iter().map(str::to_owned).collect();
            g.client.register_agent(&reg).await.unwrap();
        }
        let ids = |body: &str, key: &str| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
            let mut ids: Vec<String> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|e| match key {
                    "health" => e["Service"]["ID"].as_str().unwrap().to_owned(),
                    _ => e["ServiceID"].as_str().unwrap().to_owned(),
                })
                .collect();
            ids.sort();
            ids
        };
        for (path, key) in [("health/service", "health"), ("catalog/service", "catalog")] {
            let get = |query: &str| {
                let url = format!("{}/v1/{path}/{name}{query}", g.base);
                let token = g.token.clone();
                async move {
                    let resp = reqwest::Client::new()
                        .get(url)
                        .header("X-Consul-Token", token)
                        .send()
                        .await
                        .unwrap();
                    (resp.status().as_u16(), resp.text().await.unwrap())
                }
            };
            let label = format!("{}: {path}", g.label);
            let (status, body) = get("?tag=blue").await;
            assert_eq!(status, 200, "{label}: {body}");
            assert_eq!(ids(&body, key), [format!("{name}-1"), format!("{name}-3")], "{label}");
            let (_, body) = get("?tag=blue&tag=v1").await;
            assert_eq!(ids(&body, key), [format!("{name}-1")], "{label}: every tag given");
            let (_, body) = get("?tag=v3").await;
            assert!(ids(&body, key).is_empty(), "{label}: no instance carries it");
            let (_, body) = get("").await;
            assert_eq!(ids(&body, key).len(), 3, "{label}: without a tag, all");
        }
        for n in 1..=3 {
            g.client.deregister(&format!("{name}-{n}")).await.unwrap();
        }
    }
}
