//! What differs from one team's stack to another's, for the library's steps.

use crate::drive::client::{Auth, LoginFlow};
use crate::drive::load::DEFAULT_INSTANCE_HEADER;
use crate::report::stats::DEFAULT_SIGNIFICANCE;

/// How requests "as" a user prove who they are unless a step says otherwise:
/// a token is what any API client holds.
pub const DEFAULT_PRESENT: Auth = Auth::Bearer;

/// The team's conventions. [`Default`] is Gantry's: login at `/auth/login`
/// with `username`/`password`, the token at `/access_token`, the `SESSION`
/// cookie, the instance in `X-Instance-Id`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepConfig {
    /// Registration and login: paths, field names, token and cookie.
    pub login: LoginFlow,
    /// How requests as a user prove who they are ([`DEFAULT_PRESENT`]),
    /// unless a step (`requests as "alice" carry …`, `by session`) says.
    pub present: Auth,
    /// The answer header that names the instance that answered
    /// ([`DEFAULT_INSTANCE_HEADER`]), for the spread and fault checks.
    pub instance_header: String,
    /// The significance of the even-spread test ([`DEFAULT_SIGNIFICANCE`]).
    pub significance: f64,
}

impl Default for StepConfig {
    fn default() -> Self {
        Self {
            login: LoginFlow::default(),
            present: DEFAULT_PRESENT,
            instance_header: DEFAULT_INSTANCE_HEADER.to_owned(),
            significance: DEFAULT_SIGNIFICANCE,
        }
    }
}
