//! Running things: a program as a process, an image as a container, either
//! as a [`component::Component`] a test can break, free ports, waiting for
//! readiness, the `gantry` executable and the stack's TLS material. Knows
//! nothing of stacks.

pub mod binary;
pub mod component;
pub mod containers;
pub mod ports;
pub mod process;
pub mod relay;
pub mod tls;
pub mod wait;
