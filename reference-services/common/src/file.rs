//! The one front end of Gantry's TOML files, the gateway's routes file and
//! the harness's stack file: reading, every refusal placed at
//! `file:line:column`, and the values both write the same way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config;

/// Why a file was refused: which file, where, and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: could not be read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or not the file's shape (an unknown key, a wrong type, a bad
    /// duration): toml's own message, which says what it expected.
    #[error("{}: {message}", Place(path, *at))]
    Syntax {
        path: PathBuf,
        /// Line and column, when toml knows them.
        at: Option<(usize, usize)>,
        message: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// Well-formed, but inconsistent (an unknown service, a duplicate route).
    #[error("{}: {found}; expected {expected}", Place(path, Some(*at)))]
    Invalid {
        path: PathBuf,
        at: (usize, usize),
        found: String,
        expected: String,
    },
}

impl FileError {
    /// The 1-based line the refusal is about, when it is about one.
    pub fn line(&self) -> Option<usize> {
        match self {
            FileError::Read { .. } => None,
            FileError::Syntax { at, .. } => at.map(|(line, _)| line),
            FileError::Invalid { at, .. } => Some(at.0),
        }
    }

    /// A refusal of what stands at byte `offset` of `text`, read from `path`.
    pub fn invalid(path: &Path, text: &str, offset: usize, found: String, expected: &str) -> Self {
        FileError::Invalid {
            path: path.to_owned(),
            at: position(text, offset),
            found,
            expected: expected.to_owned(),
        }
    }
}

/// `file:line:column`, or just `file` when the place is unknown.
struct Place<'a>(&'a Path, Option<(usize, usize)>);

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some((line, column)) => write!(f, "{}:{line}:{column}", self.0.display()),
            None => write!(f, "{}", self.0.display()),
        }
    }
}

/// The text of the file at `path`.
pub fn read(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })
}

/// `text`, read from `path`, as a `T`; toml's refusal placed in the file.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, FileError> {
    toml::from_str(text).map_err(|source| FileError::Syntax {
        path: path.to_owned(),
        at: source.span().map(|s| position(text, s.start)),
        message: source.message().trim_end().to_owned(),
        source: Box::new(source),
    })
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A duration written as Consul writes them (`500ms`, `2s`, `1m`), above
/// zero. Parsed in `Deserialize`, so toml places a bad one in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDuration(pub Duration);

impl<'de> Deserialize<'de> for FileDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match config::parse_duration(&text) {
            Some(v) if !v.is_zero() => Ok(FileDuration(v)),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is not a duration: expected one above zero such as \"500ms\", \"2s\" or \"1m\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Shape {
        #[allow(dead_code)]
        wait: FileDuration,
    }

    #[test]
    fn a_refusal_names_file_line_and_column() {
        let e = parse::<Shape>("\n  wait = \"soon\"\n", Path::new("x.toml")).unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert!(e.to_string().starts_with("x.toml:2:"), "{e}");
        assert!(e.to_string().contains("above zero such as"), "{e}");
        let e = parse::<Shape>("wait = \"0s\"", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("\"0s\" is not a duration"), "{e}");
        let e = parse::<Shape>("wait = \"1s\"\nnope = 1\n", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().starts_with("x.toml:2:1: "), "{e}");
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_eq!(position("ab\ncd", 0), (1, 1));
        assert_eq!(position("ab\ncd", 4), (2, 2));
        assert_eq!(position("é = 1", 2), (1, 2));
        assert_eq!(position("é", 1), (1, 1), "inside a character: its start");
        assert_eq!(position("x", 99), (1, 2), "past the end: the end");
    }

    #[test]
    fn an_unreadable_file_names_the_file() {
        let e = read(Path::new("/nonexistent/stack.toml")).unwrap_err();
        assert!(
            e.to_string().starts_with("/nonexistent/stack.toml: could not be read"),
            "{e}"
        );
        assert_eq!(e.line(), None);
    }
}
