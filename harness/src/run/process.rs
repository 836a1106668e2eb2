//! A program of the stack running as a real OS process, with the faults a
//! test can inflict on it: SIGKILL, SIGTERM, SIGSTOP/SIGCONT, restart.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::error::HarnessError;

/// How long a graceful stop may take before the process is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How to start (and restart) a process.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Its name in the stack, e.g. `greeter-2`, for logs and errors.
    pub name: String,
    /// The executable: a path, or a name looked up on `PATH`.
    pub program: PathBuf,
    /// Its arguments, placeholders already filled.
    pub args: Vec<String>,
    /// Environment (key, value) on top of the harness's own; a later entry
    /// for a key wins.
    pub env: Vec<(String, String)>,
    /// The file its stdout and stderr are appended to (across restarts).
    pub log: PathBuf,
}

/// A running process of the stack.
#[derive(Debug)]
pub struct Process {
    spec: Spec,
    /// The working directory; the harness's own when `None`.
    dir: Option<PathBuf>,
    child: Option<Child>,
}

impl Process {
    /// Starts `spec`. Output goes to its log file; the process is put in its
    /// own process group (Ctrl-C reaches the harness, which stops things in
    /// order) and is sent SIGTERM if the thread that started it dies.
    pub fn start(spec: Spec) -> Result<Self, HarnessError> {
        Self::start_in(spec, None)
    }

    /// [`Process::start`] in working directory `dir` (kept for restarts).
    pub fn start_in(spec: Spec, dir: Option<PathBuf>) -> Result<Self, HarnessError> {
        let child = spawn(&spec, dir.as_deref())?;
        Ok(Self {
            spec,
            dir,
            child: Some(child),
        })
    }

    /// Its name in the stack, e.g. `greeter-2`.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The process id, while it runs (`None` once killed or stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The value of an environment variable the process was started with.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.spec
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The file its output goes to.
    pub fn log_path(&self) -> &Path {
        &self.spec.log
    }

    /// The last lines of the process's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.spec.log, lines)
    }

    /// `Some(status)` when the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    fn signal(&self, signal: libc::c_int) -> Result<(), HarnessError> {
        let pid = self
            .pid()
            .ok_or_else(|| HarnessError::NotRunning(self.spec.name.clone()))?;
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        if rc == 0 {
            Ok(())
        } else {
            Err(HarnessError::Signal {
                name: self.spec.name.clone(),
                source: std::io::Error::last_os_error(),
            })
        }
    }

    /// SIGKILL to the process and anything it forked (its process group),
    /// and reap it.
    pub async fn kill(&mut self) -> Result<(), HarnessError> {
        self.kill_group();
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        Ok(())
    }

    /// SIGKILL to the whole process group: a program that forks workers
    /// (nginx) must not leave them behind when its master is killed.
    fn kill_group(&self) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the group we created with process_group(0);
            // the leader is not reaped yet, so the group id cannot be reused.
            unsafe {
                libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
            }
        }
    }

    /// SIGTERM, wait for a graceful exit, SIGKILL after [`STOP_TIMEOUT`].
    pub async fn stop(&mut self) -> Result<(), HarnessError> {
        if self.child.is_none() {
            return Ok(());
        }
        // A paused process cannot act on SIGTERM.
        let _ = self.signal(libc::SIGCONT);
        if self.signal(libc::SIGTERM).is_ok()
            && let Some(child) = self.child.as_mut()
        {
            if tokio::time::timeout(STOP_TIMEOUT, child.wait()).await.is_ok() {
                self.child = None;
                return Ok(());
            }
            tracing::warn!(name = %self.spec.name, "did not stop in time; killing");
        }
        self.kill().await
    }

    /// SIGSTOP: the process hangs, its sockets stay open.
    pub fn pause(&self) -> Result<(), HarnessError> {
        self.signal(libc::SIGSTOP)
    }

    /// SIGCONT after [`Process::pause`].
    pub fn resume(&self) -> Result<(), HarnessError> {
        self.signal(libc::SIGCONT)
    }

    /// Starts the process again with the same arguments, environment and port.
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop().await?;
        self.child = Some(spawn(&self.spec, self.dir.as_deref())?);
        Ok(())
    }

    /// Starts it again after a kill or stop, without stopping first.
    pub fn start_again(&mut self) -> Result<(), HarnessError> {
        if self.child.is_none() {
            self.child = Some(spawn(&self.spec, self.dir.as_deref())?);
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_group();
    }
}

fn spawn(spec: &Spec, dir: Option<&Path>) -> Result<Child, HarnessError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|source| HarnessError::Spawn {
            name: spec.name.clone(),
            program: spec.program.display().to_string(),
            source,
        })?;
    let log_err = log.try_clone().map_err(|source| HarnessError::Spawn {
        name: spec.name.clone(),
        program: spec.program.display().to_string(),
        source,
    })?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .kill_on_drop(true)
        .process_group(0);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    // Linux ends the child when the harness dies, however it dies (a test
    // killed with SIGKILL included). Elsewhere (macOS) only a harness that
    // ends normally stops its children: dropping the stack kills them.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(2) is async-signal-safe and touches only this child.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd.spawn().map_err(|source| HarnessError::Spawn {
        name: spec.name.clone(),
        program: spec.program.display().to_string(),
        source,
    })
}

/// The last `lines` lines of a log file ("" if unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
