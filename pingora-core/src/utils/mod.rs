//! Helpers shared by the crate's modules.

pub mod tls;

use std::hash::BuildHasher;
use std::sync::LazyLock;

use foldhash::quality::{FoldHasher, RandomState};

/// The seed of [`process_hasher`], drawn once per process.
static PROCESS_HASH_KEYS: LazyLock<RandomState> = LazyLock::new(RandomState::default);

/// A fast hasher with a secret seed drawn once per process (foldhash).
///
/// Equal input hashes equally for the life of the process, which is all connection pooling
/// needs; the secret seed keeps outsiders from predicting collisions. It runs twice per
/// proxied request (taking and releasing a connection), where SipHash cost about 1,500
/// instructions a request.
pub(crate) fn process_hasher() -> FoldHasher<'static> {
    PROCESS_HASH_KEYS.build_hasher()
}

/// Whether a `tracing` subscriber may want INFO spans: one relaxed load of `tracing`'s global
/// level hint. When it says no, the framework's spans are [`tracing::Span::none`] rather than
/// disabled spans, which with `tracing`'s `log` feature (on, so that events reach `log` without a
/// subscriber) would still be offered to the `log` crate field by field, per request.
#[inline]
pub fn spans_wanted() -> bool {
    tracing::level_enabled!(tracing::Level::INFO)
}
