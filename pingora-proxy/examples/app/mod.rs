//! The applications of the examples, shared with the tests (`tests/examples.rs`).

#![allow(dead_code, unreachable_pub)]

pub mod access_log;
pub mod backoff_retry;
pub mod cache;
pub mod connection_filter;
pub mod ctx;
pub mod gateway;
pub mod load_balancer;
pub mod local_origin;
pub mod modify_response;
pub mod multi_lb;
pub mod origin;
pub mod rate_limiter;
pub mod use_module;
pub mod virtual_l4;
