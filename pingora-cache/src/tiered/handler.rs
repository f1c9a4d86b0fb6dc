//! The hit and miss handlers of [`TieredStorage`](super::TieredStorage): hits that remember
//! their tier and tee a promoted body into the front, and the write-through miss handler.

use std::any::Any;
use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::Result;

use super::{TieredOptions, TieredStorage, Writing};
use crate::key::CompactCacheKey;
use crate::storage::{HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, Storage};
use crate::trace::SpanHandle;
use crate::CacheKey;

/// The tier that serves a hit of a [`TieredStorage`](super::TieredStorage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// The memory tier.
    Front,
    /// The durable tier.
    Back,
}

/// The size a finished write reports.
pub(super) fn finished_size(finished: MissFinishType) -> usize {
    match finished {
        MissFinishType::Created(size) | MissFinishType::Appended(size, _) => size,
    }
}

// === Promotion ===

/// The copy of a back hit's body into the front, made while the client reads it.
pub(super) struct Promotion {
    miss: MissHandler,
    pub(super) key: CompactCacheKey,
    /// The stripe's generation when the back store was read.
    pub(super) generation: u64,
    written: usize,
    limit: usize,
}

impl Promotion {
    pub(super) fn new(
        key: &CacheKey,
        miss: MissHandler,
        generation: u64,
        options: &TieredOptions,
    ) -> Self {
        Promotion {
            miss,
            key: key.to_compact(),
            generation,
            written: 0,
            limit: options.max_front_object_bytes,
        }
    }

    /// Copies `chunk`; `false` when the copy is abandoned (too large, or the front refused).
    async fn write(&mut self, chunk: Bytes) -> bool {
        self.written = self.written.saturating_add(chunk.len());
        self.written <= self.limit && self.miss.write_body(chunk, false).await.is_ok()
    }

    /// Completes the front copy; its size, or `None` if the front could not store it.
    pub(super) async fn finish(self) -> Option<usize> {
        let mut miss = self.miss;
        miss.write_body(Bytes::new(), true).await.ok()?;
        miss.finish().await.ok().map(finished_size)
    }
}

// === TieredHitHandler ===

/// The hit handler of a [`TieredStorage`](super::TieredStorage): the handler of the tier
/// that serves the hit, and, for a back hit, the copy of its body into the front.
///
/// Reads, seeks and the eviction hints are the serving tier's. The copy is committed when a
/// read returns the end of the body; an error, a seek, or a handler dropped (or finished)
/// before the end abandons it, and the front keeps nothing. When the copy is committed, the
/// read that returns the end waits for the key's lock (held while another change of the key
/// is made in both tiers).
pub struct TieredHitHandler {
    storage: &'static TieredStorage,
    tier: Tier,
    inner: HitHandler,
    promotion: Option<Promotion>,
}

impl TieredHitHandler {
    pub(super) fn new(
        storage: &'static TieredStorage,
        tier: Tier,
        inner: HitHandler,
        promotion: Option<Promotion>,
    ) -> Self {
        TieredHitHandler {
            storage,
            tier,
            inner,
            promotion,
        }
    }

    /// The tier serving this hit.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Whether the body is being copied into the front (a back hit not yet read whole).
    pub fn is_promoting(&self) -> bool {
        self.promotion.is_some()
    }

    /// The serving tier's handler.
    pub fn inner(&self) -> &HitHandler {
        &self.inner
    }
}

impl fmt::Debug for TieredHitHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredHitHandler")
            .field("tier", &self.tier)
            .field("promoting", &self.is_promoting())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl HandleHit for TieredHitHandler {
    /// # Cancel safety
    ///
    /// As the serving tier's: copying a chunk to the front does not suspend. A future
    /// dropped while it commits a promotion abandons the promotion.
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        let chunk = match self.inner.read_body().await {
            Ok(chunk) => chunk,
            Err(e) => {
                self.promotion = None;
                return Err(e);
            }
        };
        match &chunk {
            Some(bytes) => {
                if let Some(promotion) = self.promotion.as_mut() {
                    if !promotion.write(bytes.clone()).await {
                        self.promotion = None;
                    }
                }
            }
            None => {
                if let Some(promotion) = self.promotion.take() {
                    let trace = SpanHandle::default();
                    self.storage.commit_promotion(promotion, &trace).await;
                }
            }
        }
        Ok(chunk)
    }

    /// Finishes the serving tier's handler, with that tier as its storage.
    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        key: &CacheKey,
        trace: &SpanHandle,
    ) -> Result<()> {
        let storage: &'static (dyn Storage + Sync) = match self.tier {
            Tier::Front => self.storage.front,
            Tier::Back => self.storage.back,
        };
        self.inner.finish(storage, key, trace).await
    }

    fn can_seek(&self) -> bool {
        self.inner.can_seek()
    }

    fn can_seek_multipart(&self) -> bool {
        self.inner.can_seek_multipart()
    }

    /// Seeks in the serving tier; a promotion is abandoned (the body is not read whole).
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        self.promotion = None;
        self.inner.seek(start, end)
    }

    /// As [`seek`](Self::seek).
    fn seek_multipart(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        self.promotion = None;
        self.inner.seek_multipart(start, end)
    }

    fn should_count_access(&self) -> bool {
        self.inner.should_count_access()
    }

    fn get_eviction_weight(&self) -> usize {
        self.inner.get_eviction_weight()
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

// === TeeMissHandler ===

/// The write-through miss handler: every chunk goes to the back store, and to the front
/// while the front takes it.
pub(super) struct TeeMissHandler {
    storage: &'static TieredStorage,
    key: CompactCacheKey,
    back: MissHandler,
    front: Option<MissHandler>,
    written: usize,
    /// Registers the write, so that lookups follow the back store's write; dropped when the
    /// handler is.
    _writing: Writing,
}

impl TeeMissHandler {
    pub(super) fn new(
        storage: &'static TieredStorage,
        key: &CacheKey,
        writing: Writing,
        back: MissHandler,
        front: Option<MissHandler>,
    ) -> Self {
        TeeMissHandler {
            storage,
            key: key.to_compact(),
            back,
            front,
            written: 0,
            _writing: writing,
        }
    }
}

#[async_trait]
impl HandleMiss for TeeMissHandler {
    /// # Errors
    ///
    /// The back store's error: the write has failed. The front's errors only drop its copy.
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        self.written = self.written.saturating_add(data.len());
        let front_data = self.front.is_some().then(|| data.clone());
        if let Err(e) = self.back.write_body(data, eof).await {
            self.front = None;
            return Err(e);
        }
        if let (Some(front), Some(data)) = (self.front.as_mut(), front_data) {
            let fits = self.written <= self.storage.options.max_front_object_bytes;
            if !fits || front.write_body(data, eof).await.is_err() {
                // Dropping the front's handler fails its write: nothing stays in the front.
                self.front = None;
            }
        }
        Ok(())
    }

    /// Finishes the back store's write, then, if it succeeded, the front copy, which the
    /// admission policy may turn away. Returns the back store's result.
    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let TeeMissHandler {
            storage,
            key,
            back,
            front,
            _writing,
            ..
        } = *self;
        storage.finish_write(&key, back, front).await
    }

    /// The back store's tag: [`lookup_streaming_write`] looks it up in the back store.
    ///
    /// [`lookup_streaming_write`]: Storage::lookup_streaming_write
    fn streaming_write_tag(&self) -> Option<&[u8]> {
        self.back.streaming_write_tag()
    }
}
