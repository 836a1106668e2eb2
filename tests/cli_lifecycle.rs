//! `gantry up`, `gantry down` and `gantry probe` as a user (or a container
//! healthcheck) runs them: real processes, real signals. Each test gets its own runtime directory (`XDG_RUNTIME_DIR`) and
//! temp directory, so nothing here touches a stack the user is running.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
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

/// A `gantry up --infra local` with one user instance, in directories of
/// its own, ready: it has said so.
struct Up {
    child: Child,
    /// Its output after the line saying it is ready.
    rest: mpsc::Receiver<String>,
    /// The processes it started (redis, registry, auth, user, gateway).
    started: Vec<u32>,
    runtime: PathBuf,
    tmp: PathBuf,
    _scratch: Scratch,
}

impl Up {
    fn start(name: &str) -> Self {
        let scratch = Scratch::new(name);
        let (runtime, tmp) = (scratch.sub("run"), scratch.sub("tmp"));
        let (child, rest) = spawn_up(&runtime, &tmp);
        let output = until_line(&rest, "Press Ctrl-C to stop.", START_TIMEOUT);
        let mut up = Self {
            started: children(child.id()),
            child,
            rest,
            runtime,
            tmp,
            _scratch: scratch,
        };
        if let Err(seen) = output {
            let _ = up.child.kill();
            let _ = up.child.wait();
            panic!("`gantry up` did not become ready:\n{seen}");
        }
        up
    }

    /// `gantry` run in this stack's directories.
    fn gantry(&self) -> Command {
        gantry(&self.runtime, &self.tmp)
    }

    /// Waits for `gantry up` to exit; its exit status and the rest of its output.
    fn exit(&mut self) -> (ExitStatus, String) {
        let status = wait_exit(&mut self.child, STOP_TIMEOUT);
        (status, rx_rest(&self.rest))
    }
}

/// A test that fails midway still stops its stack (SIGKILL to `gantry up`;
/// what it started gets SIGTERM as its parent dies).
impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().is_ok_and(|s| s.is_none()) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `gantry up --infra local --users 1` on a free port, its stdout as lines.
fn spawn_up(runtime: &Path, tmp: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = gantry(runtime, tmp)
        .args(["up", "--users", "1", "--infra", "local", "--port"])
        .arg(free_port().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut child);
    (child, rx)
}

/// `child`'s stdout, line by line, as it comes.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The lines up to and including the first that contains `marker`; what
/// came before it if the output ends or `within` passes first.
fn until_line(rx: &mpsc::Receiver<String>, marker: &str, within: Duration) -> Result<String, String> {
    let deadline = Instant::now() + within;
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            return Err(seen);
        };
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(marker) {
            return Ok(seen);
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

/// The live processes whose environment has `TMPDIR=tmp`: everything a
/// test's `gantry up` started, however deep. Waits (bounded) for none.
fn left_running(tmp: &Path) -> Vec<u32> {
    let needle = format!("TMPDIR={}\0", tmp.display()).into_bytes();
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        let left: Vec<u32> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle))
            })
            .filter(|pid| alive(*pid))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rx_rest(rx: &mpsc::Receiver<String>) -> String {
    rx.iter().collect::<Vec<_>>().join("\n")
}

/// Closing the terminal sends SIGHUP: `gantry up` must stop the whole stack
/// as Ctrl-C does, not die and leave it (and its record) behind.
#[test]
fn sighup_stops_gantry_up_and_everything_it_started() {
    let mut up = Up::start("hup");
    assert!(
        up.started.len() >= 5,
        "redis, registry, auth, user and gateway run as children: {:?}",
        up.started
    );
    let state = up.runtime.join("gantry/gantry.json");
    assert!(state.is_file(), "`gantry up` records itself in $XDG_RUNTIME_DIR/gantry");

    // SAFETY: kill(2) on the child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(up.child.id() as libc::pid_t, libc::SIGHUP) }, 0);
    let (status, output) = up.exit();
    assert!(status.success(), "`gantry up` exited {status} on SIGHUP:\n{output}");
    assert!(output.contains("Stopped; nothing left running."), "{output}");
    assert_eq!(survivors(&up.started, STOP_TIMEOUT), Vec::<u32>::new(), "left running");
    assert_eq!(left_running(&up.tmp), Vec::<u32>::new(), "left running");
    assert!(!state.exists(), "the record is removed");
}

/// SIGTERM while the stack is still starting stops what was started so far.
#[test]
fn sigterm_while_starting_stops_what_was_started() {
    let scratch = Scratch::new("early");
    let (runtime, tmp) = (scratch.sub("run"), scratch.sub("tmp"));
    let (mut child, rx) = spawn_up(&runtime, &tmp);
    if let Err(seen) = until_line(&rx, "Starting the Gantry stack", START_TIMEOUT) {
        let _ = child.kill();
        panic!("`gantry up` did not start starting:\n{seen}");
    }
    // SAFETY: kill(2) on the child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let status = wait_exit(&mut child, STOP_TIMEOUT);
    let output = rx_rest(&rx);
    assert!(status.success(), "`gantry up` exited {status} on SIGTERM:\n{output}");
    assert!(output.contains("stopped before the stack was ready"), "{output}");
    assert_eq!(left_running(&tmp), Vec::<u32>::new(), "left running");
    assert!(!runtime.join("gantry/gantry.json").exists(), "no record is left");
}

