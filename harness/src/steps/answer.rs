//! Checks of the last answer: its status, a value in its JSON body (by an
//! RFC 6901 JSON pointer), a header, its body's text; and of every answer
//! since the last batch started (load samples included).

use cucumber::step::{Collection, Context};
use serde_json::Value;

use super::StackWorld;
use super::args::{Args, StepFuture, here, re};
use crate::drive::client::Answer;

pub(super) fn add<W: StackWorld>(steps: Collection<W>) -> Collection<W> {
    steps
        .then(here!(), re(r"^the status is (?P<status>\d{3})$"), status::<W>)
        .then(
            here!(),
            re(r#"^the JSON at "(?P<pointer>[^"]*)" (?P<check>exists|is absent|is (?P<value>.+)|has (?P<count>\d+) items?|contains (?P<element>.+))$"#),
            json_at::<W>,
        )
        .then(
            here!(),
            re(r#"^the header "(?P<name>[^"]+)" (?P<check>exists|is absent|is "(?P<value>[^"]*)"|contains "(?P<part>[^"]*)"|is a number from (?P<low>-?[\d.]+) to (?P<high>-?[\d.]+))$"#),
            header::<W>,
        )
        .then(
            here!(),
            re(r#"^the body (?P<not>does not contain|contains) "(?P<text>.*)"$"#),
            body::<W>,
        )
        .then(here!(), re(r"^every answer is (?P<status>\d{3})$"), every::<W>)
        .given(here!(), re(KEEP), keep::<W>)
        .when(here!(), re(KEEP), keep::<W>)
        .then(here!(), re(KEEP), keep::<W>)
}

/// `I keep the JSON at "/id" as "order"`: for `{order}` in later steps.
const KEEP: &str = r#"^I keep the JSON at "(?P<pointer>[^"]*)" as "(?P<name>[A-Za-z_][\w.-]*)"$"#;

fn keep<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let (pointer, name) = (args.opt("pointer").unwrap_or_default(), args.get("name"));
        let state = w.step_state();
        let last = state.last();
        let body: Value = serde_json::from_str(&last.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", last.describe()));
        let value = match body.pointer(pointer) {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => panic!("nothing at {pointer:?} to keep as {name:?}: {}", last.describe()),
        };
        state.kept.insert(name.to_owned(), value);
    })
}

fn status<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let want: u16 = Args::of(w, ctx).num("status");
        let last = w.step_state().last();
        assert_eq!(last.status, want, "expected {want}, but {}", last.describe());
    })
}

/// What a JSON check expects, from the step's words.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonCheck {
    /// `exists`: the pointer finds a value, whatever it is (`null` included).
    Exists,
    /// `is absent`: the pointer finds nothing.
    Absent,
    /// `is "value"` / `is 3`: exactly this JSON value.
    Is(Value),
    /// `is a number from 1 to 900`: a JSON number within, bounds included.
    Between(f64, f64),
    /// `has 3 items`: an array (or object) of that many.
    Count(usize),
    /// `contains {"id": 1}`: an array with an element that has it (an
    /// object's fields in part, as Karate's `match contains`), an object
    /// with those fields, or a string with it as a part (`contains "milk"`).
    Contains(Value),
}

/// `a number from A to B`, as the low and high bound.
fn number_range(words: &str) -> Option<Result<(f64, f64), String>> {
    let range = words.strip_prefix("a number from ")?;
    let parsed = range
        .split_once(" to ")
        .and_then(|(low, high)| Some((low.trim().parse().ok()?, high.trim().parse().ok()?)))
        .filter(|(low, high)| low <= high)
        .ok_or_else(|| format!("{words:?}: expected `a number from <low> to <high>` with low <= high"));
    Some(parsed)
}

impl JsonCheck {
    /// `exists`, `is absent`, `is a number from 1 to 900`, or `is <a JSON
    /// value>` (`"text"`, `3`, `true`, `null`, `[1, 2]`, `{"a": 1}`).
    pub fn parse(check: &str, value: Option<&str>) -> Result<Self, String> {
        if let Some(count) = check.strip_prefix("has ") {
            let n = count.trim_end_matches(" items").trim_end_matches(" item");
            return n
                .parse()
                .map(Self::Count)
                .map_err(|_| format!("{check:?}: expected `has <n> items`"));
        }
        if let Some(element) = check.strip_prefix("contains ") {
            return serde_json::from_str(element).map(Self::Contains).map_err(|e| {
                format!("{element:?} is not a JSON value ({e}): write strings in quotes, e.g. contains \"{element}\"")
            });
        }
        match (check, value) {
            ("exists", _) => Ok(Self::Exists),
            ("is absent", _) => Ok(Self::Absent),
            (_, Some(value)) if let Some(range) = number_range(value) => {
                range.map(|(low, high)| Self::Between(low, high))
            }
            (_, Some(value)) => serde_json::from_str(value).map(Self::Is).map_err(|e| {
                format!("{value:?} is not a JSON value ({e}): write strings in quotes, e.g. is \"{value}\"")
            }),
            _ => Err(format!("{check:?} is not exists, is absent or is <JSON>")),
        }
    }

