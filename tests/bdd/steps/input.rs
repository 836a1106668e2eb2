//! Hostile and malformed input.

use cucumber::when;
use gantry_harness::drive::client::Answer;

use crate::world::GantryWorld;

#[when(regex = r"^an anonymous caller sends (.+)$")]
async fn sends(w: &mut GantryWorld, request: String) {
    let gw = w.gateway();
    // The gateway closes the connection after refusing an oversized request
    // unread, as nginx does: use a connection that is not reused.
    let http = w
        .target()
        .http_builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let json = |path: &str, body: String| {
        http.post(format!("{gw}{path}"))
            .header("content-type", "application/json")
            .body(body)
    };
    let req = match request.as_str() {
        "a login with malformed JSON" => json("/auth/login", "{\"username\": ".into()),
        "a login with wrongly typed fields" => json("/auth/login", r#"{"username": 7, "password": [1]}"#.into()),
        "a registration with a 70 KiB body" => json(
            "/auth/register",
            format!(r#"{{"username":"big","password":"{}"}}"#, "x".repeat(70 * 1024)),
        ),
        "a request with 20 KiB of headers" => http
            .get(format!("{gw}/users/me"))
            .header("x-padding", "p".repeat(20 * 1024)),
        "a request to an unknown route" => http.get(format!("{gw}/no/such/route")),
        other => panic!("unknown request {other:?}"),
    };
    w.steps.last = Some(Answer::read(req.send().await.expect("request")).await);
}

#[cucumber::then(regex = r"^the answer is (\d+) with a JSON error$")]
async fn json_error(w: &mut GantryWorld, status: u16) {
    let last = w.last();
    assert_eq!(last.status, status, "{}", last.body);
    assert!(last.error_code().is_some(), "not a JSON error: {}", last.body);
    assert!(last.json()["message"].is_string(), "{}", last.body);
}