/// `gantry down` stops the `gantry up` it recorded; a second `gantry up`
/// of the same name meanwhile is refused and leaves the record alone, one of
/// another name runs beside it, and `down`/`status` then need a name.
#[test]
fn down_stops_the_gantry_up_that_is_recorded() {
    let mut up = Up::start("down");
    let dir = up.runtime.join("gantry");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700,
        "the runtime dir is private"
    );
    let record = dir.join("gantry.json");
    assert_eq!(
        std::fs::metadata(&record).unwrap().permissions().mode() & 0o777,
        0o600,
        "the record is private"
    );

    let before = std::fs::read_to_string(&record).unwrap();
    let mut second = up
        .gantry()
        .args(["up", "--users", "1", "--infra", "local", "--port"])
        .arg(free_port().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A refusal is immediate; one that starts a stack would run until killed.
    let status = wait_exit(&mut second, Duration::from_secs(30));
    let mut said = String::new();
    second.stderr.take().unwrap().read_to_string(&mut said).unwrap();
    assert!(!status.success(), "a second `gantry up` started: {said}");
    assert!(
        said.contains("a stack named \"gantry\" is running (pid")
            && said.contains("`gantry down gantry`, or give this one another name with --name"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        before,
        "the record is the first's"
    );

    // Another name runs beside it, each with its own record.
    let (mut other, lines) = {
        let mut cmd = up.gantry();
        cmd.args(["up", "--name", "other", "--users", "1", "--infra", "local", "--port"])
            .arg(free_port().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let rx = lines_of(&mut child);
        (child, rx)
    };
    if let Err(seen) = until_line(&lines, "Press Ctrl-C to stop.", START_TIMEOUT) {
        let _ = other.kill();
        panic!("a stack of another name did not start beside the first:\n{seen}");
    }
    assert!(dir.join("other.json").is_file(), "its own record");
    let status = up.gantry().arg("status").output().unwrap();
    let said = String::from_utf8_lossy(&status.stderr).into_owned();
    assert!(
        !status.status.success() && said.contains("2 stacks are running here (gantry, other)"),
        "{said}"
    );
    let down_other = up.gantry().args(["down", "other"]).output().unwrap();
    assert!(
        down_other.status.success(),
        "{}",
        String::from_utf8_lossy(&down_other.stderr)
    );
    assert!(wait_exit(&mut other, STOP_TIMEOUT).success());
    assert!(!dir.join("other.json").exists(), "its record is removed");
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        before,
        "the first's untouched"
    );

    let down = up.gantry().arg("down").output().unwrap();
    let said = String::from_utf8_lossy(&down.stdout).into_owned() + &String::from_utf8_lossy(&down.stderr);
    assert!(down.status.success(), "{said}");
    let (status, output) = up.exit();
    assert!(status.success(), "{output}");
    assert_eq!(survivors(&up.started, STOP_TIMEOUT), Vec::<u32>::new());
    assert_eq!(left_running(&up.tmp), Vec::<u32>::new(), "left running");
    assert!(!record.exists(), "the record is removed");
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
        std::fs::write(dir.join("gantry.json"), &record).unwrap();
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
    std::fs::write(dir.join("gantry.json"), r#"{"pid":1,"start_time":1,"exe":"/x"}"#).unwrap();
    let out = gantry(&runtime, &tmp).arg("down").output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("open to other users"), "{said}");
}

/// A server that answers one request with `status`; its URL.
fn answer_once(status: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/readyz", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else { return };
        // The whole request head, so closing does not reset the connection.
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let body = "redis: not ready";
        let _ = write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    url
}

/// `gantry probe` is the containers' healthcheck: it exits 0 on a 2xx and
/// 1, saying why, on any other answer or none.
#[test]
fn probe_exits_0_on_a_2xx_and_1_otherwise() {
    let scratch = Scratch::new("probe");
    let (runtime, tmp) = (scratch.sub("run"), scratch.sub("tmp"));
    let probe = |url: &str, timeout: &str| {
        let out = gantry(&runtime, &tmp)
            .args(["probe", "--timeout", timeout, url])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };

    let (code, said) = probe(&answer_once("200 OK"), "5s");
    assert_eq!(code, Some(0), "{said}");
    for status in ["503 Service Unavailable", "404 Not Found", "500 Internal Server Error"] {
        let (code, said) = probe(&answer_once(status), "5s");
        assert_eq!(code, Some(1), "{status}: {said}");
        assert!(
            said.contains(status) && said.contains("redis: not ready"),
            "{status}: {said}"
        );
    }

    let closed = format!("http://127.0.0.1:{}/readyz", free_port());
    let (code, said) = probe(&closed, "5s");
    assert_eq!(code, Some(1), "nothing listening: {said}");

    // Connections are accepted (by the kernel) but never answered.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/readyz", silent.local_addr().unwrap());
    let started = Instant::now();
    let (code, said) = probe(&url, "300ms");
    assert_eq!(code, Some(1), "no answer: {said}");
    assert!(said.contains("did not answer within"), "{said}");
    assert!(started.elapsed() < Duration::from_secs(10), "the timeout was not kept");
}
