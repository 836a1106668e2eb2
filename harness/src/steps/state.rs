//! What the library's steps remember from one step to the next, kept in the
//! team's world (see [`super::StackWorld::step_state`]).

use std::collections::HashMap;

use crate::drive::client::{Answer, Auth, UserClient, http_client};
use crate::drive::load::LoadReport;

#[derive(Debug, Default)]
pub struct StepState {
    /// The last answer: what `Then the status is …` looks at.
    pub last: Option<Answer>,
    /// Every answer since the last batch started (a step sending a batch
    /// clears it first): what `Then every answer is …` looks at.
    pub answers: Vec<Answer>,
    /// Users by the name the scenario gives them.
    pub users: HashMap<String, UserClient>,
    /// How requests as a user prove who they are, where a step chose.
    pub presents: HashMap<String, Auth>,
    /// The last load run.
    pub load: Option<LoadReport>,
    /// Fault timelines the scenario reported, for its evidence folder.
    pub timelines: Vec<crate::report::timeline::FaultTimeline>,
    http: Option<reqwest::Client>,
}

impl StepState {
    /// Remembers `answer` as the last one and one of the answers.
    pub fn record(&mut self, answer: Answer) {
        self.answers.push(answer.clone());
        self.last = Some(answer);
    }

    pub fn last(&self) -> &Answer {
        self.last
            .as_ref()
            .expect("no answer yet: a step must send a request first (When I GET /path)")
    }

    pub fn user(&self, name: &str) -> &UserClient {
        self.users.get(name).unwrap_or_else(|| {
            panic!("no user {name:?} in this scenario: register or log them in first (Given \"{name}\" is logged in)")
        })
    }

    pub fn user_mut(&mut self, name: &str) -> &mut UserClient {
        if !self.users.contains_key(name) {
            self.user(name);
        }
        self.users.get_mut(name).expect("checked above")
    }

    pub fn load(&self) -> &LoadReport {
        self.load
            .as_ref()
            .expect("no load was run: a step must send one first (When 400 requests are sent to /path with 8 concurrent callers)")
    }

    /// The client for anonymous requests, trusting `ca_cert` too (the
    /// world's [`super::StackWorld::ca_cert`]), made on first use.
    pub fn http(&mut self, ca_cert: Option<&std::path::Path>) -> reqwest::Client {
        self.http.get_or_insert_with(|| http_client(ca_cert)).clone()
    }
}
