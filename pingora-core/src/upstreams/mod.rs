//! Upstreams: the servers a proxy or client connects to, and how to connect to them.

pub mod peer;
