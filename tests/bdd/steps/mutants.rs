//! Steps for `features/mutants.feature`: behaviour a mutation run found no
//! other scenario checking.

use cucumber::{then, when};
use gantry_harness::drive::client::{Answer, Auth, Credentials};

use super::abuse::client;
use crate::world::GantryWorld;

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

/// Waits until Redis has dropped the session by its TTL (the stack's
/// GANTRY_SESSION_TTL of 2 s) and checks that the session is gone while its
/// token still works.
#[when(regex = r#"^the session of "(\w+)" ends by its TTL while its token lives on$"#)]
async fn session_ends_by_its_ttl(w: &mut GantryWorld, name: String) {
    super::identity::session_expires(w, name.clone()).await;
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
