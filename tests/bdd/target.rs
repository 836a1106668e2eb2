//! What the scenarios run against: a stack the harness manages (shared, or
//! fresh per scenario) or a deployed one given by URL; and which scenarios
//! run there.

use std::path::{Path, PathBuf};

use cucumber::gherkin::tagexpr::TagOperation;
use cucumber::gherkin::{Feature, GherkinEnv, Rule, Scenario};
use cucumber::tag::Ext as _;
use gantry_common::config;
use gantry_harness::drive::client::UserClient;
use gantry_harness::{Infra, Stack, StackBuilder};
use tokio::sync::{Mutex, OnceCell};

/// What a scenario needs beyond the gateway's public port, said with a
/// `@needs:<what>` tag on it (or its rule or feature). A managed stack has
/// all of them; a deployed one has those its environment gives access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// To kill, pause or restart the stack's processes.
    Process,
    /// To read or write Redis directly.
    Redis,
    /// A stack of its own, started with settings of the scenario's choosing.
    FreshStack,
    /// The gateway's admin listener (`/metrics`, detailed `/readyz`).
    Admin,
    /// The key auth signs with, to mint tokens the stack trusts.
    SigningKey,
}

impl Need {
    pub const ALL: [Need; 5] = [
        Need::Process,
        Need::Redis,
        Need::FreshStack,
        Need::Admin,
        Need::SigningKey,
    ];

    /// The tag that states this need, without the `@`.
    pub fn tag(self) -> &'static str {
        match self {
            Need::Process => "needs:process",
            Need::Redis => "needs:redis",
            Need::FreshStack => "needs:fresh-stack",
            Need::Admin => "needs:admin",
            Need::SigningKey => "needs:signing-key",
        }
    }

    /// What gives a deployed stack this access, for the skip reason.
    pub fn how_external(self) -> &'static str {
        match self {
            Need::Process => "a deployed stack's processes are not the harness's to break",
            Need::Redis => "set REDIS_URL",
            Need::FreshStack => "it starts a stack of its own, with settings of its choosing",
            Need::Admin => "set GANTRY_GATEWAY_ADMIN_URL",
            Need::SigningKey => "set GANTRY_JWT_SIGNING_KEY",
        }
    }

    /// The needs `tags` state; an unknown `needs:` tag is an error, so a
    /// typo cannot make a scenario run where it cannot.
    pub fn of_tags<'a>(tags: impl IntoIterator<Item = &'a String>) -> Result<Vec<Need>, String> {
        let mut needs = Vec::new();
        for tag in tags.into_iter().filter(|t| t.starts_with("needs:")) {
            match Need::ALL.iter().find(|n| n.tag() == tag) {
                Some(n) => needs.push(*n),
                None => {
                    let known: Vec<_> = Need::ALL.iter().map(|n| format!("@{}", n.tag())).collect();
                    return Err(format!("unknown tag @{tag}; known: {}", known.join(", ")));
                }
            }
        }
        Ok(needs)
    }
}

/// The tags that apply to `scenario`: its feature's, its rule's and its own.
fn tags_of<'a>(
    feature: &'a Feature,
    rule: Option<&'a Rule>,
    scenario: &'a Scenario,
) -> impl Iterator<Item = &'a String> + Clone {
    feature
        .tags
        .iter()
        .chain(rule.into_iter().flat_map(|r| &r.tags))
        .chain(&scenario.tags)
}

/// Every scenario of `feature`, with the rule it is in, if any.
pub fn scenarios(feature: &Feature) -> impl Iterator<Item = (Option<&Rule>, &Scenario)> {
    feature.scenarios.iter().map(|s| (None, s)).chain(
        feature
            .rules
            .iter()
            .flat_map(|r| r.scenarios.iter().map(move |s| (Some(r), s))),
    )
}

/// The feature files in `dir`, in name order (one that does not parse is
/// left to cucumber, which reports it as a failure).
pub fn features(dir: &Path) -> Vec<Feature> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.sort();
    paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "feature"))
        .filter_map(|p| Feature::parse_path(p, GherkinEnv::default()).ok())
        .collect()
}

