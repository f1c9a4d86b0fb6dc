//! Helpers shared by the crate's modules.

pub mod tls;

use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;

/// The keys of [`process_hasher`], drawn once per process.
static PROCESS_HASH_KEYS: LazyLock<RandomState> = LazyLock::new(RandomState::new);

/// A SipHash hasher with secret keys drawn once per process.
///
/// Equal input hashes equally for the life of the process, which is all connection pooling
/// needs; since the keys are secret, nobody outside can craft two inputs that collide.
pub(crate) fn process_hasher() -> DefaultHasher {
    PROCESS_HASH_KEYS.build_hasher()
}
