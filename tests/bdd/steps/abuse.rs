//! Abuse: sessions that outlive a logout or their maximum age, password
//! guessing, login floods.
//!
//! The gateway appends the TCP peer it saw to `X-Forwarded-For`, and auth
//! keys its lockout on that last entry. To log in "from elsewhere" a step
//! connects from another loopback address (on Linux all of 127.0.0.0/8 is
//! this host), so the gateway sees a different peer, exactly as it would for
//! a client on another machine.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cucumber::{given, then, when};
use gantry_harness::drive::client::{Answer, Auth, Credentials};
use gantry_harness::run::wait::Deadline;
use serde_json::{Value, json};

use super::{stack, unique};
use crate::target;
use crate::world::GantryWorld;

/// The cookie and token `name` held before their last logout or refresh.
fn before(w: &GantryWorld, name: &str) -> Credentials {
    w.before
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no copy of what {name:?} held: log out or refresh first"))
}

/// A client whose requests give up after a minute, so a stalled stack fails
/// the step instead of hanging it.
fn timed() -> reqwest::ClientBuilder {
    gantry_harness::drive::client::http_builder(None).timeout(Duration::from_secs(60))
}

/// See [`timed`].
pub(super) fn client() -> reqwest::Client {
    timed().build().expect("an HTTP client")
}

/// A [`client`] whose connections come from `ip`.
fn client_from(ip: &str) -> reqwest::Client {
    let ip: IpAddr = ip.parse().expect("an IP address");
    timed().local_address(ip).build().expect("an HTTP client")
}

/// The claims of a JWT, unverified: the test only reads its own tokens.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON claims")
}

#[given(
    regex = r"^a fresh stack(?: with (\d+) user instances)?(?: with (\d+) gateways)? where (GANTRY_\w+ is \S+(?: and GANTRY_\w+ is \S+)*)$"
)]
async fn a_fresh_stack_where(w: &mut GantryWorld, users: String, gateways: String, settings: String) {
    let mut builder = target::builder().users(users.parse().unwrap_or(1));
    if let Ok(n) = gateways.parse() {
        builder = builder.gateways(n);
    }
    for setting in settings.split(" and ") {
        let (var, value) = setting.split_once(" is ").expect("`GANTRY_X is value`");
        builder = builder.env(var, value);
    }
    stack::start_fresh(w, builder).await;
}

#[given(regex = r#"^a registered user "(\w+)"$"#)]
async fn a_registered_user(w: &mut GantryWorld, name: String) {
    let user = stack::register(w, &name).await;
    w.steps.users.insert(name, user);
}

/// Login must not tell a guesser which usernames exist: a wrong password
/// and a name nobody registered get byte-identical answers.
#[then(regex = r#"^a wrong password for "(\w+)" and an unknown user get the very same answer$"#)]
async fn same_refusal(w: &mut GantryWorld, name: String) {
    let username = w.user(&name).username.clone();
    let http = client();
    let login = |username: String| {
        let req = http
            .post(format!("{}/auth/login", w.gateway()))
            .json(&json!({"username": username, "password": "not-the-password"}));
        async move { Answer::read(req.send().await.expect("login")).await }
    };
    let wrong = login(username).await;
    let unknown = login(super::unique("nobody")).await;
    assert_eq!(wrong.status, 401, "a wrong password: {}", wrong.describe());
    assert_eq!(
        (unknown.status, &unknown.body),
        (wrong.status, &wrong.body),
        "an unknown user is answered otherwise than a wrong password"
    );
    assert!(wrong.error_code().is_some(), "a JSON reason: {}", wrong.body);
    w.steps.record(wrong);
}

#[when(regex = r#"^"(\w+)" logs out by bearer$"#)]
async fn logs_out_by_bearer(w: &mut GantryWorld, name: String) {
    stack::log_out(w, &name, Auth::Bearer).await;
}

#[when(regex = r#"^"(\w+)" refreshes the session$"#)]
async fn refreshes(w: &mut GantryWorld, name: String) {
    let copy = w.user(&name).credentials();
    w.before.insert(name.clone(), copy);
    let answer = w
        .user_mut(&name)
        .post("/auth/refresh", Auth::Session)
        .await
        .expect("refresh");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let old = before(w, &name).cookie;
    assert_ne!(w.user(&name).cookie, old, "refresh sets a new session cookie");
    let old = before(w, &name).token;
    assert_ne!(w.user(&name).token, old, "refresh gives a new token");
}

#[then(regex = r#"^the old session of "(\w+)" gets (\d+) from (GET|POST) (/\S+)$"#)]
async fn old_session(w: &mut GantryWorld, name: String, status: u16, method: String, path: String) {
    let old = before(w, &name);
    // The cookie value as it was, replayed: the client forgot it on logout.
    assert!(old.holds(Auth::Session), "a session cookie before");
    let method: reqwest::Method = method.parse().expect("GET or POST");
    let answer = w
        .user(&name)
        .replay(method.clone(), &path, &old, Auth::Session)
        .await
        .expect("request");
    assert_eq!(
        answer.status, status,
        "{method} {path} with the old cookie: {}",
        answer.body
    );
    assert!(answer.error_code().is_some(), "a JSON reason: {}", answer.body);
    w.steps.last = Some(answer);
}

