//! Named users: registered and logged in as the configured [`LoginFlow`]
//! says (Gantry's by default), then used by `as "alice"` in other steps,
//! which present their bearer token or their session cookie.
//!
//! [`LoginFlow`]: crate::drive::client::LoginFlow

use cucumber::step::{Collection, Context};

use super::StackWorld;
use super::args::{Args, StepFuture, here, re};
use crate::drive::client::{Answer, Auth, UserClient};

pub(super) fn add<W: StackWorld>(steps: Collection<W>) -> Collection<W> {
    let register = re(r#"^a user "(?P<name>[^"]+)" with password "(?P<password>[^"]*)" is registered$"#);
    let login = re(r#"^"(?P<name>[^"]+)" (?:is logged|logs) in(?: with password "(?P<password>[^"]*)")?$"#);
    let new_user = re(r#"^a new user "(?P<name>[^"]+)" is (?P<what>registered|logged in)$"#);
    let carry = re(r#"^requests as "(?P<name>[^"]+)" carry (?:the|their) (?P<what>bearer token|session cookie)$"#);
    steps
        .given(here!(), register.clone(), registered::<W>)
        .when(here!(), register, registered::<W>)
        .given(here!(), login.clone(), logged_in::<W>)
        .when(here!(), login, logged_in::<W>)
        .given(here!(), new_user.clone(), new_user_step::<W>)
        .when(here!(), new_user, new_user_step::<W>)
        .given(here!(), carry.clone(), carry_step::<W>)
        .when(here!(), carry, carry_step::<W>)
}

fn registered<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let (name, password) = (args.get("name"), args.opt("password").unwrap_or_default());
        let (user, _) = register(w, name, password).await;
        w.step_state().users.insert(name.to_owned(), user);
    })
}

/// A user only this scenario knows: the scenario's name for them, a
/// username made unique (`alice-k3x9q2`) and a random password, so the
/// scenario runs again and again against the same stack, a deployed one
/// included, where a fixed name would be taken the second time.
fn new_user_step<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let name = args.get("name").to_owned();
        let password = format!("pw-{}", gantry_common::jwt::random_id(12));
        let (mut user, mut last) = register(w, &unique_username(&name), &password).await;
        if args.get("what") == "logged in" {
            last = log_in(&mut user, &name).await;
        }
        let state = w.step_state();
        state.users.insert(name, user);
        state.last = Some(last);
    })
}

/// Registers `username` through the world's login flow; the user and the
/// answer, which must be a 2xx.
async fn register<W: StackWorld>(w: &mut W, username: &str, password: &str) -> (UserClient, Answer) {
    let flow = w.step_config().login;
    let mut user = UserClient::with_flow(&w.gateway_url(), username, password, flow).trusting(w.ca_cert().as_deref());
    let answer = user
        .register()
        .await
        .unwrap_or_else(|e| panic!("registering {username:?} got no answer: {e}"));
    assert!(
        (200..300).contains(&answer.status),
        "registering {username:?}: {}",
        answer.describe()
    );
    (user, answer)
}

/// `name` made a username most services accept (Gantry's auth: 3 to 32 of
/// `a-z 0-9 _ . -`): lower-cased, anything else turned into `-`, cut to 25
/// characters, then a random suffix of 6 letters and digits.
pub fn unique_username(name: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let base = gantry_common::name::slug(name, 25);
    let suffix: String = (0..6)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    format!("{base}-{suffix}")
}

fn logged_in<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let name = args.get("name").to_owned();
        let gateway = w.gateway_url();
        let ca = w.ca_cert();
        let flow = w.step_config().login;
        let state = w.step_state();
        let user = match (state.users.get_mut(&name), args.opt("password")) {
            (Some(user), password) => {
                if let Some(password) = password {
                    user.password = password.to_owned();
                }
                user
            }
            (None, Some(password)) => state
                .users
                .entry(name.clone())
                .or_insert_with(|| UserClient::with_flow(&gateway, &name, password, flow).trusting(ca.as_deref())),
            (None, None) => panic!(
                "no user {name:?} in this scenario: register them first, or say their password (\"{name}\" is logged in with password \"…\")"
            ),
        };
        state.last = Some(log_in(user, &name).await);
    })
}

/// Logs `user` (the scenario's `name`) in, checking the answer gave what
/// the login flow promises (a token, a cookie); the login answer.
async fn log_in(user: &mut UserClient, name: &str) -> Answer {
    let answer = user
        .login()
        .await
        .unwrap_or_else(|e| panic!("logging {name:?} in got no answer: {e}"));
    assert_eq!(answer.status, 200, "logging {name:?} in: {}", answer.describe());
    let flow = user.flow().clone();
    assert!(
        flow.token_pointer.is_none() || user.token.is_some(),
        "the login answer has no token at {:?}: {}",
        flow.token_pointer,
        answer.describe()
    );
    assert!(
        flow.cookie_name.is_none() || user.cookie.is_some(),
        "the login answer set no {:?} cookie: {}",
        flow.cookie_name,
        answer.describe()
    );
    answer
}

fn carry_step<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let auth = match args.get("what") {
            "session cookie" => Auth::Session,
            _ => Auth::Bearer,
        };
        w.step_state().presents.insert(args.get("name").to_owned(), auth);
    })
}

#[cfg(test)]
mod tests {
    use super::unique_username;

    #[test]
    fn unique_usernames_are_ones_a_service_accepts_and_differ() {
        for name in [
            "alice",
            "Order Clerk",
            "a-very-long-scenario-name-that-goes-on-and-on",
            "é",
        ] {
            let u = unique_username(name);
            assert!((3..=32).contains(&u.len()), "{u}");
            assert!(
                u.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b)),
                "{u}"
            );
        }
        assert!(unique_username("Order Clerk").starts_with("order-clerk-"));
        assert_ne!(unique_username("alice"), unique_username("alice"));
    }
}
