//! The library's steps run by cucumber for a world of the test's own, against
//! a real HTTP server (an echo, which answers with what it received).

use cucumber::gherkin::{Step, StepType};
use cucumber::step::Collection;
use cucumber::writer::Stats as _;
use cucumber::{World as _, WriterExt as _};

use super::{StackWorld, StepConfig, StepState, add, collection};
use crate::drive::client::LoginFlow;
use crate::drive::echo::Echo;

#[derive(Debug, Default, cucumber::World)]
struct EchoWorld {
    steps: StepState,
}

/// The echo's URL for every scenario of one run (worlds are made by cucumber).
static ECHO_URL: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

impl StackWorld for EchoWorld {
    fn gateway_url(&self) -> String {
        ECHO_URL.lock().expect("not poisoned").clone()
    }

    fn step_state(&mut self) -> &mut StepState {
        &mut self.steps
    }

    /// The echo answers a login with what it received: the token is taken
    /// from where its own id is, so a token can be seen arriving later.
    fn step_config(&self) -> StepConfig {
        StepConfig {
            login: LoginFlow {
                token_pointer: Some("/instance".into()),
                cookie_name: None,
                ..LoginFlow::default()
            },
            ..StepConfig::default()
        }
    }
}

fn step(ty: StepType, value: &str) -> Step {
    Step {
        keyword: String::new(),
        ty,
        value: value.to_owned(),
        docstring: None,
        table: None,
        span: Default::default(),
        position: Default::default(),
    }
}

