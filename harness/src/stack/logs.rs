//! A stack's logs as evidence: where each one stood at a moment (a
//! scenario's start), and a copy of each, whole or from that moment on,
//! into a directory that outlives the stack's temporary one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::HarnessError;
use crate::run::containers::Container;

/// How long each log was at a moment: a file's length in bytes, a
/// container's stdout and stderr lengths.
#[derive(Debug, Clone, Default)]
pub struct LogMarks {
    files: HashMap<PathBuf, u64>,
    containers: HashMap<String, (usize, usize)>,
}

/// One log copied out of the stack.
#[derive(Debug, Clone)]
pub struct SavedLog {
    /// The component it is of: `gateway-1`, `redis`, …
    pub name: String,
    /// The copy: `<name>.log` in the destination directory.
    pub path: PathBuf,
}

/// The `*.log` files in a stack's directory `dir`: every process's output.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "log"));
    files.sort();
    files
}

/// Where every log stands now (the files in `dir`, the `containers`'), for
/// [`save`] to copy only what is written after.
pub async fn marks(dir: &Path, containers: &[&Container]) -> LogMarks {
    let mut marks = LogMarks::default();
    for file in log_files(dir) {
        let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        marks.files.insert(file, len);
    }
    for c in containers {
        let (out, err) = c.log_bytes().await;
        marks.containers.insert(c.name().to_owned(), (out.len(), err.len()));
    }
    marks
}

/// Copies every process's log (the files in `dir`) and every container's
/// into `dest` (created), as `<name>.log`: whole, or only what was written
/// after `since`. A container's log is its stdout, then its stderr (Docker
/// keeps them apart).
pub async fn save(
    dir: &Path,
    containers: &[&Container],
    dest: &Path,
    since: Option<&LogMarks>,
) -> Result<Vec<SavedLog>, HarnessError> {
    std::fs::create_dir_all(dest).map_err(|e| HarnessError::Io(format!("creating {}", dest.display()), e))?;
    let mut saved = Vec::new();
    let mut write = |name: &str, bytes: &[u8]| -> Result<(), HarnessError> {
        let path = dest.join(format!("{name}.log"));
        std::fs::write(&path, bytes).map_err(|e| HarnessError::Io(format!("writing {}", path.display()), e))?;
        saved.push(SavedLog {
            name: name.to_owned(),
            path,
        });
        Ok(())
    };
    for file in log_files(dir) {
        let Some(name) = file.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let bytes = std::fs::read(&file).map_err(|e| HarnessError::Io(format!("reading {}", file.display()), e))?;
        let from = since.and_then(|m| m.files.get(&file)).copied().unwrap_or(0);
        write(name, bytes.get(from as usize..).unwrap_or_default())?;
    }
    for c in containers {
        let (out, err) = c.log_bytes().await;
        let (out_from, err_from) = since
            .and_then(|m| m.containers.get(c.name()))
            .copied()
            .unwrap_or((0, 0));
        let mut both = out.get(out_from..).unwrap_or_default().to_vec();
        both.extend_from_slice(err.get(err_from..).unwrap_or_default());
        write(c.name(), &both)?;
    }
    Ok(saved)
}
