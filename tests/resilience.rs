//! The stack under stress of its own kind: the registry going away, other
//! balancing and signing modes, and configuration mistakes.

use std::collections::HashMap;
use std::time::Duration;

use gantry_harness::GantryStack as _;
use gantry_harness::run::wait;
use gantry_harness::{Infra, StackBuilder};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn builder() -> StackBuilder {
    StackBuilder::new(env!("CARGO_BIN_EXE_gantry")).infra(Infra::Local)
}

/// Registers and logs in a user; returns its token and `SESSION=…` cookie.
async fn login(gw: &str, username: &str) -> (String, String) {
    let mut user = gantry_harness::drive::client::UserClient::new(gw, username);
    let registered = user.register().await.unwrap();
    assert_eq!(registered.status, 201, "{}", registered.body);
    let login = user.login().await.unwrap();
    assert_eq!(login.status, 200, "{}", login.body);
    (user.token.unwrap(), user.cookie.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_flows_through_a_registry_outage_and_new_instances_appear_after_it() {
    let mut stack = builder().users(2).start(&mut |_| {}).await.unwrap();
    let gw = stack.gateway_url().to_owned();
    let http = gantry_harness::drive::client::http_client(None);
    let (token, _) = login(&gw, "reg").await;
    let get = || http.get(format!("{gw}/users/me")).bearer_auth(&token).send();

    stack.registry_mut().unwrap().kill().await.unwrap();
    let mut served_by = HashMap::<String, u32>::new();
    for _ in 0..40 {
        let r = get().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "the last snapshot must keep serving");
        *served_by
            .entry(r.headers()["x-instance-id"].to_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(served_by.len(), 2, "both instances stay in use: {served_by:?}");

    // Back on the same port with an empty catalog: the services register
    // again on their next heartbeat, and the gateway's watch starts over.
    stack.registry_mut().unwrap().start_again().await.unwrap();
    stack.wait_passing("user", "user-1").await.unwrap();
    stack.wait_passing("user", "user-2").await.unwrap();
    let added = stack.add_user().await.unwrap();
    wait::until(
        "the new instance to get traffic",
        Duration::from_secs(10),
        None,
        || async {
            let r = get().await.map_err(|e| e.to_string())?;
            if r.status() != StatusCode::OK {
                return Err(format!("status {}", r.status()));
            }
            Ok(r.headers()["x-instance-id"] == added.as_str())
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_mode_accepts_tokens_minted_with_the_shared_secret() {
    let secret = "a-shared-secret-of-at-least-32-bytes!";
    let stack = builder()
        .users(1)
        .env("GANTRY_JWT_ALG", "HS256")
        .env("GANTRY_JWT_SECRET", secret)
        .start(&mut |_| {})
        .await
        .unwrap();
    let gw = stack.gateway_url();
    let http = gantry_harness::drive::client::http_client(None);
    let (token, cookie) = login(gw, "hal").await;
    let me = http
        .get(format!("{gw}/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let id = me.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let by_cookie = http
        .get(format!("{gw}/users/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);
    let jwks: Value = http
        .get(format!("{gw}/auth/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"], json!([]), "a shared secret is never published");

    // A test can mint its own token with the secret…
    let now = gantry_common::jwt::now_secs();
    let claims = gantry_common::jwt::Claims {
        sub: id,
        iss: "gantry-auth".into(),
        aud: "gantry".into(),
        exp: now + 60,
        iat: now,
        nbf: None,
        jti: gantry_common::jwt::random_id(16),
        username: None,
        scope: None,
    };
    let minted = gantry_common::jwt::Signer::hs256(secret.as_bytes()).sign(&claims);
    let r = http
        .get(format!("{gw}/users/me"))
        .bearer_auth(&minted)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // …and one minted with another secret is refused.
    let forged = gantry_common::jwt::Signer::hs256(b"another-secret-of-at-least-32-bytes").sign(&claims);
    let r = http
        .get(format!("{gw}/users/me"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
