//! Auth's routes against a real Redis (`redis-server` from PATH, one per
//! test, on a Unix socket): login throttling, the hashing gate and the
//! session lifecycle. The client address is given as the gateway gives it,
//! in `X-Forwarded-For`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use gantry_common::discovery::Discovered;
use gantry_common::jwt::{Claims, now_secs};
use gantry_common::registry::RegistryClient;
use gantry_common::session;
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::config::AuthConfig;
use crate::profiles::Profiles;
use crate::state::AppState;
use crate::{password, routes, validate};

/// A `redis-server` of this test's own, stopped on drop.
struct TestRedis {
    child: Child,
    socket: std::path::PathBuf,
    url: String,
}

impl TestRedis {
    async fn start() -> Self {
        let socket = std::env::temp_dir().join(format!(
            "gantry-auth-{}-{}.sock",
            std::process::id(),
            gantry_common::jwt::random_id(6).replace(['-', '_'], "x")
        ));
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("these tests need redis-server on PATH (as the Cucumber suite does)");
        let url = format!("redis+unix://{}", socket.display());
        let client = redis::Client::open(url.as_str()).expect("a redis URL");
        let mut ready = false;
        for _ in 0..500 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(ready, "redis-server did not answer on {}", socket.display());
        Self { child, socket, url }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Auth's routes served on a local port, as `run` serves them minus the
/// registry.
struct Auth {
    base: String,
    http: reqwest::Client,
    state: Arc<AppState>,
    redis: redis::aio::MultiplexedConnection,
    redis_url: String,
    _redis: TestRedis,
}

/// One answer, read whole.
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    async fn of(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.json().await.unwrap_or(Value::Null);
        Self { status, headers, body }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `SESSION` cookie this answer set.
    fn session(&self) -> String {
        let set = self.header("set-cookie").expect("a Set-Cookie");
        let sid = session::from_cookie_header(set.split(';').next().unwrap()).expect("the SESSION cookie");
        sid.to_owned()
    }

    fn max_age(&self) -> u64 {
        let set = self.header("set-cookie").expect("a Set-Cookie");
        set.split(';')
            .find_map(|p| p.trim().strip_prefix("Max-Age="))
            .and_then(|v| v.parse().ok())
            .expect("a Max-Age")
    }

    fn token(&self) -> String {
        self.body["access_token"].as_str().expect("a token").to_owned()
    }
}

impl Auth {
    async fn start(tune: impl FnOnce(&mut AuthConfig)) -> Self {
        let redis = TestRedis::start().await;
        let mut cfg = AuthConfig::from_env().expect("auth's configuration from the test environment");
        cfg.service.redis_url = redis.url.clone();
        cfg.cookie_secure = false;
        // Long enough that no lockout ends during a test, unless it says so.
        cfg.first_lockout = Duration::from_secs(600);
        tune(&mut cfg);
        // No user service: registration stops at the profile, which no test here needs.
        let (users, watch) = Discovered::watch(RegistryClient::new("127.0.0.1:9"), "user");
        watch.abort();
        let profiles = Profiles::new(users, cfg.jwt.issuer.clone(), cfg.jwt.audience.clone());
        let state = Arc::new(AppState::new(cfg, profiles).await.expect("auth state"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = routes::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let conn = redis::Client::open(redis.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        Self {
            base,
            http: reqwest::Client::new(),
            state,
            redis: conn,
            redis_url: redis.url.clone(),
            _redis: redis,
        }
    }

    /// An account as registration stores it.
    async fn account(&self, name: &str, password: &str) {
        let pw = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || password::hash(&pw)).await.unwrap();
        let record = json!({"id": format!("u_{name}"), "username": name, "hash": hash}).to_string();
        let _: () = self
            .redis
            .clone()
            .set(format!("auth:account:{name}"), record)
            .await
            .unwrap();
    }

    fn login_request(&self, name: &str, password: &str, forwarded_for: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/auth/login", self.base))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({"username": name, "password": password}))
    }

    async fn login(&self, name: &str, password: &str, forwarded_for: &str) -> Reply {
        Reply::of(self.login_request(name, password, forwarded_for).send().await.unwrap()).await
    }

    async fn post(&self, path: &str, cookie: Option<&str>, bearer: Option<&str>) -> Reply {
        let mut req = self.http.post(format!("{}{path}", self.base));
        if let Some(sid) = cookie {
            req = req.header("cookie", format!("SESSION={sid}"));
        }
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        Reply::of(req.send().await.unwrap()).await
    }

    fn claims(&self, token: &str) -> Claims {
        self.state.keys.verify(token).expect("a valid token")
    }

    async fn exists(&self, key: &str) -> bool {
        self.redis.clone().exists(key).await.unwrap()
    }

    async fn max_exp(&self, sid: &str) -> u64 {
        let v: String = self
            .redis
            .clone()
            .hget(session::key(sid), session::MAX_EXP_FIELD)
            .await
            .unwrap();
        v.parse().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_passwords_gets_the_allowed_number_checked_and_the_rest_429() {
    let auth = Auth::start(|c| {
        c.max_failures = 5;
        // Room to wait for exactly the attempts allowed: any other attempt
        // sent to be hashed is refused 503, not 429.
        c.hash_queue = 5;
    })
    .await;
    auth.account("olga", "olga-right-password").await;
    // Every slot taken, as by hashes in progress: the admitted attempts wait.
    let hold = auth.state.gate.occupy_all();

    let mut burst = JoinSet::new();
    for i in 0..60 {
        // Each claims another address; the gateway appended the real one last.
        let req = auth.login_request("olga", "wrong-password", &format!("10.0.0.{i}, 192.0.2.1"));
        burst.spawn(async move { Reply::of(req.send().await.unwrap()).await });
    }
    let mut refused = 0;
    let bounded = tokio::time::timeout(Duration::from_secs(60), async {
        while refused < 55 {
            let r = burst.join_next().await.expect("a reply").unwrap();
            assert_eq!(r.status, 429, "refused without waiting for a hash: {}", r.body);
            assert_eq!(r.body["error"], "too_many_attempts");
            let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=600).contains(&wait), "Retry-After {wait}");
            refused += 1;
        }
    })
    .await;
    assert!(bounded.is_ok(), "only {refused} refused; the rest are waiting");
    assert_eq!(auth.state.gate.kept(), 0, "refused attempts hash nothing");
    drop(hold);
    let checked = burst.join_all().await;
    let statuses: Vec<u16> = checked.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401; 5], "the allowed attempts are checked once a slot frees");

    // The guesser's address is locked out, even with the right password …
    let r = auth.login("olga", "olga-right-password", "192.0.2.1").await;
    assert_eq!(r.status, 429);
    let r = auth.login("olga", "olga-right-password", "192.0.2.2, 192.0.2.1").await;
    assert_eq!(r.status, 429, "a claimed address on the left changes nothing");
    // … the owner's is not.
    let r = auth.login("olga", "olga-right-password", "192.0.2.1, 192.0.2.2").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_one_answer_and_one_count() {
    let auth = Auth::start(|c| c.max_failures = 2).await;
    auth.account("nina", "nina-right-password").await;
    let wrong = auth.login("nina", "wrong-password", "192.0.2.1").await;
    let unknown = auth.login("nobody", "wrong-password", "192.0.2.1").await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.body, unknown.body);
    // Unknown users are throttled alike, so a 429 says nothing about existence.
    for name in ["nina", "nobody"] {
        assert_eq!(auth.login(name, "wrong-password", "192.0.2.1").await.status, 401);
        assert_eq!(auth.login(name, "wrong-password", "192.0.2.1").await.status, 429);
    }
}

#[tokio::test]
async fn the_account_ceiling_stops_guessing_spread_over_addresses() {
    let auth = Auth::start(|c| {
        c.max_failures = 5;
        c.account_max_failures = 8;
    })
    .await;
    auth.account("pia", "pia-right-password").await;
    for addr in ["192.0.2.1", "192.0.2.2"] {
        for _ in 0..4 {
            assert_eq!(auth.login("pia", "wrong-password", addr).await.status, 401);
        }
    }
    let r = auth.login("pia", "pia-right-password", "192.0.2.3").await;
    assert_eq!(r.status, 429, "the ninth attempt, from anywhere: {}", r.body);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "Retry-After {wait}");
}

#[tokio::test]
async fn the_first_lockout_is_the_setting_and_each_further_failure_doubles_it() {
    let auth = Auth::start(|c| {
        c.max_failures = 2;
        c.first_lockout = Duration::from_secs(70);
    })
    .await;
    auth.account("ola", "ola-right-password").await;
    let retry_after = |r: &Reply| -> u64 {
        assert_eq!(r.status, 429, "{}", r.body);
        r.header("retry-after").unwrap().parse().unwrap()
    };
    assert_eq!(auth.login("ola", "wrong-password", "192.0.2.1").await.status, 401);
    // The second failure uses up the allowance and sets the first lockout.
    assert_eq!(auth.login("ola", "wrong-password", "192.0.2.1").await.status, 401);
    let wait = retry_after(&auth.login("ola", "wrong-password", "192.0.2.1").await);
    assert!(
        (69..=70).contains(&wait),
        "the first lockout is 70 s: Retry-After {wait}"
    );
    // As if it had run out: the next failure locks out for twice as long.
    let _: () = auth.redis.clone().del("auth:lockout:ola:192.0.2.1").await.unwrap();
    assert_eq!(auth.login("ola", "wrong-password", "192.0.2.1").await.status, 401);
    let wait = retry_after(&auth.login("ola", "wrong-password", "192.0.2.1").await);
    assert!((139..=140).contains(&wait), "doubled to 140 s: Retry-After {wait}");
}

#[tokio::test]
async fn a_password_longer_than_any_account_has_is_refused_without_counting_or_hashing() {
    let auth = Auth::start(|c| c.max_failures = 1).await;
    auth.account("pat", "pat-right-password").await;
    let huge = "x".repeat(validate::MAX_PASSWORD_BYTES + 1);
    for _ in 0..3 {
        let r = auth.login("pat", &huge, "192.0.2.1").await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.body["error"], "invalid_credentials");
    }
    for key in ["auth:failures:pat:192.0.2.1", "auth:account-failures:pat"] {
        assert!(!auth.exists(key).await, "{key}: an over-long password was counted");
    }
    assert_eq!(auth.state.gate.kept(), 0, "nothing was hashed");
    let r = auth.login("pat", "pat-right-password", "192.0.2.1").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn a_successful_login_gives_its_attempt_back() {
    let auth = Auth::start(|c| {
        c.max_failures = 3;
        c.account_max_failures = 3;
    })
    .await;
    auth.account("quin", "quin-right-password").await;
    assert_eq!(auth.login("quin", "wrong-password", "192.0.2.1").await.status, 401);
    assert_eq!(auth.login("quin", "wrong-password", "192.0.2.1").await.status, 401);
    // The third attempt of this address: it set the first lockout, which the
    // success clears, and it does not count against the account.
    assert_eq!(auth.login("quin", "quin-right-password", "192.0.2.1").await.status, 200);
    assert_eq!(auth.login("quin", "wrong-password", "192.0.2.1").await.status, 401);
    // That was the account's third failure: now everyone waits.
    assert_eq!(auth.login("quin", "quin-right-password", "192.0.2.2").await.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hashing_queue_answers_503_at_once_and_counts_nothing() {
    let auth = Auth::start(|c| {
        c.max_failures = 1;
        c.hash_concurrency = 1;
        c.hash_queue = 0;
    })
    .await;
    auth.account("rita", "rita-right-password").await;
    let hold = auth.state.gate.occupy_all();
    let r = auth.login("rita", "wrong-password", "192.0.2.1").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["error"], "busy");
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = Reply::of(
        auth.http
            .post(format!("{}/auth/register", auth.base))
            .json(&json!({"username": "sven", "password": "sven-password"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (503, Some("busy")),
        "registering hashes too"
    );
    assert_eq!(auth.state.gate.kept(), 0, "nothing was hashed");
    for key in [
        "auth:failures:rita:192.0.2.1",
        "auth:lockout:rita:192.0.2.1",
        "auth:account-failures:rita",
    ] {
        assert!(
            !auth.exists(key).await,
            "{key} left behind by an attempt never evaluated"
        );
    }
    drop(hold);
    // The refused attempt was given back: with one failure allowed, a count
    // or lockout left behind would make this 429.
    let r = auth.login("rita", "rita-right-password", "192.0.2.1").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_users_is_queued_up_to_the_bound_and_refused_beyond_it() {
    const FLOOD: usize = 150;
    let auth = Auth::start(|c| {
        c.hash_concurrency = 2;
        c.hash_queue = 8;
    })
    .await;
    // Both slots busy, as if two hashes were running: the queue fills first.
    let hold = auth.state.gate.occupy_all();
    let mut flood = JoinSet::new();
    for i in 0..FLOOD {
        let req = auth.login_request(&format!("ghost{i}"), "any-password", "192.0.2.9");
        flood.spawn(async move { Reply::of(req.send().await.unwrap()).await });
    }
    let mut refused = 0;
    let bounded = tokio::time::timeout(Duration::from_secs(60), async {
        while refused < FLOOD - 8 {
            let r = flood.join_next().await.expect("a reply").unwrap();
            assert_eq!(r.status, 503, "only the queue waits: {}", r.body);
            assert_eq!(r.header("retry-after"), Some("1"));
            assert_eq!(r.body["error"], "busy");
            refused += 1;
        }
    })
    .await;
    assert!(bounded.is_ok(), "only {refused} refused; the rest are waiting");
    drop(hold);
    let queued = flood.join_all().await;
    assert_eq!(queued.len(), 8);
    for r in queued {
        assert_eq!(r.status, 401, "queued logins are checked once a slot frees: {}", r.body);
    }
}

#[tokio::test]
async fn logout_by_bearer_ends_the_session_that_holds_the_token() {
    let auth = Auth::start(|_| {}).await;
    auth.account("sam", "sam-right-password").await;
    let login = auth.login("sam", "sam-right-password", "192.0.2.1").await;
    let (sid, token) = (login.session(), login.token());
    let jti = auth.claims(&token).jti;
    assert!(auth.exists(&format!("auth:jti-session:{jti}")).await);

    let out = auth.post("/auth/logout", None, Some(&token)).await;
    assert_eq!(out.status, 204);
    assert!(!auth.exists(&session::key(&sid)).await, "the session is gone");
    let again = auth.post("/auth/refresh", Some(&sid), None).await;
    assert_eq!(again.status, 401, "the session cannot be revived: {}", again.body);
    assert_eq!(again.body["error"], "unauthorized");
}

#[tokio::test]
async fn refresh_refuses_a_revoked_token_and_a_used_session() {
    let auth = Auth::start(|_| {}).await;
    auth.account("tia", "tia-right-password").await;
    let login = auth.login("tia", "tia-right-password", "192.0.2.1").await;
    let (sid, token) = (login.session(), login.token());

    let fresh = auth.post("/auth/refresh", Some(&sid), None).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_ne!(fresh.session(), sid, "rotated");
    let old = auth.claims(&token);
    assert!(auth.exists(&session::revoked_key(&old.iss, &old.jti)).await);
    assert_eq!(auth.post("/auth/refresh", Some(&sid), None).await.status, 401);

    // A session whose token was denylisted some other way refreshes no more.
    let new_sid = fresh.session();
    let new = auth.claims(&fresh.token());
    let _: () = auth
        .redis
        .clone()
        .set(session::revoked_key(&new.iss, &new.jti), 1)
        .await
        .unwrap();
    assert_eq!(auth.post("/auth/refresh", Some(&new_sid), None).await.status, 401);
}

#[tokio::test]
async fn refresh_keeps_the_deadline_of_the_login() {
    let auth = Auth::start(|c| {
        c.session_ttl = Duration::from_secs(1800);
        c.token_ttl = Duration::from_secs(1800);
        c.session_max_age = Duration::from_secs(100);
    })
    .await;
    auth.account("uma", "uma-right-password").await;
    let before = now_secs();
    let login = auth.login("uma", "uma-right-password", "192.0.2.1").await;
    let deadline = auth.max_exp(&login.session()).await;
    assert!((before + 100..=now_secs() + 100).contains(&deadline));
    assert!(login.max_age() <= 100, "the cookie ends by the deadline");
    assert!(auth.claims(&login.token()).exp <= deadline, "so does the token");

    let fresh = auth.post("/auth/refresh", Some(&login.session()), None).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_eq!(auth.max_exp(&fresh.session()).await, deadline, "refresh keeps it");
    assert!(fresh.max_age() <= 100);
    assert!(auth.claims(&fresh.token()).exp <= deadline);
    let ttl: i64 = auth.redis.clone().ttl(session::key(&fresh.session())).await.unwrap();
    assert!((1..=100).contains(&ttl), "the session's TTL ends by it too: {ttl}");

    // Once the deadline has passed, refresh refuses.
    let _: () = auth
        .redis
        .clone()
        .hset(session::key(&fresh.session()), session::MAX_EXP_FIELD, now_secs() - 1)
        .await
        .unwrap();
    let late = auth.post("/auth/refresh", Some(&fresh.session()), None).await;
    assert_eq!(late.status, 401, "{}", late.body);
}

#[tokio::test]
async fn a_repeated_logout_publishes_nothing_new() {
    let auth = Auth::start(|_| {}).await;
    auth.account("vic", "vic-right-password").await;
    auth.account("wes", "wes-right-password").await;
    let mut feed = redis::Client::open(auth.redis_url.as_str())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    feed.subscribe(session::REVOCATION_CHANNEL).await.unwrap();

    let token = auth.login("vic", "vic-right-password", "192.0.2.1").await.token();
    let jti = auth.claims(&token).jti;
    for _ in 0..3 {
        assert_eq!(auth.post("/auth/logout", None, Some(&token)).await.status, 204);
    }
    // A marker: once its message arrives, every earlier one has.
    let marker = auth.login("wes", "wes-right-password", "192.0.2.1").await;
    assert_eq!(
        auth.post("/auth/logout", Some(&marker.session()), None).await.status,
        204
    );
    let marker_jti = auth.claims(&marker.token()).jti;

    let mut messages = Vec::new();
    let mut stream = feed.on_message();
    loop {
        // Bounded: a logout that announces nothing must fail the test, not hang it.
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .expect("the marker's revocation was never announced")
            .expect("the revocation feed");
        let revocation: session::Revocation = serde_json::from_str(&msg.get_payload::<String>().unwrap()).unwrap();
        if revocation.jti.as_deref() == Some(marker_jti.as_str()) {
            break;
        }
        messages.push(revocation);
    }
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].jti.as_deref(), Some(jti.as_str()));
    assert!(messages[0].sid.is_some(), "the session's end is announced with it");
}

#[tokio::test]
async fn the_session_cookie_is_secure_whenever_the_client_came_over_https() {
    let auth = Auth::start(|_| {}).await;
    auth.account("tess", "correct horse battery").await;
    let set_cookie = |r: &reqwest::Response| r.headers()[reqwest::header::SET_COOKIE].to_str().unwrap().to_owned();
    // Plain HTTP on loopback, GANTRY_COOKIE_SECURE=false: no Secure.
    let plain = auth
        .login_request("tess", "correct horse battery", "127.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert!(!set_cookie(&plain).contains("Secure"), "{}", set_cookie(&plain));
    // The gateway says the client used HTTPS: Secure, whatever the setting.
    let https = auth
        .login_request("tess", "correct horse battery", "127.0.0.1")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(https.status(), 200);
    assert!(set_cookie(&https).ends_with("; Secure"), "{}", set_cookie(&https));
}
