//! The hit and miss handlers of [`MemCache`](super::MemCache), and the bodies they read and
//! write.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::{Error, ErrorType, Result};
use tokio::sync::watch;

use super::{stored_copy, MemCache, Stored, Write, STORAGE_FULL};
use crate::storage::streaming_write::U64WriteId;
use crate::storage::{HandleHit, HandleMiss, HitHandler, MissFinishType, Storage};
use crate::trace::SpanHandle;
use crate::{CacheKey, CacheMeta};

/// Body chunks shorter than this are copied when stored (see `HandleMiss::write_body`): a
/// short slice of a read buffer would pin the whole buffer.
const COPY_BELOW: usize = 16 * 1024;

/// A complete body: its chunks and the offset each one ends at.
#[derive(Debug, Default)]
pub(super) struct Body {
    chunks: Vec<Bytes>,
    ends: Vec<usize>,
}

/// What a write has produced so far; shared with its readers through a watch channel.
#[derive(Debug, Default)]
pub(super) struct Progress {
    chunks: Vec<Bytes>,
    state: WriteState,
}

/// The state of a write.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum WriteState {
    /// More bytes may come.
    #[default]
    Writing,
    /// The write finished: the body is complete.
    Done,
    /// The write failed: the body is incomplete.
    Failed,
}

/// What a lookup found, taken out of the shard before the lock is released.
pub(super) enum Found {
    Complete(Arc<Stored>),
    Writing(Arc<Write>),
}

impl Found {
    pub(super) fn into_hit(self) -> (CacheMeta, HitHandler) {
        match self {
            Found::Complete(stored) => {
                let hit = CompleteHit {
                    pos: 0,
                    end: stored.body.len(),
                    body: stored.body.clone(),
                    weight: stored.weight,
                };
                (
                    stored_copy(&stored.meta),
                    Box::new(MemHitHandler::Complete(hit)),
                )
            }
            Found::Writing(write) => {
                let hit = PartialHit {
                    progress: write.progress.clone(),
                    next: 0,
                    writer_gone: false,
                };
                (
                    stored_copy(&write.meta),
                    Box::new(MemHitHandler::Partial(hit)),
                )
            }
        }
    }
}

// === impl Body ===

impl Body {
    pub(super) fn from_chunks(chunks: Vec<Bytes>) -> Self {
        let ends = chunks
            .iter()
            .scan(0, |end, chunk| {
                *end += chunk.len();
                Some(*end)
            })
            .collect();
        Body { chunks, ends }
    }

    pub(super) fn len(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// The bytes from `pos` to the end of the chunk holding `pos`, at most up to `end`.
    fn slice(&self, pos: usize, end: usize) -> Option<Bytes> {
        if pos >= end {
            return None;
        }
        // Chunks are never empty, so the first chunk ending after `pos` holds it.
        let index = self.ends.partition_point(|chunk_end| *chunk_end <= pos);
        let chunk = self.chunks.get(index)?;
        let chunk_start = self.ends[index] - chunk.len();
        let from = pos - chunk_start;
        let to = chunk.len().min(end - chunk_start);
        Some(chunk.slice(from..to))
    }
}

// === hit handlers ===

/// The hit handler of [`MemCache`]: a complete object, or a write followed as it goes.
#[derive(Debug)]
enum MemHitHandler {
    Complete(CompleteHit),
    Partial(PartialHit),
}

/// Reads a complete object, optionally a range of it.
#[derive(Debug)]
struct CompleteHit {
    body: Arc<Body>,
    pos: usize,
    end: usize,
    weight: usize,
}

/// Follows a write in progress.
#[derive(Debug)]
struct PartialHit {
    progress: watch::Receiver<Progress>,
    /// The index of the next chunk to return.
    next: usize,
    /// The writer's sender is gone: no change will come any more.
    writer_gone: bool,
}

impl CompleteHit {
    fn read(&mut self) -> Option<Bytes> {
        let bytes = self.body.slice(self.pos, self.end)?;
        self.pos += bytes.len();
        Some(bytes)
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.body.len();
        if start >= len {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek start {start} is not within the body of {len} bytes"),
            );
        }
        let end = end.map_or(len, |end| end.min(len));
        if end < start {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek end {end} is before its start {start}"),
            );
        }
        self.pos = start;
        self.end = end;
        Ok(())
    }
}

impl PartialHit {
    async fn read(&mut self) -> Result<Option<Bytes>> {
        loop {
            {
                let progress = self.progress.borrow_and_update();
                if let Some(chunk) = progress.chunks.get(self.next) {
                    self.next += 1;
                    return Ok(Some(chunk.clone()));
                }
                match progress.state {
                    WriteState::Done => return Ok(None),
                    WriteState::Failed => {
                        return Error::e_explain(
                            ErrorType::InternalError,
                            "the cache write this hit follows failed",
                        )
                    }
                    WriteState::Writing if self.writer_gone => {
                        return Error::e_explain(
                            ErrorType::InternalError,
                            "the cache writer went away before finishing",
                        )
                    }
                    WriteState::Writing => {}
                }
            }
            if self.progress.changed().await.is_err() {
                self.writer_gone = true;
            }
        }
    }
}

