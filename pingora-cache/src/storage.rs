//! The storage interface of the cache: where responses are kept, how they are read back
//! ([`HandleHit`]) and how they are written ([`HandleMiss`]).
//!
//! A [`Storage`] is shared by every request (`&'static`). A lookup returns the stored
//! [`CacheMeta`] and a [`HitHandler`] that reads the body; a miss asks for a
//! [`MissHandler`], writes the body into it and calls [`HandleMiss::finish`]. A miss handler
//! dropped before `finish` means the write failed: the storage must not keep a partial
//! object.
//!
//! Storages that support *streaming partial writes*
//! ([`Storage::support_streaming_partial_write`]) make an object visible to lookups while it
//! is being written: the hit handler follows the write and waits for more bytes. If that
//! write then fails, the hit handler must end with an error, never with a clean end of body,
//! so that a truncated object is never served as a whole one.
//!
//! [`MemCache`](crate::MemCache) is the in-memory implementation.

use std::any::Any;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::{Error, ErrorType, Result};

use crate::key::CompactCacheKey;
use crate::trace::SpanHandle;
use crate::{CacheKey, CacheMeta};

/// Why [`Storage::purge`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeType {
    /// The eviction manager made room: the storage is full.
    Eviction,
    /// The object was invalidated (a purge request, an unsafe method on its URI).
    Invalidation,
}

/// A cache storage backend.
///
/// Methods take `&'static self` because handlers may keep a reference to the storage for
/// as long as they live.
#[async_trait]
pub trait Storage {
    /// Looks up `key` (its combined hash: primary and variance). Returns the metadata and a
    /// handler to read the body, or `None` on a miss.
    ///
    /// # Errors
    ///
    /// When the storage fails; the caller treats it as a miss it may not fill.
    async fn lookup(
        &'static self,
        key: &CacheKey,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>>;

    /// Looks up `key`, preferring the in-progress write tagged `streaming_write_tag` (see
    /// [`HandleMiss::streaming_write_tag`]).
    ///
    /// The request that writes an object reads its own write back through this call. With a
    /// tag, an implementation returns a handler for exactly that write, or `None`: never
    /// another writer's body. The default ignores the tag and calls
    /// [`lookup`](Self::lookup).
    ///
    /// # Errors
    ///
    /// As [`lookup`](Self::lookup).
    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let _ = streaming_write_tag;
        self.lookup(key, trace).await
    }

    /// Starts writing the object of `key` with metadata `meta`; the body is written through
    /// the returned handler.
    ///
    /// # Errors
    ///
    /// When the storage cannot take the object (for example it is full).
    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &SpanHandle,
    ) -> Result<MissHandler>;

    /// Removes the object of `key`. Returns whether something was removed.
    ///
    /// The key is a [`CompactCacheKey`] because that is what eviction managers keep.
    ///
    /// # Errors
    ///
    /// When the storage fails.
    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        trace: &SpanHandle,
    ) -> Result<bool>;

    /// Replaces the metadata of the stored object of `key` (after a revalidation). Returns
    /// whether an object was updated.
    ///
    /// # Errors
    ///
    /// When the storage fails.
    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &SpanHandle,
    ) -> Result<bool>;

    /// Whether lookups see objects while they are being written (see the module docs). The
    /// cache lock releases its readers early when this is true. Defaults to `false`.
    fn support_streaming_partial_write(&self) -> bool {
        false
    }

    /// The storage as [`Any`], to reach the concrete type.
    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static);
}

/// Reads the body of a cache hit.
#[async_trait]
pub trait HandleHit {
    /// The next piece of the body, `None` at its end.
    ///
    /// # Errors
    ///
    /// When the body cannot be read, including when the write a handler follows failed: the
    /// body is then incomplete and must not be served as whole.
    async fn read_body(&mut self) -> Result<Option<Bytes>>;

    /// Ends the hit.
    ///
    /// # Errors
    ///
    /// When the storage fails to close the hit.
    async fn finish(
        self: Box<Self>,
        storage: &'static (dyn Storage + Sync),
        key: &CacheKey,
        trace: &SpanHandle,
    ) -> Result<()>;

    /// Whether [`seek`](Self::seek) works on this hit. Defaults to `false`.
    fn can_seek(&self) -> bool {
        false
    }

    /// Whether [`seek_multipart`](Self::seek_multipart) works on this hit. Defaults to
    /// [`can_seek`](Self::can_seek).
    fn can_seek_multipart(&self) -> bool {
        self.can_seek()
    }

