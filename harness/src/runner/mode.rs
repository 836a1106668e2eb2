//! Where the scenarios run, from `GANTRY_INFRA`: a stack the harness starts
//! (`auto`, `local`, `containers`) or one already deployed (`external`,
//! given by URL), and which scenarios can run there.

use cucumber::gherkin::tagexpr::TagOperation;
use cucumber::gherkin::{Feature, Rule, Scenario};
use cucumber::tag::Ext as _;
use gantry_common::config;
use gantry_common::registry::RegistryClient;

use super::needs::{Need, scenarios, tags_of};
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
#[derive(Debug, Clone)]
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
                .map(|addr| RegistryClient::new(addr).with_token(gantry_common::config::raw("CONSUL_HTTP_TOKEN"))),
            signing_seed: self.signing_seed,
            ca_cert: None,
        }
    }
}

impl Mode {
    /// `GANTRY_INFRA` (`auto` unless set); a bad value, or `external`
    /// without what it needs, names the variable and what was expected.
    pub fn from_env() -> Result<Self, String> {
        let infra = config::string_or(MODE_VAR, "auto");
        match infra.as_str() {
            "external" => {
                let gateway = config::raw("GANTRY_GATEWAY_URL")
                    .ok_or("GANTRY_INFRA=external needs GANTRY_GATEWAY_URL (e.g. http://127.0.0.1:8000)")?;
                // An `https://` gateway with a private CA: a bad GANTRY_CA_CERT
                // stops the run here, not in the first step that calls it.
                gantry_common::tls::client_builder()
                    .map(drop)
                    .map_err(|e| e.to_string())?;
                // Parsed as auth parses it; the rest of auth's settings do not matter here.
                let signing_seed = match config::raw("GANTRY_JWT_SIGNING_KEY") {
                    None => None,
                    Some(_) => {
                        gantry_common::jwt::JwtConfig::from_env()
                            .map_err(|e| e.to_string())?
                            .signing_seed
                    }
                };
                Ok(Mode::External(Deployed {
                    gateway: gateway.trim_end_matches('/').to_owned(),
                    admin: config::raw("GANTRY_GATEWAY_ADMIN_URL").map(|a| a.trim_end_matches('/').to_owned()),
                    redis: config::raw("REDIS_URL"),
                    signing_seed,
                    registry: config::raw("CONSUL_HTTP_ADDR"),
                }))
            }
            other => other
                .parse::<Infra>()
                .map(Mode::Managed)
                .map_err(|e| format!("{MODE_VAR}: {e}, or external")),
        }
    }

    /// Whether this mode gives `need`.
    pub fn has(&self, need: Need) -> bool {
        match self {
            Mode::Managed(_) => true,
            Mode::External(d) => match need {
                Need::Process | Need::FreshStack => false,
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
    pub mode: Mode,
    /// `--name`: whether a scenario's name matches.
    pub name: Option<NameFilter>,
    /// `--tags`, evaluated on the feature's, rule's and scenario's tags.
    pub tags: Option<TagOperation>,
}

impl Selection {
    pub fn runs(&self, feature: &Feature, rule: Option<&Rule>, scenario: &Scenario) -> bool {
        self.mode.runs(feature, rule, scenario)
            && self.name.as_ref().is_none_or(|matches| matches(&scenario.name))
            && self
                .tags
                .as_ref()
                .is_none_or(|tags| tags.eval(tags_of(feature, rule, scenario)))
    }
}
