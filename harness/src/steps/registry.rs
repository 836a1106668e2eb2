//! The registry as the gateway sees it (`/v1/health/service/<name>`):
//! `Then "greeter" has 3 passing instances in the registry`, `Then instance 2
//! of "greeter" is critical in the registry within 5 seconds`, `Then the
//! registry lists "greeter-2" of "greeter" as passing`. And its KV store,
//! where a team's services read their configuration and hold their locks:
//! `Given the registry key "config/board/title" is set to "Team board"`,
//! `Then the registry key "service/board/leader" is held by a session`.

use std::time::Duration;

use cucumber::step::{Collection, Context};
use gantry_common::registry::RegistryClient;

use super::StackWorld;
use super::args::{Args, StepFuture, here, re, within};
use super::faults::faults_of;
use super::poll;

/// What the registry can say of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// Registered and every check passing.
    Passing,
    /// Registered, some check not passing.
    Critical,
    /// Not in the passing set, registered or not.
    NotPassing,
    /// Not in the registry at all (never registered, or deregistered).
    NotRegistered,
}

impl Listed {
    /// The words a step uses for it: `passing`, `critical`, `not passing`,
    /// `not registered`.
    pub fn from_words(words: &str) -> Option<Self> {
        Some(match words {
            "passing" => Self::Passing,
            "critical" => Self::Critical,
            "not passing" => Self::NotPassing,
            "not registered" => Self::NotRegistered,
            _ => return None,
        })
    }

    /// Whether an instance `registered` and `passing` (or not) is in this state.
    pub fn holds(self, registered: bool, passing: bool) -> bool {
        match self {
            Self::Passing => passing,
            Self::Critical => registered && !passing,
            Self::NotPassing => !passing,
            Self::NotRegistered => !registered,
        }
    }
}

const STATES: &str = "passing|critical|not passing|not registered";

pub(super) fn add<W: StackWorld>(steps: Collection<W>) -> Collection<W> {
    let count = format!(
        r#"^"(?P<service>[^"]+)" has (?P<n>\d+) passing instances? in the registry{}$"#,
        within!()
    );
    let by_index = format!(
        r#"^instance (?P<n>\d+) of "(?P<service>[^"]+)" is (?P<state>{STATES}) in the registry{}$"#,
        within!()
    );
    let by_id = format!(
        r#"^the registry lists "(?P<id>[^"]+)" of "(?P<service>[^"]+)" as (?P<state>{STATES}){}$"#,
        within!()
    );
    let key_state = format!(
        r#"^the registry key "(?P<key>[^"]+)" (?:is "(?P<is>[^"]+)"|is not "(?P<is_not>[^"]+)"|(?P<state>is absent|is held by a session|is not held)){}$"#,
        within!()
    );
    steps
        .given(here!(), re(&count), passing_count::<W>)
        .then(here!(), re(&count), passing_count::<W>)
        .then(here!(), re(&by_index), instance_state::<W>)
        .then(here!(), re(&by_id), instance_state::<W>)
        .given(here!(), re(KEY_SET), key_set::<W>)
        .when(here!(), re(KEY_SET), key_set::<W>)
        .when(here!(), re(KEY_KEEP), key_keep::<W>)
        .given(here!(), re(&key_state), key_state_check::<W>)
        .then(here!(), re(&key_state), key_state_check::<W>)
}

/// `the registry key "k" is set to "v"` / `is deleted`.
const KEY_SET: &str = r#"^the registry key "(?P<key>[^"]+)" (?:is set to "(?P<value>[^"]*)"|(?P<deleted>is deleted))$"#;
/// `I keep the registry key "k" as "name"`: its value, for `{name}` later.
const KEY_KEEP: &str = r#"^I keep the registry key "(?P<key>[^"]+)" as "(?P<name>[A-Za-z_][\w.-]*)"$"#;

fn key_set<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let key = args.get("key").to_owned();
        let registry = client(w);
        let done = match args.opt("deleted") {
            Some(_) => registry.kv_delete(&key).await,
            None => {
                registry
                    .kv_put(&key, args.opt("value").unwrap_or_default().as_bytes())
                    .await
            }
        };
        done.unwrap_or_else(|e| panic!("the registry key {key:?}: {e}"));
    })
}

fn key_keep<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let (key, name) = (args.get("key").to_owned(), args.get("name").to_owned());
        let entry = client(w)
            .kv_get(&key)
            .await
            .unwrap_or_else(|e| panic!("the registry key {key:?}: {e}"))
            .unwrap_or_else(|| panic!("the registry has no key {key:?} to keep as {name:?}"));
        w.step_state().kept.insert(name, entry.text());
    })
}

