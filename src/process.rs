//! Signalling another process only after checking who it is, so that a pid
//! reused by an unrelated process never gets the signal: what `gantry down`
//! (SIGTERM to `gantry up`) and `gantry gateway reload` (SIGHUP to a
//! gateway, which would end any process that does not handle it) share.
//!
//! On Linux a pidfd is opened first, the check runs after, and the signal
//! goes through the pidfd: the pidfd names the process that had the pid when
//! it was opened, for good, so if that process ends and its pid is reused
//! before the signal, the signal fails (the process is gone) instead of
//! reaching the newcomer. Elsewhere (macOS has no pidfd) the check runs and
//! then `kill(2)` names the pid: the best there is, but a pid reused in the
//! moment between the two would get the signal.

use anyhow::{Context as _, Result};

/// What became of a signal sent only after a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signalled<R> {
    /// The check passed and the process it looked at got the signal.
    Sent,
    /// No process has the pid, or the one checked ended before the signal.
    Gone,
    /// The check refused the process, for this reason; nothing was sent.
    Refused(R),
}

/// Sends `signal` to process `pid` if `check` passes, `check` looking at
/// the process by its pid (its `/proc` entry): see the module docs for why
/// the process checked is the process signalled.
pub fn signal_if<R>(pid: u32, signal: libc::c_int, check: impl FnOnce() -> Result<(), R>) -> Result<Signalled<R>> {
    #[cfg(target_os = "linux")]
    {
        pidfd::signal_if(pid, signal, check)
    }
    #[cfg(not(target_os = "linux"))]
    {
        by_pid::signal_if(pid, signal, check)
    }
}

/// The arguments process `pid` was started with, as `ps` prints them
/// (joined by spaces: split again on them, so a path with a space in it
/// reads as two arguments; callers read only the subcommand); `None` when
/// there is no such process.
#[cfg(not(target_os = "linux"))]
pub fn args(pid: u32) -> Option<Vec<Vec<u8>>> {
    let line = ps(pid, "args")?;
    Some(line.split_whitespace().map(|a| a.as_bytes().to_vec()).collect())
}

/// Field `field` of process `pid` as `ps -o <field>= -p <pid>` prints it
/// (where there is no `/proc`); `None` when there is no such process.
#[cfg(not(target_os = "linux"))]
pub fn ps(pid: u32, field: &str) -> Option<String> {
    let out = std::process::Command::new("ps")
        .args(["-o", &format!("{field}="), "-p", &pid.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The arguments process `pid` was started with (`/proc/<pid>/cmdline`);
/// `None` when there is no such process, or it is not ours to read.
#[cfg(target_os = "linux")]
pub fn args(pid: u32) -> Option<Vec<Vec<u8>>> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args: Vec<Vec<u8>> = cmdline.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    // The last argument ends in a NUL too.
    if args.last().is_some_and(Vec::is_empty) {
        args.pop();
    }
    Some(args)
}

fn pid_t(pid: u32) -> Result<libc::pid_t> {
    libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("{pid} is not a process id"))
}

#[cfg(target_os = "linux")]
mod pidfd {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

    use super::{Result, Signalled, pid_t};
    use anyhow::Context as _;

    pub fn signal_if<R>(pid: u32, signal: libc::c_int, check: impl FnOnce() -> Result<(), R>) -> Result<Signalled<R>> {
        let target = pid_t(pid)?;
        // SAFETY: pidfd_open(2) takes a pid and flags; it returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, target, 0) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ESRCH) => Ok(Signalled::Gone),
                _ => Err(e).context("pidfd_open"),
            };
        }
        let fd = libc::c_int::try_from(fd).context("pidfd_open returned an fd out of range")?;
        // SAFETY: the fd was just returned to us by pidfd_open and is owned here only.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if let Err(why) = check() {
            return Ok(Signalled::Refused(why));
        }
        // SAFETY: pidfd_send_signal(2) on the pidfd we hold, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ESRCH) => Ok(Signalled::Gone),
                _ => Err(e).context("pidfd_send_signal"),
            };
        }
        Ok(Signalled::Sent)
    }
}

/// The fallback where there is no pidfd: check, then `kill(2)` by pid.
/// Compiled (and tested) on Linux too, where it is not used, so that it
/// keeps building for the platforms that need it.
#[cfg_attr(target_os = "linux", allow(dead_code))]
mod by_pid {
    use super::{Result, Signalled, pid_t};
    use anyhow::Context as _;

