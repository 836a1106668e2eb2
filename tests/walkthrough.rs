//! The README's walk-through, run as written: its shell block, with curl,
//! against a stack started as `gantry up` starts it (only the gateway's
//! address differs). What the walk-through's answers promise in detail (the
//! status codes, the cookie's attributes, the errors) the scenarios in
//! `features/` prove case by case.

use std::path::Path;

use gantry_harness::{Infra, StackBuilder};
use serde_json::Value;

/// The `sh` block of the README's "Walk-through" section.
fn walkthrough_script() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("\n## Walk-through\n")
        .nth(1)
        .expect("the README has a Walk-through section");
    let section = section.split("\n## ").next().unwrap();
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the Walk-through has a ```sh block");
    block.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_runs_as_written() {
    let script = walkthrough_script();
    assert!(
        script.contains("http://127.0.0.1:8000"),
        "the walk-through speaks to gantry up's default gateway"
    );
    let stack = StackBuilder::new(env!("CARGO_BIN_EXE_gantry"))
        .infra(Infra::Local)
        .users(2)
        .start(&mut |_| {})
        .await
        .unwrap_or_else(|e| panic!("the stack did not start: {e}"));
    let script = script.replace("http://127.0.0.1:8000", stack.gateway_url().trim_end_matches('/'));
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("sh")
        .arg("-euc")
        .arg(&script)
        .current_dir(dir.path())
        .output()
        .await
        .expect("running sh (curl is a prerequisite: see the README)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the walk-through failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // curl -s prints bodies without a newline and `-w '%{http_code}\n'` the
    // codes: the output is a stream of JSON values, one per command.
    let said: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("the walk-through printed something other than JSON and codes ({e}): {stdout}"));
    let [
        registered,
        login,
        by_cookie,
        by_bearer,
        logout_cookie,
        logout_bearer,
        after_cookie,
        after_bearer,
    ] = &said[..]
    else {
        panic!(
            "expected eight answers from the walk-through, got {}: {stdout}",
            said.len()
        );
    };
    assert_eq!(registered["username"], "ada", "{registered}");
    let id = registered["id"].as_str().expect("register answers the new user's id");
    assert_eq!(login["token_type"], "Bearer", "{login}");
    assert!(login["access_token"].is_string(), "{login}");
    let profile = serde_json::json!({"id": id, "username": "ada", "display_name": "Ada"});
    assert_eq!(by_cookie, &profile, "/users/me by cookie");
    assert_eq!(by_bearer, &profile, "/users/me by bearer");
    assert_eq!((logout_cookie, logout_bearer), (&Value::from(204), &Value::from(204)));
    for after in [after_cookie, after_bearer] {
        assert_eq!(after["error"], "unauthorized", "after logout: {after}");
    }
    stack.stop(&mut |_| {}).await.unwrap();
}