#[then(regex = r#"^the old token of "(\w+)" gets (\d+) from (/\S+)$"#)]
async fn old_token(w: &mut GantryWorld, name: String, status: u16, path: String) {
    let old = before(w, &name);
    assert!(old.holds(Auth::Bearer), "a token before");
    let answer = w
        .user(&name)
        .replay(reqwest::Method::GET, &path, &old, Auth::Bearer)
        .await
        .expect("request");
    assert_eq!(answer.status, status, "{path} with the old token: {}", answer.body);
    w.steps.last = Some(answer);
}

#[then(regex = r#"^a refresh of "(\w+)" ends the session and its token within (\d+) seconds of the login$"#)]
async fn end_by_the_deadline(w: &mut GantryWorld, name: String, secs: u64) {
    let login_token = before(w, &name).token.expect("the login's token");
    let logged_in_at = claims_of(&login_token)["iat"].as_u64().expect("iat");
    let user = w.user_mut(&name);
    let answer = user.post("/auth/refresh", Auth::Session).await.expect("refresh");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let refreshed = user.token.clone().expect("the refreshed token");
    let exp = claims_of(&refreshed)["exp"].as_u64().expect("exp");
    assert!(
        exp <= logged_in_at + secs,
        "the refreshed token expires {} s after the login",
        exp.saturating_sub(logged_in_at)
    );
    let max_age: u64 = answer
        .header("set-cookie")
        .and_then(|c| c.split(';').find_map(|p| p.trim().strip_prefix("Max-Age=")))
        .and_then(|v| v.parse().ok())
        .expect("the refresh set a cookie with Max-Age");
    assert!(max_age <= secs, "the refreshed cookie lives {max_age} s");
    w.steps.last = Some(answer);
}

#[then(regex = r#"^refreshing the session of "(\w+)" again and again is refused within (\d+) seconds$"#)]
async fn refused_eventually(w: &mut GantryWorld, name: String, secs: u64) {
    let user = w.user_mut(&name);
    // A refresh every quarter second: each one rotates the session.
    let deadline = Deadline::after(Duration::from_secs(secs)).every(Duration::from_millis(250));
    let mut refreshes = 0;
    loop {
        let answer = user.post("/auth/refresh", Auth::Session).await.expect("refresh");
        match answer.status {
            200 => refreshes += 1,
            401 => break,
            other => panic!("refresh answered {other}: {}", answer.body),
        }
        assert!(
            deadline.again().await,
            "still refreshed after {refreshes} refreshes: the session outlives its maximum age"
        );
    }
    println!("    the session ended after {refreshes} more refreshes");
}

#[when(
    regex = r#"^(\d+) wrong passwords for "(\w+)" arrive at once from (\S+), each claiming another X-Forwarded-For$"#
)]
async fn burst_of_wrong_passwords(w: &mut GantryWorld, count: usize, name: String, from: String) {
    let http = client_from(&from);
    let url = format!("{}/auth/login", w.gateway());
    let username = w.user(&name).username.clone();
    let requests = (0..count).map(|i| {
        let req = http
            .post(&url)
            // What a client claims; the gateway appends the peer it saw.
            .header("x-forwarded-for", format!("10.1.{}.{}", i / 250, i % 250 + 1))
            .json(&json!({"username": username, "password": "not-the-password"}));
        async move { Answer::read(req.send().await.expect("login")).await }
    });
    w.steps.answers = futures_util::future::join_all(requests).await;
}

#[then(
    regex = r"^(\d+) of them are answered 401 and the other (\d+) are answered 429 with Retry-After(?: of at least (\d+) seconds)?$"
)]
async fn answered_401_and_429(w: &mut GantryWorld, unauthorized: usize, throttled: usize, at_least: String) {
    let at_least: u64 = at_least.parse().unwrap_or(1);
    let count = |status| w.steps.answers.iter().filter(|a| a.status == status).count();
    let statuses: Vec<u16> = w.steps.answers.iter().map(|a| a.status).collect();
    assert_eq!((count(401), count(429)), (unauthorized, throttled), "{statuses:?}");
    for a in w.steps.answers.iter().filter(|a| a.status == 429) {
        assert_eq!(a.error_code().as_deref(), Some("too_many_attempts"), "{}", a.body);
        let wait: u64 = a
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!(wait >= at_least, "Retry-After {wait}, expected at least {at_least}");
    }
}

#[then(regex = r#"^the right password for "(\w+)" from (\S+) is answered (\d+)$"#)]
async fn right_password_from(w: &mut GantryWorld, name: String, from: String, status: u16) {
    let user = w.user(&name);
    let body = json!({"username": user.username, "password": user.password});
    let resp = client_from(&from)
        .post(format!("{}/auth/login", w.gateway()))
        .json(&body)
        .send()
        .await
        .expect("login");
    let answer = Answer::read(resp).await;
    assert_eq!(answer.status, status, "from {from}: {}", answer.body);
    w.steps.last = Some(answer);
}

