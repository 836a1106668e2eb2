//! Ctrl-C (SIGINT) or SIGTERM on a process that started containers leaves
//! none of them behind: a real child process (this test binary, running
//! the ignored `child_holds_a_containers_stack`) starts Redis and the
//! registry in containers and waits; it is signalled, and afterwards
//! `docker ps -a --filter label=gantry.stack=<its pid>` lists nothing, nor
//! does `docker network ls` (the stack's network goes too).

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gantry_harness::stack::infra::Images;
use gantry_harness::{Infra, StackBuilder};

/// How long the child may take to start its containers, and to be gone.
const DEADLINE: Duration = Duration::from_secs(120);
/// Set in the child's environment: the ignored test runs only there.
const CHILD: &str = "GANTRY_GUARD_CHILD";

/// The locally built images unless the environment names others.
fn images() -> Images {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe {
        for (var, image) in [
            ("GANTRY_REDIS_IMAGE", "gantry/redis:latest"),
            ("GANTRY_REGISTRY_IMAGE", "gantry/registry:latest"),
        ] {
            if std::env::var_os(var).is_none() {
                std::env::set_var(var, image);
            }
        }
    }
    Images::from_env()
}

/// Containers carrying `gantry.stack=<pid>`, running or not.
fn containers_of(pid: u32) -> Vec<String> {
    labelled(pid, &["ps", "-aq"])
}

/// The stack networks carrying `gantry.stack=<pid>`.
fn networks_of(pid: u32) -> Vec<String> {
    labelled(pid, &["network", "ls", "-q"])
}

/// What `docker <command> --filter label=gantry.stack=<pid>` lists.
fn labelled(pid: u32, command: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .args(command)
        .args(["--filter", &format!("label=gantry.stack={pid}")])
        .output()
        .expect("running docker ps");
    assert!(
        out.status.success(),
        "docker ps: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Starts the child, waits for its stack, signals it, and checks its
/// containers are gone once it has died of the signal.
fn signalled_child_leaves_nothing(signal: libc::c_int) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_holds_a_containers_stack", "--ignored", "--nocapture"])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the child");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The child says when its stack is up; a closed stdout means it died.
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("STACK UP") => break,
            Some(Ok(_)) => continue,
            _ => panic!("the child ended before its stack was up: {:?}", child.wait()),
        }
    }
    let before = containers_of(pid);
    assert_eq!(before.len(), 2, "Redis and the registry run for pid {pid}: {before:?}");
    assert_eq!(networks_of(pid).len(), 1, "on their stack's network");

    // SAFETY: kill(2) on the child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the child did not end after signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.signal(), Some(signal), "it dies of the signal: {status:?}");
    let left = containers_of(pid);
    assert!(left.is_empty(), "containers of pid {pid} left behind: {left:?}");
    let left = networks_of(pid);
    assert!(left.is_empty(), "networks of pid {pid} left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_and_sigterm_leave_no_container_behind() {
    if let Some(why) = images().unavailable_because().await {
        eprintln!("SKIPPED: containers cannot run here: {why}");
        return;
    }
    tokio::task::spawn_blocking(|| {
        signalled_child_leaves_nothing(libc::SIGINT);
        signalled_child_leaves_nothing(libc::SIGTERM);
    })
    .await
    .unwrap();
}

/// The child: Redis and the registry in containers, then nothing until a
/// signal ends the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child of sigint_and_sigterm_leave_no_container_behind; runs only there"]
async fn child_holds_a_containers_stack() {
    assert!(std::env::var_os(CHILD).is_some(), "run by its parent test only");
    let _images = images();
    let stack = StackBuilder::empty("gantry")
        .infra(Infra::Containers)
        .start(&mut |_| {})
        .await
        .expect("a containers stack");
    println!("STACK UP at {}", stack.registry_addr());
    std::future::pending::<()>().await;
}
