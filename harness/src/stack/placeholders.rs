//! `{port}`, `{id}`, `{redis}` … in a spec's environment and arguments,
//! filled per instance, `{url:auth}` / `{addr:auth}` (its first instance)
//! and `{urls:auth}` / `{addrs:auth}` (all of them), which name a service
//! started before, and `{gateway}`, the first gateway's URL (a service that
//! names it starts after the gateways). Braces around anything else (JSON
//! in a variable, say) are left alone.

use std::collections::BTreeMap;

use gantry_common::name::is_service_name;

/// Every placeholder a spec may use.
pub const KNOWN: [&str; 12] = [
    "port",
    "admin_port",
    "host",
    "id",
    "index",
    "name",
    "registry",
    "registry_token",
    "dns",
    "redis",
    "dir",
    GATEWAY,
];

/// `{gateway}`: the first gateway's URL (`https://` when the gateways speak
/// TLS), for a service that calls others through it, balanced and with
/// their failures retried. Services that name it start after the gateways
/// ([`super::builder::StackBuilder::specs`]).
pub use super::role::GATEWAY;

/// Placeholders that name another service: `{url:<service>}` and
/// `{addr:<service>}`, `http://host:port` and `host:port` of its first
/// instance; `{urls:<service>}` and `{addrs:<service>}`, those of every
/// instance, comma-separated (for a client that balances itself or fails
/// over to the next). How a service finds one it depends on (`JWKS_URL =
/// "{url:auth}/auth/.well-known/jwks.json"`) without a fixed port. Services
/// start in the order written, so only one started before can be named.
pub const REFERENCES: [&str; 4] = ["url", "addr", "urls", "addrs"];

/// `{file:<name>}`: where the spec's private file `<name>` is, for the
/// consumer (a path in the stack's directory, or inside the container).
pub const FILE: &str = "file";

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
    /// `host:port` of the registry's DNS interface (UDP), as Consul's
    /// `<service>.service.consul` names are resolved ("" when the registry
    /// answers no DNS here: a container, or a deployed stack).
    pub dns: String,
    pub redis: String,
    pub dir: String,
    /// The first gateway's URL ("" before the gateways start).
    pub gateway: String,
    /// `host:port` of every instance of each service started before this
    /// one, in order, by service name: what `{urls:…}`, `{addrs:…}` read,
    /// as this instance reaches them (from the host, or from a container).
    pub peers: BTreeMap<String, Vec<String>>,
    /// `host:port` that names a service as a whole, where it is not its
    /// first instance: from a container, its name on the stack's network.
    /// What `{url:…}` and `{addr:…}` read first.
    pub services: BTreeMap<String, String>,
    /// Where the spec's private files are, by name: what `{file:…}` reads.
    pub files: BTreeMap<String, String>,
}

impl Values {
    fn get(&self, name: &str) -> Option<String> {
        if let Some((kind, of)) = name.split_once(':') {
            if kind == FILE {
                return self.files.get(of).cloned();
            }
            let addrs = self.peers.get(of).filter(|a| !a.is_empty())?;
            let urls = || addrs.iter().map(|a| format!("http://{a}")).collect::<Vec<_>>();
            let one = self.services.get(of).unwrap_or(&addrs[0]);
            return match kind {
                "url" => Some(format!("http://{one}")),
                "addr" => Some(one.clone()),
                "urls" => Some(urls().join(",")),
                "addrs" => Some(addrs.join(",")),
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
            "dns" if !self.dns.is_empty() => self.dns.clone(),
            "redis" => self.redis.clone(),
            "dir" => self.dir.clone(),
            GATEWAY if !self.gateway.is_empty() => self.gateway.clone(),
            _ => return None,
        })
    }

    /// `text` with its placeholders filled; unknown ones are left as they
    /// are ([`super::spec::ServiceSpec::validate`] refuses them before any start,
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
        Some((FILE, file)) => is_file_name(file),
        Some((kind, service)) => REFERENCES.contains(&kind) && is_service_name(service),
        None => KNOWN.contains(&name),
    }
}

/// The placeholders a spec may use, for error messages.
pub fn expected() -> String {
    let simple = KNOWN.iter().map(|k| format!("{{{k}}}"));
    let references = REFERENCES.iter().map(|k| format!("{{{k}:<service>}}"));
    let file = std::iter::once(format!("{{{FILE}:<name>}}"));
    simple.chain(references).chain(file).collect::<Vec<_>>().join(", ")
}

/// A file name of a spec's: letters, digits, `-`, `_` and `.`, no path.
fn is_file_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
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
        && service.is_none_or(|s| is_service_name(s) || (kind == FILE && is_file_name(s)));
    is_word.then_some(word)
}

/// Whether `text` names the gateway: `{gateway}`, or a reference to it
/// (`{url:gateway}`).
pub fn names_gateway(text: &str) -> bool {
    names_in(text)
        .into_iter()
        .any(|name| name == GATEWAY || name.split_once(':').is_some_and(|(_, of)| of == GATEWAY))
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
        // Before the gateways start, `{gateway}` is left as it is.
        assert_eq!(v.fill("{gateway}/x"), "{gateway}/x");
        let v = Values {
            gateway: "https://127.0.0.1:8443".into(),
            ..v
        };
        assert_eq!(v.fill("{gateway}/x"), "https://127.0.0.1:8443/x");
        assert!(names_gateway("a {gateway}") && names_gateway("{urls:gateway}") && !names_gateway("{url:gate}"));
    }

    #[test]
    fn a_reference_is_the_first_instance_of_a_service_started_before() {
        let v = Values {
            peers: [(
                "auth".to_owned(),
                vec!["127.0.0.1:4100".to_owned(), "127.0.0.1:4101".to_owned()],
            )]
            .into(),
            ..Values::default()
        };
        assert_eq!(
            v.fill("{url:auth}/auth/.well-known/jwks.json"),
            "http://127.0.0.1:4100/auth/.well-known/jwks.json"
        );
        assert_eq!(v.fill("{addr:auth}"), "127.0.0.1:4100");
        assert_eq!(v.fill("{urls:auth}"), "http://127.0.0.1:4100,http://127.0.0.1:4101");
        assert_eq!(v.fill("{addrs:auth}"), "127.0.0.1:4100,127.0.0.1:4101");
        // Not started (yet): left as it is; check_references refuses it first.
        assert_eq!(v.fill("{url:user}"), "{url:user}");
        assert_eq!(names_in("{url:auth-v2} {url:} {x:a b}"), ["url:auth-v2"]);
        assert!(is_known("url:auth-v2") && is_known("addr:a_b") && is_known("port"));
        assert!(!is_known("uri:auth") && !is_known("url:") && !is_known("prot"));
        assert!(
            expected()
                .ends_with("{url:<service>}, {addr:<service>}, {urls:<service>}, {addrs:<service>}, {file:<name>}")
        );
    }
}
