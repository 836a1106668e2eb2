//! What the library's steps remember from one step to the next, kept in the
//! team's world (see [`super::StackWorld::step_state`]).

use std::collections::HashMap;

use crate::drive::client::{Answer, Auth, UserClient, http_client};
use crate::drive::load::LoadReport;

/// What one scenario's steps have seen and made so far: answers, users,
/// loads, kept values. A new world starts with an empty one.
#[derive(Debug, Default)]
pub struct StepState {
    /// The last answer: what `Then the status is …` looks at.
    pub last: Option<Answer>,
    /// Every answer since the last batch started (a step sending a batch
    /// clears it first): what `Then every answer is …` looks at.
    pub answers: Vec<Answer>,
    /// Users by the name the scenario gives them.
    pub users: HashMap<String, UserClient>,
    /// How requests as a user prove who they are, where a step chose.
    pub presents: HashMap<String, Auth>,
    /// The last load run.
    pub load: Option<LoadReport>,
    /// Fault timelines the scenario reported, for its evidence folder.
    pub timelines: Vec<crate::report::timeline::FaultTimeline>,
    /// Values a step kept from an answer (`I keep the JSON at "/id" as
    /// "order"`), for `{order}` in later steps.
    pub kept: HashMap<String, String>,
    /// Where the scenario runs, when [`crate::runner::Runner`] runs it: put
    /// here before its first step, taken back after its last.
    pub place: Option<super::place::Place>,
    http: Option<reqwest::Client>,
}

impl StepState {
    /// Remembers `answer` as the last one and one of the answers.
    pub fn record(&mut self, answer: Answer) {
        self.answers.push(answer.clone());
        self.last = Some(answer);
    }

    /// The last answer; panics, naming the missing step, before any request.
    pub fn last(&self) -> &Answer {
        self.last
            .as_ref()
            .expect("no answer yet: a step must send a request first (When I GET /path)")
    }

    /// The first gateway of the scenario's [`StepState::place`] (what a
    /// world run by [`crate::runner::Runner`] returns as its
    /// [`super::StackWorld::gateway_url`]); empty outside a run.
    pub fn gateway_url(&self) -> String {
        self.place.as_ref().map(|p| p.gateway_url()).unwrap_or_default()
    }

