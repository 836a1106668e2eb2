//! A failing scenario leaves its evidence where the README says: the Cucumber
//! binary is run on feature files made to fail (`GANTRY_FEATURES`), and the
//! logs of the failed scenario's stack must be under
//! `target/gantry/<run>/<scenario>/`, their tails in the JUnit report's
//! `<system-out>`, and scenarios whose `@needs` are unmet listed there as
//! skipped. The failed request's trace-id, which the step's failure message
//! names, must be in the log of the service that answered it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one run of the suite on these small features may take.
const RUN_DEADLINE: Duration = Duration::from_secs(300);

const FAILING: &str = r#"
Feature: Evidence on purpose
  @needs:fresh-stack
  Scenario: a request is refused on purpose
    Given a fresh stack with 1 user instance
    When I GET /auth/nowhere
    Then the status is 418
"#;

const SKIPPING: &str = r#"
Feature: Evidence of skipping
  @needs:fresh-stack
  Scenario: one that needs a stack of its own
    Given a fresh stack with 1 user instance

  Scenario: one against a deployment that is not there
    Given a running stack
    When I GET /healthz
    Then the status is 200
"#;

/// The Cucumber suite's executable, built beside this test's (`cargo test`
/// builds every test target before it runs any).
fn bdd_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("GANTRY_BDD_BIN") {
        return path.into();
    }
    gantry_harness::run::binary::built_test("bdd").unwrap_or_else(|e| panic!("{e} (or set GANTRY_BDD_BIN)"))
}

/// Runs the suite on `feature` with `env`, within [`RUN_DEADLINE`].
fn run_suite(dir: &Path, feature: &str, run_id: &str, env: &[(&str, &str)]) -> (Output, String) {
    let features = dir.join("features");
    std::fs::create_dir_all(&features).unwrap();
    std::fs::write(features.join("evidence.feature"), feature).unwrap();
    let reports = dir.join("reports");
    let mut child = Command::new(bdd_binary())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GANTRY_FEATURES", &features)
        .env("GANTRY_REPORTS", &reports)
        .env("GANTRY_RUN_ID", run_id)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the Cucumber suite");
    let started = Instant::now();
    while child.try_wait().expect("waiting for the suite").is_none() {
        if started.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            panic!("the suite did not finish within {RUN_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().expect("the suite's output");
    let junit = std::fs::read_to_string(reports.join("junit.xml")).expect("the JUnit report");
    (output, junit)
}

/// `target/gantry/`, where the suite keeps a failed scenario's logs.
fn evidence_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("gantry")
}

/// A scratch directory of this test's own under the target directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_failed_scenario_leaves_its_logs_and_their_tails_in_junit() {
    let dir = scratch("evidence-failing");
    let run_id = format!("evidence-test-{}", std::process::id());
    let (output, junit) = run_suite(&dir, FAILING, &run_id, &[("GANTRY_INFRA", "local")]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(!output.status.success(), "the scenario must fail:\n{stdout}\n{stderr}");

    let run_dir = evidence_dir().join(&run_id);
    let logs = run_dir.join("a-request-is-refused-on-purpose");
    assert!(
        stderr.contains(&format!("the logs of its stack are in {}", logs.display())),
        "the path is printed:\n{stderr}"
    );
    assert!(
        stderr.contains("bdd: fresh stack: gateway-1 ready"),
        "start-up progress on stderr:\n{stderr}"
    );
    for log in ["gateway-1", "auth-1", "user-1", "redis-1", "registry-1"] {
        let path = logs.join(format!("{log}.log"));
        assert!(path.is_file(), "{} was kept", path.display());
    }

    // The failure names the request's trace-id; auth, which answered it, logged it.
    let trace_id = junit
        .split("trace-id ")
        .nth(1)
        .map(|rest| rest.chars().take(32).collect::<String>())
        .unwrap_or_else(|| panic!("the failure names a trace-id:\n{junit}"));
    assert!(trace_id.bytes().all(|b| b.is_ascii_hexdigit()), "{trace_id}");
    let auth = std::fs::read_to_string(logs.join("auth-1.log")).unwrap();
    let auth = gantry_harness::report::evidence::tail(&auth, usize::MAX);
    assert!(
        auth.lines()
            .any(|l| l.contains(&trace_id) && l.contains("request_id=") && l.contains("status=404")),
        "auth's access line carries the trace-id {trace_id}:\n{auth}"
    );

    assert!(junit.contains("<failure"), "{junit}");
    assert!(
        junit.contains("== gateway-1 (last 40 lines of "),
        "log tails in system-out:\n{junit}"
    );
    assert!(junit.contains("]]></system-out>"), "{junit}");
    std::fs::remove_dir_all(&run_dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scenarios_whose_needs_are_unmet_are_skipped_in_junit() {
    let dir = scratch("evidence-skipping");
    let run_id = format!("evidence-skip-test-{}", std::process::id());
    // Nothing listens on port 9 (discard) here: the one scenario that runs fails.
    let env = [
        ("GANTRY_INFRA", "external"),
        ("GANTRY_GATEWAY_URL", "http://127.0.0.1:9"),
    ];
    let (output, junit) = run_suite(&dir, SKIPPING, &run_id, &env);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        junit.contains(
            "<testcase name=\"Scenario: one that needs a stack of its own\" classname=\"Feature: Evidence of skipping\" time=\"0\"><skipped message=\"@needs:fresh-stack: "
        ),
        "{junit}"
    );
    assert!(junit.contains("skipped=\"1\""), "{junit}");
    assert!(
        stderr.contains("no stack of the harness's to keep logs of"),
        "a deployed stack's logs are not the harness's:\n{stderr}"
    );
    let run_dir = evidence_dir().join(&run_id);
    let _ = std::fs::remove_dir_all(run_dir);
    std::fs::remove_dir_all(&dir).unwrap();
}