    pub fn signal_if<R>(pid: u32, signal: libc::c_int, check: impl FnOnce() -> Result<(), R>) -> Result<Signalled<R>> {
        let target = pid_t(pid)?;
        // Signal 0 checks the pid exists without sending anything.
        match kill(target, 0) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(Signalled::Gone),
            // EPERM: it exists but is not ours; the check says what it is.
            _ => {}
        }
        if let Err(why) = check() {
            return Ok(Signalled::Refused(why));
        }
        match kill(target, signal) {
            Ok(()) => Ok(Signalled::Sent),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(Signalled::Gone),
            Err(e) => Err(e).context("kill"),
        }
    }

    fn kill(pid: libc::pid_t, signal: libc::c_int) -> std::io::Result<()> {
        // SAFETY: kill(2) takes a pid and a signal number and touches no memory of ours.
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::{Child, Command};

    use super::*;

    type SignalIf = fn(u32, libc::c_int, Box<dyn FnOnce() -> Result<(), String>>) -> Result<Signalled<String>>;

    /// The way in use on this platform, and the `kill` fallback.
    fn ways() -> Vec<(&'static str, SignalIf)> {
        let kill: (&'static str, SignalIf) = ("kill", |p, s, c| by_pid::signal_if(p, s, c));
        #[cfg(target_os = "linux")]
        let ways = vec![kill, ("pidfd", |p, s, c| pidfd::signal_if(p, s, c))];
        #[cfg(not(target_os = "linux"))]
        let ways = vec![kill];
        ways
    }

    /// A child that lives 30 s unless signalled (the bound on every wait below).
    fn sleeper() -> Child {
        Command::new("sleep").arg("30").spawn().expect("spawning sleep")
    }

    /// The pid of a process that has exited and been reaped: no process has it.
    fn exited_pid() -> u32 {
        let mut child = Command::new("true").spawn().expect("spawning true");
        child.wait().unwrap();
        child.id()
    }

    #[test]
    fn a_pid_that_exited_is_gone_and_is_not_checked() {
        for (way, signal_if) in ways() {
            let pid = exited_pid();
            let got = signal_if(
                pid,
                libc::SIGTERM,
                Box::new(|| panic!("checked a process that is gone")),
            )
            .unwrap();
            assert_eq!(got, Signalled::Gone, "{way}");
        }
    }

    #[test]
    fn a_refused_check_sends_nothing() {
        for (way, signal_if) in ways() {
            let mut child = sleeper();
            let got = signal_if(child.id(), libc::SIGTERM, Box::new(|| Err("not ours".to_owned()))).unwrap();
            assert_eq!(got, Signalled::Refused("not ours".to_owned()), "{way}");
            assert!(
                child.try_wait().unwrap().is_none(),
                "{way}: the refused process was signalled"
            );
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    #[test]
    fn a_passed_check_signals_the_process_checked() {
        for (way, signal_if) in ways() {
            let mut child = sleeper();
            let got = signal_if(child.id(), libc::SIGTERM, Box::new(|| Ok(()))).unwrap();
            assert_eq!(got, Signalled::Sent, "{way}");
            let status = child.wait().unwrap();
            assert_eq!(status.signal(), Some(libc::SIGTERM), "{way}: {status:?}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_that_ends_after_the_pidfd_is_opened_is_gone_not_signalled() {
        let mut child = sleeper();
        let pid = child.id();
        // The process ends, and is reaped so its pid is free for reuse,
        // between the pidfd's opening and the signal: the pidfd still names
        // it, so the signal fails, and would fail as well if the pid had
        // been taken meanwhile (which a test cannot arrange without
        // privileges over the whole machine's pids).
        let ended = move || -> Result<(), String> {
            child.kill().unwrap();
            child.wait().unwrap();
            Ok(())
        };
        assert_eq!(pidfd::signal_if(pid, libc::SIGTERM, ended).unwrap(), Signalled::Gone);
    }

    #[test]
    fn args_are_split_on_nul_without_a_trailing_empty_one() {
        use std::io::{BufRead as _, BufReader, Write as _};
        use std::process::Stdio;
        // `cat -` echoing a line back proves it has exec'd: read any sooner
        // and the cmdline is the forked parent's, or empty.
        let mut child = Command::new("cat")
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning cat");
        child.stdin.as_mut().unwrap().write_all(b"up\n").unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "up\n");
        let got = args(child.id()).expect("our child's cmdline");
        assert_eq!(got.last().map(Vec::as_slice), Some(&b"-"[..]));
        assert_eq!(got.len(), 2);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(args(exited_pid()), None);
    }
}