#[async_trait]
impl HandleHit for MemHitHandler {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            MemHitHandler::Complete(hit) => Ok(hit.read()),
            MemHitHandler::Partial(hit) => hit.read().await,
        }
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        matches!(self, MemHitHandler::Complete(_))
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        match self {
            MemHitHandler::Complete(hit) => hit.seek(start, end),
            MemHitHandler::Partial(_) => Error::e_explain(
                ErrorType::InternalError,
                "cannot seek in an object still being written",
            ),
        }
    }

    /// Reads of writes in progress are not counted: the object is not admitted yet.
    fn should_count_access(&self) -> bool {
        matches!(self, MemHitHandler::Complete(_))
    }

    fn get_eviction_weight(&self) -> usize {
        match self {
            MemHitHandler::Complete(hit) => hit.weight,
            MemHitHandler::Partial(_) => 0,
        }
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

// === miss handler ===

/// The miss handler of [`MemCache`].
#[derive(Debug)]
pub(super) struct MemMissHandler {
    cache: &'static MemCache,
    primary: u128,
    combined: u128,
    id: u64,
    tag: U64WriteId,
    sender: watch::Sender<Progress>,
    /// Bytes taken from the cache's budget: metadata and body so far.
    reserved: usize,
    eof: bool,
    /// The write finished or failed; nothing is left to undo.
    over: bool,
}

impl MemMissHandler {
    /// The handler of write `id` of slot `hashes` (primary, combined), which has reserved
    /// `reserved` bytes for its metadata.
    pub(super) fn new(
        cache: &'static MemCache,
        (primary, combined): (u128, u128),
        id: u64,
        sender: watch::Sender<Progress>,
        reserved: usize,
    ) -> Self {
        MemMissHandler {
            cache,
            primary,
            combined,
            id,
            tag: U64WriteId::from(id),
            sender,
            reserved,
            eof: false,
            over: false,
        }
    }

    /// Fails the write: readers get an error, the slot forgets it, the bytes go back.
    fn fail(&mut self) {
        if self.over {
            return;
        }
        self.over = true;
        self.sender
            .send_modify(|progress| progress.state = WriteState::Failed);
        self.cache
            .shard(self.primary)
            .write()
            .take_write(self.primary, self.combined, self.id);
        self.cache.release(self.reserved);
    }
}

#[async_trait]
impl HandleMiss for MemMissHandler {
    /// # Errors
    ///
    /// After the end of the body (`eof`) or a failure, and `Custom("MemCacheFull")` when the
    /// data does not fit; the write then fails.
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        if self.over || self.eof {
            return Error::e_explain(
                ErrorType::InternalError,
                "body written after its end or after the write failed",
            );
        }
        if !data.is_empty() {
            if !self.cache.reserve(data.len()) {
                self.fail();
                return Error::e_explain(STORAGE_FULL, "no room for the body of a new object");
            }
            self.reserved += data.len();
            // A small chunk handed over as a slice of a larger read buffer would keep the
            // whole buffer alive as long as the object is cached, beyond its weight: it gets
            // a copy of its own. Large chunks fill most of their buffer and are kept as
            // they are (no copy of large bodies).
            let owned = if data.len() < COPY_BELOW {
                Bytes::copy_from_slice(&data)
            } else {
                data
            };
            self.sender
                .send_modify(|progress| progress.chunks.push(owned));
        }
        self.eof = eof;
        Ok(())
    }

    /// The later of two finished writes of one key replaces the earlier (as in Pingora).
    ///
    /// # Errors
    ///
    /// When the write failed before, or its key was purged while it was being written (the
    /// body is then complete for its readers, but not stored).
    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        if self.over {
            return Error::e_explain(ErrorType::InternalError, "finish after a failed write");
        }
        self.over = true;
        let mut chunks = Vec::new();
        self.sender.send_modify(|progress| {
            progress.state = WriteState::Done;
            chunks = progress.chunks.clone();
        });
        let cache = self.cache;
        let mut shard = cache.shard(self.primary).write();
        let Some(write) = shard.take_write(self.primary, self.combined, self.id) else {
            drop(shard);
            cache.release(self.reserved);
            return Error::e_explain(
                ErrorType::InternalError,
                "the object was purged while it was being written",
            );
        };
        let meta = Arc::try_unwrap(write).map_or_else(|write| stored_copy(&write.meta), |w| w.meta);
        let stored = Stored {
            meta,
            body: Arc::new(Body::from_chunks(chunks)),
            weight: self.reserved,
        };
        let slot = shard.slot_mut_or_insert(self.primary, self.combined);
        if let Some(previous) = slot.complete.replace(Arc::new(stored)) {
            cache.release(previous.weight);
        }
        Ok(MissFinishType::Created(self.reserved))
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(self.tag.as_bytes())
    }
}

impl Drop for MemMissHandler {
    fn drop(&mut self) {
        self.fail();
    }
}
