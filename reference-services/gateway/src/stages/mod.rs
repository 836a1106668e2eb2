//! The stages of [`crate::proxy::Gateway::dispatch`], in the order a request
//! meets them: normalize, route, sanitize, identify, body, forward.

pub mod body;
pub mod forward;
pub mod identify;
pub mod normalize;
pub mod route;
pub mod sanitize;