    /// Restricts the following reads to the bytes `start..end` of the body (`end: None`: to
    /// its end). An `end` past the body is clamped to it.
    ///
    /// # Errors
    ///
    /// When seeking is not supported (the default) or `start` is not within the body.
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let _ = (start, end);
        Error::e_explain(ErrorType::InternalError, "this hit handler cannot seek")
    }

    /// [`seek`](Self::seek) for one part of a multipart range response: it may be called
    /// once per part, each time after the previous part was read. Defaults to `seek`.
    ///
    /// # Errors
    ///
    /// As [`seek`](Self::seek).
    fn seek_multipart(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        self.seek(start, end)
    }

    /// Whether this hit counts as an access for the eviction manager. Defaults to `true`.
    fn should_count_access(&self) -> bool {
        true
    }

    /// The weight of this object for the eviction manager, used when the manager does not
    /// track it yet. Defaults to 0.
    fn get_eviction_weight(&self) -> usize {
        0
    }

    /// The handler as [`Any`], to reach the concrete type.
    fn as_any(&self) -> &(dyn Any + Send + Sync);

    /// The handler as mutable [`Any`], to reach the concrete type.
    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync);
}

/// A boxed [`HandleHit`].
pub type HitHandler = Box<dyn HandleHit + Sync + Send>;

/// What [`HandleMiss::finish`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissFinishType {
    /// A new object of this size (bytes, as the eviction manager should weigh it).
    Created(usize),
    /// Bytes appended to an existing object, and the object's maximum size if known.
    Appended(usize, Option<usize>),
}

/// Writes the body of a cache miss into the storage.
///
/// Dropping the handler without calling [`finish`](Self::finish) fails the write: nothing is
/// stored, and readers following the write end with an error.
#[async_trait]
pub trait HandleMiss {
    /// Appends `data` to the body; `eof` says it is the last piece.
    ///
    /// # Errors
    ///
    /// When the storage cannot take the data (for example it is full); the write has failed.
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()>;

    /// Completes the write: the object becomes a complete, stored object.
    ///
    /// # Errors
    ///
    /// When the object could not be stored.
    async fn finish(self: Box<Self>) -> Result<MissFinishType>;

    /// A tag naming this write, for [`Storage::lookup_streaming_write`]. Defaults to `None`.
    fn streaming_write_tag(&self) -> Option<&[u8]> {
        None
    }
}

/// A boxed [`HandleMiss`].
pub type MissHandler = Box<dyn HandleMiss + Sync + Send>;

/// Fixed-size write ids for [`HandleMiss::streaming_write_tag`]: an integer kept as its
/// big-endian bytes, so that the tag can be borrowed as `&[u8]`.
pub mod streaming_write {
    use std::array::TryFromSliceError;

    /// A 64-bit write id.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct U64WriteId([u8; 8]);

    impl U64WriteId {
        /// The id as a write tag.
        pub fn as_bytes(&self) -> &[u8] {
            &self.0
        }
    }

    impl From<u64> for U64WriteId {
        fn from(value: u64) -> Self {
            U64WriteId(value.to_be_bytes())
        }
    }

    impl From<U64WriteId> for u64 {
        fn from(value: U64WriteId) -> Self {
            u64::from_be_bytes(value.0)
        }
    }

    impl TryFrom<&[u8]> for U64WriteId {
        type Error = TryFromSliceError;

        fn try_from(value: &[u8]) -> Result<Self, Self::Error> {
            Ok(U64WriteId(value.try_into()?))
        }
    }

    /// A 32-bit write id.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct U32WriteId([u8; 4]);

    impl U32WriteId {
        /// The id as a write tag.
        pub fn as_bytes(&self) -> &[u8] {
            &self.0
        }
    }

    impl From<u32> for U32WriteId {
        fn from(value: u32) -> Self {
            U32WriteId(value.to_be_bytes())
        }
    }

    impl From<U32WriteId> for u32 {
        fn from(value: U32WriteId) -> Self {
            u32::from_be_bytes(value.0)
        }
    }

    impl TryFrom<&[u8]> for U32WriteId {
        type Error = TryFromSliceError;

        fn try_from(value: &[u8]) -> Result<Self, Self::Error> {
            Ok(U32WriteId(value.try_into()?))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn ids_round_trip_through_their_bytes() {
            let id = U64WriteId::from(0x0102_0304_0506_0708);
            assert_eq!(id.as_bytes(), &[1, 2, 3, 4, 5, 6, 7, 8]);
            assert_eq!(
                u64::from(U64WriteId::try_from(id.as_bytes()).unwrap()),
                0x0102_0304_0506_0708
            );
            assert!(U64WriteId::try_from(&[1u8, 2][..]).is_err());

            let id = U32WriteId::from(7);
            assert_eq!(u32::from(U32WriteId::try_from(id.as_bytes()).unwrap()), 7);
            assert!(U32WriteId::try_from(id.as_bytes().get(..3).unwrap()).is_err());
        }
    }
}