    /// Whether `found` (the value at the pointer, if any) passes; `Err` says why not.
    pub fn check(&self, pointer: &str, found: Option<&Value>) -> Result<(), String> {
        match (self, found) {
            (Self::Exists, Some(_)) | (Self::Absent, None) => Ok(()),
            (Self::Is(want), Some(got)) if want == got => Ok(()),
            (Self::Between(low, high), Some(got)) => match got.as_f64() {
                Some(n) if (*low..=*high).contains(&n) => Ok(()),
                _ => Err(format!("{pointer:?} is {got}, expected a number from {low} to {high}")),
            },
            (Self::Between(low, high), None) => Err(format!(
                "nothing at {pointer:?}, expected a number from {low} to {high}"
            )),
            (Self::Count(n), Some(got)) => {
                let len = match got {
                    Value::Array(items) => Some(items.len()),
                    Value::Object(fields) => Some(fields.len()),
                    _ => None,
                };
                match len {
                    Some(len) if len == *n => Ok(()),
                    Some(len) => Err(format!("{pointer:?} has {len} items, expected {n}: {got}")),
                    None => Err(format!("{pointer:?} is {got}, expected an array of {n} items")),
                }
            }
            (Self::Contains(want), Some(got)) => {
                let found = match (got, want) {
                    (Value::String(text), Value::String(part)) => text.contains(part.as_str()),
                    (Value::Array(items), _) => items.iter().any(|item| has(item, want)) || has(got, want),
                    _ => has(got, want),
                };
                if found {
                    Ok(())
                } else {
                    Err(format!("{pointer:?} is {got}, which does not contain {want}"))
                }
            }
            (Self::Exists | Self::Count(_) | Self::Contains(_), None) => Err(format!("nothing at {pointer:?}")),
            (Self::Absent, Some(got)) => Err(format!("{pointer:?} is {got}, expected nothing there")),
            (Self::Is(want), Some(got)) => Err(format!("{pointer:?} is {got}, expected {want}")),
            (Self::Is(want), None) => Err(format!("nothing at {pointer:?}, expected {want}")),
        }
    }
}

/// Whether `got` has `want` in it: an object every field of `want` (each
/// had in turn), an array every element of `want`, anything else equal.
fn has(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w.iter().all(|(k, v)| g.get(k).is_some_and(|gv| has(gv, v))),
        (Value::Array(g), Value::Array(w)) => w.iter().all(|wv| g.iter().any(|gv| has(gv, wv))),
        _ => got == want,
    }
}

fn json_at<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let pointer = args.opt("pointer").unwrap_or_default();
        let check = JsonCheck::parse(args.get("check"), args.opt("value")).unwrap_or_else(|e| panic!("{e}"));
        let last = w.step_state().last();
        let body: Value = serde_json::from_str(&last.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", last.describe()));
        if let Err(why) = check.check(pointer, body.pointer(pointer)) {
            panic!("{why}: {}", last.describe());
        }
    })
}

fn header<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let name = args.get("name");
        let last = w.step_state().last();
        let got = last.header(name);
        let ok = match (args.get("check"), got) {
            ("exists", found) => found.is_some(),
            ("is absent", found) => found.is_none(),
            (check, Some(v)) if check.starts_with("contains") => v.contains(args.opt("part").unwrap_or_default()),
            (check, Some(v)) if check.starts_with("is a number") => {
                let (low, high): (f64, f64) = (args.num("low"), args.num("high"));
                v.trim().parse::<f64>().is_ok_and(|n| (low..=high).contains(&n))
            }
            (_, Some(v)) => v == args.opt("value").unwrap_or_default(),
            (_, None) => false,
        };
        assert!(
            ok,
            "expected the header {name:?} {}, it is {got:?}: {}",
            args.get("check"),
            last.describe()
        );
    })
}

