//! Where `gantry up` records itself for `down` and `status`, and how `down`
//! makes sure the pid it finds there is still that `gantry up` before it
//! signals anything. Each stack has a name (`gantry up --name`, by default
//! its stack file's folder, or `gantry` for the reference stack) and a
//! record of its own, `<name>.json`, so several run side by side.
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

/// The name of Gantry's own reference stack (`gantry up` without a file).
pub const REFERENCE_NAME: &str = "gantry";

/// What `gantry up` records about the stack it runs: who it is (for `down`)
/// and where the stack answers (for `status`, `gateway reload`, a user).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunState {
    /// The stack's name, which `down` and `status` take.
    #[serde(default)]
    pub name: String,
    /// The stack file it runs; none for Gantry's reference stack.
    #[serde(default)]
    pub config: Option<PathBuf>,
    #[serde(flatten)]
    pub up: Identity,
    #[serde(default)]
    pub gateway: String,
    /// The first gateway's admin listener (`/metrics`, `/readyz` with detail).
    #[serde(default)]
    pub admin: String,
    #[serde(default)]
    pub redis: String,
    #[serde(default)]
    pub registry: String,
    #[serde(default)]
    pub registry_token: String,
    #[serde(default)]
    pub logs: PathBuf,
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    #[serde(default)]
    pub gateway_pids: Vec<u32>,
}

/// Refuses a stack name that is not 1 to 64 of `a-z 0-9 _ . -` (not
/// starting with `.`): it names a file.
pub fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        bail!("--name {name:?}: expected 1 to 64 of a-z, 0-9, '_', '.' or '-', not starting with '.'");
    }
    Ok(())
}

/// The name of a stack started from `config` when `--name` gives none: its
/// folder's name, made a valid one (`examples/any-stack/stack.toml` is
/// `any-stack`); the reference stack's without a file.
pub fn default_name(config: Option<&Path>) -> String {
    let Some(config) = config else {
        return REFERENCE_NAME.to_owned();
    };
    let folder = std::path::absolute(config)
        .ok()
        .and_then(|p| p.parent()?.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let name = gantry_common::name::slug(&folder, 64);
    if name.is_empty() { "stack".to_owned() } else { name }
}

/// Where the record of stack `name` is.
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// The names of the stacks recorded in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
        .filter(|n| check_name(n).is_ok())
        .collect();
    names.sort();
    names
}

/// The record of stack `name`, or of the only stack recorded when no name
/// is given; says what to do when there is none, or several to choose from.
pub fn read(dir: &Path, name: Option<&str>) -> Result<(PathBuf, RunState)> {
    let name = match name {
        Some(name) => {
            check_name(name)?;
            name.to_owned()
        }
        None => match names(dir).as_slice() {
            [] => bail!("no stack started by `gantry up` is running here (start one with `gantry up`)"),
            [one] => one.clone(),
            several => bail!(
                "{} stacks are running here ({}): name one, e.g. `gantry down {}`",
                several.len(),
                several.join(", "),
                several[0]
            ),
        },
    };
    let path = path(dir, &name);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no stack named {name:?} is running here (`gantry status` without a name lists none or one; start it with `gantry up --name {name}`)"))?;
    let state = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is unreadable; remove it if no `gantry up` of that name is running",
            path.display()
        )
    })?;
    Ok((path, state))
}

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

/// Writes the record of `state.name` (0600), replacing any previous one atomically.
pub fn write(dir: &Path, state: &RunState) -> Result<PathBuf> {
    let path = path(dir, &state.name);
    let tmp = dir.join(format!(".{}.json.{}", state.name, std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    let json = serde_json::to_string(state).context("the run state is JSON")?;
    file.write_all(json.as_bytes())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Who a process is, as far as `down` needs to know.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub pid: u32,
    /// When it started: on Linux clock ticks after boot (`/proc/<pid>/stat`,
    /// field 22); elsewhere a hash of the start time `ps` gives (`lstart`).
    pub start_time: u64,
    pub exe: PathBuf,
}

impl Identity {
    /// This process.
    pub fn of_self() -> Result<Self> {
        Self::of(std::process::id()).context("reading what this process is (its start time and executable)")
    }

    /// The process that has `pid` now, if any (and if it is ours to read).
    #[cfg(not(target_os = "linux"))]
    pub fn of(pid: u32) -> Option<Self> {
        let started = process::ps(pid, "lstart")?;
        // macOS's `ps -o comm` is the executable's path.
        let exe = process::ps(pid, "comm")?;
        Some(Self {
            pid,
            start_time: fnv1a(started.as_bytes()),
            exe: PathBuf::from(exe),
        })
    }

    /// The process that has `pid` now, if any (and if it is ours to read).
    #[cfg(target_os = "linux")]
    pub fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        Some(Self {
            pid,
            start_time: start_time(&stat)?,
            exe: undeleted(exe),
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
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// `/proc/<pid>/exe` of a binary replaced since it started ends in " (deleted)".
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn undeleted(exe: PathBuf) -> PathBuf {
    match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(s) => PathBuf::from(s),
        None => exe,
    }
}

/// 64-bit FNV-1a: a start time `ps` prints, as a number that stays the same
/// for the same process.
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_file_safe_and_default_to_the_stack_files_folder() {
        assert_eq!(default_name(None), "gantry");
        assert_eq!(default_name(Some(Path::new("/x/Any Stack/stack.toml"))), "any-stack");
        assert_eq!(default_name(Some(Path::new("/x/.hidden/stack.toml"))), "hidden");
        for bad in ["", "../x", "A", ".x", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("team-a_1.2").unwrap();
    }

    #[test]
    fn start_time_is_field_22_even_with_odd_command_names() {
        let stat = "4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time(stat), Some(987654));
        assert_eq!(start_time("garbage"), None);
    }

    #[test]
    fn this_process_is_recognised_and_a_pid_with_another_start_time_is_gone() {
        let me = Identity::of_self().unwrap();
        let json = serde_json::to_string(&me).unwrap();
        assert_eq!(serde_json::from_str::<Identity>(&json).unwrap(), me);
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
        let state: RunState = serde_json::from_str(r#"{"name":"a","pid":1,"start_time":2,"exe":"/x"}"#).unwrap();
        let path = write(&dir, &state).unwrap();
        assert_eq!(path, dir.join("a.json"));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read(&dir, None).unwrap().1, state, "the only stack, by no name");
        assert_eq!(read(&dir, Some("a")).unwrap().1, state);
        let e = read(&dir, Some("b")).unwrap_err().to_string();
        assert!(e.contains("no stack named \"b\""), "{e}");
        write(
            &dir,
            &RunState {
                name: "b".into(),
                ..state.clone()
            },
        )
        .unwrap();
        let e = read(&dir, None).unwrap_err().to_string();
        assert!(e.contains("2 stacks are running here (a, b)"), "{e}");

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
