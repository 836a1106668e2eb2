//! `{port}`, `{id}`, `{redis}` … in a spec's environment and arguments,
//! filled per instance. Braces around anything that is not a lower-case
//! word (JSON in a variable, say) are left alone.

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
}

impl Values {
    fn get(&self, name: &str) -> Option<String> {
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
    /// are ([`super::ServiceSpec::validate`] refuses them before any start).
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

/// `abc` when `text` starts with `abc}` and `abc` is a placeholder-like word.
fn word_before_brace(text: &str) -> Option<&str> {
    let close = text.find('}')?;
    let word = &text[..close];
    let is_word = !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '_');
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
}
