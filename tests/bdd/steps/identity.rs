//! Tokens, sessions and revocation.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cucumber::{given, then, when};
use gantry_common::jwt::{self, Claims, Signer};
use gantry_harness::client::Auth;
use serde_json::{Value, json};

use super::eventually;
use crate::world::GantryWorld;

fn auth(by: &str) -> Auth {
    match by {
        "session" => Auth::Session,
        "bearer" => Auth::Bearer,
        other => panic!("unknown identity {other:?}"),
    }
}

#[given(regex = r#"^"(\w+)" gets (\d+) from (/\S+) by (session|bearer)$"#)]
#[then(regex = r#"^"(\w+)" gets (\d+) from (/\S+) by (session|bearer)$"#)]
async fn gets(w: &mut GantryWorld, name: String, status: u16, path: String, by: String) {
    let answer = w.user(&name).get(&path, auth(&by)).await.expect("request");
    assert_eq!(answer.status, status, "{path} by {by}: {}", answer.body);
    w.last = Some(answer);
}

#[then(regex = r#"^"(\w+)" gets (\d+) from (/\S+) by (session|bearer), eventually$"#)]
async fn gets_eventually(w: &mut GantryWorld, name: String, status: u16, path: String, by: String) {
    let user = w.user(&name).clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(answer) = user.get(&path, auth(&by)).await {
            let done = answer.status == status;
            w.last = Some(answer);
            if done {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} by {by} never answered {status}; last: {:?}",
            w.last.as_ref().map(|a| (a.status, a.body.clone()))
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[given(regex = r#"^"(\w+)" gets 200 from /users/me by session on every gateway$"#)]
async fn on_every_gateway(w: &mut GantryWorld, name: String) {
    for gateway in w.target().gateways.clone() {
        let answer = w
            .user(&name)
            .via(&gateway)
            .get("/users/me", Auth::Session)
            .await
            .expect("request");
        assert_eq!(answer.status, 200, "{gateway}: {}", answer.body);
    }
}

#[then(regex = r#"^the second gateway refuses the session of "(\w+)" well before the session cache expires$"#)]
async fn second_gateway_refuses(w: &mut GantryWorld, name: String) {
    let second = w.target().gateways[1].clone();
    let user = w.user(&name).via(&second);
    let started = tokio::time::Instant::now();
    eventually(
        "the second gateway to refuse the session",
        Duration::from_secs(10),
        || {
            let user = user.clone();
            async move {
                user.get("/users/me", Auth::Session)
                    .await
                    .is_ok_and(|a| a.status == 401)
            }
        },
    )
    .await;
    let took = started.elapsed();
    println!(
        "    revocation reached the second gateway {} ms after logout returned",
        took.as_millis()
    );
    // The session cache keeps entries for 5 s; refusing well inside that
    // proves the revocation was pushed, not waited out.
    assert!(
        took < Duration::from_secs(1),
        "took {took:?}: revocation was not pushed"
    );
}

#[when(regex = r#"^"(\w+)" calls /users/me (\d+) times by session$"#)]
async fn many_calls(w: &mut GantryWorld, name: String, times: usize) {
    let redis = w.target().redis_url.clone().expect("this step needs Redis access");
    w.hget_before = gantry_harness::redis_stats::command_calls(&redis, "hget")
        .await
        .expect("INFO commandstats");
    let user = w.user(&name).clone();
    w.answers.clear();
    for _ in 0..times {
        w.answers
            .push(user.get("/users/me", Auth::Session).await.expect("request"));
    }
}

#[then(regex = r"^Redis saw at most (\d+) session lookups for them$")]
async fn at_most_lookups(w: &mut GantryWorld, most: u64) {
    let redis = w.target().redis_url.clone().expect("this step needs Redis access");
    let after = gantry_harness::redis_stats::command_calls(&redis, "hget")
        .await
        .expect("INFO commandstats");
    let lookups = after - w.hget_before;
    println!("    {} requests by session cost {lookups} HGETs", w.answers.len());
    assert!(
        lookups <= most,
        "{lookups} session lookups for {} requests",
        w.answers.len()
    );
}

#[when(regex = r#"^the session of "(\w+)" expires in Redis$"#)]
async fn session_expires(w: &mut GantryWorld, name: String) {
    let redis = w.target().redis_url.clone().expect("this step needs Redis access");
    let cookie = w.user(&name).cookie.clone().expect("a session");
    let key = gantry_common::session::key(cookie.trim_start_matches("SESSION="));
    let client = redis::Client::open(redis).expect("redis url");
    eventually("the session key to expire", Duration::from_secs(15), || {
        let client = client.clone();
        let key = key.clone();
        async move {
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                return false;
            };
            redis::cmd("EXISTS").arg(&key).query_async::<i64>(&mut conn).await == Ok(0)
        }
    })
    .await;
}

#[then(regex = r#"^the answer names "(\w+)" and comes from a user instance$"#)]
async fn names_the_user(w: &mut GantryWorld, name: String) {
    let expected = w.user(&name).username.clone();
    let last = w.last();
    assert_eq!(last.json()["username"], expected.as_str(), "{}", last.body);
    let instance = last.instance().unwrap_or_default();
    assert!(instance.starts_with("user-"), "X-Instance-Id {instance:?}");
}

#[then(regex = r"^the answer is (\d+)$")]
async fn the_answer_is(w: &mut GantryWorld, status: u16) {
    assert_eq!(w.last().status, status, "{}", w.last().body);
}

#[then(regex = r"^the answer is (\d+) with a Bearer challenge$")]
async fn with_challenge(w: &mut GantryWorld, status: u16) {
    let last = w.last();
    assert_eq!(last.status, status, "{}", last.body);
    assert_eq!(last.header("www-authenticate"), Some("Bearer"));
    assert!(last.error_code().is_some(), "a JSON reason: {}", last.body);
}

#[then(regex = r#"^the answer says "(\w+)"$"#)]
async fn answer_says(w: &mut GantryWorld, code: String) {
    assert_eq!(
        w.last().error_code().as_deref(),
        Some(code.as_str()),
        "{}",
        w.last().body
    );
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[when(regex = r#"^"(\w+)" calls /users/me with a token that is (.+)$"#)]
async fn forged_token(w: &mut GantryWorld, name: String, forgery: String) {
    let user = w.user(&name).clone();
    let real = user.token.clone().expect("a token");
    let payload = real.split('.').nth(1).expect("a JWT").to_owned();
    let token = match forgery.as_str() {
        "signed with alg none" => {
            format!("{}.{payload}.", b64(&json!({"alg": "none", "typ": "JWT"})))
        }
        "tampered after signing" => {
            let mut claims: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&payload).expect("base64url")).expect("JSON claims");
            claims["sub"] = json!("u_someone_else");
            let parts: Vec<&str> = real.split('.').collect();
            format!("{}.{}.{}", parts[0], b64(&claims), parts[2])
        }
        "signed with an unknown key" => Signer::ed25519(jwt::generate_seed()).sign(&valid_claims(&user.id)),
        "HS256-signed with the public key" => {
            let jwks: Value = reqwest::get(format!("{}/auth/.well-known/jwks.json", w.gateway()))
                .await
                .expect("jwks")
                .json()
                .await
                .expect("jwks json");
            let key = &jwks["keys"][0];
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = key["kid"].as_str().map(str::to_owned);
            let x = key["x"].as_str().expect("an Ed25519 key");
            let secret = jsonwebtoken::EncodingKey::from_secret(x.as_bytes());
            jsonwebtoken::encode(&header, &valid_claims(&user.id), &secret).expect("HS256 signing")
        }
        "garbage" => "not-a-jwt".to_owned(),
        other => panic!("unknown forgery {other:?}"),
    };
    w.last = Some(user.get_with_token("/users/me", &token).await.expect("request"));
}

fn valid_claims(sub: &Option<String>) -> Claims {
    let now = jwt::now_secs();
    Claims {
        sub: sub.clone().unwrap_or_else(|| "u_unknown".into()),
        iss: jwt::DEFAULT_ISSUER.into(),
        aud: jwt::DEFAULT_AUDIENCE.into(),
        exp: now + 300,
        iat: now,
        nbf: Some(now),
        jti: jwt::random_id(16),
        username: None,
        scope: None,
    }
}

#[when(regex = r#"^"(\w+)" calls /users/me with a token signed by the stack's key that is (.+)$"#)]
async fn signed_by_stack(w: &mut GantryWorld, name: String, claims: String) {
    let seed = w
        .target()
        .signing_seed
        .expect("this step needs the stack's signing key");
    let user = w.user(&name).clone();
    let mut c = serde_json::to_value(valid_claims(&user.id)).unwrap();
    let now = jwt::now_secs();
    let mut kind = jwt::TokenKind::Access;
    match claims.as_str() {
        "valid" => {}
        "expired" => c["exp"] = json!(now - 60),
        "not yet valid" => c["nbf"] = json!(now + 600),
        "from the wrong issuer" => c["iss"] = json!("someone-else"),
        "for the wrong audience" => c["aud"] = json!("another-audience"),
        "missing its jti" => {
            c.as_object_mut().unwrap().remove("jti");
        }
        // What auth gives services, with the scope that creates profiles.
        "a service token" => {
            c["aud"] = json!(jwt::service_audience(jwt::DEFAULT_AUDIENCE));
            c["scope"] = json!("users:write");
            kind = jwt::TokenKind::Service;
        }
        // Valid claims, but without the access-token type (`typ: JWT`).
        "untyped" => {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
            header.kid = Some(Signer::ed25519(seed).kid().to_owned());
            let key = jsonwebtoken::EncodingKey::from_ed_der(&ed25519_pkcs8(&seed));
            let token = jsonwebtoken::encode(&header, &c, &key).expect("signing");
            w.last = Some(user.get_with_token("/users/me", &token).await.expect("request"));
            return;
        }
        other => panic!("unknown claims {other:?}"),
    }
    let token = Signer::ed25519(seed).sign_as(kind, &c);
    w.last = Some(user.get_with_token("/users/me", &token).await.expect("request"));
}

/// PKCS#8 v1 of an Ed25519 seed (RFC 8410 §7), as jsonwebtoken takes it.
fn ed25519_pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ];
    der.extend_from_slice(seed);
    der
}

#[when("auth's signing key is rotated")]
async fn rotate(w: &mut GantryWorld) {
    w.stack().rotate_signing_key().await.expect("rotating the key");
}

#[then("the new token is signed with a different key than the old one")]
async fn different_kid(w: &mut GantryWorld) {
    let kid = |t: &str| jwt::KeySet::kid_of(t).expect("a kid");
    let old = w.previous_token.clone().expect("an earlier token");
    let new = w.users.values().next().and_then(|u| u.token.clone()).expect("a token");
    assert_ne!(kid(&old), kid(&new));
}
