//! What the scenarios run against: a stack the harness manages (shared, or
//! fresh per scenario) or a deployed one given by URL.

use std::time::Duration;

use gantry_harness::{Infra, Stack, StackBuilder};
use tokio::sync::{Mutex, OnceCell};

/// Where the stack comes from, from `GANTRY_INFRA`.
#[derive(Debug, Clone)]
pub enum Mode {
    Managed(Infra),
    /// A deployed stack: only scenarios that break nothing can run.
    External {
        gateway: String,
        /// The gateway's admin listener, for scenarios that read `/metrics`.
        admin: Option<String>,
        redis: Option<String>,
    },
}

impl Mode {
    pub fn from_env() -> Result<Self, String> {
        let infra = std::env::var("GANTRY_INFRA").unwrap_or_else(|_| "auto".into());
        match infra.as_str() {
            "external" => {
                let gateway = std::env::var("GANTRY_GATEWAY_URL")
                    .map_err(|_| "GANTRY_INFRA=external needs GANTRY_GATEWAY_URL (e.g. http://127.0.0.1:8000)")?;
                Ok(Mode::External {
                    gateway: gateway.trim_end_matches('/').to_owned(),
                    admin: std::env::var("GANTRY_GATEWAY_ADMIN_URL")
                        .ok()
                        .map(|a| a.trim_end_matches('/').to_owned()),
                    redis: std::env::var("REDIS_URL").ok(),
                })
            }
            other => other
                .parse::<Infra>()
                .map(Mode::Managed)
                .map_err(|e| format!("GANTRY_INFRA: {e}, or external")),
        }
    }

    /// Whether `scenario` can run in this mode.
    pub fn runs(&self, scenario: &cucumber::gherkin::Scenario) -> bool {
        match self {
            Mode::Managed(_) => true,
            Mode::External { .. } => !scenario.tags.iter().any(|t| t == "managed"),
        }
    }

    pub fn skip_reason(&self) -> &'static str {
        match self {
            Mode::Managed(_) => "none are skipped with a managed stack",
            Mode::External { .. } => {
                "@managed scenarios break or inspect the stack, which an external one does not allow"
            }
        }
    }

    /// Lists the scenarios this mode cannot run, as skipped, with the reason.
    pub fn report_unrunnable(&self, features: &str) -> usize {
        let Mode::External { .. } = self else { return 0 };
        let mut count = 0;
        let mut paths: Vec<_> = std::fs::read_dir(features)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        paths.sort();
        for path in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "feature")) {
            let Ok(feature) = cucumber::gherkin::Feature::parse_path(path, cucumber::gherkin::GherkinEnv::default())
            else {
                continue;
            };
            for scenario in feature.scenarios.iter().filter(|s| !self.runs(s)) {
                count += 1;
                println!("SKIPPED {}: {} ({})", feature.name, scenario.name, self.skip_reason());
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
                Mode::External { gateway, admin, redis } => Target {
                    gateways: vec![gateway],
                    admins: admin.into_iter().collect(),
                    redis_url: redis,
                    signing_seed: None,
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
