//! The applications of the examples, shared with the tests (`tests/examples.rs`).

#![allow(dead_code, unreachable_pub)]

pub mod backoff_retry;
pub mod ctx;
pub mod gateway;
pub mod local_origin;
pub mod modify_response;
pub mod origin;
