//! Reporting what a run showed: evidence a failed scenario leaves behind,
//! statistics that say whether load was spread as it should be, and what a
//! fault cost on one timeline.

pub mod evidence;
pub mod stats;
pub mod timeline;
