//! What a scenario needs beyond the gateway's public port, said with a
//! `@needs:<what>` tag on it (or on its rule or feature), and the feature
//! files read once to know which scenarios need what.

use std::path::Path;

use cucumber::gherkin::{Feature, GherkinEnv, Rule, Scenario};

/// A capability a scenario can require. A stack the harness runs has all of
/// them; a deployed one has those its environment gives access to.
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
    /// The key tokens are signed with, to mint tokens the stack trusts.
    SigningKey,
    /// The registry the services are in, to read their health.
    Registry,
    /// The instances' own addresses, to call one past the gateway
    /// (`{url:greeter-2}` in a step).
    Instances,
}

impl Need {
    /// Every need: the `@needs:` tags a feature may use.
    pub const ALL: [Need; 7] = [
        Need::Process,
        Need::Redis,
        Need::FreshStack,
        Need::Admin,
        Need::SigningKey,
        Need::Registry,
        Need::Instances,
    ];

    /// The tag that states this need, without the `@`.
    pub fn tag(self) -> &'static str {
        match self {
            Need::Process => "needs:process",
            Need::Redis => "needs:redis",
            Need::FreshStack => "needs:fresh-stack",
            Need::Admin => "needs:admin",
            Need::SigningKey => "needs:signing-key",
            Need::Registry => "needs:registry",
            Need::Instances => "needs:instances",
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
            Need::Registry => "set CONSUL_HTTP_ADDR (and CONSUL_HTTP_TOKEN when its ACLs are on)",
            Need::Instances => "a deployed stack's instances are reached through its gateway only",
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
pub fn tags_of<'a>(
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

/// The feature files at `path` (a folder and its sub-folders, as cucumber
/// reads them, in name order; or one file); one that does not parse is left
/// to cucumber, which reports it as a failure.
pub fn features(path: &Path) -> Vec<Feature> {
    let mut paths = Vec::new();
    feature_files(path, &mut paths);
    paths.sort();
    paths
        .iter()
        .filter_map(|p| Feature::parse_path(p, GherkinEnv::default()).ok())
        .collect()
}

fn feature_files(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            feature_files(&entry.path(), out);
        }
    } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("feature")) {
        out.push(path.to_owned());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_need_is_read_and_an_unknown_one_refused() {
        let tags = ["needs:redis".to_owned(), "serial".to_owned()];
        assert_eq!(Need::of_tags(&tags), Ok(vec![Need::Redis]));
        let typo = ["needs:reddis".to_owned()];
        let e = Need::of_tags(&typo).unwrap_err();
        assert!(
            e.contains("unknown tag @needs:reddis") && e.contains("@needs:redis"),
            "{e}"
        );
    }
}
