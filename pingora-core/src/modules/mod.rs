//! Modules: reusable request and response filters that applications plug in.

pub mod http;
