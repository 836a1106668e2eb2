//! Which scenarios a run selects (the runner's, `gantry_harness::runner`,
//! which Gantry's suite and a team's use alike): those whose `@needs` the
//! mode meets, narrowed by `--name` and `--tags`; and Gantry's own features
//! parse with known tags.

use std::path::Path;

use cucumber::gherkin::{Feature, GherkinEnv, Rule, Scenario};
use gantry_harness::Infra;
use gantry_harness::runner::needs::{check_tags, features, scenarios};
use gantry_harness::runner::{Deployed, Mode, Selection};

const NEEDS: &str = r#"
Feature: Needs
  Scenario: plain
Given a running stack

  @needs:admin
  Scenario: admin
Given a running stack

  @smoke
  Scenario: smoke
Given a running stack

  @needs:fresh-stack
  Rule: fresh stacks

Scenario: in a rule
  Given a running stack
"#;

const REDIS: &str = r#"
@needs:redis
Feature: Redis
  Scenario: by the feature's tag
Given a running stack
"#;

fn parse(text: &str) -> Feature {
    Feature::parse(text, GherkinEnv::default()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn external(redis: bool) -> Mode {
    Mode::External(Deployed {
        gateway: "http://127.0.0.1:9".into(),
        redis: redis.then(|| "redis://127.0.0.1:9".into()),
        ..Deployed::default()
    })
}

/// The scenarios `mode` cannot run, as the run lists them.
fn unrunnable(mode: &Mode, features: &[Feature]) -> Vec<String> {
    mode.not_run(features).iter().map(ToString::to_string).collect()
}

/// The names of the scenarios `runs` selects.
fn selected(features: &[Feature], runs: impl Fn(&Feature, Option<&Rule>, &Scenario) -> bool) -> Vec<String> {
    features
        .iter()
        .flat_map(|f| {
            scenarios(f)
                .filter(|(r, s)| runs(f, *r, s))
                .map(|(_, s)| s.name.clone())
        })
        .collect()
}

#[test]
fn a_scenario_whose_needs_are_unmet_is_skipped_and_listed() {
    let features = [parse(NEEDS), parse(REDIS)];
    let all = ["plain", "admin", "smoke", "in a rule", "by the feature's tag"];
    let managed = Mode::Managed(Infra::Local);
    assert_eq!(selected(&features, |f, r, s| managed.runs(f, r, s)), all);
    assert_eq!(unrunnable(&managed, &features), Vec::<String>::new());

    let with_redis = external(true);
    assert_eq!(
        selected(&features, |f, r, s| with_redis.runs(f, r, s)),
        ["plain", "smoke", "by the feature's tag"]
    );
    assert_eq!(
        unrunnable(&with_redis, &features),
        [
            "SKIPPED Needs: admin (@needs:admin: set GANTRY_GATEWAY_ADMIN_URL)",
            "SKIPPED Needs: in a rule (@needs:fresh-stack: it starts a stack of its own, with settings of its choosing)",
        ]
    );

    let bare = external(false);
    assert_eq!(selected(&features, |f, r, s| bare.runs(f, r, s)), ["plain", "smoke"]);
    assert_eq!(unrunnable(&bare, &features).len(), 3);
}

#[test]
fn an_unknown_needs_tag_stops_the_run() {
    assert_eq!(check_tags(&[parse(NEEDS), parse(REDIS)]), Ok(()));
    for typo in [
        "Feature: F\n  @needs:redsi\n  Scenario: S\n    Given a running stack\n",
        "@needs:redsi\nFeature: F\n  Scenario: S\n    Given a running stack\n",
        "Feature: F\n  @needs:redsi\n  Rule: R\n    Scenario: S\n      Given a running stack\n",
    ] {
        let err = check_tags(&[parse(NEEDS), parse(typo)]).expect_err(typo);
        assert!(
            err.starts_with("F: S: unknown tag @needs:redsi; known: @needs:process"),
            "{err}"
        );
    }
}

#[test]
fn the_command_line_narrows_the_selection_and_never_widens_it() {
    let features = [parse(NEEDS), parse(REDIS)];
    let by_name = |mode: Mode, name: &'static str| Selection {
        mode,
        name: Some(Box::new(move |n| n == name)),
        tags: None,
    };
    let by_tags = |mode: Mode, tags: &str| Selection {
        mode,
        name: None,
        tags: Some(tags.parse().expect("a tag expression")),
    };
    let select = |s: Selection| selected(&features, |f, r, sc| s.runs(f, r, sc));

    assert_eq!(select(by_name(Mode::Managed(Infra::Local), "admin")), ["admin"]);
    assert_eq!(select(by_name(external(true), "admin")), Vec::<String>::new());
    assert_eq!(select(by_tags(Mode::Managed(Infra::Local), "@smoke")), ["smoke"]);
    assert_eq!(select(by_tags(external(true), "@needs:admin")), Vec::<String>::new());
    assert_eq!(
        select(by_tags(
            Mode::Managed(Infra::Local),
            "@needs:fresh-stack or @needs:redis"
        )),
        ["in a rule", "by the feature's tag"]
    );
    assert_eq!(
        select(by_tags(external(true), "not @smoke")),
        ["plain", "by the feature's tag"]
    );
}

#[test]
fn the_suites_features_parse_and_their_needs_tags_are_known() {
    let features = features(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/features")));
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/features"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "feature"))
        .count();
    assert_eq!(features.len(), files, "every feature file parses");
    assert_eq!(check_tags(&features), Ok(()));
}
