//! End to end through real processes: the gateway, auth, user instances, a
//! real Redis and the dev registry, started by the harness as `gantry up` does.

use std::collections::HashMap;
use std::time::Duration;

use gantry_harness::GantryStack as _;
use gantry_harness::drive::metrics::Scrape;
use gantry_harness::{Infra, Stack, StackBuilder};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn start(users: usize) -> Stack {
    StackBuilder::new(env!("CARGO_BIN_EXE_gantry"))
        .infra(Infra::Local)
        .users(users)
        .start(&mut |_| {})
        .await
        .unwrap_or_else(|e| panic!("the stack did not start: {e}"))
}

fn client() -> reqwest::Client {
    gantry_harness::drive::client::http_builder(None).build().unwrap()
}

struct Session {
    token: String,
    cookie: String,
}

async fn register_and_login(http: &reqwest::Client, gw: &str, username: &str) -> Session {
    let password = "correct-horse-battery";
    let r = http
        .post(format!("{gw}/auth/register"))
        .json(&json!({"username": username, "password": password, "display_name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let r = http
        .post(format!("{gw}/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    Session {
        token: body["access_token"].as_str().unwrap().to_owned(),
        cookie,
    }
}

/// Repeats `request` until it answers `status`, for up to `secs` seconds.
async fn answers<F, Fut>(status: StatusCode, what: &str, secs: u64, request: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let check = || async {
        let r = request().await.map_err(|e| e.to_string())?;
        Ok(r.status() == status)
    };
    gantry_harness::run::wait::until(what, Duration::from_secs(secs), None, check)
        .await
        .unwrap();
}

async fn error_code(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r
        .json()
        .await
        .unwrap_or_else(|e| panic!("{status}: the body is not JSON: {e}"));
    assert!(body["message"].is_string(), "{body}");
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_works_end_to_end() {
    let stack = start(2).await;
    let gw = stack.gateway_url();
    let http = client();

    let r = http
        .post(format!("{gw}/auth/register"))
        .json(&json!({"username": "ada", "password": "correct-horse-battery", "display_name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let registered: Value = r.json().await.unwrap();
    assert_eq!(registered["username"], "ada");
    let id = registered["id"].as_str().unwrap().to_owned();

    let again = http
        .post(format!("{gw}/auth/register"))
        .json(&json!({"username": "ada", "password": "another-long-one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(again).await, (StatusCode::CONFLICT, "username_taken".into()));
    let weak = http
        .post(format!("{gw}/auth/register"))
        .json(&json!({"username": "bob", "password": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(weak).await,
        (StatusCode::BAD_REQUEST, "weak_password".into())
    );

    // A wrong password and an unknown user get the very same answer.
    let wrong = http
        .post(format!("{gw}/auth/login"))
        .json(&json!({"username": "ada", "password": "not-the-password"}))
        .send()
        .await
        .unwrap();
    let unknown = http
        .post(format!("{gw}/auth/login"))
        .json(&json!({"username": "nobody", "password": "not-the-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.text().await.unwrap(), unknown.text().await.unwrap());

    let r = http
        .post(format!("{gw}/auth/login"))
        .json(&json!({"username": "ada", "password": "correct-horse-battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "gantry up serves plain HTTP: {set_cookie}"
    );
    let login: Value = r.json().await.unwrap();
    assert_eq!(login["token_type"], "Bearer");
    assert!(login["expires_in"].as_u64().unwrap() > 0);
    assert!(login["access_token"].is_string(), "{login}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    // As the README does: the token comes from a second login, so the cookie
    // and the token are two sessions, and each logout below ends a live one.
    let second: Value = http
        .post(format!("{gw}/auth/login"))
        .json(&json!({"username": "ada", "password": "correct-horse-battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = second["access_token"].as_str().unwrap().to_owned();

    let by_cookie = http
        .get(format!("{gw}/users/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);
    let instance = by_cookie.headers()["x-instance-id"].to_str().unwrap().to_owned();
    assert!(instance.starts_with("user-"), "{instance}");
    assert!(by_cookie.headers().contains_key("x-request-id"));
    let me: Value = by_cookie.json().await.unwrap();
    assert_eq!(me, json!({"id": id, "username": "ada", "display_name": "Ada"}));

    let by_bearer = http
        .get(format!("{gw}/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_bearer.status(), StatusCode::OK);
    assert_eq!(by_bearer.json::<Value>().await.unwrap()["id"], id.as_str());

    let by_id = http
        .get(format!("{gw}/users/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.status(), StatusCode::OK);
    let missing = http
        .get(format!("{gw}/users/u_nope"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(missing).await.0, StatusCode::NOT_FOUND);

    let jwks: Value = http
        .get(format!("{gw}/auth/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    assert!(jwks["keys"][0]["kid"].is_string());

    // Logging out the session revokes it; logging out the bearer revokes the token.
    let out = http
        .post(format!("{gw}/auth/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let out = http
        .post(format!("{gw}/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);

    let by_cookie = http
        .get(format!("{gw}/users/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(by_cookie.headers()["www-authenticate"], "Bearer");
    let by_bearer = http
        .get(format!("{gw}/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(by_bearer).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );

    let nobody = http.get(format!("{gw}/users/me")).send().await.unwrap();
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_4xx_with_a_json_reason_and_the_gateway_keeps_serving() {
    let stack = start(1).await;
    let gw = stack.gateway_url();
    let http = client();
    let session = register_and_login(&http, gw, "eve").await;

    // The gateway answers oversized requests without reading them and closes
    // the connection, as nginx does; a client must not reuse it after that.
    let once = gantry_harness::drive::client::http_builder(None)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let post = |path: &str, body: &'static str, content_type: &'static str| {
        http.post(format!("{gw}{path}"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases = [
        (
            post("/auth/login", "{not json", "application/json").await.unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            post("/auth/login", r#"{"username": 1, "password": []}"#, "application/json")
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            post("/auth/register", r#"{"username": "x"}"#, "application/json")
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            post("/auth/login", r#"{"username":"a","password":"b"}"#, "text/plain")
                .await
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            http.get(format!("{gw}/nowhere")).send().await.unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            http.get(format!("{gw}/auth/login")).send().await.unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            http.post(format!("{gw}/auth/register"))
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{"username":"big","password":"{}"}}"#,
                    "x".repeat(70 * 1024)
                ))
                .send()
                .await
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            once.get(format!("{gw}/users/me"))
                .bearer_auth(&session.token)
                .header("x-padding", "p".repeat(20 * 1024))
                .send()
                .await
                .unwrap(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
    ];
    for (response, expected) in cases {
        let url = response.url().to_string();
        let (status, code) = error_code(response).await;
        assert_eq!(status, expected, "{url}: {code}");
        assert!(!code.is_empty(), "{url}");
    }

    // Hostile tokens and cookies: 401, never 500.
    let header = |alg: &str| base64url(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
    let claims = base64url(r#"{"sub":"admin","iss":"gantry-auth","aud":"gantry","exp":9999999999,"iat":1,"jti":"x"}"#);
    let tokens = [
        String::new(),
        "garbage".into(),
        format!("{}.{claims}.", header("none")),
        format!("{}.{claims}.c2ln", header("HS256")),
        format!("{}.{claims}.c2ln", header("EdDSA")),
        "a.b.c".repeat(2000),
    ];
    for token in tokens {
        let r = http
            .get(format!("{gw}/users/me"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "token {token:.40}");
    }
    for cookie in [
        "SESSION=",
        "SESSION=../../etc",
        &format!("SESSION={}", "A".repeat(43)),
        "SESSION=%00%01",
    ] {
        let r = http
            .get(format!("{gw}/users/me"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{cookie}");
    }

    // A spoofed identity header does not make anyone someone else.
    let r = http
        .get(format!("{gw}/users/me"))
        .header("x-user-id", "u_admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let health = http.get(format!("{gw}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let me = http
        .get(format!("{gw}/users/me"))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let metrics = Scrape::of(&stack.gateway_admin_urls()[0]).await.unwrap();
    for route in ["auth", "user"] {
        let series = format!("gantry_gateway_requests_total{{route=\"{route}\",status=\"5xx\"}}");
        assert_eq!(metrics.value(&series), 0.0, "{route} answered a 5xx");
    }
}

fn base64url(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_requests_evenly() {
    let stack = start(3).await;
    let gw = stack.gateway_url();
    let http = client();
    let session = register_and_login(&http, gw, "rita").await;
    let mut seen: HashMap<String, u32> = HashMap::new();
    for _ in 0..90 {
        let r = http
            .get(format!("{gw}/users/me"))
            .bearer_auth(&session.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        *seen
            .entry(r.headers()["x-instance-id"].to_str().unwrap().to_owned())
            .or_default() += 1;
    }
    // Sequential requests under round robin: exactly a third each.
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.values().all(|&n| n == 30), "{seen:?}");

    // And over kept-alive connections: at most one per instance and gateway
    // worker (one per core by default), not one per request.
    let metrics = Scrape::of(&stack.gateway_admin_urls()[0]).await.unwrap();
    let connects = metrics.value("gantry_gateway_upstream_connects_total{service=\"user\"}");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!("90 requests to 3 instances opened {connects} upstream connections");
    assert!(
        (3.0..=3.0 * workers).contains(&connects),
        "{connects} connections for 90 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_costs_callers_nothing() {
    let mut stack = start(3).await;
    let gw = stack.gateway_url().to_owned();
    let http = client();
    let session = register_and_login(&http, &gw, "kim").await;
    let get = || http.get(format!("{gw}/users/me")).bearer_auth(&session.token).send();

    for _ in 0..30 {
        assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    }
    stack.users_mut()[1].kill().await.unwrap();
    // The registry still lists the dead instance until its TTL runs out: the
    // gateway must route around it by itself.
    let mut after = HashMap::<String, u32>::new();
    for _ in 0..60 {
        let r = get().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "a request failed after the kill");
        *after
            .entry(r.headers()["x-instance-id"].to_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(!after.contains_key("user-2"), "{after:?}");
    let metrics = Scrape::of(&stack.gateway_admin_urls()[0]).await.unwrap();
    let ejections = metrics.sum("gantry_gateway_upstream_ejections_total", "service=\"user\"");
    let retries = metrics.value("gantry_gateway_upstream_retries_total{service=\"user\"}");
    assert!(
        ejections >= 1.0 && retries >= 1.0,
        "ejections {ejections}, retries {retries}"
    );

    // The dead instance's TTL check expires and it leaves ?passing.
    let registry = stack.registry();
    gantry_harness::run::wait::until("user-2 to leave ?passing", Duration::from_secs(15), None, || {
        let registry = registry.clone();
        async move {
            let r = registry
                .health_service("user", true, None, Duration::ZERO)
                .await
                .map_err(|e| e.to_string())?;
            Ok(!r.value.iter().any(|i| i.id == "user-2"))
        }
    })
    .await
    .unwrap();

    // Started again on the same port, it takes traffic again.
    stack.users_mut()[1].start_again().unwrap();
    stack.wait_passing("user", "user-2").await.unwrap();
    let mut back = false;
    for _ in 0..60 {
        let r = get().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        if r.headers()["x-instance-id"] == "user-2" {
            back = true;
            break;
        }
    }
    assert!(back, "the restarted instance got no traffic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_sessions_fail_closed_and_bearers_keep_working() {
    let mut stack = start(1).await;
    let gw = stack.gateway_url().to_owned();
    let http = client();
    let session = register_and_login(&http, &gw, "ray").await;
    let by_cookie = || {
        http.get(format!("{gw}/users/me"))
            .header("cookie", &session.cookie)
            .send()
    };
    let by_bearer = || http.get(format!("{gw}/users/me")).bearer_auth(&session.token).send();
    assert_eq!(by_cookie().await.unwrap().status(), StatusCode::OK);
    assert_eq!(by_bearer().await.unwrap().status(), StatusCode::OK);

    stack.redis_mut().unwrap().kill().await.unwrap();
    // The gateway notices the lost revocation feed and drops cached sessions:
    // from then on every session request must ask Redis, and Redis is gone.
    answers(
        StatusCode::SERVICE_UNAVAILABLE,
        "session requests to fail closed",
        10,
        by_cookie,
    )
    .await;
    let r = by_cookie().await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        error_code(r).await,
        (StatusCode::SERVICE_UNAVAILABLE, "session_store_unavailable".into())
    );
    // Bearer tokens are verified at the edge without Redis, and the user
    // service serves the profile it read before the outage.
    assert_eq!(by_bearer().await.unwrap().status(), StatusCode::OK);
    // A profile never read before cannot be served without Redis: a clear 503.
    let other = http
        .get(format!("{gw}/users/u_unseen"))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(other).await,
        (StatusCode::SERVICE_UNAVAILABLE, "profile_store_unavailable".into())
    );

    // Redis back on the same port (its data kept on disk): the same session
    // works again without restarting anything.
    stack.redis_mut().unwrap().start_again().await.unwrap();
    let readyz = || http.get(format!("{gw}/readyz")).send();
    answers(StatusCode::OK, "the gateway to see Redis again", 15, readyz).await;
    answers(StatusCode::OK, "the old session to work again", 15, by_cookie).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_the_session_and_revokes_the_old_one() {
    let stack = start(1).await;
    let gw = stack.gateway_url();
    let http = client();
    let old = register_and_login(&http, gw, "rob").await;

    let r = http
        .post(format!("{gw}/auth/refresh"))
        .header("cookie", &old.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let new_cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(new_cookie, old.cookie);
    let new_token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_token, old.token);

    let me = |auth: (&'static str, String)| http.get(format!("{gw}/users/me")).header(auth.0, auth.1).send();
    assert_eq!(
        me(("cookie", new_cookie.clone())).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        me(("authorization", format!("Bearer {new_token}")))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        me(("cookie", old.cookie.clone())).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // Login's token is the one the old session held: it is revoked with it.
    let old_token = me(("authorization", format!("Bearer {}", old.token))).await.unwrap();
    assert_eq!(old_token.status(), StatusCode::UNAUTHORIZED);

    let r = http.post(format!("{gw}/auth/refresh")).send().await.unwrap();
    assert_eq!(error_code(r).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_are_throttled_with_retry_after() {
    let stack = StackBuilder::new(env!("CARGO_BIN_EXE_gantry"))
        .infra(Infra::Local)
        .users(1)
        .env("GANTRY_LOGIN_MAX_FAILURES", "3")
        .start(&mut |_| {})
        .await
        .unwrap();
    let gw = stack.gateway_url();
    let http = client();
    register_and_login(&http, gw, "tom").await;
    let attempt = |password: &'static str| {
        http.post(format!("{gw}/auth/login"))
            .json(&json!({"username": "tom", "password": password}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(
            attempt("wrong-password").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Locked now: even the right password waits.
    let r = attempt("correct-horse-battery").await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_eq!(error_code(r).await.1, "too_many_attempts");
}
