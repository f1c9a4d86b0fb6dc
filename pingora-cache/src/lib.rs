//! HTTP caching for Pingora: the pure, sans-IO building blocks of a shared cache that keeps
//! the rules of RFC 9111 by default.
//!
//! What exists so far:
//!
//! * [`key`]: [`CacheKey`] and its 128-bit Blake2b hashes.
//! * [`cache_control`]: `Cache-Control` parsing and its reading by a shared cache.
//!
//! Storage, the cache lock, eviction, the predictor, the `HttpCache` state machine and the
//! proxy integration are still to come (see the crate README).
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cache_control;
pub mod key;

pub use key::{CacheKey, CompactCacheKey, HashBinary};
