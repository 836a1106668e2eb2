//! Which stack a scenario runs against, and its users.

use std::time::Duration;

use cucumber::{given, when};
use gantry_harness::StackBuilder;
use gantry_harness::drive::client::{Auth, UserClient};

use super::unique;
use crate::target;
use crate::world::GantryWorld;

/// The run's shared stack, or the deployed one: where the runner puts every
/// scenario before its first step, so this only says so.
#[given("a running stack")]
async fn a_running_stack(w: &mut GantryWorld) {
    assert!(!w.gateway().is_empty(), "the scenario's stack has a gateway");
}

#[given(
    regex = r"^a fresh stack with (\d+) user instances?(?: and (\d+) gateways)?(?: and sessions that last (\d+) seconds)?(?: and a request timeout of (\d+) seconds?)?$"
)]
async fn a_fresh_stack(
    w: &mut GantryWorld,
    users: usize,
    gateways: String,
    session_secs: String,
    timeout_secs: String,
) {
    let mut builder = target::builder().users(users);
    if let Ok(n) = gateways.parse() {
        builder = builder.gateways(n);
    }
    if let Ok(secs) = session_secs.parse::<u64>() {
        builder = builder.env("GANTRY_SESSION_TTL", format!("{secs}s"));
    }
    if let Ok(secs) = timeout_secs.parse::<u64>() {
        builder = builder.env("GANTRY_REQUEST_TIMEOUT", format!("{secs}s"));
        w.request_timeout = Some(Duration::from_secs(secs));
    }
    start_fresh(w, builder).await;
}

/// Starts `builder`'s stack as the scenario's own: its target from now on,
/// stopped when the scenario ends.
pub async fn start_fresh(w: &mut GantryWorld, builder: StackBuilder) {
    // Its start-up shows on stderr as it happens: a slow or stuck start is
    // visible while the run waits, not only in the error afterwards.
    let stack = builder
        .start(&mut gantry_harness::stack::print_progress("bdd: fresh stack"))
        .await
        .unwrap_or_else(|e| panic!("the fresh stack did not start: {e}"));
    w.own(stack);
}

/// A new user called `name` (made unique for this run), registered through
/// the scenario's gateway.
pub async fn register(w: &GantryWorld, name: &str) -> UserClient {
    let mut user = w.target().user(&unique(name));
    let registered = user.register().await.expect("register");
    assert_eq!(registered.status, 201, "register: {}", registered.body);
    user
}

/// Logs `name` out by `auth`, keeping a copy of what they held (cookie and
/// token) for the steps that replay it as a thief would.
pub async fn log_out(w: &mut GantryWorld, name: &str, auth: Auth) {
    log_out_via(w, name, auth, None).await;
}

/// [`log_out`] through `gateway` (the scenario's own when `None`).
pub async fn log_out_via(w: &mut GantryWorld, name: &str, auth: Auth, gateway: Option<&str>) {
    let copy = w.user(name).credentials();
    w.before.insert(name.to_owned(), copy);
    let answer = match gateway {
        None => w.user_mut(name).post("/auth/logout", auth).await,
        Some(g) => w.user(name).via(g).post("/auth/logout", auth).await,
    }
    .expect("logout");
    assert_eq!(answer.status, 204, "logout: {}", answer.body);
}

#[given(regex = r#"^a logged-in user "(\w+)"$"#)]
async fn a_logged_in_user(w: &mut GantryWorld, name: String) {
    let mut user = register(w, &name).await;
    let login = user.login().await.expect("login");
    assert_eq!(login.status, 200, "login: {}", login.body);
    assert!(
        user.token.is_some() && user.cookie.is_some(),
        "login gives a token and a session"
    );
    w.steps.users.insert(name, user);
}

#[when(regex = r#"^"(\w+)" logs in again$"#)]
async fn logs_in_again(w: &mut GantryWorld, name: String) {
    let user = w.user_mut(&name);
    let previous = user.token.clone();
    let login = user.login().await.expect("login");
    assert_eq!(login.status, 200, "{}", login.body);
    w.previous_token = previous;
}

#[when(regex = r#"^"(\w+)" logs out by session$"#)]
async fn logs_out(w: &mut GantryWorld, name: String) {
    log_out(w, &name, Auth::Session).await;
}

#[when("a new gateway starts")]
async fn a_new_gateway(w: &mut GantryWorld) {
    w.stack().add_gateway().await.expect("starting another gateway");
    w.refresh_target();
}

#[when(regex = r"^gateway (\d+) restarts$")]
async fn gateway_restarts(w: &mut GantryWorld, n: usize) {
    let name = format!("gateway-{n}");
    let stack = w.stack();
    let before = stack.pid_of(&name);
    stack
        .restart_gateway(n)
        .await
        .unwrap_or_else(|e| panic!("restarting {name}: {e}"));
    let after = stack.pid_of(&name);
    assert!(
        before.is_some() && after.is_some() && before != after,
        "{name} is a new process: pid {before:?} then {after:?}"
    );
}
