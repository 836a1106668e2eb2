//! Trust: the registry's ACL token and Redis's password, seen from outside.

use std::time::Duration;

use cucumber::{given, then, when};
use gantry_common::registry::{AgentRegistration, RegistryClient, ServiceRecord, TtlState};
use gantry_harness::GantryStack as _;
use gantry_harness::drive::echo::Echo;
use redis::IntoConnectionInfo as _;

use crate::world::{GantryWorld, Rogue};

#[given("a rogue server that counts the connections it receives")]
async fn a_rogue_server(w: &mut GantryWorld) {
    let server = Echo::start("rogue").await.expect("starting the rogue server");
    w.rogue = Some(Rogue {
        server,
        registrations: Vec::new(),
    });
}

fn rogue(w: &mut GantryWorld) -> &mut Rogue {
    w.rogue.as_mut().expect("a step must start the rogue server first")
}

/// A client of the stack's registry that holds no token.
fn outsider(w: &mut GantryWorld) -> RegistryClient {
    RegistryClient::new(w.stack().registry_addr())
}

#[when(regex = r#"^someone without the registry token registers the rogue server as "([\w-]+)" of "(\w+)"$"#)]
async fn rogue_registers(w: &mut GantryWorld, id: String, service: String) {
    let port = rogue(w).server.addr().port();
    let client = outsider(w);
    let record = ServiceRecord {
        id: id.clone(),
        name: service,
        address: "127.0.0.1".into(),
        port,
        ..ServiceRecord::default()
    };
    let reg = AgentRegistration::with_ttl(record, Duration::from_secs(600), Duration::from_secs(600));
    // What an attacker would do: register, then keep the check passing.
    let result = match client.register_agent(&reg).await {
        Ok(()) => client.update_ttl(&reg.check_id(), TtlState::Pass, "").await,
        Err(e) => Err(e),
    };
    let (status, body) = match result {
        Ok(()) => (200, String::new()),
        Err(gantry_common::registry::RegistryError::Status { status, body, .. }) => (status, body),
        Err(e) => panic!("the registry did not answer the registration of {id}: {e}"),
    };
    rogue(w).registrations.push((status, body));
}

#[then(regex = r#"^the registry refused each of them with (\d+) "([^"]+)"$"#)]
async fn registry_refused(w: &mut GantryWorld, status: u16, text: String) {
    let registrations = rogue(w).registrations.clone();
    assert!(!registrations.is_empty(), "no registration was tried");
    for (got, body) in registrations {
        assert_eq!(got, status, "the registry answered {got}: {body:?}");
        assert!(body.contains(&text), "{body:?}");
    }
}

#[then(regex = r#"^the registry still lists only the real "([\w-]+)" for "(\w+)"$"#)]
async fn still_lists_the_real_one(w: &mut GantryWorld, id: String, service: String) {
    let real_port: u16 = w.stack().user_addrs()[0]
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("user-1's port");
    let found = w
        .stack()
        .registry()
        .health_service(&service, false, None, Duration::ZERO)
        .await
        .expect("the registry answers its token");
    let listed: Vec<(String, u16)> = found
        .value
        .iter()
        .map(|i| (i.service.id.clone(), i.service.port))
        .collect();
    assert_eq!(listed, [(id, real_port)], "the registry lists {listed:?}");
}

#[then(regex = r#"^someone without the registry token sees no instance of "(\w+)"$"#)]
async fn outsider_sees_nothing(w: &mut GantryWorld, service: String) {
    let found = outsider(w)
        .health_service(&service, false, None, Duration::ZERO)
        .await
        .expect("the registry answers reads without a token, filtered");
    assert!(found.value.is_empty(), "an outsider sees {:?}", found.value);
}

#[then("the rogue server received no connection")]
async fn rogue_untouched(w: &mut GantryWorld) {
    let n = rogue(w).server.connections();
    assert_eq!(n, 0, "the rogue server received {n} connections");
}

/// `REDIS_URL` of the stack, with its password replaced by `password`.
fn redis_with_password(w: &GantryWorld, password: Option<&str>) -> redis::Client {
    let url = w.target().redis_url.clone().expect("this step needs Redis access");
    let info = url.as_str().into_connection_info().expect("REDIS_URL parses");
    assert!(
        info.redis_settings().password().is_some(),
        "REDIS_URL carries no password: {url}"
    );
    // The same database, with `password` or none at all.
    let settings = redis::RedisConnectionInfo::default().set_db(info.redis_settings().db());
    let settings = match password {
        Some(p) => settings.set_password(p),
        None => settings,
    };
    redis::Client::open(info.set_redis_settings(settings)).expect("a Redis client")
}

async fn ping(client: &redis::Client) -> Result<String, String> {
    let mut conn = tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection())
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

#[then("Redis refuses a client without the password or with a wrong one")]
async fn redis_refuses(w: &mut GantryWorld) {
    let none = ping(&redis_with_password(w, None)).await;
    let err = none.expect_err("Redis answered a client without the password");
    assert!(err.contains("NOAUTH"), "{err}");
    let wrong = ping(&redis_with_password(w, Some("not-the-password"))).await;
    let err = wrong.expect_err("Redis answered a client with a wrong password");
    assert!(
        err.contains("WRONGPASS") || err.contains("authentication failed"),
        "{err}"
    );
}

#[then("Redis answers a client with the password from REDIS_URL")]
async fn redis_answers(w: &mut GantryWorld) {
    let url = w.target().redis_url.clone().expect("this step needs Redis access");
    let client = redis::Client::open(url.as_str()).expect("REDIS_URL parses");
    assert_eq!(ping(&client).await.as_deref(), Ok("PONG"));
}
