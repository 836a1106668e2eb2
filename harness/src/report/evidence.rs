//! Evidence a failed scenario leaves behind: its stack's logs under
//! `target/gantry/<run>/<scenario>/`, and their tails in the JUnit report's
//! `<system-out>` (where GitHub and GitLab show them beside the failure),
//! with the scenarios a run could not run listed there as skipped.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Names a run's evidence directory instead of the start time (CI sets it
/// to its job id, so the directory is easy to find in the artifacts).
pub const RUN_ID_VAR: &str = "GANTRY_RUN_ID";
/// Lines of each log that go into the JUnit report (the whole log is in
/// the evidence directory).
pub const DEFAULT_TAIL_LINES: usize = 40;
/// The longest directory name a scenario gets (file systems allow 255 bytes).
const MAX_NAME: usize = 100;

/// `GANTRY_RUN_ID` if set, else the time now in UTC (`20261126T154512Z`).
pub fn run_id() -> String {
    match std::env::var(RUN_ID_VAR) {
        Ok(id) if !id.trim().is_empty() => path_safe(&id),
        _ => utc_stamp(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())),
    }
}

/// `secs` since the epoch as `YYYYMMDDTHHMMSSZ` (the civil-from-days
/// algorithm; no date crate for one timestamp).
fn utc_stamp(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `name` as one directory name: letters, digits, `.`, `_` and `-` kept,
/// every other run of characters one `-`, at most [`MAX_NAME`] bytes.
pub fn path_safe(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches(|c| c == '-' || c == '.');
    let out = &out[..out.len().min(MAX_NAME)];
    if out.is_empty() {
        "scenario".to_owned()
    } else {
        out.to_owned()
    }
}

/// A directory for `scenario` in `run_dir` that no other scenario of the
/// run has taken (two scenarios can share a name): `name`, `name-2`, …
pub fn scenario_dir(run_dir: &Path, scenario: &str) -> PathBuf {
    let base = path_safe(scenario);
    let mut candidate = run_dir.join(&base);
    let mut n = 1;
    while candidate.exists() {
        n += 1;
        candidate = run_dir.join(format!("{base}-{n}"));
    }
    candidate
}

/// The last `lines` lines of `text`, without terminal colour codes or
/// other control characters (XML 1.0 forbids most of them).
pub fn tail(text: &str, lines: usize) -> String {
    let clean = plain(text);
    let all: Vec<&str> = clean.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `text` without ANSI escape sequences and control characters other
/// than newline and tab.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters… final byte in @..~
            if chars.peek() == Some(&'[') {
                chars.next();
                for f in chars.by_ref() {
                    if ('@'..='~').contains(&f) {
                        break;
                    }
                }
            }
            continue;
        }
        if c == '\n' || c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// What to add to one `<testcase>` of a JUnit report.
#[derive(Debug, Clone)]
pub struct CaseOutput {
    /// The scenario's name, as cucumber names the test case
    /// (`Scenario: <name>: <file>:<line>:<column>`).
    pub scenario: String,
    /// The scenario's line in its feature file, which tells apart two
    /// scenarios of the same name.
    pub line: usize,
    /// The scenario's column on that line.
    pub column: usize,
    /// Text for its `<system-out>`.
    pub text: String,
}

/// A scenario that did not run, for a `<skipped message="…"/>` entry.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// The name of the feature it is in.
    pub feature: String,
    /// The scenario's name.
    pub scenario: String,
    /// Why it did not run, e.g. which `@needs` this environment lacks.
    pub reason: String,
}

/// As a run lists it before it starts: `SKIPPED <feature>: <scenario> (<why>)`.
impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SKIPPED {}: {} ({})", self.feature, self.scenario, self.reason)
    }
}

/// Adds `outputs` to the `<system-out>` of their test cases in `xml` (a
/// JUnit report written by cucumber), and a test suite of `skipped`
/// scenarios. Returns the new report and the outputs whose test case was
/// not found.
pub fn amend_junit(xml: &str, outputs: &[CaseOutput], skipped: &[Skipped]) -> (String, Vec<String>) {
    let mut xml = xml.to_owned();
    let mut missing = Vec::new();
    for out in outputs {
        match find_case(&xml, out) {
            Some((start, end)) => {
                let case = &xml[start..end];
                let text = cdata(&format!("\n{}\n", out.text));
                let (at, insert) = match case.rfind("]]></system-out>") {
                    Some(i) => (start + i, text),
                    None => match case.rfind("</testcase>") {
                        Some(i) => (start + i, format!("<system-out><![CDATA[{text}]]></system-out>")),
                        None => {
                            // Self-closed: open it up.
                            let i = case.rfind("/>").expect("a testcase element ends");
                            xml.replace_range(start + i..start + i + 2, "></testcase>");
                            (start + i + 1, format!("<system-out><![CDATA[{text}]]></system-out>"))
                        }
                    },
                };
                xml.insert_str(at, &insert);
            }
            None => missing.push(out.scenario.clone()),
        }
    }
    if !skipped.is_empty() {
        let mut suite = format!(
            "<testsuite id=\"skipped\" name=\"Skipped: @needs not met here\" package=\"skipped\" tests=\"{n}\" errors=\"0\" failures=\"0\" skipped=\"{n}\" hostname=\"localhost\" timestamp=\"1970-01-01T00:00:00Z\" time=\"0\">",
            n = skipped.len()
        );
        for s in skipped {
            suite.push_str(&format!(
                "<testcase name=\"{}\" classname=\"{}\" time=\"0\"><skipped message=\"{}\"/></testcase>",
                attr(&format!("Scenario: {}", s.scenario)),
                attr(&format!("Feature: {}", s.feature)),
                attr(&s.reason)
            ));
        }
        suite.push_str("</testsuite>");
        if let Some(i) = xml.rfind("</testsuites>") {
            xml.insert_str(i, &suite);
        } else if let Some(i) = xml.rfind("<testsuites/>") {
            xml.replace_range(
                i..i + "<testsuites/>".len(),
                &format!("<testsuites>{suite}</testsuites>"),
            );
        } else {
            xml.push_str(&format!("<testsuites>{suite}</testsuites>"));
        }
    }
    (xml, missing)
}

