//! Named deployed stacks, as Karate's `karate.env` picks one: an
//! environments file (`environments.toml` beside the features folder, or
//! `GANTRY_ENVIRONMENTS`) holds a table per stack, and `GANTRY_ENV=<name>`
//! runs the scenarios against it in external mode. A table's keys are the
//! variables external mode reads; a variable set in the environment wins
//! over the file, so secrets (a Redis password, a signing key, a registry
//! token) stay out of it.
//!
//! ```toml
//! [staging]
//! GANTRY_GATEWAY_URL = "https://gateway.staging.example"
//! GANTRY_GATEWAY_ADMIN_URL = "http://10.0.0.5:9000"
//! CONSUL_HTTP_ADDR = "http://10.0.0.9:8500"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

/// The variable that names the deployed stack to run against.
pub const ENV_VAR: &str = "GANTRY_ENV";
/// The variable that names the environments file, when not the default.
pub const ENVIRONMENTS_VAR: &str = "GANTRY_ENVIRONMENTS";
/// The file's name beside the features folder.
pub const DEFAULT_FILE: &str = "environments.toml";

/// What a table may set: the variables external mode reads.
pub const KEYS: [&str; 7] = [
    "GANTRY_GATEWAY_URL",
    "GANTRY_GATEWAY_ADMIN_URL",
    "REDIS_URL",
    "CONSUL_HTTP_ADDR",
    "CONSUL_HTTP_TOKEN",
    "GANTRY_JWT_SIGNING_KEY",
    "GANTRY_CA_CERT",
];

/// One deployed stack of the file: its variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Its table's name in the file, what `GANTRY_ENV` names.
    pub name: String,
    vars: BTreeMap<String, String>,
}

impl Profile {
    /// The table `name` of the environments file at `path`. A missing file
    /// or table, or a key that is not one of [`KEYS`], is an error that
    /// says what there is.
    pub fn load(path: &Path, name: &str) -> Result<Self, String> {
        let text = gantry_common::file::read(path)
            .map_err(|e| format!("{ENV_VAR}={name}: {e} (write it, or set {ENVIRONMENTS_VAR} to the file)"))?;
        let mut tables: BTreeMap<String, BTreeMap<String, String>> =
            gantry_common::file::parse(&text, path).map_err(|e| format!("{ENV_VAR}={name}: {e}"))?;
        let known: Vec<&String> = tables.keys().collect();
        let known = known.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ");
        let vars = tables
            .remove(name)
            .ok_or_else(|| format!("{ENV_VAR}={name}: {} has no [{name}]; it has: {known}", path.display()))?;
        if let Some(bad) = vars.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!(
                "{}: [{name}] sets {bad}; expected some of {}",
                path.display(),
                KEYS.join(", ")
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            vars,
        })
    }

    /// `var` from the profile.
    pub fn get(&self, var: &str) -> Option<&str> {
        self.vars.get(var).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_read_and_a_wrong_name_or_key_is_refused_with_what_there_is() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join(DEFAULT_FILE);
        std::fs::write(
            &path,
            "[staging]\nGANTRY_GATEWAY_URL = \"https://gw.staging\"\n\n[ci]\nGANTRY_GATEWAY_URL = \"http://127.0.0.1:8000\"\nREDIS_URL = \"redis://127.0.0.1:6379\"\n",
        )
        .expect("writing the file");
        let ci = Profile::load(&path, "ci").expect("ci is there");
        assert_eq!(ci.get("GANTRY_GATEWAY_URL"), Some("http://127.0.0.1:8000"));
        assert_eq!(ci.get("CONSUL_HTTP_ADDR"), None);

        let e = Profile::load(&path, "prod").unwrap_err();
        assert!(e.contains("has no [prod]; it has: ci, staging"), "{e}");
        let e = Profile::load(&dir.path().join("nope.toml"), "ci").unwrap_err();
        assert!(e.contains("GANTRY_ENV=ci") && e.contains("nope.toml"), "{e}");

        std::fs::write(&path, "[ci]\nGATEWAY = \"http://x\"\n").expect("writing the file");
        let e = Profile::load(&path, "ci").unwrap_err();
        assert!(
            e.contains("[ci] sets GATEWAY; expected some of GANTRY_GATEWAY_URL"),
            "{e}"
        );
        std::fs::write(&path, "[ci]\nGANTRY_GATEWAY_URL = 8000\n").expect("writing the file");
        let e = Profile::load(&path, "ci").unwrap_err();
        assert!(e.contains(":2:"), "the place of a value of the wrong kind: {e}");
    }
}
