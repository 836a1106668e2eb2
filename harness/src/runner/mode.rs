//! Where the scenarios run, from `GANTRY_INFRA`: a stack the harness starts
//! (`auto`, `local`, `containers`) or one already deployed (`external`,
//! given by URL, or named by `GANTRY_ENV` in an environments file,
//! [`super::profile`]), and which scenarios can run there.

use std::path::{Path, PathBuf};

use cucumber::gherkin::tagexpr::TagOperation;
use cucumber::gherkin::{Feature, Rule, Scenario};
use cucumber::tag::Ext as _;
use gantry_common::config;
use gantry_common::registry::RegistryClient;

use super::needs::{Need, scenarios, tags_of};
use super::profile::{ENV_VAR, ENVIRONMENTS_VAR, Profile};
use crate::report::evidence::Skipped;
use crate::stack::Infra;
use crate::steps::place::Target;

/// The variable that chooses the mode.
pub const MODE_VAR: &str = "GANTRY_INFRA";

/// Where the stack comes from.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The harness starts the stack on this infrastructure.
    Managed(Infra),
    /// A deployed stack: scenarios run when their needs are met by what the
    /// environment gives access to.
    External(Deployed),
}

/// A deployed stack, as the environment names it.
#[derive(Debug, Clone, Default)]
pub struct Deployed {
    /// `GANTRY_GATEWAY_URL`.
    pub gateway: String,
    /// `GANTRY_GATEWAY_ADMIN_URL`: the gateway's admin listener (`/metrics`).
    pub admin: Option<String>,
    /// `REDIS_URL`, for scenarios that read Redis.
    pub redis: Option<String>,
    /// `GANTRY_JWT_SIGNING_KEY`, for scenarios that mint tokens.
    pub signing_seed: Option<[u8; 32]>,
    /// `CONSUL_HTTP_ADDR` (with `CONSUL_HTTP_TOKEN`), for scenarios that
    /// read the services' health in the registry.
    pub registry: Option<String>,
    /// `CONSUL_HTTP_TOKEN`.
    pub registry_token: Option<String>,
    /// `GANTRY_CA_CERT` from an environments file (one set in the
    /// environment is trusted by every client anyway).
    pub ca_cert: Option<PathBuf>,
}

impl Deployed {
    /// Where it answers, as the steps read it.
    pub fn target(&self) -> Target {
        Target {
            gateways: vec![self.gateway.clone()],
            admins: self.admin.iter().cloned().collect(),
            redis_url: self.redis.clone(),
            registry: self
                .registry
                .as_deref()
                .map(|addr| RegistryClient::new(addr).with_token(self.registry_token.clone())),
            signing_seed: self.signing_seed,
            // Its instances are behind the gateway, not the harness's to name.
            instances: Default::default(),
            ca_cert: self.ca_cert.clone(),
        }
    }
}

impl Mode {
    /// `GANTRY_INFRA` (`auto` unless set); a bad value, or `external`
    /// without what it needs, names the variable and what was expected.
    /// `GANTRY_ENV` is refused here: see [`Mode::from_env_or_file`].
    pub fn from_env() -> Result<Self, String> {
        Self::from_env_or_file(None)
    }

    /// As [`Mode::from_env`], and `GANTRY_ENV=<name>` runs against the
    /// deployed stack `[name]` of the environments file: `GANTRY_ENVIRONMENTS`,
    /// else `default_file`. Its variables are read as external mode's, a
    /// variable set in the environment winning over the file's.
    pub fn from_env_or_file(default_file: Option<&Path>) -> Result<Self, String> {
        if let Some(name) = config::raw(ENV_VAR) {
            let path = config::raw(ENVIRONMENTS_VAR)
                .map(PathBuf::from)
                .or_else(|| default_file.map(Path::to_owned))
                .ok_or_else(|| {
                    format!("{ENV_VAR}={name}: set {ENVIRONMENTS_VAR} to the environments file that describes it")
                })?;
            let profile = Profile::load(&path, &name)?;
            if let Some(infra) = config::raw(MODE_VAR).filter(|i| i != "external") {
                return Err(format!(
                    "{ENV_VAR}={name} names a deployed stack, and {MODE_VAR}={infra} one the harness starts: unset one of them"
                ));
            }
            let from = format!("{ENV_VAR}={name} ({})", path.display());
            return Self::external(
                &|var| config::raw(var).or_else(|| profile.get(var).map(str::to_owned)),
                &from,
            );
        }
        let infra = config::string_or(MODE_VAR, "auto");
        match infra.as_str() {
            "external" => Self::external(&|var| config::raw(var), "GANTRY_INFRA=external"),
            other => other
                .parse::<Infra>()
                .map(Mode::Managed)
                .map_err(|e| format!("{MODE_VAR}: {e}, or external")),
        }
    }

