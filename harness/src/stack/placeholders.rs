//! `{port}`, `{id}`, `{redis}` … in a spec's environment and arguments,
//! filled per instance, and `{url:auth}` / `{addr:auth}`, which name a
//! service started before. Braces around anything else (JSON in a
//! variable, say) are left alone.

use std::collections::BTreeMap;

use super::role::Role;
use super::spec::{Run, ServiceSpec};
use crate::HarnessError;

/// Every placeholder a spec may use.
pub const KNOWN: [&str; 10] = [
    "port",
    "admin_port",
    "host",
    "id",
    "index",
    "name",
    "registry",
    "registry_token",
    "redis",
    "dir",
];

/// Placeholders that name another service, `{url:<service>}` and
/// `{addr:<service>}`: `http://host:port` and `host:port` of its first
/// instance. How a service finds one it depends on (`JWKS_URL =
/// "{url:auth}/auth/.well-known/jwks.json"`) without a fixed port. Services
/// start in the order written, so only one started before can be named.
pub const REFERENCES: [&str; 2] = ["url", "addr"];

/// The values for one instance.
#[derive(Debug, Clone, Default)]
pub struct Values {
    pub port: u16,
    pub admin_port: Option<u16>,
    pub host: String,
    pub id: String,
    pub index: usize,
    pub name: String,
    pub registry: String,
    pub registry_token: String,
    pub redis: String,
    pub dir: String,
    /// `host:port` of the first instance of each service started before
    /// this one, by service name: what `{url:…}` and `{addr:…}` read.
    pub peers: BTreeMap<String, String>,
}

impl Values {
    fn get(&self, name: &str) -> Option<String> {
        if let Some((kind, service)) = name.split_once(':') {
            let addr = self.peers.get(service)?;
            return match kind {
                "url" => Some(format!("http://{addr}")),
                "addr" => Some(addr.clone()),
                _ => None,
            };
        }
        Some(match name {
            "port" => self.port.to_string(),
            "admin_port" => self.admin_port?.to_string(),
            "host" => self.host.clone(),
            "id" => self.id.clone(),
            "index" => self.index.to_string(),
            "name" => self.name.clone(),
            "registry" => self.registry.clone(),
            "registry_token" => self.registry_token.clone(),
            "redis" => self.redis.clone(),
            "dir" => self.dir.clone(),
            _ => return None,
        })
    }

