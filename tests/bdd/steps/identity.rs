//! Tokens, sessions and revocation.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cucumber::{given, then, when};
use gantry_common::jwt::{self, Claims, Signer};
use gantry_harness::GantryStack as _;
use gantry_harness::drive::client::{Answer, Auth, SetCookie};
use serde_json::{Value, json};

use gantry_harness::run::wait::Deadline;

use super::eventually;
use crate::world::GantryWorld;

fn auth(by: &str) -> Auth {
    match by {
        "session" => Auth::Session,
        "bearer" => Auth::Bearer,
        other => panic!("unknown identity {other:?}"),
    }
}

#[given(regex = r#"^"(\w+)" gets 200 from /users/me by (session|bearer|session and by bearer) on every gateway$"#)]
#[then(regex = r#"^"(\w+)" gets 200 from /users/me by (session|bearer|session and by bearer) on every gateway$"#)]
async fn on_every_gateway(w: &mut GantryWorld, name: String, by: String) {
    let ways: &[&str] = match by.as_str() {
        "session and by bearer" => &["session", "bearer"],
        one => &[one][..],
    };
    // Done before a logout, this also fills every gateway's caches with the
    // session and the token, so only a revocation can empty them.
    for gateway in w.target().gateways.clone() {
        for by in ways {
            let answer = w
                .user(&name)
                .via(&gateway)
                .get("/users/me", auth(by))
                .await
                .expect("request");
            assert_eq!(answer.status, 200, "{gateway} by {by}: {}", answer.body);
        }
    }
}

/// How long a revocation may take to reach every gateway: far less than the
/// session cache's 5 s, so a refusal within it was pushed, not waited out.
/// (A cached token would be served until its `exp`.)
const REVOCATION_PUSH_BOUND: Duration = Duration::from_secs(1);

/// True when `answer` is the gateway's own 401, not a user instance's: the
/// gateway must refuse by itself, since services behind it may not check.
/// User instances are named `user-…` (the default `<service>-<port>`).
fn refused_by_the_gateway(answer: &Answer) -> bool {
    answer.status == 401
        && answer.header("www-authenticate") == Some("Bearer")
        && answer.instance().is_some_and(|id| !id.starts_with("user"))
}

fn describe(answer: &Answer) -> String {
    format!(
        "{} from {:?}: {}",
        answer.status,
        answer.instance().unwrap_or("no X-Instance-Id"),
        answer.body
    )
}

#[then(regex = r#"^every gateway refuses the old (session|token) of "(\w+)" (at once|within (\d+) seconds)$"#)]
async fn every_gateway_refuses(w: &mut GantryWorld, what: String, name: String, _when: String, within: String) {
    // "At once": pushed, well inside any cache's life; "within N seconds":
    // a bound the scenario derives from a mechanism (a feed's ping, a cache).
    let bound = within.parse().map_or(REVOCATION_PUSH_BOUND, Duration::from_secs);
    let by = if what == "session" { Auth::Session } else { Auth::Bearer };
    let copy = w
        .before
        .get(&name)
        .cloned()
        .unwrap_or_else(|| panic!("no copy of what {name:?} held: log out or refresh first"));
    assert!(copy.holds(by), "{name:?} held no {what} before: nothing to replay");
    let user = w.user(&name).clone();
    let started = tokio::time::Instant::now();
    let deadline = Deadline::after(bound);
    for gateway in w.target().gateways.clone() {
        // The old values, sent as a thief who copied them would: the owner's
        // own client dropped the cookie when logout cleared it.
        let thief = user.via(&gateway);
        loop {
            let answer = thief
                .replay(reqwest::Method::GET, "/users/me", &copy, by)
                .await
                .expect("request");
            if refused_by_the_gateway(&answer) {
                break;
            }
            assert!(
                deadline.again().await,
                "{gateway} still does not refuse the old {what} of {name:?} by itself {:?} after: {}",
                started.elapsed(),
                describe(&answer)
            );
        }
    }
    println!(
        "    every gateway refused the old {what} within {} ms",
        started.elapsed().as_millis()
    );
}

