//! Where `gantry up` records itself for `down` and `status`, and how `down`
//! makes sure the pid it finds there is still that `gantry up` before it
//! signals anything.
//!
//! The record lives in a directory only this user can enter:
//! `$XDG_RUNTIME_DIR/gantry` (per-user, 0700, emptied at logout), else
//! `$HOME/.local/state/gantry`, created 0700. A directory that another user
//! owns, or that others can enter, is refused rather than trusted.
//!
//! A pid alone names whatever process has it now, so the record also holds
//! the process's start time (from `/proc/<pid>/stat`) and its executable: `down`
//! signals only a process with all three unchanged and `up` as its command,
//! through [`crate::process::signal_if`] (a pidfd opened before the check),
//! so the process it checked is the one it signals even if the pid is reused
//! meanwhile.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::process::{self, Signalled};

/// The record's file name inside the runtime directory.
pub const STATE_FILE: &str = "up.json";

/// The directory `gantry up` records itself in, created private if missing
/// and refused if anyone else could write or read it.
pub fn dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() => d.join("gantry"),
        _ => {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|h| h.is_absolute())
                .context("neither XDG_RUNTIME_DIR nor HOME is set: nowhere private to record the stack")?;
            home.join(".local/state/gantry")
        }
    };
    ensure_private(&dir)?;
    Ok(dir)
}

/// Creates `dir` with mode 0700 if it is missing; refuses one that is a
/// symlink, belongs to another user, or is open to group or others.
pub fn ensure_private(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    // SAFETY: geteuid(2) cannot fail and has no side effects.
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() {
        bail!("{} is not a directory (a symlink?); remove it", dir.display());
    }
    if meta.uid() != uid {
        bail!(
            "{} belongs to uid {}, not to you (uid {uid}); refusing to trust it",
            dir.display(),
            meta.uid()
        );
    }
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} is open to other users (mode {:o}); run `chmod 700 {}`",
            dir.display(),
            meta.permissions().mode() & 0o777,
            dir.display()
        );
    }
    Ok(())
}

/// Writes the record (0600), replacing any previous one atomically.
pub fn write(dir: &Path, state: &serde_json::Value) -> Result<PathBuf> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!(".{STATE_FILE}.{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(state.to_string().as_bytes())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Who a process is, as far as `down` needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub pid: u32,
    /// Clock ticks after boot at which it started (`/proc/<pid>/stat`, field 22).
    pub start_time: u64,
    pub exe: PathBuf,
}

impl Identity {
    /// This process.
    pub fn of_self() -> Result<Self> {
        Self::of(std::process::id()).context("reading this process's own /proc entry")
    }

    /// The process that has `pid` now, if any (and if it is ours to read).
    pub fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        Some(Self {
            pid,
            start_time: start_time(&stat)?,
            exe: undeleted(exe),
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"pid": self.pid, "start_time": self.start_time, "exe": self.exe})
    }

    pub fn from_json(state: &serde_json::Value) -> Option<Self> {
        Some(Self {
            pid: u32::try_from(state["pid"].as_u64()?).ok()?,
            start_time: state["start_time"].as_u64()?,
            exe: PathBuf::from(state["exe"].as_str()?),
        })
    }

    /// Whether the recorded process is still there, and still `gantry up`.
    pub fn check(&self) -> Liveness {
        let Some(now) = Self::of(self.pid) else {
            return Liveness::Gone;
        };
        if now.start_time != self.start_time {
            // The pid was reused: the one recorded has ended.
            return Liveness::Gone;
        }
        if now.exe != self.exe {
            return Liveness::Other(format!("it runs {}, not {}", now.exe.display(), self.exe.display()));
        }
        let args = process::args(self.pid).unwrap_or_default();
        let subcommand = args.get(1).map(Vec::as_slice).unwrap_or_default();
        if subcommand != b"up" {
            return Liveness::Other(format!(
                "it runs `gantry {}`, not `gantry up`",
                String::from_utf8_lossy(subcommand)
            ));
        }
        Liveness::Ours
    }

    /// Sends `signal` to the recorded process if [`Identity::check`] says it
    /// is still ours, through [`process::signal_if`]: the process checked
    /// is the process signalled, even if the pid is reused meanwhile.
    pub fn signal_if_ours(&self, signal: libc::c_int) -> Result<Liveness> {
        let ours = || match self.check() {
            Liveness::Ours => Ok(()),
            other => Err(other),
        };
        Ok(match process::signal_if(self.pid, signal, ours)? {
            Signalled::Sent => Liveness::Ours,
            Signalled::Gone => Liveness::Gone,
            Signalled::Refused(liveness) => liveness,
        })
    }
}

/// What became of a recorded `gantry up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Still running, same process.
    Ours,
    /// Ended (its pid is free or belongs to a process started since).
    Gone,
    /// The same process, but no longer `gantry up` (it exec'd something else).
    Other(String),
}

/// Field 22 of `/proc/<pid>/stat`; the command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// `/proc/<pid>/exe` of a binary replaced since it started ends in " (deleted)".
fn undeleted(exe: PathBuf) -> PathBuf {
    match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(s) => PathBuf::from(s),
        None => exe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_odd_command_names() {
        let stat = "4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time(stat), Some(987654));
        assert_eq!(start_time("garbage"), None);
    }

    #[test]
    fn this_process_is_recognised_and_a_pid_with_another_start_time_is_gone() {
        let me = Identity::of_self().unwrap();
        assert_eq!(Identity::from_json(&me.to_json()), Some(me.clone()));
        // The test binary's subcommand is not `up`.
        assert!(matches!(me.check(), Liveness::Other(_)), "{:?}", me.check());
        let reused = Identity {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert_eq!(reused.check(), Liveness::Gone);
        let other_exe = Identity {
            exe: PathBuf::from("/usr/bin/not-gantry"),
            ..me
        };
        assert!(matches!(other_exe.check(), Liveness::Other(_)));
    }

    #[test]
    fn a_private_dir_is_created_0700_and_an_open_one_is_refused() {
        let base = std::env::temp_dir().join(format!("gantry-runstate-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let dir = base.join("gantry");
        ensure_private(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let path = write(&dir, &serde_json::json!({"pid": 1})).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = ensure_private(&dir).unwrap_err().to_string();
        assert!(err.contains("open to other users"), "{err}");

        let link = base.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = ensure_private(&link).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