/// The byte range of the `<testcase …>…</testcase>` for `out`.
fn find_case(xml: &str, out: &CaseOutput) -> Option<(usize, usize)> {
    let wanted_name = format!("Scenario: {}: ", out.scenario);
    let wanted_end = format!(":{}:{}", out.line, out.column);
    let mut from = 0;
    while let Some(i) = xml[from..].find("<testcase") {
        let start = from + i;
        let head_end = start + xml[start..].find('>')?;
        let head = &xml[start..head_end];
        let name = head
            .split_once(" name=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(n, _)| unescape(n))
            .unwrap_or_default();
        let end = if head.ends_with('/') {
            head_end + 1
        } else {
            xml[start..]
                .find("</testcase>")
                .map_or(xml.len(), |e| start + e + "</testcase>".len())
        };
        if name.contains(&wanted_name) && name.ends_with(&wanted_end) {
            return Some((start, end));
        }
        from = end;
    }
    None
}

/// `text` made safe inside a CDATA section (which cannot contain `]]>`).
fn cdata(text: &str) -> String {
    plain(text).replace("]]>", "]]]]><![CDATA[>")
}

/// `text` as an XML attribute value.
fn attr(text: &str) -> String {
    plain(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\n', "&#10;")
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite id="0" name="Feature: F: features/f.feature" package="testsuite/features" tests="2" errors="0" failures="1" hostname="localhost" timestamp="2026-11-26T15:00:00Z" time="1"><testcase name="Scenario: it &quot;works&quot;: features/f.feature:3:3" time="0.5"/><testcase name="Scenario: it fails: features/f.feature:7:3" time="0.5"><failure type="Step Panicked" message="boom"/><system-out><![CDATA[Scenario: it fails
]]></system-out></testcase></testsuite></testsuites>"#;

    fn output(scenario: &str, line: usize, text: &str) -> CaseOutput {
        CaseOutput {
            scenario: scenario.into(),
            line,
            column: 3,
            text: text.into(),
        }
    }

    #[test]
    fn the_tails_go_into_the_failed_cases_system_out() {
        let (xml, missing) = amend_junit(
            REPORT,
            &[output("it fails", 7, "gateway-1.log:\nerror ]]> here\u{1b}[31m")],
            &[],
        );
        assert!(missing.is_empty());
        assert!(
            xml.contains(
                "Scenario: it fails\n\ngateway-1.log:\nerror ]]]]><![CDATA[> here\n]]></system-out></testcase>"
            ),
            "{xml}"
        );
        // A case without output gets one, opened up from its self-closed form.
        let (xml, missing) = amend_junit(&xml, &[output("it \"works\"", 3, "tail")], &[]);
        assert!(missing.is_empty());
        assert!(
            xml.contains("time=\"0.5\"><system-out><![CDATA[\ntail\n]]></system-out></testcase>"),
            "{xml}"
        );
        let (_, missing) = amend_junit(&xml, &[output("it fails", 8, "x")], &[]);
        assert_eq!(missing, ["it fails"]);
    }

    #[test]
    fn skipped_scenarios_get_a_suite_of_their_own() {
        let skipped = [Skipped {
            feature: "Sessions".into(),
            scenario: "Redis <down>".into(),
            reason: "@needs:redis: set REDIS_URL".into(),
        }];
        let (xml, _) = amend_junit(REPORT, &[], &skipped);
        assert!(
            xml.ends_with(
                "<testcase name=\"Scenario: Redis &lt;down&gt;\" classname=\"Feature: Sessions\" time=\"0\"><skipped message=\"@needs:redis: set REDIS_URL\"/></testcase></testsuite></testsuites>"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("tests=\"1\" errors=\"0\" failures=\"0\" skipped=\"1\""),
            "{xml}"
        );
        let (empty, _) = amend_junit("<?xml version=\"1.0\"?>\n<testsuites/>", &[], &skipped);
        assert!(empty.contains("<testsuites><testsuite id=\"skipped\""), "{empty}");
        assert!(empty.ends_with("</testsuite></testsuites>"), "{empty}");
    }

    #[test]
    fn names_become_one_safe_directory() {
        assert_eq!(
            path_safe("A user's session: survives / restarts?"),
            "A-user-s-session-survives-restarts"
        );
        assert_eq!(path_safe("../.."), "scenario");
        assert_eq!(path_safe(&"x".repeat(300)).len(), MAX_NAME);
        let dir = tempfile::tempdir().unwrap();
        let first = scenario_dir(dir.path(), "same");
        std::fs::create_dir(&first).unwrap();
        assert_eq!(scenario_dir(dir.path(), "same"), dir.path().join("same-2"));
    }

    #[test]
    fn timestamps_are_utc_and_tails_are_plain() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(1_772_000_000), "20260225T061320Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(tail("a\nb\n\u{1b}[2mc\u{1b}[0m\u{7}\n", 2), "b\nc");
    }
}
