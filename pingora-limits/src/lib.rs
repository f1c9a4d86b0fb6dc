//! Lock-free counters for rate limiting and concurrency limiting.
//!
//! * [`estimator::Estimator`]: a count–min sketch. It counts events per key in fixed memory,
//!   never under-counting, with plain atomic adds.
//! * [`inflight::Inflight`]: counts what is in progress per key; the [`inflight::Guard`] it hands
//!   out takes its count back when dropped.
//! * [`rate::Rate`]: events per second per key, over fixed windows of a chosen length.
//!
//! Keys are anything [`Hash`](std::hash::Hash), hashed once per call with a fast seeded
//! hasher; the seeds are random per instance, so collisions cannot be planned from outside.
//!
//! ```
//! use std::time::Duration;
//! use pingora_limits::rate::Rate;
//!
//! let rate = Rate::new(Duration::from_secs(1));
//! for _ in 0..3 {
//!     rate.observe(&"client-a", 1);
//! }
//! assert_eq!(rate.observe(&"client-a", 1), 4); // events so far in the current second
//! assert_eq!(rate.rate(&"client-a"), 0.0); // no full second has passed yet
//! ```
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod estimator;
pub mod inflight;
pub mod rate;