fn body<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let text = args.opt("text").unwrap_or_default();
        let wanted = args.get("not") == "contains";
        let last = w.step_state().last();
        assert_eq!(
            last.body.contains(text),
            wanted,
            "expected the body to {} {text:?}: {}",
            args.get("not"),
            last.describe()
        );
    })
}

fn every<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let want: u16 = Args::of(w, ctx).num("status");
        let state = w.step_state();
        if let Some(report) = &state.load {
            let off: Vec<_> = report.samples.iter().filter(|s| s.status != want).collect();
            assert!(
                off.is_empty(),
                "{} of {} load requests were not answered {want}; first: {}",
                off.len(),
                report.samples.len(),
                off[0]
            );
        }
        let off: Vec<&Answer> = state.answers.iter().filter(|a| a.status != want).collect();
        assert!(
            off.is_empty(),
            "{} of {} answers were not {want}; first: {}",
            off.len(),
            state.answers.len(),
            off.first().map(|a| a.describe()).unwrap_or_default()
        );
        assert!(
            state.load.is_some() || !state.answers.is_empty(),
            "no requests were made"
        );
    })
}

#[cfg(test)]
mod tests {
    use super::JsonCheck;
    use serde_json::json;

    #[test]
    fn json_checks_compare_values_not_text() {
        let body = json!({"user": {"name": "alice", "roles": ["a"], "n": 3}});
        let at = |p: &str| body.pointer(p);
        let is = |v: &str| JsonCheck::parse("is", Some(v)).unwrap();
        assert!(is("\"alice\"").check("/user/name", at("/user/name")).is_ok());
        assert!(is("3").check("/user/n", at("/user/n")).is_ok());
        assert!(
            is("3.0").check("/user/n", at("/user/n")).is_err(),
            "3 and 3.0 differ in JSON"
        );
        assert!(is("[\"a\"]").check("/user/roles", at("/user/roles")).is_ok());
        assert!(is("\"a\"").check("/user/roles/0", at("/user/roles/0")).is_ok());
        assert!(JsonCheck::Exists.check("/user", at("/user")).is_ok());
        assert!(JsonCheck::Absent.check("/user/x", at("/user/x")).is_ok());
        let e = JsonCheck::Absent.check("/user/n", at("/user/n")).unwrap_err();
        assert!(e.contains("is 3"), "{e}");
        let e = JsonCheck::parse("is", Some("alice")).unwrap_err();
        assert!(e.contains("write strings in quotes"), "{e}");
        let range = |v: &str| JsonCheck::parse("is", Some(v));
        assert_eq!(range("a number from 1 to 900"), Ok(JsonCheck::Between(1.0, 900.0)));
        assert!(
            range("a number from 1 to 3")
                .unwrap()
                .check("/user/n", at("/user/n"))
                .is_ok()
        );
        assert!(
            range("a number from 4 to 9")
                .unwrap()
                .check("/user/n", at("/user/n"))
                .is_err()
        );
        assert!(
            range("a number from 0 to 9")
                .unwrap()
                .check("/user/name", at("/user/name"))
                .is_err(),
            "a string is not a number"
        );
        assert!(range("a number from 9 to 1").is_err(), "an empty range is a mistake");

        let list = json!({"items": [{"id": 1, "name": "milk"}, {"id": 2}], "tags": ["a", "b"], "n": 3});
        let at = |p: &str| list.pointer(p);
        let contains = |v: &str| JsonCheck::parse(&format!("contains {v}"), None).unwrap();
        assert!(
            contains(r#"{"id": 1}"#).check("/items", at("/items")).is_ok(),
            "a part of an element"
        );
        assert!(contains(r#"{"id": 3}"#).check("/items", at("/items")).is_err());
        assert!(contains(r#""b""#).check("/tags", at("/tags")).is_ok());
        assert!(
            contains(r#"["b", "a"]"#).check("/tags", at("/tags")).is_ok(),
            "each, in any order"
        );
        assert!(contains(r#"["c"]"#).check("/tags", at("/tags")).is_err());
        assert!(
            contains(r#"{"n": 3}"#).check("", at("")).is_ok(),
            "an object's fields in part"
        );
        let count = |v: &str| JsonCheck::parse(v, None).unwrap();
        assert!(count("has 2 items").check("/items", at("/items")).is_ok());
        assert!(count("has 3 items").check("/items", at("/items")).is_err());
        assert!(
            count("has 1 item").check("/n", at("/n")).is_err(),
            "a number has no items"
        );
    }
}
