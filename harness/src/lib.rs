//! The Gantry harness: starts a stack (infrastructure and services as real
//! processes), breaks it on purpose, and drives it. Also home of the dev
//! registry, the Consul-compatible registry used when no Consul is at hand.

pub mod registry;
