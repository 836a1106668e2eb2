//! Trust: the registry's ACL token and Redis's password, seen from outside.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cucumber::{given, then, when};
use gantry_common::registry::{RegistryClient, ServiceRegistration, TtlState};
use redis::IntoConnectionInfo as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::world::GantryWorld;

/// A server an attacker would advertise: it counts connections and answers
/// like an upstream would, so traffic sent to it would not go unnoticed.
struct Rogue {
    port: u16,
    connections: Arc<AtomicUsize>,
    /// How the registry answered each attempt to register it: status, body.
    registrations: Vec<(u16, String)>,
}

/// Rogue servers by the registry address of their scenario's fresh stack
/// (one per scenario; the world has no field for it).
static ROGUES: Mutex<Option<HashMap<String, Rogue>>> = Mutex::new(None);

fn with_rogue<T>(w: &mut GantryWorld, f: impl FnOnce(&mut Rogue) -> T) -> T {
    let key = w.stack().registry_addr().to_owned();
    let mut rogues = ROGUES.lock().unwrap_or_else(|p| p.into_inner());
    let rogue = rogues
        .as_mut()
        .and_then(|r| r.get_mut(&key))
        .expect("a step must start the rogue server first");
    f(rogue)
}

#[given("a rogue server that counts the connections it receives")]
async fn a_rogue_server(w: &mut GantryWorld) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the rogue server");
    let port = listener.local_addr().expect("its address").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let body = r#"{"id":"rogue","username":"rogue","display_name":"rogue"}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-instance-id: rogue\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(format!("{head}{body}").as_bytes()).await;
            });
        }
    });
    let key = w.stack().registry_addr().to_owned();
    ROGUES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(
            key,
            Rogue {
                port,
                connections,
                registrations: Vec::new(),
            },
        );
}

/// A client of the stack's registry that holds no token.
fn outsider(w: &mut GantryWorld) -> RegistryClient {
    RegistryClient::new(w.stack().registry_addr())
}

#[when(regex = r#"^someone without the registry token registers the rogue server as "([\w-]+)" of "(\w+)"$"#)]
async fn rogue_registers(w: &mut GantryWorld, id: String, service: String) {
    let port = with_rogue(w, |r| r.port);
    let client = outsider(w);
    let reg = ServiceRegistration {
        id: id.clone(),
        name: service,
        address: "127.0.0.1".into(),
        port,
        tags: vec![],
        meta: Default::default(),
        ttl: Duration::from_secs(600),
        deregister_critical_after: Duration::from_secs(600),
    };
    // What an attacker would do: register, then keep the check passing.
    let result = match client.register(&reg).await {
        Ok(()) => client.update_ttl(&reg.check_id(), TtlState::Pass, "").await,
        Err(e) => Err(e),
    };
    let (status, body) = match result {
        Ok(()) => (200, String::new()),
        Err(gantry_common::registry::RegistryError::Status { status, body, .. }) => (status, body),
        Err(e) => panic!("the registry did not answer the registration of {id}: {e}"),
    };
    with_rogue(w, |r| r.registrations.push((status, body)));
}

#[then(regex = r#"^the registry refused each of them with (\d+) "([^"]+)"$"#)]
async fn registry_refused(w: &mut GantryWorld, status: u16, text: String) {
    let registrations = with_rogue(w, |r| r.registrations.clone());
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
    let listed: Vec<(String, u16)> = found.value.iter().map(|i| (i.id.clone(), i.port)).collect();
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
    let n = with_rogue(w, |r| r.connections.load(Ordering::SeqCst));
    assert_eq!(n, 0, "the rogue server received {n} connections");
}

/// `REDIS_URL` of the stack, with its password replaced by `password`.
fn redis_with_password(w: &GantryWorld, password: Option<&str>) -> redis::Client {
    let url = w.target().redis_url.clone().expect("this step needs Redis access");
    let mut info = url.as_str().into_connection_info().expect("REDIS_URL parses");
    assert!(info.redis.password.is_some(), "REDIS_URL carries no password: {url}");
    info.redis.password = password.map(str::to_owned);
    redis::Client::open(info).expect("a Redis client")
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
