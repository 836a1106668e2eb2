//! The stages of [`crate::proxy::Gateway::dispatch`], in the order a request
//! meets them: route, sanitize, identify, body, forward.

pub mod body;
pub mod forward;
pub mod identify;
pub mod route;
pub mod sanitize;
