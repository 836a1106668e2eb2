//! What a library step gets from cucumber, made easy to read: the named
//! captures of its text, the step itself (doc string, table), and where it
//! is defined for cucumber's reports.

use std::str::FromStr;
use std::time::Duration;

use cucumber::codegen::Regex;
use cucumber::gherkin;
use cucumber::step::Context;

/// The future a step function returns.
pub(crate) type StepFuture<'a> = cucumber::codegen::LocalBoxFuture<'a, ()>;

/// Where a step function is defined (`file:line:column`), as cucumber's
/// macros record it, so a report points at the step.
macro_rules! here {
    () => {
        Some(cucumber::step::Location {
            path: file!(),
            line: line!(),
            column: column!(),
        })
    };
}
pub(crate) use here;

/// The optional deadline of a check: ` within N seconds`, captured as `within`.
macro_rules! within {
    () => {
        r"(?: within (?P<within>\d+) seconds?)?"
    };
}
pub(crate) use within;

/// A step's regular expression; the library's are checked by its tests.
pub(crate) fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("step pattern {pattern:?}: {e}"))
}

/// The named captures of one step's text.
pub(crate) struct Args {
    ctx: Context,
}

impl Args {
    /// The step's captures, doc string and table with their placeholders
    /// filled ([`super::StepState::expand`]): `{gateway}`, a user's
    /// `{alice.username}`, a kept `{order}`. An unknown placeholder fails the
    /// step, saying how to make it known.
    pub fn of<W: super::StackWorld>(w: &mut W, mut ctx: Context) -> Self {
        let gateway = w.gateway_url();
        let state = w.step_state();
        let step = ctx.step.value.clone();
        let fill = |text: &mut String| match state.expand(text, &gateway) {
            Ok(filled) => *text = filled,
            Err(why) => panic!("step {step:?}: {why}"),
        };
        for (_, value) in &mut ctx.matches {
            fill(value);
        }
        if let Some(doc) = &mut ctx.step.docstring {
            fill(doc);
        }
        if let Some(table) = &mut ctx.step.table {
            table.rows.iter_mut().flatten().for_each(fill);
        }
        Self { ctx }
    }

    /// The capture `name`, `None` when it did not take part (or is empty).
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.ctx
            .matches
            .iter()
            .find(|(n, _)| n.as_deref() == Some(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The capture `name`; the pattern makes it present.
    pub fn get(&self, name: &str) -> &str {
        self.opt(name)
            .unwrap_or_else(|| panic!("step {:?} has no {name}", self.ctx.step.value))
    }

    /// The capture `name` parsed (a count, a status).
    pub fn num<T: FromStr>(&self, name: &str) -> T {
        let text = self.get(name);
        text.parse()
            .unwrap_or_else(|_| panic!("{name} {text:?} in step {:?} is not a number", self.ctx.step.value))
    }

    /// How long a check may poll: ` within N seconds`, or zero (look once).
    pub fn within(&self) -> Duration {
        match self.opt("within") {
            Some(_) => Duration::from_secs(self.num("within")),
            None => Duration::ZERO,
        }
    }

    pub fn step(&self) -> &gherkin::Step {
        &self.ctx.step
    }
}
