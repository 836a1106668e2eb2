//! `gantry up` and `gantry down` as a user runs them: real processes, real
//! signals. Each test gets its own runtime directory (`XDG_RUNTIME_DIR`) and
//! temp directory, so nothing here touches a stack the user is running.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const GANTRY: &str = env!("CARGO_BIN_EXE_gantry");
/// How long a stack may take to start on a slow machine.
const START_TIMEOUT: Duration = Duration::from_secs(180);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A directory removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("gantry-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        Self(dir)
    }

    fn sub(&self, name: &str) -> PathBuf {
        let dir = self.0.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gantry(runtime: &Path, tmp: &Path) -> Command {
    let mut cmd = Command::new(GANTRY);
    cmd.env("XDG_RUNTIME_DIR", runtime)
        .env("TMPDIR", tmp)
        .env_remove("GANTRY_INFRA")
        .stdin(Stdio::null());
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `gantry up --infra local` with one user instance; returns once it says
/// it is ready, with its output so far and a channel of the rest.
fn start_up(runtime: &Path, tmp: &Path) -> (Child, String, mpsc::Receiver<String>) {
    let mut child = gantry(runtime, tmp)
        .args(["up", "--users", "1", "--infra", "local", "--port"])
        .arg(free_port().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("Press Ctrl-C to stop.") {
                    return (child, seen, rx);
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`gantry up` did not become ready:\n{seen}");
            }
        }
    }
}

/// Waits for `child` to exit, killing it after `within`.
fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pid {} did not exit within {within:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pids of `pid`'s children, from `/proc/<pid>/task/*/children`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    out
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits (bounded) until none of `pids` is alive; the ones still alive otherwise.
fn survivors(pids: &[u32], within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rest_of(rx: &mpsc::Receiver<String>) -> String {
    rx.iter().collect::<Vec<_>>().join("\n")
}

/// Closing the terminal sends SIGHUP: `gantry up` must stop the whole stack
/// as Ctrl-C does, not die and leave it (and its record) behind.
#[test]
fn sighup_stops_gantry_up_and_everything_it_started() {
    let scratch = Scratch::new("hup");
    let (runtime, tmp) = (scratch.sub("run"), scratch.sub("tmp"));
    let (mut up, _, rx) = start_up(&runtime, &tmp);
    let started = children(up.id());
    assert!(
        started.len() >= 5,
        "redis, registry, auth, user and gateway run as children: {started:?}"
    );
    let state = runtime.join("gantry/up.json");
    assert!(state.is_file(), "`gantry up` records itself in $XDG_RUNTIME_DIR/gantry");

    // SAFETY: kill(2) on the child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(up.id() as libc::pid_t, libc::SIGHUP) }, 0);
    let status = wait_exit(&mut up, STOP_TIMEOUT);
    let output = rest_of(&rx);
    assert!(status.success(), "`gantry up` exited {status} on SIGHUP:\n{output}");
    assert!(output.contains("Stopped; nothing left running."), "{output}");
    assert_eq!(survivors(&started, STOP_TIMEOUT), Vec::<u32>::new(), "left running");
    assert!(!state.exists(), "the record is removed");
}

/// `gantry down` stops the `gantry up` it recorded.
#[test]
fn down_stops_the_gantry_up_that_is_recorded() {
    let scratch = Scratch::new("down");
    let (runtime, tmp) = (scratch.sub("run"), scratch.sub("tmp"));
    let (mut up, _, rx) = start_up(&runtime, &tmp);
    let started = children(up.id());
    let dir = runtime.join("gantry");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700,
        "the runtime dir is private"
    );
    assert_eq!(
        std::fs::metadata(dir.join("up.json")).unwrap().permissions().mode() & 0o777,
        0o600,
        "the record is private"
    );

    let down = gantry(&runtime, &tmp).arg("down").output().unwrap();
    let said = String::from_utf8_lossy(&down.stdout).into_owned() + &String::from_utf8_lossy(&down.stderr);
    assert!(down.status.success(), "{said}");
    let status = wait_exit(&mut up, STOP_TIMEOUT);
    assert!(status.success(), "{}", rest_of(&rx));
    assert_eq!(survivors(&started, STOP_TIMEOUT), Vec::<u32>::new());
}

/// A record naming a pid that is not `gantry up` (a stale record whose pid
/// was reused, or one someone else wrote) must not get that process killed;
/// nor is a fixed file in the shared temp dir read at all.
#[test]
fn down_does_not_signal_a_pid_that_is_not_gantry_up() {
    let scratch = Scratch::new("foreign");
    let (runtime, tmp) = (scratch.sub("run"), scratch.sub("tmp"));
    let mut victim = Command::new("sleep").arg("300").spawn().unwrap();
    let forged = serde_json::json!({
        "pid": victim.id(),
        "start_time": 1,
        "exe": GANTRY,
        "gateway": "http://127.0.0.1:1",
    })
    .to_string();
    // Where `down` used to look (a fixed name in the temp dir anyone can write) …
    std::fs::write(tmp.join("gantry-up.json"), &forged).unwrap();
    // … and the private record, naming a pid that is not `gantry up`.
    let dir = runtime.join("gantry");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let start_time = std::fs::read_to_string(format!("/proc/{}/stat", victim.id()))
        .unwrap()
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let mut exact = serde_json::from_str::<serde_json::Value>(&forged).unwrap();
    exact["start_time"] = start_time.into();
    for record in [forged.clone(), exact.to_string()] {
        std::fs::write(dir.join("up.json"), &record).unwrap();
        let down = gantry(&runtime, &tmp).arg("down").output().unwrap();
        let said = String::from_utf8_lossy(&down.stdout).into_owned() + &String::from_utf8_lossy(&down.stderr);
        assert!(!down.status.success(), "down must refuse: {said}");
        assert!(
            victim.try_wait().unwrap().is_none(),
            "`gantry down` killed pid {} (sleep), which is not gantry up: {said}",
            victim.id()
        );
    }
    let _ = victim.kill();
    let _ = victim.wait();
}

/// A runtime directory others can enter is refused, not trusted.
#[test]
fn a_runtime_dir_open_to_others_is_refused() {
    let scratch = Scratch::new("open");
    let (runtime, tmp) = (scratch.sub("run"), scratch.sub("tmp"));
    let dir = runtime.join("gantry");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.join("up.json"), r#"{"pid":1,"start_time":1,"exe":"/x"}"#).unwrap();
    let out = gantry(&runtime, &tmp).arg("down").output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("open to other users"), "{said}");
}
