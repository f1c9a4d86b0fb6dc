//! HTTP caching for Pingora: a shared cache that keeps the rules of RFC 9111 by default.
//!
//! [`HttpCache`] is the cache state of one request, which the proxy (`pingora-proxy`) moves
//! through its [`CachePhase`]s; a proxy turns it on in `request_cache_filter` (see
//! `docs/user_guide/cache.md`). The parts:
//!
//! * [`key`]: [`CacheKey`] and its 128-bit Blake2b hashes.
//! * [`cache_control`]: `Cache-Control` parsing and its reading by a shared cache.
//! * [`filters`]: may a response be stored, for how long, how long may it be served stale;
//!   Pingora's functions, and the stricter [`filters::default_policy`] with the age of a
//!   response ([`filters::age`]).
//! * [`meta`]: [`CacheMeta`], the stored metadata of a response, and [`CacheMetaDefaults`].
//! * [`variance`]: the secondary key of responses with `Vary` ([`VarianceBuilder`]).
//! * [`range`] and [`conditional`]: range and conditional requests answered from the cache,
//!   and revalidation with a 304.
//! * [`cache_status`]: the `Cache-Status` field (RFC 9211).
//! * [`RespCacheable`], [`NoCacheReason`], [`HitStatus`], [`ForcedFreshness`].
//! * [`storage`]: the [`Storage`] interface with streaming partial writes, and
//!   [`MemCache`], the in-memory storage, and [`DiskCache`], the disk storage that survives
//!   restarts; [`trace`]: the span handle storage calls take.
//! * [`tiered`]: [`TieredStorage`], a [`MemCache`] in front of a durable storage
//!   (write-through, promotion of back hits by a TinyUFO admission policy).
//! * [`lock`]: the cache lock ([`lock::CacheLock`]): one writer per key, readers wait for it,
//!   bounded by the writer's age and each reader's wait timeout.
//! * [`eviction`]: [`eviction::EvictionManager`] and managers on `pingora-lru`, the `lru`
//!   crate and TinyUFO, with their state saved and loaded.
//! * [`predictor`]: remembers keys recently found uncacheable.
//! * [`put`]: stores a response outside the proxy path ([`put::CachePutCtx`]).
//!
//! # Time
//!
//! Every decision that depends on the time takes it as an argument (`now`, `response_time`),
//! so tests are deterministic; only the Pingora-compatible conveniences
//! ([`filters::resp_cacheable`], [`CacheMeta::age`]) read the system clock.
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cache_control;
pub mod cache_status;
pub mod conditional;
mod disk;
pub mod eviction;
pub mod filters;
pub mod hashtable;
mod http_cache;
pub mod key;
pub mod lock;

/// The object size limit's error, under Pingora's path.
pub mod max_file_size {
    pub use crate::put::ERR_RESPONSE_TOO_LARGE;
}
mod memory;
pub mod meta;
pub mod predictor;
pub mod put;
pub mod range;
mod status;
pub mod storage;
pub mod tiered;
pub mod trace;
pub mod variance;

pub use disk::{DiskCache, DiskCacheOptions, FsyncPolicy, RebuildStats, DISK_CACHE_LOCKED};
pub use http_cache::{
    purge_key, CachePhase, EvictionRef, HttpCache, HttpCacheDigest, HttpCacheOptions, LockCtx,
    PredictorRef, StorageRef, DEFAULT_MAX_RANGES,
};
pub use key::{CacheKey, CompactCacheKey, HashBinary};
pub use lock::CacheOptionOverrides;
pub use memory::MemCache;
pub use meta::{set_compression_dict_content, set_compression_dict_path};
pub use meta::{CacheMeta, CacheMetaDefaults};
pub use status::{ForcedFreshness, HitStatus, NoCacheReason, RespCacheable};
pub use storage::{HitHandler, MissHandler, PurgeType, Storage};
pub use tiered::{TieredOptions, TieredStorage};
pub use variance::VarianceBuilder;

/// Helpers shared by the crate's unit tests.
#[cfg(test)]
pub(crate) mod test_util {
    use http::{HeaderMap, HeaderName};

    /// A header map holding `fields` in order (repeated names appended).
    pub(crate) fn header_map(fields: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }
}