fn key_state_check<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let key = args.get("key").to_owned();
        let is = args.opt("is").map(str::to_owned);
        let is_not = args.opt("is_not").map(str::to_owned);
        let state = args.opt("state").map(str::to_owned);
        let registry = client(w);
        let what = format!("the registry key {key:?}");
        poll::check(&what, args.within(), || {
            let (registry, key, is, is_not, state) =
                (registry.clone(), key.clone(), is.clone(), is_not.clone(), state.clone());
            async move {
                let entry = registry.kv_get(&key).await.map_err(|e| format!("the registry: {e}"))?;
                let seen = match &entry {
                    None => "absent".to_owned(),
                    Some(e) => format!(
                        "{:?} (held by {})",
                        e.text(),
                        e.session.as_deref().unwrap_or("no session")
                    ),
                };
                let holds = match (&is, &is_not, state.as_deref(), &entry) {
                    (Some(want), _, _, Some(e)) => e.text() == *want,
                    (_, Some(unwanted), _, e) => e.as_ref().is_none_or(|e| e.text() != *unwanted),
                    (_, _, Some("is absent"), e) => e.is_none(),
                    (_, _, Some("is held by a session"), Some(e)) => e.session.is_some(),
                    (_, _, Some("is not held"), e) => e.as_ref().is_none_or(|e| e.session.is_none()),
                    _ => false,
                };
                if holds {
                    Ok(())
                } else {
                    Err(format!("the registry key {key:?} is {seen}"))
                }
            }
        })
        .await;
    })
}

fn client<W: StackWorld>(w: &mut W) -> RegistryClient {
    w.registry()
        .expect("this step reads the registry: it needs StackWorld::registry (or a stack)")
}

/// The ids of `service`'s instances: all of them, and the passing ones.
async fn instances(registry: &RegistryClient, service: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let ask = |passing| registry.health_service(service, passing, None, Duration::ZERO);
    let all = ask(false).await.map_err(|e| format!("the registry: {e}"))?;
    let passing = ask(true).await.map_err(|e| format!("the registry: {e}"))?;
    let ids = |found: Vec<gantry_common::registry::Instance>| found.into_iter().map(|i| i.service.id).collect();
    Ok((ids(all.value), ids(passing.value)))
}

fn passing_count<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let service = args.get("service").to_owned();
        let n: usize = args.num("n");
        let registry = client(w);
        let what = format!("{n} passing instances of {service:?}");
        poll::check(&what, args.within(), || {
            let (registry, service) = (registry.clone(), service.clone());
            async move {
                let (all, passing) = instances(&registry, &service).await?;
                if passing.len() == n {
                    return Ok(());
                }
                Err(format!(
                    "expected {n} passing instances of {service:?}; passing: {passing:?}, registered: {all:?}"
                ))
            }
        })
        .await;
    })
}

fn instance_state<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let service = args.get("service").to_owned();
        let id = match args.opt("id") {
            Some(id) => id.to_owned(),
            None => faults_of(w)
                .instance_id(&service, args.num("n"))
                .unwrap_or_else(|e| panic!("{e}")),
        };
        let words = args.get("state");
        let state = Listed::from_words(words).unwrap_or_else(|| panic!("{words:?} is not {STATES}"));
        let registry = client(w);
        let what = format!("{id} of {service:?} to be {words}");
        poll::check(&what, args.within(), || {
            let (registry, service, id) = (registry.clone(), service.clone(), id.clone());
            async move {
                let (all, passing) = instances(&registry, &service).await?;
                if state.holds(all.contains(&id), passing.contains(&id)) {
                    return Ok(());
                }
                Err(format!(
                    "{id} of {service:?} is not {words}; passing: {passing:?}, registered: {all:?}"
                ))
            }
        })
        .await;
    })
}

#[cfg(test)]
mod tests {
    use super::Listed;

    #[test]
    fn states_of_an_instance() {
        let all = ["passing", "critical", "not passing", "not registered"].map(|w| Listed::from_words(w).unwrap());
        // (registered, passing) → which states hold
        let holds = |r, p| all.map(|s| s.holds(r, p));
        assert_eq!(holds(true, true), [true, false, false, false]);
        assert_eq!(holds(true, false), [false, true, true, false]);
        assert_eq!(holds(false, false), [false, false, true, true]);
        assert_eq!(Listed::from_words("gone"), None);
    }
}
