//! What the scenarios run against: a stack the harness manages (shared, or
//! fresh per scenario) or a deployed one given by URL.

use std::time::Duration;

use gantry_harness::{Infra, Stack, StackBuilder};
use tokio::sync::{Mutex, OnceCell};

/// What a scenario needs beyond the gateway's public port, said with a
/// `@needs:<what>` tag on it (or its feature). A managed stack has all of
/// them; a deployed one has those its environment gives access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// To kill, pause or restart the stack's processes.
    Process,
    /// To read or write Redis directly.
    Redis,
    /// To read or write the registry directly.
    Registry,
    /// A stack of its own, started with settings of the scenario's choosing.
    FreshStack,
    /// The gateway's admin listener (`/metrics`, detailed `/readyz`).
    Admin,
    /// The key auth signs with, to mint tokens the stack trusts.
    SigningKey,
}

impl Need {
    pub const ALL: [Need; 6] = [
        Need::Process,
        Need::Redis,
        Need::Registry,
        Need::FreshStack,
        Need::Admin,
        Need::SigningKey,
    ];

    /// The tag that states this need, without the `@`.
    pub fn tag(self) -> &'static str {
        match self {
            Need::Process => "needs:process",
            Need::Redis => "needs:redis",
            Need::Registry => "needs:registry",
            Need::FreshStack => "needs:fresh-stack",
            Need::Admin => "needs:admin",
            Need::SigningKey => "needs:signing-key",
        }
    }

    /// What gives a deployed stack this access, for the skip reason.
    fn how_external(self) -> &'static str {
        match self {
            Need::Process => "a deployed stack's processes are not the harness's to break",
            Need::Redis => "set REDIS_URL",
            Need::Registry => "set CONSUL_HTTP_ADDR (and CONSUL_HTTP_TOKEN)",
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
        registry: Option<String>,
        signing_seed: Option<[u8; 32]>,
    },
}

impl Mode {
    pub fn from_env() -> Result<Self, String> {
        let infra = std::env::var("GANTRY_INFRA").unwrap_or_else(|_| "auto".into());
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        match infra.as_str() {
            "external" => {
                let gateway = var("GANTRY_GATEWAY_URL")
                    .ok_or("GANTRY_INFRA=external needs GANTRY_GATEWAY_URL (e.g. http://127.0.0.1:8000)")?;
                let signing_seed = match var("GANTRY_JWT_SIGNING_KEY") {
                    None => None,
                    Some(_) => {
                        gantry_common::jwt::JwtConfig::from_env()
                            .map_err(|e| e.to_string())?
                            .signing_seed
                    }
                };
                Ok(Mode::External {
                    gateway: gateway.trim_end_matches('/').to_owned(),
                    admin: var("GANTRY_GATEWAY_ADMIN_URL").map(|a| a.trim_end_matches('/').to_owned()),
                    redis: var("REDIS_URL"),
                    registry: var("CONSUL_HTTP_ADDR"),
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
                registry,
                signing_seed,
                ..
            } => match need {
                Need::Process | Need::FreshStack => false,
                Need::Redis => redis.is_some(),
                Need::Registry => registry.is_some(),
                Need::Admin => admin.is_some(),
                Need::SigningKey => signing_seed.is_some(),
            },
        }
    }

    /// The needs of a scenario (and its feature) this mode does not meet.
    pub fn unmet(&self, feature: &cucumber::gherkin::Feature, scenario: &cucumber::gherkin::Scenario) -> Vec<Need> {
        let needs = Need::of_tags(feature.tags.iter().chain(&scenario.tags)).unwrap_or_default();
        needs.into_iter().filter(|n| !self.has(*n)).collect()
    }

    /// Whether `scenario` can run in this mode.
    pub fn runs(&self, feature: &cucumber::gherkin::Feature, scenario: &cucumber::gherkin::Scenario) -> bool {
        self.unmet(feature, scenario).is_empty()
    }

    fn features(features: &str) -> Vec<cucumber::gherkin::Feature> {
        let mut paths: Vec<_> = std::fs::read_dir(features)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        paths.sort();
        paths
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "feature"))
            .filter_map(|p| cucumber::gherkin::Feature::parse_path(p, cucumber::gherkin::GherkinEnv::default()).ok())
            .collect()
    }

    /// Checks every `@needs:` tag is known, so a typo fails the run.
    pub fn check_tags(features: &str) -> Result<(), String> {
        for feature in Self::features(features) {
            for scenario in &feature.scenarios {
                Need::of_tags(feature.tags.iter().chain(&scenario.tags))
                    .map_err(|e| format!("{}: {}: {e}", feature.name, scenario.name))?;
            }
        }
        Ok(())
    }

    /// Lists the scenarios this mode cannot run, as skipped, each with what
    /// it needs and how to give it; returns how many.
    pub fn report_unrunnable(&self, features: &str) -> usize {
        let mut count = 0;
        for feature in Self::features(features) {
            for scenario in &feature.scenarios {
                let unmet = self.unmet(&feature, scenario);
                if unmet.is_empty() {
                    continue;
                }
                count += 1;
                let why: Vec<String> = unmet
                    .iter()
                    .map(|n| format!("@{}: {}", n.tag(), n.how_external()))
                    .collect();
                println!("SKIPPED {}: {} ({})", feature.name, scenario.name, why.join("; "));
            }
        }
        count
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
    pub check_ttl: Duration,
}

impl Target {
    pub fn of(stack: &Stack) -> Self {
        Self {
            gateways: stack.gateway_urls().to_vec(),
            admins: stack.gateway_admin_urls().to_vec(),
            redis_url: Some(stack.redis_url().to_owned()),
            signing_seed: Some(stack.signing_seed()),
            check_ttl: gantry_harness::stack::DEFAULT_CHECK_TTL,
        }
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
                    ..
                } => Target {
                    gateways: vec![gateway],
                    admins: admin.into_iter().collect(),
                    redis_url: redis,
                    signing_seed,
                    check_ttl: gantry_harness::stack::DEFAULT_CHECK_TTL,
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

pub async fn stop_shared() {
    if let Some(stack) = SHARED_STACK.lock().await.take() {
        let _ = stack.stop(&mut |_| {}).await;
    }
}
