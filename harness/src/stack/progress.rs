//! What starting and stopping a stack tells a watcher, step by step.

use std::time::Duration;

/// A step of starting or stopping, for progress displays.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// An instance (`user-1`) or the registry is being started.
    Starting(&'a str),
    /// It is ready, and how long that took from its start.
    Ready(&'a str, Duration),
    /// An instance is being stopped.
    Stopping(&'a str),
    /// Something worth telling, such as which provider was chosen and why.
    Note(&'a str),
}

/// A [`Progress`] callback that prints each step on stderr after `prefix`
/// (`<prefix>: starting user-1`, `<prefix>: user-1 ready (812 ms)`).
pub fn print_progress(prefix: &str) -> impl FnMut(Progress<'_>) + use<'_> {
    move |step| match step {
        Progress::Starting(what) => eprintln!("{prefix}: starting {what}"),
        Progress::Ready(what, took) => eprintln!("{prefix}: {what} ready ({} ms)", took.as_millis()),
        Progress::Stopping(what) => eprintln!("{prefix}: stopping {what}"),
        Progress::Note(note) => eprintln!("{prefix}: {note}"),
    }
}
