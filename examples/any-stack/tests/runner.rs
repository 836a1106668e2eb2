//! What the runner in `tests/stack.rs` (Gantry's `Runner`) does when a
//! scenario goes wrong, run on the example's own stack with scenarios made
//! to go wrong (`GANTRY_FEATURES`): a mistyped step fails the run naming the
//! step; a failed scenario keeps its stack's logs where it says and puts
//! their tails into the JUnit report; a deployed stack without its URL is
//! refused before anything starts, naming the variable.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// How long one run of the example's runner may take (it starts the stack).
const RUN_DEADLINE: Duration = Duration::from_secs(240);

/// One run at a time: each starts a whole stack.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the environment may say about where the stack is: none of it
/// reaches these runs but what a case sets.
const STACK_VARS: &[&str] = &[
    "GANTRY_ENV",
    "GANTRY_ENVIRONMENTS",
    "GANTRY_GATEWAY_URL",
    "GANTRY_GATEWAY_ADMIN_URL",
    "GANTRY_JWT_SIGNING_KEY",
    "GANTRY_CA_CERT",
    "CONSUL_HTTP_ADDR",
    "CONSUL_HTTP_TOKEN",
    "REDIS_URL",
];

/// A scratch folder of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("runner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the example's runner on `feature` (written to a scratch folder),
/// on local processes unless `env` says otherwise.
async fn run(name: &str, feature: &str, env: &[(&str, &str)]) -> (Output, PathBuf) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = scratch(name);
    let features = dir.join("features");
    std::fs::create_dir_all(&features).unwrap();
    std::fs::write(features.join(format!("{name}.feature")), feature).unwrap();
    let mut command = tokio::process::Command::new(
        gantry_harness::run::binary::built_test("stack").unwrap_or_else(|e| panic!("{e}")),
    );
    for var in STACK_VARS {
        command.env_remove(var);
    }
    command
        .env("GANTRY_INFRA", "local")
        .env("GANTRY_FEATURES", &features)
        .env("GANTRY_REPORTS", dir.join("reports"))
        .env("GANTRY_RUN_ID", format!("runner-{name}-{}", std::process::id()))
        .envs(env.iter().copied())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("the runner did not finish within {RUN_DEADLINE:?}"))
        .expect("running the example's runner");
    (output, dir)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_mistyped_step_fails_the_run_and_names_the_step() {
    let feature =
        "Feature: typo\n  Scenario: a step no phrase matches\n    When I GET /greet/hello\n    Then the staus is 401\n";
    let (output, dir) = run("typo", feature, &[]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "a typo must fail the run:\n{stdout}");
    assert!(
        stdout.contains("1 scenario (1 failed)"),
        "counted as a failure, not a skip:\n{stdout}"
    );
    let junit = std::fs::read_to_string(dir.join("reports/junit.xml")).expect("the JUnit report");
    let failure = junit.find("<failure").map(|at| &junit[at..]).unwrap_or_default();
    assert!(
        failure.contains("the staus is 401"),
        "the failure names the step:\n{junit}"
    );
}

#[tokio::test]
async fn a_failed_scenario_keeps_its_logs_and_puts_their_tails_in_the_junit_report() {
    let feature = "Feature: evidence\n  Scenario: one made to fail\n    Then GET /greet/hello answers 418\n";
    let (output, dir) = run("evidence", feature, &[]).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(
        output.status.code(),
        Some(1),
        "the scenario must fail:\n{stdout}\n{stderr}"
    );
    let said = stderr
        .lines()
        .find_map(|l| {
            l.split_once("failed; the logs of its stack are in ")
                .map(|(_, d)| d.to_owned())
        })
        .unwrap_or_else(|| panic!("the logs' folder is printed:\n{stderr}"));
    let logs = PathBuf::from(said.trim());
    let kept: Vec<String> = std::fs::read_dir(&logs)
        .unwrap_or_else(|e| panic!("{}: {e}", logs.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    for component in ["gateway-1", "greeter-1"] {
        assert!(
            kept.iter().any(|f| f.starts_with(component)),
            "{component}'s log is kept in {}: {kept:?}",
            logs.display()
        );
    }
    let junit = std::fs::read_to_string(dir.join("reports/junit.xml")).expect("the JUnit report");
    assert!(junit.contains("<failure"), "{junit}");
    assert!(junit.contains("== gateway-1 (last 40 lines of "), "{junit}");
    assert!(
        std::fs::metadata(dir.join("reports/cucumber.json")).is_ok_and(|m| m.len() > 0),
        "a Cucumber JSON report"
    );
}

#[tokio::test]
async fn a_deployed_stack_without_its_url_is_refused_naming_the_variable() {
    let feature = "Feature: external\n  Scenario: any\n    Then GET /healthz answers 200\n";
    let (output, _) = run("external", feature, &[("GANTRY_INFRA", "external")]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("GANTRY_GATEWAY_URL"), "{stderr}");
}

/// `GANTRY_ENV` names a table of `environments.toml` beside the features
/// folder; an unknown one stops the run, saying which there are.
#[tokio::test]
async fn a_deployed_stack_named_but_not_in_the_environments_file_is_refused_with_the_names_there() {
    let feature = "Feature: external\n  Scenario: any\n    Then GET /healthz answers 200\n";
    let (output, _) = run(
        "environments",
        feature,
        &[("GANTRY_INFRA", "external"), ("GANTRY_ENV", "nowhere")],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("environments.toml has no [nowhere]; it has: local"),
        "{stderr}"
    );

    let (output, _) = run("environments", feature, &[("GANTRY_ENV", "local")]).await;
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "GANTRY_INFRA=local and GANTRY_ENV contradict: {stderr}"
    );
    assert!(stderr.contains("unset one of them"), "{stderr}");
}
