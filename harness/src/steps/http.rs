//! HTTP calls: `When I POST /notes as "alice" with JSON {"note": "hi"}`,
//! and `Then GET /healthz answers 200 within 10 seconds`, which sends until
//! the status comes back (each answer is the last one for later checks).

use super::StackWorld;
use super::args::{Args, StepFuture, here, re, within};
use super::request::{Body, Call};
use crate::drive::client::{Answer, Auth};
use crate::run::wait::Deadline;
use cucumber::step::{Collection, Context};

pub(super) const METHODS: &str = "GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS";

pub(super) fn add<W: StackWorld>(steps: Collection<W>) -> Collection<W> {
    let call = format!(r"^I (?P<method>{METHODS}) (?P<target>\S+)(?P<clauses>.*)$");
    let answers = format!(
        r"^(?P<method>{METHODS}) (?P<target>\S+)(?P<clauses>.*) answers (?P<status>\d{{3}}){}$",
        within!()
    );
    steps
        .given(here!(), re(&call), call_step::<W>)
        .when(here!(), re(&call), call_step::<W>)
        .given(here!(), re(&answers), answers_step::<W>)
        .then(here!(), re(&answers), answers_step::<W>)
}

fn parse(args: &Args) -> Call {
    Call::parse(
        args.get("method"),
        args.get("target"),
        args.opt("clauses").unwrap_or_default(),
        args.step(),
    )
    .unwrap_or_else(|e| panic!("step {:?}: {e}", args.step().value))
}

fn call_step<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let call = parse(&Args::of(w, ctx));
        let answer = send(w, &call).await;
        w.step_state().record(answer);
    })
}

fn answers_step<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let call = parse(&args);
        let status: u16 = args.num("status");
        let deadline = Deadline::after(args.within());
        loop {
            let answer = send(w, &call).await;
            let done = answer.status == status;
            let said = answer.describe();
            w.step_state().record(answer);
            if done {
                return;
            }
            assert!(deadline.again().await, "expected {status}, but {said}");
        }
    })
}

/// The URL `target` names: a path goes to the gateway, a URL as it is.
pub fn url_of<W: StackWorld>(w: &W, target: &str) -> String {
    if target.starts_with('/') {
        format!("{}{target}", w.gateway_url().trim_end_matches('/'))
    } else {
        target.to_owned()
    }
}

/// How requests as `user` prove who they are: the step's choice, else the
/// scenario's for that user, else the configuration's.
pub fn auth_for<W: StackWorld>(w: &mut W, user: &str, said: Option<Auth>) -> Auth {
    let default = w.step_config().present;
    said.or_else(|| w.step_state().presents.get(user).copied())
        .unwrap_or(default)
}

/// Sends `call` and reads the answer; as a named user it carries their token
/// or cookie, and a cookie the answer sets or clears is kept, as a browser
/// would. Panics, naming the request, when nothing answers.
pub async fn send<W: StackWorld>(w: &mut W, call: &Call) -> Answer {
    let url = url_of(w, &call.target);
    let auth = match &call.user {
        Some(user) => auth_for(w, user, call.auth),
        None => Auth::Anonymous,
    };
    let ca = w.ca_cert();
    let state = w.step_state();
    let mut req = match &call.user {
        Some(user) => state.user(user).request(call.method.clone(), &url),
        None => state.http(ca.as_deref()).request(call.method.clone(), &url),
    };
    for (name, value) in &call.headers {
        req = req.header(name, value);
    }
    req = match &call.body {
        Body::None => req,
        Body::Json(json) => req.json(json),
        Body::Raw(text) => req.body(text.clone()),
    };
    let sent = match &call.user {
        Some(user) => state.user_mut(user).call(req, auth).await,
        None => Answer::send(req).await,
    };
    sent.unwrap_or_else(|e| panic!("{} {url} got no answer: {e}", call.method))
}