/// Checks every `@needs:` tag is known, so a typo fails the run.
pub fn check_tags(features: &[Feature]) -> Result<(), String> {
    for feature in features {
        for (rule, scenario) in scenarios(feature) {
            Need::of_tags(tags_of(feature, rule, scenario))
                .map_err(|e| format!("{}: {}: {e}", feature.name, scenario.name))?;
        }
    }
    Ok(())
}

/// Where the stack comes from, from `GANTRY_INFRA`.
#[derive(Debug, Clone)]
pub enum Mode {
    Managed(Infra),
    /// A deployed stack: scenarios run when their needs are met by what the
    /// environment gives access to.
    External {
        gateway: String,
        /// The gateway's admin listener, for scenarios that read `/metrics`.
        admin: Option<String>,
        redis: Option<String>,
        signing_seed: Option<[u8; 32]>,
    },
}

impl Mode {
    pub fn from_env() -> Result<Self, String> {
        let infra = config::string_or("GANTRY_INFRA", "auto");
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
                Ok(Mode::External {
                    gateway: gateway.trim_end_matches('/').to_owned(),
                    admin: config::raw("GANTRY_GATEWAY_ADMIN_URL").map(|a| a.trim_end_matches('/').to_owned()),
                    redis: config::raw("REDIS_URL"),
                    signing_seed,
                })
            }
            other => other
                .parse::<Infra>()
                .map(Mode::Managed)
                .map_err(|e| format!("GANTRY_INFRA: {e}, or external")),
        }
    }

    /// Whether this mode gives `need`.
    pub fn has(&self, need: Need) -> bool {
        match self {
            Mode::Managed(_) => true,
            Mode::External {
                admin,
                redis,
                signing_seed,
                ..
            } => match need {
                Need::Process | Need::FreshStack => false,
                Need::Redis => redis.is_some(),
                Need::Admin => admin.is_some(),
                Need::SigningKey => signing_seed.is_some(),
            },
        }
    }

    /// The needs of a scenario (with its rule's and feature's) this mode does not meet.
    pub fn unmet(&self, feature: &Feature, rule: Option<&Rule>, scenario: &Scenario) -> Vec<Need> {
        let needs = Need::of_tags(tags_of(feature, rule, scenario)).unwrap_or_default();
        needs.into_iter().filter(|n| !self.has(*n)).collect()
    }

    /// Whether `scenario` can run in this mode.
    pub fn runs(&self, feature: &Feature, rule: Option<&Rule>, scenario: &Scenario) -> bool {
        self.unmet(feature, rule, scenario).is_empty()
    }

    /// The scenarios this mode cannot run, one line each, with what they
    /// need and how to give it.
    pub fn unrunnable(&self, features: &[Feature]) -> Vec<String> {
        let mut lines = Vec::new();
        for feature in features {
            for (rule, scenario) in scenarios(feature) {
                let unmet = self.unmet(feature, rule, scenario);
                if unmet.is_empty() {
                    continue;
                }
                let why: Vec<String> = unmet
                    .iter()
                    .map(|n| format!("@{}: {}", n.tag(), n.how_external()))
                    .collect();
                lines.push(format!(
                    "SKIPPED {}: {} ({})",
                    feature.name,
                    scenario.name,
                    why.join("; ")
                ));
            }
        }
        lines
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

/// The addresses and secrets of a stack, whatever runs it.
#[derive(Debug, Clone)]
pub struct Target {
    pub gateways: Vec<String>,
    /// Each gateway's admin listener, where known (external mode: from
    /// `GANTRY_GATEWAY_ADMIN_URL`).
    pub admins: Vec<String>,
    pub redis_url: Option<String>,
    pub signing_seed: Option<[u8; 32]>,
    /// The CA of a harness-started stack whose gateways speak TLS
    /// ([`Stack::ca_cert`]). A deployed stack's private CA is given by
    /// `GANTRY_CA_CERT` instead, which every client trusts anyway.
    pub ca_cert: Option<PathBuf>,
}

impl Target {
    pub fn of(stack: &Stack) -> Self {
        Self {
            gateways: stack.gateway_urls().to_vec(),
            admins: stack.gateway_admin_urls().to_vec(),
            redis_url: Some(stack.redis_url().to_owned()),
            signing_seed: Some(stack.signing_seed()),
            ca_cert: stack.ca_cert().map(Path::to_owned),
        }
    }

    /// What every client of this target's gateways is built from: it trusts
    /// the system's roots, `GANTRY_CA_CERT` and the stack's own CA, so an
    /// `https://` gateway is called as an `http://` one is.
    pub fn http_builder(&self) -> reqwest::ClientBuilder {
        gantry_harness::drive::client::http_builder(self.ca_cert.as_deref())
    }

    /// A user of the first gateway, called `name`, with a client as
    /// [`Target::http_builder`] makes.
    pub fn user(&self, name: &str) -> UserClient {
        UserClient::new(self.gateway(), name).trusting(self.ca_cert.as_deref())
    }

    pub fn gateway(&self) -> &str {
        &self.gateways[0]
    }

    /// The first gateway's admin listener (`/metrics`).
    pub fn admin(&self) -> &str {
        self.admins
            .first()
            .expect("this step reads the gateway's metrics: set GANTRY_GATEWAY_ADMIN_URL to its admin listener")
    }
}

/// A stack builder for this mode's infrastructure.
pub fn builder() -> StackBuilder {
    let infra = match Mode::from_env() {
        Ok(Mode::Managed(infra)) => infra,
        _ => Infra::Local,
    };
    StackBuilder::new(env!("CARGO_BIN_EXE_gantry")).infra(infra)
}

static SHARED: OnceCell<Target> = OnceCell::const_new();
static SHARED_STACK: Mutex<Option<Stack>> = Mutex::const_new(None);

/// The stack scenarios share: started on first use, stopped by [`stop_shared`].
pub async fn shared() -> Target {
    SHARED
        .get_or_init(|| async {
            match Mode::from_env().expect("checked in main") {
                Mode::External {
                    gateway,
                    admin,
                    redis,
                    signing_seed,
                } => Target {
                    gateways: vec![gateway],
                    admins: admin.into_iter().collect(),
                    redis_url: redis,
                    signing_seed,
                    ca_cert: None,
                },
                Mode::Managed(_) => {
                    let stack = builder()
                        .users(3)
                        .start(&mut |step| {
                            if let gantry_harness::Progress::Note(note) = step {
                                println!("bdd: {note}");
                            }
                        })
                        .await
                        .unwrap_or_else(|e| panic!("the shared stack did not start: {e}"));
                    let target = Target::of(&stack);
                    *SHARED_STACK.lock().await = Some(stack);
                    target
                }
            }
        })
        .await
        .clone()
}

/// Where the shared stack's logs stand now (`None` before it started).
pub async fn shared_log_marks() -> Option<gantry_harness::LogMarks> {
    match SHARED_STACK.lock().await.as_ref() {
        Some(stack) => Some(stack.log_marks().await),
        None => None,
    }
}

/// Copies the shared stack's logs, from `since` on, into `dest`; `None`
/// when the harness runs no shared stack (external mode).
pub async fn save_shared_logs(
    dest: &Path,
    since: Option<&gantry_harness::LogMarks>,
) -> Result<Option<Vec<gantry_harness::SavedLog>>, gantry_harness::HarnessError> {
    match SHARED_STACK.lock().await.as_ref() {
        Some(stack) => stack.save_logs(dest, since).await.map(Some),
        None => Ok(None),
    }
}

pub async fn stop_shared() {
    if let Some(stack) = SHARED_STACK.lock().await.take() {
        let _ = stack.stop(&mut |_| {}).await;
    }
}
