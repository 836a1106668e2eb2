//! Whether an instance gets traffic: `Then GET /hello as "fay" is answered
//! by instance 2 of "greeter" within 30 seconds` sends the request until
//! that instance answers it with a 2xx (by the header
//! [`StepConfig::instance_header`] names). What a team checks after an
//! instance comes back: passing in the registry is not yet in the gateway's
//! snapshot, nor out of its ejection backoff.
//!
//! [`StepConfig::instance_header`]: super::StepConfig::instance_header

use cucumber::step::{Collection, Context};

use super::StackWorld;
use super::args::{Args, StepFuture, here, re, within};
use super::faults::faults_of;
use super::http::{METHODS, send};
use super::request::Call;
use crate::run::wait::Deadline;

pub(super) fn add<W: StackWorld>(steps: Collection<W>) -> Collection<W> {
    let pattern = format!(
        r#"^(?P<method>{METHODS}) (?P<target>\S+)(?P<clauses>.*) is answered by instance (?P<n>\d+) of "(?P<service>[^"]+)"{}$"#,
        within!()
    );
    steps.then(here!(), re(&pattern), answered_by::<W>)
}

fn answered_by<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let call = Call::parse(
            args.get("method"),
            args.get("target"),
            args.opt("clauses").unwrap_or_default(),
            args.step(),
        )
        .unwrap_or_else(|e| panic!("step {:?}: {e}", args.step().value));
        let id = faults_of(w)
            .instance_id(args.get("service"), args.num("n"))
            .unwrap_or_else(|e| panic!("{e}"));
        let header = w.step_config().instance_header;
        let deadline = Deadline::after(args.within());
        loop {
            let answer = send(w, &call).await;
            let by = answer.header(&header).map(str::to_owned);
            let said = answer.describe();
            let done = answer.status / 100 == 2 && by.as_deref() == Some(id.as_str());
            w.step_state().record(answer);
            if done {
                return;
            }
            assert!(
                deadline.again().await,
                "expected a 2xx from {id}, but {header} is {by:?}: {said}"
            );
        }
    })
}