#[when(regex = r"^(\d+) logins of unknown users arrive at once$")]
async fn login_flood(w: &mut GantryWorld, count: usize) {
    let http = client();
    let url = format!("{}/auth/login", w.gateway());
    let requests = (0..count).map(|_| {
        let req = http
            .post(&url)
            .json(&json!({"username": unique("ghost"), "password": "any-password"}));
        async move { Answer::read(req.send().await.expect("login")).await }
    });
    w.steps.answers = futures_util::future::join_all(requests).await;
}

#[then(regex = r#"^every answer is 401 or 503, and the 503s say "(\w+)" with Retry-After$"#)]
async fn only_401_or_503(w: &mut GantryWorld, code: String) {
    for a in &w.steps.answers {
        match a.status {
            401 => assert_eq!(a.error_code().as_deref(), Some("invalid_credentials"), "{}", a.body),
            503 => {
                assert_eq!(a.error_code().as_deref(), Some(code.as_str()), "{}", a.body);
                assert!(a.header("retry-after").is_some(), "503 without Retry-After");
            }
            other => panic!("answered {other}: {}", a.body),
        }
    }
}

#[then(regex = r"^at least one answer is (\d+)$")]
async fn at_least_one(w: &mut GantryWorld, status: u16) {
    let n = w.steps.answers.iter().filter(|a| a.status == status).count();
    let others = w.steps.answers.len() - n;
    println!("    {n} answers {status}, {others} others");
    assert!(n >= 1, "no answer was {status}");
}

/// A thief with a copy of the cookie refreshes at the same moment as its
/// owner (here: many copies at once). Ending the old session is the claim on
/// it, so only the refresh that deleted it may open a new one; a second
/// winner would be a session the owner's logout does not know about.
///
/// Each copy has its own connection, opened (and the gateway's to auth
/// warmed) by a first request, so the refreshes reach auth together rather
/// than spread over connection setups: a race that is really run.
#[when(regex = r#"^(\d+) refreshes of the session of "(\w+)" race each other$"#)]
async fn refreshes_race(w: &mut GantryWorld, count: usize, name: String) {
    let copy = w.user(&name).credentials();
    let cookie = copy
        .cookie
        .clone()
        .unwrap_or_else(|| panic!("{name} holds no session cookie"));
    let gateway = w.gateway();
    let clients: Vec<reqwest::Client> = (0..count).map(|_| client()).collect();
    let jwks = format!("{gateway}/auth/.well-known/jwks.json");
    let warm = clients.iter().map(|c| c.get(&jwks).send());
    for r in futures_util::future::join_all(warm).await {
        assert!(
            r.expect("warm-up").status().is_success(),
            "the JWKS through the gateway"
        );
    }
    let url = format!("{gateway}/auth/refresh");
    let refreshes = clients.iter().map(|c| {
        let req = c.post(&url).header("cookie", &cookie);
        async move { Answer::read(req.send().await.expect("refresh")).await }
    });
    w.steps.answers = futures_util::future::join_all(refreshes).await;
    w.before.insert(name, copy);
}

#[then(regex = r"^exactly one of the refreshes gets a new session and the others get 401$")]
async fn exactly_one_refresh_wins(w: &mut GantryWorld) {
    let statuses: Vec<u16> = w.steps.answers.iter().map(|a| a.status).collect();
    let winners: Vec<_> = w.steps.answers.iter().filter(|a| a.status == 200).collect();
    assert_eq!(winners.len(), 1, "one session, one successor: {statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 200 | 401)), "{statuses:?}");
    let cookie = winners[0]
        .set_cookies("SESSION")
        .into_iter()
        .next()
        .expect("the winner gets a session cookie");
    assert!(!cookie.value.is_empty(), "the winner's session cookie has a value");
}

/// A browser sends its cookie by itself, and a script adds the token it
/// holds, which may come from an older login: logout ends what both name.
#[when(regex = r#"^"(\w+)" logs out with the new session cookie and the token of the first login$"#)]
async fn logs_out_with_cookie_and_first_token(w: &mut GantryWorld, name: String) {
    let first = w.previous_token.clone().expect("a first token: log in again first");
    let user = w.user(&name).clone();
    assert_ne!(
        user.token.as_deref(),
        Some(first.as_str()),
        "the second login gave another token"
    );
    let copy = Credentials {
        cookie: user.cookie.clone(),
        token: Some(first.clone()),
    };
    let cookie = copy.cookie.clone().expect("a session cookie");
    let answer = Answer::read(
        client()
            .post(format!("{}/auth/logout", w.gateway()))
            .header("cookie", cookie)
            .bearer_auth(&first)
            .send()
            .await
            .expect("logout"),
    )
    .await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    w.before.insert(name, copy);
}
