//! What a team sees when its stack is wrong, on the example's own files: a
//! routes file the gateway refuses, a service that never gets ready, a
//! check that never passes. Each error names what to fix, comes within the
//! readiness timeout, and leaves nothing running. On local processes
//! whatever GANTRY_INFRA says: "nothing running" is read from the process
//! table (this test's child processes).

use std::path::Path;
use std::time::{Duration, Instant};

use gantry_harness::stack::file::StackFile;
use gantry_harness::{Check, HarnessError, Infra, Progress, Ready, Registration, ServiceSpec};
use tokio::sync::Mutex;

/// One case at a time: each checks that no process of its own is left,
/// which another case's running stack would confuse.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// How long a broken instance is given in these cases.
const READY_TIMEOUT: Duration = Duration::from_secs(3);
/// How late after its timeout the error may come: one readiness probe
/// (at most 2 s) may be under way when the deadline passes.
const LATE_BY_AT_MOST: Duration = Duration::from_secs(3);

fn example() -> StackFile {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    StackFile::load(&here.join("stack.toml"))
        .and_then(|f| f.with_program("notes", env!("CARGO_BIN_EXE_notes")))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn greeter(file: &mut StackFile) -> &mut ServiceSpec {
    let found = file.services.iter_mut().find(|s| s.spec.name == "greeter");
    &mut found.expect("the example has a greeter").spec
}

/// Starts `file`, which must fail; returns the error and how long after
/// instance `failing` began to start it came.
async fn start_failing(file: StackFile, failing: &str) -> (HarnessError, Duration) {
    let gantry = gantry_harness::gantry_binary().unwrap_or_else(|e| panic!("{e}"));
    let mut began = None;
    let result = file
        .builder(gantry)
        .infra(Infra::Local)
        .start(&mut |p| {
            if matches!(p, Progress::Starting(id) if id == failing) {
                began = Some(Instant::now());
            }
        })
        .await;
    let Err(e) = result else {
        panic!("the stack started, but {failing} should have failed")
    };
    let began = began.unwrap_or_else(|| panic!("{failing} was never started: {e}"));
    (e, began.elapsed())
}

/// This process's children that are still running, as `pid command`.
fn running_children() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("reading /proc").flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid …`: the fields after the command's closing parenthesis.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        if fields.get(1) == Some(&me.as_str()) && fields.first() != Some(&"Z") {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let command = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push(format!("{} {command}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

fn assert_says(e: &HarnessError, parts: &[&str]) {
    let text = e.to_string();
    println!("the error, as a team sees it:\n{text}\n");
    for part in parts {
        assert!(text.contains(part), "{part:?} in: {text}");
    }
}

#[tokio::test]
async fn a_routes_file_the_gateway_refuses_is_named_with_its_line() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("gateway.toml");
    let good = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml")).unwrap();
    let bad = good.replacen("identity = \"required\"", "identity = \"mandatory\"", 1);
    std::fs::write(&routes, &bad).unwrap();
    let line = 1 + bad.lines().position(|l| l.contains("mandatory")).unwrap();
    let mut file = example();
    file.gateway.routes = Some(routes.clone());
    let timeout = file.gateway.ready_timeout;

    let (e, took) = start_failing(file, "gateway-1").await;
    assert!(matches!(e, HarnessError::Exited { .. }), "{e}");
    assert_says(
        &e,
        &[
            "gateway-1",
            &format!("{}:{line}", routes.display()),
            "expected one of `none`, `optional`, `required`",
        ],
    );
    assert!(took < timeout, "{took:?}: {e}");
    assert_eq!(running_children(), Vec::<String>::new(), "after: {e}");
}

#[tokio::test]
async fn a_service_that_never_gets_ready_is_named_with_what_it_answered() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut file = example();
    let greeter = greeter(&mut file);
    greeter.ready = Ready::http("/ready");
    greeter.ready_timeout = READY_TIMEOUT;

    let (e, took) = start_failing(file, "greeter-1").await;
    assert!(matches!(e, HarnessError::NeverReady(_)), "{e}");
    assert_says(
        &e,
        &[
            "greeter-1",
            "service greeter",
            "GET /ready",
            "404",
            "no route for /ready",
        ],
    );
    assert!(
        took >= READY_TIMEOUT && took < READY_TIMEOUT + LATE_BY_AT_MOST,
        "{took:?}: {e}"
    );
    assert_eq!(running_children(), Vec::<String>::new(), "after: {e}");
}

#[tokio::test]
async fn a_check_that_never_passes_is_named_with_its_output() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut file = example();
    let greeter = greeter(&mut file);
    greeter.registration = Registration::by_harness(Check::http("/healthz"));
    greeter.ready_timeout = READY_TIMEOUT;

    let (e, took) = start_failing(file, "greeter-1").await;
    assert!(matches!(e, HarnessError::NeverReady(_)), "{e}");
    assert_says(
        &e,
        &[
            "greeter-1",
            "to pass in the registry",
            "check \"service:greeter-1\" is critical",
            "/healthz",
        ],
    );
    assert!(
        took >= READY_TIMEOUT && took < READY_TIMEOUT + LATE_BY_AT_MOST,
        "{took:?}: {e}"
    );
    assert_eq!(running_children(), Vec::<String>::new(), "after: {e}");
}