    /// A deployed stack as `get` reads its variables (the environment's,
    /// or an environments file's under them); `from` says where they came
    /// from, for errors.
    fn external(get: &dyn Fn(&'static str) -> Option<String>, from: &str) -> Result<Self, String> {
        let gateway = get("GANTRY_GATEWAY_URL")
            .ok_or_else(|| format!("{from} needs GANTRY_GATEWAY_URL (e.g. http://127.0.0.1:8000)"))?;
        // An `https://` gateway with a private CA: a bad one stops the run
        // here, not in the first step that calls it.
        let ca_cert = get("GANTRY_CA_CERT")
            .filter(|_| config::raw("GANTRY_CA_CERT").is_none())
            .map(PathBuf::from);
        gantry_common::tls::client_builder_trusting(ca_cert.as_deref())
            .map(drop)
            .map_err(|e| e.to_string())?;
        let signing_seed = match get("GANTRY_JWT_SIGNING_KEY") {
            None => None,
            Some(key) => Some(gantry_common::jwt::decode_key32(&key).ok_or_else(|| {
                format!("{from}: GANTRY_JWT_SIGNING_KEY: expected a base64url Ed25519 seed of 32 bytes")
            })?),
        };
        let url = |var| get(var).map(|u: String| u.trim_end_matches('/').to_owned());
        Ok(Mode::External(Deployed {
            gateway: gateway.trim_end_matches('/').to_owned(),
            admin: url("GANTRY_GATEWAY_ADMIN_URL"),
            redis: get("REDIS_URL"),
            signing_seed,
            registry: get("CONSUL_HTTP_ADDR"),
            registry_token: get("CONSUL_HTTP_TOKEN"),
            ca_cert,
        }))
    }

    /// Whether this mode gives `need`.
    pub fn has(&self, need: Need) -> bool {
        match self {
            Mode::Managed(_) => true,
            Mode::External(d) => match need {
                Need::Process | Need::FreshStack | Need::Instances => false,
                Need::Redis => d.redis.is_some(),
                Need::Admin => d.admin.is_some(),
                Need::SigningKey => d.signing_seed.is_some(),
                Need::Registry => d.registry.is_some(),
            },
        }
    }

    /// The needs of a scenario (with its rule's and feature's) this mode
    /// does not meet; an unknown `@needs:` tag is one no mode meets (the
    /// run refuses it before it starts, [`super::needs::check_tags`]).
    pub fn unmet(&self, feature: &Feature, rule: Option<&Rule>, scenario: &Scenario) -> Vec<Need> {
        match Need::of_tags(tags_of(feature, rule, scenario)) {
            Ok(needs) => needs.into_iter().filter(|n| !self.has(*n)).collect(),
            Err(_) => Need::ALL.to_vec(),
        }
    }

    /// Whether `scenario` can run in this mode.
    pub fn runs(&self, feature: &Feature, rule: Option<&Rule>, scenario: &Scenario) -> bool {
        self.unmet(feature, rule, scenario).is_empty()
    }

    /// The scenarios this mode cannot run, with what they need and how to
    /// give it: printed before the run, and the JUnit report's skipped entries.
    pub fn not_run(&self, features: &[Feature]) -> Vec<Skipped> {
        let mut skipped = Vec::new();
        for feature in features {
            for (rule, scenario) in scenarios(feature) {
                let unmet = self.unmet(feature, rule, scenario);
                if unmet.is_empty() {
                    continue;
                }
                let reason: Vec<String> = unmet
                    .iter()
                    .map(|n| format!("@{}: {}", n.tag(), n.how_external()))
                    .collect();
                skipped.push(Skipped {
                    feature: feature.name.clone(),
                    scenario: scenario.name.clone(),
                    reason: reason.join("; "),
                });
            }
        }
        skipped
    }
}

/// Whether a scenario's name is selected (`--name`).
pub type NameFilter = Box<dyn Fn(&str) -> bool>;

/// Which scenarios run: those whose needs the mode meets, narrowed (never
/// widened) by a `--name` or `--tags` from the command line.
pub struct Selection {
    /// The mode the run is in: a scenario runs only when it meets its `@needs`.
    pub mode: Mode,
    /// `--name`: whether a scenario's name matches.
    pub name: Option<NameFilter>,
    /// `--tags`, evaluated on the feature's, rule's and scenario's tags.
    pub tags: Option<TagOperation>,
}

impl Selection {
    /// Whether this scenario (of this feature, in this rule if any) runs.
    pub fn runs(&self, feature: &Feature, rule: Option<&Rule>, scenario: &Scenario) -> bool {
        self.mode.runs(feature, rule, scenario)
            && self.name.as_ref().is_none_or(|matches| matches(&scenario.name))
            && self
                .tags
                .as_ref()
                .is_none_or(|tags| tags.eval(tags_of(feature, rule, scenario)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployed_stack_is_read_from_its_variables_and_one_missing_is_named() {
        let vars = [
            ("GANTRY_GATEWAY_URL", "http://127.0.0.1:8000/"),
            ("CONSUL_HTTP_ADDR", "http://127.0.0.1:8500"),
            ("CONSUL_HTTP_TOKEN", "t0ken"),
            ("GANTRY_JWT_SIGNING_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ];
        let get = |var: &str| vars.iter().find(|(k, _)| *k == var).map(|(_, v)| v.to_string());
        let Mode::External(d) = Mode::external(&get, "GANTRY_ENV=ci").expect("a deployed stack") else {
            panic!("external mode");
        };
        assert_eq!(d.gateway, "http://127.0.0.1:8000");
        assert_eq!(d.registry_token.as_deref(), Some("t0ken"));
        assert_eq!(d.signing_seed, Some([0; 32]));
        assert!(d.admin.is_none() && d.redis.is_none());

        let e = Mode::external(&|_| None, "GANTRY_ENV=ci (environments.toml)").unwrap_err();
        assert!(
            e.starts_with("GANTRY_ENV=ci (environments.toml) needs GANTRY_GATEWAY_URL"),
            "{e}"
        );
        let bad_key = |var: &str| match var {
            "GANTRY_GATEWAY_URL" => Some("http://x".to_owned()),
            "GANTRY_JWT_SIGNING_KEY" => Some("short".to_owned()),
            _ => None,
        };
        let e = Mode::external(&bad_key, "GANTRY_ENV=ci").unwrap_err();
        assert!(
            e.contains("GANTRY_JWT_SIGNING_KEY: expected a base64url Ed25519 seed"),
            "{e}"
        );
    }
}
