//! Applications shared by the examples (and exercised by `tests/examples.rs`).

#![allow(dead_code, unreachable_pub)]

pub mod echo;
pub mod hello;
pub mod kv;
pub mod sni;
pub mod uptime;