    /// `text` with its placeholders filled: `{gateway}` (the gateway's URL,
    /// given), `{alice.username}`, `{alice.id}` and `{alice.token}` (a user
    /// of the scenario), and `{order}` (a value kept by an earlier step).
    /// `{url:greeter}`, `{addr:greeter}` (its first instance),
    /// `{url:greeter-2}` (its second), `{urls:greeter}`, `{addrs:greeter}`
    /// (every instance, comma-separated) name an instance of the stack the
    /// harness runs, to call it directly, past the gateway.
    /// A placeholder is a name in braces (letters, digits, `_`, `.`, `-`,
    /// and `:` after a kind), so JSON (`{"a": 1}`) and metric labels
    /// (`{service="x"}`) are left alone, and `{{` is a literal `{`
    /// (`/orders/{{id}` is `/orders/{id}`); an unknown one is an error that
    /// says how to make it known.
    pub fn expand(&self, text: &str, gateway: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            if let Some(literal) = after.strip_prefix('{') {
                out.push('{');
                rest = literal;
                continue;
            }
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':')))
                .unwrap_or(after.len());
            let name = &after[..name_len];
            let starts_well = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if !starts_well || !after[name_len..].starts_with('}') {
                out.push('{');
                rest = after;
                continue;
            }
            out.push_str(&self.placeholder(name, gateway)?);
            rest = &after[name_len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn placeholder(&self, name: &str, gateway: &str) -> Result<String, String> {
        if name == "gateway" {
            return Ok(gateway.trim_end_matches('/').to_owned());
        }
        if let Some((kind, of)) = name.split_once(':') {
            return self.instance_placeholder(kind, of);
        }
        if let Some(value) = self.kept.get(name) {
            return Ok(value.clone());
        }
        if let Some((user, field)) = name.rsplit_once('.')
            && let Some(u) = self.users.get(user)
        {
            let value = match field {
                "username" => Some(u.username.clone()),
                "id" => u.id.clone(),
                "token" => u.token.clone(),
                _ => return Err(format!("{{{name}}}: a user has .username, .id and .token")),
            };
            return value
                .ok_or_else(|| format!("{{{name}}}: {user:?} has no {field} yet (register or log them in first)"));
        }
        let mut known: Vec<String> = self.kept.keys().map(|k| format!("{{{k}}}")).collect();
        known.sort();
        Err(format!(
            "no value for {{{name}}}: keep one first (I keep the JSON at \"/id\" as \"{name}\"); known: {{gateway}}, {{<user>.username}}, {{<user>.id}}, {{<user>.token}}{}{}",
            if known.is_empty() { "" } else { ", " },
            known.join(", ")
        ))
    }

    /// `{url:greeter}`, `{addr:greeter-2}`, `{urls:greeter}`, …: instance
    /// addresses of the scenario's stack.
    fn instance_placeholder(&self, kind: &str, of: &str) -> Result<String, String> {
        let name = format!("{{{kind}:{of}}}");
        if !["url", "addr", "urls", "addrs"].contains(&kind) {
            return Err(format!(
                "{name}: expected {{url:…}}, {{addr:…}}, {{urls:…}} or {{addrs:…}}"
            ));
        }
        let instances = self.place.as_ref().map(|p| &p.target().instances);
        let Some(instances) = instances.filter(|i| !i.is_empty()) else {
            return Err(format!(
                "{name}: no instance addresses are known here (only of a stack the harness runs, in a scenario the runner runs)"
            ));
        };
        // A service's first (or every) instance, else `<service>-<n>`, its n-th.
        let chosen: Vec<&String> = match instances.get(of) {
            Some(all) if kind.ends_with('s') => all.iter().collect(),
            Some(all) => all.first().into_iter().collect(),
            None => of
                .rsplit_once('-')
                .and_then(|(service, n)| Some((instances.get(service)?, n.parse::<usize>().ok()?)))
                .and_then(|(all, n)| all.get(n.checked_sub(1)?))
                .into_iter()
                .collect(),
        };
        if chosen.is_empty() {
            let known: Vec<String> = instances.iter().map(|(s, a)| format!("{s} ×{}", a.len())).collect();
            return Err(format!(
                "{name}: no such service or instance; the stack has {}",
                known.join(", ")
            ));
        }
        let scheme = if kind.starts_with("url") { "http://" } else { "" };
        Ok(chosen
            .iter()
            .map(|a| format!("{scheme}{a}"))
            .collect::<Vec<_>>()
            .join(","))
    }

    /// The scenario's user `name`; panics when no step registered or logged them in.
    pub fn user(&self, name: &str) -> &UserClient {
        self.users.get(name).unwrap_or_else(|| {
            panic!("no user {name:?} in this scenario: register or log them in first (Given \"{name}\" is logged in)")
        })
    }

    /// [`StepState::user`], to log in or send requests as.
    pub fn user_mut(&mut self, name: &str) -> &mut UserClient {
        if !self.users.contains_key(name) {
            self.user(name);
        }
        self.users.get_mut(name).expect("checked above")
    }

    /// The last load run; panics, naming the missing step, before any load.
    pub fn load(&self) -> &LoadReport {
        self.load
            .as_ref()
            .expect("no load was run: a step must send one first (When 400 requests are sent to /path with 8 concurrent callers)")
    }

    /// The client for anonymous requests, trusting `ca_cert` too (the
    /// world's [`super::StackWorld::ca_cert`]), made on first use.
    pub fn http(&mut self, ca_cert: Option<&std::path::Path>) -> reqwest::Client {
        self.http.get_or_insert_with(|| http_client(ca_cert)).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_everything_else_is_left_alone() {
        let mut state = StepState::default();
        state.kept.insert("order".into(), "o-17".into());
        let mut alice = UserClient::new("http://gw", "alice-x1");
        alice.id = Some("u_1".into());
        state.users.insert("alice".into(), alice);
        let fill = |text: &str| state.expand(text, "http://gw/");
        assert_eq!(fill("/orders/{order}").unwrap(), "/orders/o-17");
        assert_eq!(
            fill("{alice.username} {alice.id} at {gateway}").unwrap(),
            "alice-x1 u_1 at http://gw"
        );
        assert_eq!(fill("/orders/{{id}").unwrap(), "/orders/{id}");
        for alone in [
            r#"{"a": {"b": 1}}"#,
            r#"requests_total{service="user"}"#,
            "{}",
            "{ x }",
            "{1}",
            "a { b",
        ] {
            assert_eq!(fill(alone).unwrap(), alone);
        }
        let e = fill("/orders/{nothing}").unwrap_err();
        assert!(e.contains("no value for {nothing}") && e.contains("{order}"), "{e}");
        let e = fill("{alice.token}").unwrap_err();
        assert!(e.contains("has no token yet"), "{e}");
        let e = fill("{url:greeter}").unwrap_err();
        assert!(e.contains("no instance addresses are known here"), "{e}");
    }

    #[test]
    fn instance_placeholders_name_the_stacks_instances() {
        let target = super::super::place::Target {
            instances: [(
                "greeter".to_owned(),
                vec!["127.0.0.1:7001".to_owned(), "127.0.0.1:7002".to_owned()],
            )]
            .into(),
            ..Default::default()
        };
        let state = StepState {
            place: Some(super::super::place::Place::deployed(target)),
            ..StepState::default()
        };
        let fill = |text: &str| state.expand(text, "http://gw");
        assert_eq!(fill("{url:greeter}/health").unwrap(), "http://127.0.0.1:7001/health");
        assert_eq!(fill("{addr:greeter-2}").unwrap(), "127.0.0.1:7002");
        assert_eq!(
            fill("{urls:greeter}").unwrap(),
            "http://127.0.0.1:7001,http://127.0.0.1:7002"
        );
        assert_eq!(fill("{addrs:greeter}").unwrap(), "127.0.0.1:7001,127.0.0.1:7002");
        let e = fill("{url:greeter-3}").unwrap_err();
        assert!(
            e.contains("no such service or instance; the stack has greeter ×2"),
            "{e}"
        );
        assert!(fill("{uri:greeter}").unwrap_err().contains("expected {url:…}"));
    }
}
