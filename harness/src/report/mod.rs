//! Reporting what a run showed: evidence a failed scenario leaves behind,
//! and statistics that say whether load was spread as it should be.

pub mod evidence;
pub mod stats;