#[when(regex = r#"^"(\w+)" calls /users/me (\d+) times by session$"#)]
async fn many_calls(w: &mut GantryWorld, name: String, times: usize) {
    let redis = w.target().redis_url.clone().expect("this step needs Redis access");
    w.hget_before = gantry_harness::drive::redis_stats::command_calls(&redis, "hget")
        .await
        .expect("INFO commandstats");
    let user = w.user(&name).clone();
    w.steps.answers.clear();
    for _ in 0..times {
        w.steps
            .answers
            .push(user.get("/users/me", Auth::Session).await.expect("request"));
    }
}

#[then(regex = r"^Redis saw at most (\d+) session lookups for them$")]
async fn at_most_lookups(w: &mut GantryWorld, most: u64) {
    let redis = w.target().redis_url.clone().expect("this step needs Redis access");
    let after = gantry_harness::drive::redis_stats::command_calls(&redis, "hget")
        .await
        .expect("INFO commandstats");
    let lookups = after - w.hget_before;
    println!("    {} requests by session cost {lookups} HGETs", w.steps.answers.len());
    assert!(
        lookups <= most,
        "{lookups} session lookups for {} requests",
        w.steps.answers.len()
    );
}

#[when(regex = r#"^the session of "(\w+)" expires in Redis$"#)]
pub(super) async fn session_expires(w: &mut GantryWorld, name: String) {
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

/// The session cache's documented bound (`GANTRY_SESSION_CACHE_TTL`, at most 5 s).
const SESSION_CACHE_BOUND: Duration = Duration::from_secs(5);
/// What a refusal may take beyond that bound: a request's round trip.
const SESSION_CACHE_SLACK: Duration = Duration::from_secs(1);

fn session_key(w: &GantryWorld, name: &str) -> String {
    let cookie = w.user(name).cookie.clone().expect("a session");
    gantry_common::session::key(cookie.trim_start_matches("SESSION="))
}

async fn redis_conn(w: &GantryWorld) -> redis::aio::MultiplexedConnection {
    let redis = w.target().redis_url.clone().expect("this step needs Redis access");
    redis::Client::open(redis)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("a connection to Redis")
}

#[when(regex = r#"^the session of "(\w+)" is deleted in Redis, with no revocation announced$"#)]
async fn session_deleted(w: &mut GantryWorld, name: String) {
    // The token inside the session must outlive the cache by far, so only
    // the cache's bound can be what refuses the session afterwards.
    let token = w.user(&name).token.clone().expect("a token");
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("claims");
    let exp = claims["exp"].as_u64().expect("exp");
    let left = exp.saturating_sub(jwt::now_secs());
    assert!(
        left > 60,
        "the session's token expires in {left} s: too soon to tell the cache's bound"
    );
    let key = session_key(w, &name);
    let mut conn = redis_conn(w).await;
    // As an operator's DEL or Redis's own expiry would: nothing is published.
    let deleted: i64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await.expect("DEL");
    assert_eq!(deleted, 1, "{key} was there to delete");
    w.session_deleted_at = Some(tokio::time::Instant::now());
}

#[then(regex = r#"^"(\w+)" still gets 200 from /users/me by session, from the gateway's session cache$"#)]
async fn served_from_the_cache(w: &mut GantryWorld, name: String) {
    let answer = w.user(&name).get("/users/me", Auth::Session).await.expect("request");
    let mut conn = redis_conn(w).await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(session_key(w, &name))
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert_eq!(exists, 0, "the session is still in Redis");
    // Redis no longer has the session: a 200 can only come from the cache.
    assert_eq!(
        answer.status,
        200,
        "a session deleted a moment ago was not served from a cache: {}",
        describe(&answer)
    );
}

#[then(regex = r#"^"(\w+)" gets 401 from /users/me by session within the session cache's bound$"#)]
async fn refused_within_the_cache_bound(w: &mut GantryWorld, name: String) {
    let deleted_at = w.session_deleted_at.expect("a session deleted in Redis first");
    // The gateway fetched the session before it was deleted, so its entry
    // expires by then plus the bound.
    let deadline = deleted_at + SESSION_CACHE_BOUND + SESSION_CACHE_SLACK;
    let user = w.user(&name).clone();
    let mut served = 0;
    loop {
        let sent = tokio::time::Instant::now();
        let answer = user.get("/users/me", Auth::Session).await.expect("request");
        if answer.status == 401 {
            assert!(refused_by_the_gateway(&answer), "{}", describe(&answer));
            assert!(
                sent <= deadline,
                "the first 401 came {:?} after the delete",
                sent - deleted_at
            );
            println!(
                "    refused {} ms after the delete, after {served} answers from the cache",
                (sent - deleted_at).as_millis()
            );
            return;
        }
        assert_eq!(answer.status, 200, "{}", describe(&answer));
        served += 1;
        assert!(
            sent <= deadline,
            "a deleted session was still served {:?} after the delete ({served} answers): \
             the session cache is not bounded by {SESSION_CACHE_BOUND:?}",
            sent - deleted_at
        );
        // Pacing the polls, not waiting for readiness.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks one attribute spec of a cookie: `Flag`, `no Flag` (absent),
/// `Name=value`, or `Name=low..high` (a number within, inclusive).
fn check_attribute(cookie: &SetCookie, spec: &str) {
    let whole = format!("{cookie:?}");
    if let Some(absent) = spec.strip_prefix("no ") {
        assert!(!cookie.has(absent), "{absent} in {whole}");
        return;
    }
    let Some((name, want)) = spec.split_once('=') else {
        assert!(cookie.has(spec), "no {spec} in {whole}");
        return;
    };
    let got = cookie
        .attribute(name)
        .unwrap_or_else(|| panic!("no {name}=… in {whole}"));
    match want.split_once("..") {
        Some((low, high)) => {
            let parse = |v: &str| {
                v.parse::<u64>()
                    .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
            };
            let (low, high, got) = (parse(low), parse(high), parse(got));
            assert!(
                (low..=high).contains(&got),
                "{name}={got}, not within {low}..={high}: {whole}"
            );
        }
        None => assert_eq!(got, want, "{name} in {whole}"),
    }
}

#[then(regex = r#"^the session cookie "(\w+)" was last given is (set|cleared) with (.+)$"#)]
async fn session_cookie_is(w: &mut GantryWorld, name: String, state: String, attributes: String) {
    let cookie = w
        .user(&name)
        .session_set_cookie
        .clone()
        .expect("no Set-Cookie for SESSION was given");
    match state.as_str() {
        "set" => assert!(!cookie.value.is_empty(), "an empty session cookie: {cookie:?}"),
        _ => assert!(cookie.value.is_empty(), "a cleared cookie keeps no value: {cookie:?}"),
    }
    for spec in attributes.split(", ") {
        check_attribute(&cookie, spec.trim());
    }
}

#[then(regex = r#"^the answer names "(\w+)" and comes from a user instance$"#)]
async fn names_the_user(w: &mut GantryWorld, name: String) {
    let expected = w.user(&name).username.clone();
    let last = w.last();
    assert_eq!(last.json()["username"], expected.as_str(), "{}", last.body);
    let instance = last.instance().unwrap_or_default();
    assert!(instance.starts_with("user-"), "X-Instance-Id {instance:?}");
}

/// The profile `name` registered: their id and username, and the display
/// name registration defaults to (the username), nothing else.
#[then(regex = r#"^the answer is exactly the profile of "(\w+)"$"#)]
async fn exactly_the_profile(w: &mut GantryWorld, name: String) {
    let user = w.user(&name);
    let want = json!({"id": user.id.clone().expect("an id from registration"), "username": user.username, "display_name": user.username});
    let last = w.last();
    assert_eq!(last.status, 200, "{}", last.describe());
    assert_eq!(last.json(), want, "{}", last.describe());
    let instance = last.instance().unwrap_or_default();
    assert!(instance.starts_with("user-"), "X-Instance-Id {instance:?}");
}

#[when(regex = r#"^"(\w+)" reads their own profile by id$"#)]
async fn own_profile_by_id(w: &mut GantryWorld, name: String) {
    let user = w.user(&name);
    let path = format!("/users/{}", user.id.as_deref().expect("an id from registration"));
    let answer = user.get(&path, Auth::Bearer).await.expect("request");
    w.steps.record(answer);
}

#[when(regex = r#"^"(\w+)" registers again with another password$"#)]
async fn registers_again(w: &mut GantryWorld, name: String) {
    let mut again = w.user(&name).clone();
    again.password = "another-long-password".to_owned();
    let answer = again.register().await.expect("register");
    w.steps.record(answer);
}

#[then(regex = r"^the answer is (\d+) with a Bearer challenge$")]
async fn with_challenge(w: &mut GantryWorld, status: u16) {
    let last = w.last();
    assert_eq!(last.status, status, "{}", last.body);
    assert_eq!(last.header("www-authenticate"), Some("Bearer"));
    assert!(last.error_code().is_some(), "a JSON reason: {}", last.body);
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
        "empty" => String::new(),
        // Three dots' worth of segments, 10 KB: parsed no further than its size.
        "10 KB long" => "a.b.c".repeat(2000),
        other => panic!("unknown forgery {other:?}"),
    };
    w.steps.last = Some(user.get_with_token("/users/me", &token).await.expect("request"));
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
        "issued in the future" => c["iat"] = json!(now + 600),
        // Absence is refused like a wrong value: no claim is optional but nbf.
        missing if missing.starts_with("missing its ") => {
            let claim = &missing["missing its ".len()..];
            assert!(
                c.as_object_mut().unwrap().remove(claim).is_some(),
                "a valid token has no {claim} to leave out"
            );
        }
        // What auth gives services, with the scope that creates profiles.
        "a service token" => {
            c["aud"] = json!(jwt::service_audience(jwt::DEFAULT_AUDIENCE));
            c["scope"] = json!("users:write");
            kind = jwt::TokenKind::Service;
        }
        // Valid claims, but without the access-token type (`typ: JWT`).
        "untyped" => {
            let token = Signer::ed25519(seed).sign_with_header(jsonwebtoken::Header::default(), &c);
            w.steps.last = Some(user.get_with_token("/users/me", &token).await.expect("request"));
            return;
        }
        other => panic!("unknown claims {other:?}"),
    }
    let token = Signer::ed25519(seed).sign_as(kind, &c);
    w.steps.last = Some(user.get_with_token("/users/me", &token).await.expect("request"));
}

/// A token a test mints itself for `name` with a shared secret, as a team
/// whose stack runs in HS256 mode (`GANTRY_JWT_ALG=HS256`) would.
#[when(regex = r#"^"(\w+)" calls /users/me with a token minted with the secret "([^"]+)"$"#)]
async fn minted_with_secret(w: &mut GantryWorld, name: String, secret: String) {
    let user = w.user(&name).clone();
    let token = Signer::hs256(secret.as_bytes()).sign(&valid_claims(&user.id));
    w.steps.last = Some(user.get_with_token("/users/me", &token).await.expect("request"));
}

#[when("auth's signing key is rotated")]
async fn rotate(w: &mut GantryWorld) {
    w.stack().rotate_signing_key().await.expect("rotating the key");
}

#[then("the new token is signed with a different key than the old one")]
async fn different_kid(w: &mut GantryWorld) {
    let kid = |t: &str| jwt::KeySet::kid_of(t).expect("a kid");
    let old = w.previous_token.clone().expect("an earlier token");
    let new = w.any_user().token.expect("a token");
    assert_ne!(kid(&old), kid(&new));
}

/// Waits until Redis has dropped the session by its TTL (the stack's
/// GANTRY_SESSION_TTL of 2 s) and checks that the session is gone while its
/// token still works.
#[when(regex = r#"^the session of "(\w+)" ends by its TTL while its token lives on$"#)]
async fn session_ends_by_its_ttl(w: &mut GantryWorld, name: String) {
    session_expires(w, name.clone()).await;
    let user = w.user(&name).clone();
    let copy = user.credentials();
    let refresh = user
        .replay(reqwest::Method::POST, "/auth/refresh", &copy, Auth::Session)
        .await
        .expect("refresh");
    assert_eq!(refresh.status, 401, "the session ended by its TTL: {}", refresh.body);
    let me = user.get("/users/me", Auth::Bearer).await.expect("request");
    assert_eq!(me.status, 200, "the token outlives its session: {}", me.body);
}