/// Every phrase the module documents, with its kind: each must match
/// exactly one step (cucumber fails a step that matches two).
const PHRASES: &[(StepType, &str)] = &[
    (StepType::When, "I GET /users/me"),
    (
        StepType::Given,
        r#"I POST /notes as "alice" with header "X-Foo: bar" with JSON {"a": 1}"#,
    ),
    (
        StepType::When,
        r#"I DELETE http://127.0.0.1:1/notes/1 as "alice" by session"#,
    ),
    (StepType::Then, "GET /healthz answers 200"),
    (
        StepType::Then,
        r#"GET /users/me as "alice" answers 200 within 5 seconds"#,
    ),
    (StepType::Given, "GET /healthz answers 200 within 10 seconds"),
    (StepType::Then, "the status is 200"),
    (
        StepType::Then,
        r#"the JSON at "/expires_in" is a number from 1 to 3600"#,
    ),
    (StepType::Then, r#"the header "Retry-After" is a number from 1 to 600"#),
    (StepType::Given, r#"a new user "alice" is registered"#),
    (StepType::When, r#"I keep the JSON at "/id" as "order""#),
    (StepType::Then, r#"the JSON at "/items" has 2 items"#),
    (StepType::Then, r#"the JSON at "/items" contains {"id": 1}"#),
    (StepType::When, r#"I GET /orders/{order} as "alice""#),
    (StepType::Given, r#"a new user "alice" is logged in"#),
    (StepType::Then, r#"the JSON at "/user/name" is "alice""#),
    (StepType::Then, r#"the JSON at "/n" is 3"#),
    (StepType::Then, r#"the JSON at "/n" exists"#),
    (StepType::Then, r#"the JSON at "/n" is absent"#),
    (StepType::Then, r#"the header "X-Instance-Id" is "user-1""#),
    (StepType::Then, r#"the header "X-Instance-Id" is absent"#),
    (StepType::Then, r#"the header "Cache-Control" contains "no-store""#),
    (StepType::Then, r#"the body contains "hello""#),
    (StepType::Then, r#"the body does not contain "secret""#),
    (StepType::Then, "every answer is 200"),
    (StepType::Given, r#"a user "alice" with password "pw" is registered"#),
    (StepType::Given, r#""alice" is logged in"#),
    (StepType::When, r#""alice" logs in with password "pw""#),
    (StepType::Given, r#"requests as "alice" carry the session cookie"#),
    (
        StepType::When,
        "400 requests are sent to /hello with 8 concurrent callers",
    ),
    (
        StepType::When,
        r#"400 requests are sent to /hello with 8 concurrent callers as "alice" while instance 2 of "greeter" is killed"#,
    ),
    (
        StepType::When,
        r#"200 POST requests are sent to /orders with JSON {"item": "tea", "n": 1} with 4 concurrent callers as "alice""#,
    ),
    (
        StepType::When,
        r#"POST requests are sent to /orders with JSON {"item": "tea"} with headers "X-A: 1", "X-B: 2" at 200 per second for 10 seconds after a ramp-up of 2 seconds as "alice""#,
    ),
    (
        StepType::When,
        "requests are sent to /hello at 50 per second for 5 seconds",
    ),
    (StepType::Then, "the 99th percentile of latency is under 50 ms"),
    (StepType::Then, "the 99.9th percentile of latency is at least 200 ms"),
    (StepType::Then, "no request failed"),
    (
        StepType::Then,
        "the answers are spread evenly over 3 instances by a chi-square test",
    ),
    (StepType::Then, "the answers came from 3 instances"),
    (StepType::Then, r#"no answer came from instance 2 of "greeter""#),
    (StepType::Then, r#"no answer came from "greeter-2""#),
    (
        StepType::Then,
        r#"GET /hello as "fay" is answered by instance 2 of "greeter" within 30 seconds"#,
    ),
    (StepType::When, r#"instance 2 of "greeter" is killed"#),
    (StepType::When, r#"the instance "greeter-2" is killed"#),
    (StepType::When, r#"instance 2 of "greeter" starts again"#),
    (StepType::Then, r#""greeter" has 3 passing instances in the registry"#),
    (
        StepType::Then,
        r#""greeter" has 1 passing instance in the registry within 5 seconds"#,
    ),
    (
        StepType::Then,
        r#"instance 2 of "greeter" is not passing in the registry within 3 seconds"#,
    ),
    (StepType::Then, r#"the registry lists "echo-2" of "user" as critical"#),
    (StepType::Then, r#"Redis has key "greeting:alice""#),
    (StepType::Then, r#"Redis has no key "greeting:alice" within 5 seconds"#),
    (StepType::Then, r#"Redis has a key matching "session:*""#),
    (StepType::Then, r#"Redis has no key matching "session:*""#),
    (
        StepType::Then,
        r#"the admin metric "requests_total{service=\"user\"}" is at least 3"#,
    ),
];

/// The examples of `STEPS.md`, the phrase table a team reads: each
/// `Given`/`When`/`Then` example in its tables must match exactly one step.
#[test]
fn every_example_of_the_phrase_table_matches_exactly_one_step() {
    let steps = add(Collection::<EchoWorld>::new());
    let table = include_str!("../../STEPS.md");
    let mut examples = 0;
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let Some(example) = cells
            .get(1)
            .and_then(|c| c.strip_prefix('`'))
            .and_then(|c| c.strip_suffix('`'))
        else {
            continue;
        };
        let (ty, phrase) = match example.split_once(' ') {
            Some(("Given", p)) => (StepType::Given, p),
            Some(("When", p)) => (StepType::When, p),
            Some(("Then", p)) => (StepType::Then, p),
            _ => continue,
        };
        // Table cells escape `|`; the phrase has none.
        match steps.find(&step(ty, phrase)) {
            Ok(Some(_)) => examples += 1,
            Ok(None) => panic!("STEPS.md: no step matches {example:?}"),
            Err(e) => panic!("STEPS.md: {example:?} is ambiguous: {e}"),
        }
    }
    assert!(examples >= 39, "STEPS.md's examples were found: {examples}");
}

#[test]
fn every_documented_phrase_matches_exactly_one_step() {
    let steps = add(Collection::<EchoWorld>::new());
    for (ty, phrase) in PHRASES {
        match steps.find(&step(*ty, phrase)) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("no step matches {ty:?} {phrase:?}"),
            Err(e) => panic!("{ty:?} {phrase:?} is ambiguous: {e}"),
        }
    }
    for (ty, phrase) in [
        (StepType::Then, "I GET /x"),
        (StepType::When, "the status is 200"),
        (StepType::Then, "the status is two hundred"),
    ] {
        assert!(
            matches!(steps.find(&step(ty, phrase)), Ok(None)),
            "{ty:?} {phrase:?} should match nothing"
        );
    }
}

const PASSING: &str = r#"
Feature: The library's steps against a real server
  Scenario: Calls, answers, users and load
    When I POST /notes?draft=1 with header "X-Probe: one" with JSON {"note": "hi"}
    Then the status is 200
    And the JSON at "/method" is "POST"
    And the JSON at "/path" is "/notes"
    And the JSON at "/query" is "draft=1"
    And the JSON at "/body" is "{\"note\":\"hi\"}"
    And the JSON at "/nothing" is absent
    And the JSON at "/peer" exists
    And the JSON at "/body_len" is a number from 13 to 13
    And the header "Content-Length" is a number from 1 to 100000
    And the header "X-Instance-Id" is "echo-1"
    And the body contains "x-probe"
    And the body does not contain "authorization"
    When I PUT /doc with JSON:
      """
      {"a": [1, 2]}
      """
    Then the JSON at "/method" is "PUT"
    And the JSON at "/body" is "{\"a\":[1,2]}"
    Given a user "alice" with password "pw" is registered
    And "alice" is logged in
    When I GET /me as "alice"
    Then the body contains "Bearer echo-1"
    When 60 requests are sent to /load with 4 concurrent callers as "alice"
    Then no request failed
    And every answer is 200
    And the answers came from 1 instance
    And no answer came from "echo-2"
    And GET /healthz answers 200 within 2 seconds

  Scenario: A user of this scenario's own, and a precondition awaited
    Given GET /healthz answers 200 within 2 seconds
    And a new user "bo" is logged in
    Then the body contains "bo-"

  Scenario: Values kept from an answer, placeholders, arrays
    Given a new user "cy" is registered
    When I POST /orders with JSON {"owner": "{cy.username}"}
    Then the JSON at "/body" contains "cy-"
    And I keep the JSON at "/instance" as "who"
    When I GET /orders/{who} with header "X-Gateway: {gateway}"
    Then the JSON at "/path" is "/orders/echo-1"
    And the JSON at "/headers" contains ["x-gateway", "{gateway}"]
    And the JSON at "/headers/0" has 2 items
    When 20 POST requests are sent to /orders with JSON {"owner": "{cy.username}"} with 2 concurrent callers
    Then no request failed
    When PUT requests are sent to /paced with header "X-Gateway: {gateway}" at 40 per second for 1 second after a ramp-up of 1 second
    Then no request failed
    And the 50th percentile of latency is under 60000 ms
"#;

const FAILING: &str = r#"
Feature: The library's checks fail when they should
  Scenario: A wrong status
    When I GET /x
    Then the status is 404

  Scenario: A wrong JSON value
    When I GET /x
    Then the JSON at "/method" is "POST"

  Scenario: An answer from an instance that should have given none
    When 10 requests are sent to /x with 2 concurrent callers
    Then no answer came from "echo-1"

  Scenario: A number out of its range
    When I POST /x with JSON {"a": 1}
    Then the JSON at "/body_len" is a number from 100 to 200

  Scenario: A placeholder nothing filled
    When I GET /orders/{nothing}

  Scenario: An array without the element
    When I GET /x
    Then the JSON at "/headers" contains ["x-nope", "1"]

  Scenario: Nothing to keep
    When I GET /x
    And I keep the JSON at "/nothing" as "n"

  Scenario: An array of another length
    When I GET /x
    Then the JSON at "/headers/0" has 3 items

  Scenario: A status that never comes
    Then GET /x answers 503 within 1 second

  Scenario: A latency bound missed
    When requests are sent to /x at 20 per second for 1 second
    Then the 50th percentile of latency is under 0 ms
"#;

/// Runs `feature` with the library's steps against an echo; returns the
/// (passed, failed) step counts and what the echo received.
async fn run(feature: &str) -> (usize, usize, Vec<crate::drive::echo::Received>) {
    let echo = Echo::start("echo-1").await.expect("an echo server");
    *ECHO_URL.lock().expect("not poisoned") = format!("http://{}", echo.addr());
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("library.feature");
    std::fs::write(&path, feature).expect("writing the feature");
    // Cucumber's report goes to a buffer printed through libtest, which
    // shows it only when this test fails: written straight to stdout, the
    // deliberately failing run's summary would read as failed scenarios of
    // the whole `cargo test`.
    let report = Report::default();
    let basic = cucumber::writer::Basic::raw(
        report.clone(),
        cucumber::writer::Coloring::Never,
        cucumber::writer::Verbosity::Default,
    );
    let writer = EchoWorld::cucumber()
        .steps(collection::<EchoWorld>())
        .with_writer(basic.summarized().normalized())
        .with_default_cli()
        .run(&path)
        .await;
    println!("{}", report.text());
    (writer.passed_steps(), writer.failed_steps(), echo.received())
}

/// A cucumber writer's output, kept in memory.
#[derive(Clone, Default)]
struct Report(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Report {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("not poisoned")).into_owned()
    }
}

impl std::io::Write for Report {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_steps_pass_against_a_real_server_and_fail_when_they_should() {
    let (passed, failed, received) = run(PASSING).await;
    assert_eq!((passed, failed), (42, 0), "every step of the passing feature passes");
    // The open loop: 20 requests ramping up over 1 s, then 40 in the next.
    let paced: Vec<_> = received.iter().filter(|r| r.path == "/paced").collect();
    assert_eq!(paced.len(), 60, "the open loop sent what its rate, ramp and time say");
    let gateway = ECHO_URL.lock().expect("not poisoned").clone();
    assert!(
        paced
            .iter()
            .all(|r| r.method == "PUT" && r.header("x-gateway") == Some(gateway.as_str())),
        "with its method and headers: {:?}",
        paced[0]
    );
    let (passed, failed, _) = run(FAILING).await;
    assert_eq!((passed, failed), (8, 10), "each failing scenario fails at its check");
}
