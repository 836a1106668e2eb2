//! Instances verify tokens themselves (defence in depth): a revoked token,
//! or a token of the wrong kind, gets nothing from a user instance called
//! directly, past the gateway.

use cucumber::then;
use gantry_harness::GantryStack as _;
use serde_json::json;

use crate::world::GantryWorld;

fn instance_url(w: &mut GantryWorld, n: usize) -> String {
    let addrs = w.stack().user_addrs();
    let addr = addrs
        .get(n - 1)
        .unwrap_or_else(|| panic!("no user instance {n}; there are {}", addrs.len()));
    format!("http://{addr}")
}

fn token_of(w: &GantryWorld, name: &str) -> String {
    w.user(name)
        .token
        .clone()
        .expect("the user logged in and holds a token")
}

#[then(regex = r#"^user instance (\d+), called directly, answers (\d+) to the token of "(\w+)"$"#)]
async fn instance_answers(w: &mut GantryWorld, n: usize, status: u16, name: String) {
    let url = instance_url(w, n);
    let token = token_of(w, &name);
    let answer = w
        .user(&name)
        .via(&url)
        .get_with_token("/users/me", &token)
        .await
        .expect("request");
    assert_eq!(answer.status, status, "GET /users/me at {url}: {}", answer.body);
}

#[then(regex = r#"^user instance (\d+), called directly, refuses the access token of "(\w+)" on its internal route$"#)]
async fn internal_route_refuses_access_tokens(w: &mut GantryWorld, n: usize, name: String) {
    let url = instance_url(w, n);
    let token = token_of(w, &name);
    let answer = reqwest::Client::new()
        .post(format!("{url}/internal/users"))
        .bearer_auth(&token)
        .json(&json!({"id": "u_intruder", "username": "intruder", "display_name": "Intruder"}))
        .send()
        .await
        .expect("request");
    let status = answer.status().as_u16();
    let body = answer.text().await.unwrap_or_default();
    // 401, not 403: the token is not even of the kind this route takes.
    assert_eq!(status, 401, "POST /internal/users with an access token: {body}");
}