    /// `text` with its placeholders filled; unknown ones are left as they
    /// are ([`super::ServiceSpec::validate`] refuses them before any start,
    /// [`check_references`] a service not started before).
    pub fn fill(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match word_before_brace(after).and_then(|w| Some((w, self.get(w)?))) {
                Some((word, value)) => {
                    out.push_str(&value);
                    rest = &after[word.len() + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Whether `name` is a placeholder a spec may use: one of [`KNOWN`], or one
/// of [`REFERENCES`] with a service name.
pub fn is_known(name: &str) -> bool {
    match name.split_once(':') {
        Some((kind, service)) => REFERENCES.contains(&kind) && is_service_name(service),
        None => KNOWN.contains(&name),
    }
}

/// The placeholders a spec may use, for error messages.
pub fn expected() -> String {
    let simple = KNOWN.iter().map(|k| format!("{{{k}}}"));
    let references = REFERENCES.iter().map(|k| format!("{{{k}:<service>}}"));
    simple.chain(references).collect::<Vec<_>>().join(", ")
}

/// Letters, digits, `-` and `_`, as [`ServiceSpec::validate`] wants of a name.
fn is_service_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `abc` when `text` starts with `abc}` and `abc` is a placeholder-like word
/// (`url:auth-v2` included).
fn word_before_brace(text: &str) -> Option<&str> {
    let close = text.find('}')?;
    let word = &text[..close];
    let (kind, service) = match word.split_once(':') {
        Some((kind, service)) => (kind, Some(service)),
        None => (word, None),
    };
    let is_word = !kind.is_empty()
        && kind.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        && service.is_none_or(is_service_name);
    is_word.then_some(word)
}

/// The placeholder-like words in `text`, known or not.
pub fn names_in(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(word) = word_before_brace(rest) {
            names.push(word);
            rest = &rest[word.len() + 1..];
        }
    }
    names
}

/// Checks that every `{url:…}` and `{addr:…}` in `specs` (in start order)
/// names a service started before the one that uses it, so a typo or a
/// wrong order is an error before anything starts, not an unfilled value
/// a service trips over later.
pub fn check_references(specs: &[(Role, ServiceSpec)]) -> Result<(), HarnessError> {
    let mut before: Vec<&str> = Vec::new();
    for (_, spec) in specs {
        for text in texts(spec) {
            for name in names_in(text) {
                let Some((_, service)) = name.split_once(':') else {
                    continue;
                };
                if !before.contains(&service) {
                    let known = if before.is_empty() {
                        "none is started before it".to_owned()
                    } else {
                        format!("expected one started before it: {}", before.join(", "))
                    };
                    return Err(HarnessError::BadSpec {
                        service: spec.name.clone(),
                        problem: format!(
                            "{{{name}}} names no service started before it ({known}); services start in the order given"
                        ),
                    });
                }
            }
        }
        before.push(&spec.name);
    }
    Ok(())
}

/// The texts of `spec` placeholders are filled in.
fn texts(spec: &ServiceSpec) -> Vec<&str> {
    let mut texts: Vec<&str> = spec.env.iter().map(|(_, v)| v.as_str()).collect();
    texts.extend(spec.instance_env.iter().map(|(_, _, v)| v.as_str()));
    if let Run::Command { args, .. } = &spec.run {
        texts.extend(args.iter().map(String::as_str));
    }
    texts.extend(spec.workdir.as_ref().and_then(|w| w.to_str()));
    texts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_other_braces_kept() {
        let v = Values {
            port: 9001,
            host: "127.0.0.1".into(),
            id: "greeter-2".into(),
            index: 2,
            name: "greeter".into(),
            ..Values::default()
        };
        assert_eq!(v.fill("{host}:{port}"), "127.0.0.1:9001");
        assert_eq!(v.fill("{name}#{index}={id}"), "greeter#2=greeter-2");
        assert_eq!(v.fill(r#"{"a": {port}}"#), r#"{"a": 9001}"#);
        assert_eq!(v.fill("{nope} {} {"), "{nope} {} {");
        assert_eq!(names_in("{port}{x}{\"k\"} {dir}"), ["port", "x", "dir"]);
    }

    #[test]
    fn a_reference_is_the_first_instance_of_a_service_started_before() {
        let v = Values {
            peers: [("auth".to_owned(), "127.0.0.1:4100".to_owned())].into(),
            ..Values::default()
        };
        assert_eq!(
            v.fill("{url:auth}/auth/.well-known/jwks.json"),
            "http://127.0.0.1:4100/auth/.well-known/jwks.json"
        );
        assert_eq!(v.fill("{addr:auth}"), "127.0.0.1:4100");
        // Not started (yet): left as it is; check_references refuses it first.
        assert_eq!(v.fill("{url:user}"), "{url:user}");
        assert_eq!(names_in("{url:auth-v2} {url:} {x:a b}"), ["url:auth-v2"]);
        assert!(is_known("url:auth-v2") && is_known("addr:a_b") && is_known("port"));
        assert!(!is_known("uri:auth") && !is_known("url:") && !is_known("prot"));
        assert!(expected().ends_with("{url:<service>}, {addr:<service>}"));
    }

    #[test]
    fn a_reference_to_a_service_not_started_before_is_refused_by_name() {
        let auth = ServiceSpec::command("auth", "auth", Vec::<String>::new());
        let notes = ServiceSpec::command("notes", "notes", Vec::<String>::new())
            .env("JWKS_URL", "{url:auth}/auth/.well-known/jwks.json");
        let role = |s: &ServiceSpec| Role::Service(s.name.clone());
        let in_order = [(role(&auth), auth.clone()), (role(&notes), notes.clone())];
        assert!(check_references(&in_order).is_ok());
        let e = check_references(&[(role(&notes), notes), (role(&auth), auth.clone())])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("service notes") && e.contains("{url:auth}") && e.contains("none is started before"),
            "{e}"
        );
        let typo = ServiceSpec::command("notes", "notes", ["--jwks", "{url:auht}"]);
        let e = check_references(&[(role(&auth), auth), (role(&typo), typo)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("{url:auht}") && e.contains("before it: auth"), "{e}");
    }
}
