//! One component started alone with a bad setting: it must stop before it
//! serves, naming the variable.

use std::time::Duration;

use cucumber::{then, when};

use crate::world::GantryWorld;

/// How long a refused start may take; one that is not refused would serve
/// forever and is killed after it.
const REFUSED_WITHIN: Duration = Duration::from_secs(30);

#[when(regex = r"^`gantry serve (\w+)` starts with (GANTRY_\w+)=(\S+)$")]
async fn serve_with(w: &mut GantryWorld, component: String, var: String, value: String) {
    let binary = gantry_harness::gantry_binary().unwrap_or_else(|e| panic!("{e}"));
    let run = tokio::process::Command::new(binary)
        .args(["serve", &component])
        .env(&var, &value)
        .env("GANTRY_LISTEN", "127.0.0.1:0")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(REFUSED_WITHIN, run)
        .await
        .unwrap_or_else(|_| {
            panic!("gantry serve {component} with {var}={value} was still running after {REFUSED_WITHIN:?}")
        })
        .expect("running gantry");
    w.exited = Some(out);
}

#[then(regex = r#"^it exits at once, saying "([^"]+)" and "([^"]+)"$"#)]
async fn exits_saying(w: &mut GantryWorld, named: String, expected: String) {
    let out = w.exited.as_ref().expect("a component started first");
    assert!(!out.status.success(), "it started: {:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for word in [&named, &expected] {
        assert!(
            stderr.contains(word.as_str()),
            "{word:?} not in what it said:\n{stderr}"
        );
    }
}
