//! Finding the `gantry` executable a stack runs its own components with
//! (`gantry serve auth|user|gateway`), the way a team's tests would.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::HarnessError;

/// The variable that names the `gantry` executable, first in the search.
pub const GANTRY_BIN: &str = "GANTRY_BIN";

/// The `gantry` executable: `$GANTRY_BIN`, else the one cargo built next to
/// the running test (in the same target directory), else `gantry` on `PATH`.
///
/// The build beside the test comes before `PATH` so that a workspace which
/// builds `gantry` itself (a plain `cargo test` builds every binary of the
/// workspace before any test runs) tests that build, not an older one
/// installed with `cargo install`. A team's own crate has no such build,
/// and finds the installed one.
///
/// The one found must be this harness's version (`gantry --version`): an
/// older install would run a stack the harness does not know how to drive.
pub fn gantry_binary() -> Result<PathBuf, HarnessError> {
    let found = find(
        std::env::var_os(GANTRY_BIN),
        std::env::current_exe().ok().as_deref(),
        std::env::var_os("PATH"),
    )?;
    let said = std::process::Command::new(&found)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    check_version(&found, &said, env!("CARGO_PKG_VERSION"))?;
    Ok(found)
}

/// Refuses a `gantry` whose `--version` (`said`) is not `wanted`.
fn check_version(found: &Path, said: &str, wanted: &str) -> Result<(), HarnessError> {
    let version = said.trim().strip_prefix("gantry ").unwrap_or(said.trim());
    if version == wanted {
        return Ok(());
    }
    let is = if version.is_empty() {
        "does not say its version (`--version`)".to_owned()
    } else {
        format!("is version {version}")
    };
    Err(HarnessError::Missing {
        program: format!("gantry {wanted}"),
        hint: format!(
            "{} {is}, and this harness is {wanted}: build the same version (`cargo build --bin gantry` in Gantry's workspace at the harness's version) or set {GANTRY_BIN} to one",
            found.display()
        ),
    })
}

/// The newest test executable cargo built as `<target>/<profile>/deps/<name>-<hash>`
/// beside the running test's: how a test runs another test target (a
/// Cucumber suite without libtest's harness) as a whole process. `cargo
/// test` builds every test target of a package before it runs any.
pub fn built_test(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("this test's own path: {e}"))?;
    let deps = exe.parent().ok_or("this test's executable has no folder")?;
    let prefix = format!("{name}-");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(deps)
        .map_err(|e| format!("reading {}: {e}", deps.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let file = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            file.starts_with(&prefix) && p.extension().is_none_or(|e| e == std::env::consts::EXE_EXTENSION)
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).ok_or_else(|| {
        format!(
            "the test {name} is not built in {}: run `cargo test --no-run` for its package first",
            deps.display()
        )
    })
}

fn find(named: Option<OsString>, exe: Option<&Path>, path: Option<OsString>) -> Result<PathBuf, HarnessError> {
    let name = format!("gantry{}", std::env::consts::EXE_SUFFIX);
    if let Some(named) = named.filter(|n| !n.is_empty()) {
        let named = PathBuf::from(named);
        return if named.is_file() {
            Ok(named)
        } else {
            Err(HarnessError::Missing {
                program: named.display().to_string(),
                hint: format!("{GANTRY_BIN} names it; set {GANTRY_BIN} to the path of a built `gantry`"),
            })
        };
    }
    // A test runs from `target/<profile>/deps/`; binaries sit in `target/<profile>/`.
    let beside = exe
        .into_iter()
        .flat_map(Path::ancestors)
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&name));
    let on_path = path.iter().flat_map(std::env::split_paths).map(|dir| dir.join(&name));
    let looked: Vec<PathBuf> = beside.chain(on_path).collect();
    looked.iter().find(|candidate| candidate.is_file()).cloned().ok_or_else(|| {
        let places: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
        HarnessError::Missing {
            program: name,
            hint: format!(
                "{GANTRY_BIN} is not set, and it is not at {}; build it with `cargo build --bin gantry` (in Gantry's workspace), install it with `cargo install`, or set {GANTRY_BIN} to its path",
                if places.is_empty() { "any place searched".to_owned() } else { places.join(", ") }
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gantry_of_another_version_is_refused_naming_both() {
        let at = Path::new("/opt/gantry");
        assert!(check_version(at, "gantry 0.3.1\n", "0.3.1").is_ok());
        let e = check_version(at, "gantry 0.2.0\n", "0.3.1").unwrap_err().to_string();
        assert!(
            e.contains("/opt/gantry is version 0.2.0") && e.contains("this harness is 0.3.1"),
            "{e}"
        );
        let e = check_version(at, "", "0.3.1").unwrap_err().to_string();
        assert!(e.contains("does not say its version"), "{e}");
    }

    #[test]
    fn gantry_bin_then_the_target_dir_then_path() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target/debug");
        let deps = target.join("deps");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&deps).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let exe = deps.join("stack-0123");
        let path = Some(OsString::from(bin.as_os_str()));

        let e = find(None, Some(&exe), path.clone()).unwrap_err().to_string();
        assert!(e.contains("cargo build --bin gantry") && e.contains(GANTRY_BIN), "{e}");
        for place in [target.join("gantry"), bin.join("gantry")] {
            assert!(e.contains(&place.display().to_string()), "it says where it looked: {e}");
        }

        std::fs::write(bin.join("gantry"), "").unwrap();
        assert_eq!(find(None, Some(&exe), path.clone()).unwrap(), bin.join("gantry"));
        std::fs::write(target.join("gantry"), "").unwrap();
        assert_eq!(find(None, Some(&exe), path.clone()).unwrap(), target.join("gantry"));

        let named = dir.path().join("elsewhere/gantry");
        let e = find(Some(named.clone().into()), Some(&exe), path.clone())
            .unwrap_err()
            .to_string();
        assert!(e.contains("elsewhere/gantry") && e.contains(GANTRY_BIN), "{e}");
        std::fs::create_dir_all(named.parent().unwrap()).unwrap();
        std::fs::write(&named, "").unwrap();
        assert_eq!(find(Some(named.clone().into()), Some(&exe), path).unwrap(), named);
    }
}
