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
