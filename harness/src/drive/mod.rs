//! Driving a stack from outside: users and raw HTTP clients, load, echo
//! upstreams, nginx as a comparison proxy, the gateway's metrics, Redis's
//! command counts.

pub mod client;
pub mod echo;
pub mod load;
pub mod metrics;
pub mod nginx;
pub mod raw;
pub mod redis_stats;
