//! The hit handlers of [`DiskCache`](super::DiskCache): a complete object file read with its
//! body CRC checked, or a write in progress followed by position.

use std::any::Any;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::{Error, ErrorType, Result};
use tokio::sync::watch;

use super::format::{Fixed, Sections, FIXED_LEN, WRITING};
use super::index::{Progress, Write, WriteState};
use super::io_util::{read_at, read_exact_at};
use super::DiskCache;
use crate::key::CompactCacheKey;
use crate::memory::stored_copy;
use crate::storage::{HandleHit, HitHandler, Storage};
use crate::trace::SpanHandle;
use crate::{CacheKey, CacheMeta};

/// The most bytes one `read_body` returns.
const CHUNK: usize = 64 * 1024;

/// How many bytes a lookup reads first: the header and usually the whole metadata.
const FIRST_READ: usize = 16 * 1024;

/// What opening an object file found.
pub(super) enum Opened {
    /// A file whose header, metadata and length check out.
    Found(FoundObject),
    /// No file.
    Gone,
    /// A file that fails a check, and why.
    Corrupt(&'static str),
}

/// An opened object file.
pub(super) struct FoundObject {
    file: Arc<File>,
    fixed: Fixed,
    meta: CacheMeta,
    /// The first bytes of the body, read with the header (a small body whole): the hit's
    /// first read returns them without another trip to the blocking pool.
    prefix: Option<Vec<u8>>,
}

/// Reads and checks the fixed header and the variable sections of an object file: `Err`
/// for an IO error, `Ok(Err(reason))` when a check fails.
pub(super) fn read_head(file: &File) -> io::Result<Result<(Fixed, Vec<u8>), &'static str>> {
    Ok(read_head_and_prefix(file)?.map(|(fixed, variable, _)| (fixed, variable)))
}

/// A checked header, its variable sections, and the first bytes of the body read with them.
type HeadAndPrefix = (Fixed, Vec<u8>, Option<Vec<u8>>);

/// [`read_head`], with the first bytes of the body that the same read brought.
fn read_head_and_prefix(file: &File) -> io::Result<Result<HeadAndPrefix, &'static str>> {
    let head = read_at(file, FIRST_READ, 0)?;
    let Some(fixed) = Fixed::decode(&head) else {
        return Ok(Err("not an object header"));
    };
    if fixed.body_len == WRITING {
        return Ok(Err("an unfinished write"));
    }
    let end = FIXED_LEN + fixed.variable_len();
    let variable = match head.get(FIXED_LEN..end) {
        Some(variable) => variable.to_vec(),
        None => {
            let mut variable = vec![0u8; fixed.variable_len()];
            match read_exact_at(file, &mut variable, FIXED_LEN as u64) {
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                    return Ok(Err("truncated metadata"))
                }
                other => other?,
            }
            variable
        }
    };
    if !fixed.meta_matches(&head, &variable) {
        return Ok(Err("metadata CRC mismatch"));
    }
    if file.metadata()?.len() != fixed.file_len() {
        return Ok(Err("file length does not match its header"));
    }
    let body_start = usize::try_from(fixed.body_start()).unwrap_or(usize::MAX);
    let body_end = body_start.saturating_add(usize::try_from(fixed.body_len).unwrap_or(0));
    let prefix = head
        .get(body_start..body_end.min(head.len()))
        .filter(|prefix| !prefix.is_empty())
        .map(<[u8]>::to_vec);
    Ok(Ok((fixed, variable, prefix)))
}

/// Opens the object file at `path` expected to hold `key`.
pub(super) fn open_object(path: &Path, key: &CompactCacheKey) -> io::Result<Opened> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Opened::Gone),
        Err(err) => return Err(err),
    };
    let (fixed, variable, prefix) = match read_head_and_prefix(&file)? {
        Ok(head) => head,
        Err(reason) => return Ok(Opened::Corrupt(reason)),
    };
    if fixed.primary != key.primary || fixed.variance.as_ref() != key.variance.as_deref() {
        return Ok(Opened::Corrupt("the file holds another key"));
    }
    let Some(sections) = Sections::split(&fixed, &variable) else {
        return Ok(Opened::Corrupt("bad section lengths"));
    };
    let Ok(meta) = CacheMeta::deserialize(sections.internal, sections.header) else {
        return Ok(Opened::Corrupt("metadata that does not decode"));
    };
    Ok(Opened::Found(FoundObject {
        file: Arc::new(file),
        fixed,
        meta,
        prefix,
    }))
}

impl FoundObject {
    pub(super) fn into_hit(
        self,
        cache: &'static DiskCache,
        (primary, combined): (u128, u128),
    ) -> (CacheMeta, HitHandler) {
        let body_len = self.fixed.body_len;
        let hit = CompleteHit {
            cache,
            primary,
            combined,
            file: self.file,
            stamp: self.fixed.stamp,
            body_start: self.fixed.body_start(),
            body_len,
            body_crc: self.fixed.body_crc,
            weight: self.fixed.file_len() as usize,
            pos: 0,
            end: body_len,
            hasher: Some(crc32fast::Hasher::new()),
            broken: false,
            prefix: self.prefix,
        };
        (self.meta, Box::new(DiskHitHandler::Complete(hit)))
    }
}

/// A hit that follows `write`.
pub(super) fn follow(cache: &'static DiskCache, write: Arc<Write>) -> (CacheMeta, HitHandler) {
    let hit = PartialHit {
        cache,
        progress: write.progress.clone(),
        write: write.clone(),
        pos: 0,
        writer_gone: false,
    };
    (
        stored_copy(&write.meta),
        Box::new(DiskHitHandler::Partial(hit)),
    )
}

// === hit handlers ===

/// The hit handler of [`DiskCache`]: a complete object, or a write followed as it goes.
#[derive(Debug)]
enum DiskHitHandler {
    Complete(CompleteHit),
    Partial(PartialHit),
}

/// Reads a complete object file, optionally a range of its body.
#[derive(Debug)]
struct CompleteHit {
    cache: &'static DiskCache,
    primary: u128,
    combined: u128,
    file: Arc<File>,
    stamp: u64,
    body_start: u64,
    body_len: u64,
    body_crc: u32,
    weight: usize,
    /// The next body offset to read, and where reading stops.
    pos: u64,
    end: u64,
    /// The CRC of the body read so far, while it is read from its start without a seek.
    hasher: Option<crc32fast::Hasher>,
    /// A check failed: every later read fails too, so the body never ends cleanly.
    broken: bool,
    /// The first bytes of the body, read with the header; dropped by a seek.
    prefix: Option<Vec<u8>>,
}

/// Follows a write in progress by reading its temporary file.
#[derive(Debug)]
struct PartialHit {
    cache: &'static DiskCache,
    write: Arc<Write>,
    progress: watch::Receiver<Progress>,
    pos: u64,
    /// The writer's sender is gone: no change will come any more.
    writer_gone: bool,
}

impl CompleteHit {
    /// Reading is cancel safe: the position and CRC move only once a read returned.
    async fn read(&mut self) -> Result<Option<Bytes>> {
        if self.broken {
            return Error::e_explain(ErrorType::ReadError, "the cache object is corrupt");
        }
        if self.pos >= self.end {
            if self.pos == self.body_len {
                self.check_crc().await?;
            }
            return Ok(None);
        }
        let len = CHUNK.min((self.end - self.pos) as usize);
        let bytes = match self.prefix.take() {
            Some(prefix) if self.pos == 0 => prefix,
            _ => {
                let file = self.file.clone();
                let offset = self.body_start + self.pos;
                self.cache
                    .blocking
                    .run("read a cache object", move || read_at(&file, len, offset))
                    .await?
            }
        };
        if bytes.is_empty() {
            return self
                .corrupt("the file is shorter than its header says")
                .await;
        }
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&bytes);
        }
        self.pos += bytes.len() as u64;
        if self.pos == self.body_len {
            self.check_crc().await?;
        }
        Ok(Some(Bytes::from(bytes)))
    }

    /// Checks the body CRC once the whole body was read in order (after a seek there is
    /// nothing to check).
    async fn check_crc(&mut self) -> Result<()> {
        let matches = self
            .hasher
            .take()
            .is_none_or(|hasher| hasher.finalize() == self.body_crc);
        if matches {
            Ok(())
        } else {
            self.corrupt("body CRC mismatch").await
        }
    }

    /// Purges the object (if the index still points at this file) and fails the read.
    async fn corrupt<T>(&mut self, reason: &'static str) -> Result<T> {
        self.hasher = None;
        self.broken = true;
        log::warn!("disk cache: discarding {:032x}: {reason}", self.combined);
        self.cache
            .discard(self.primary, self.combined, self.stamp)
            .await;
        Error::e_explain(ErrorType::ReadError, reason)
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.body_len;
        let start = start as u64;
        if start >= len {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek start {start} is not within the body of {len} bytes"),
            );
        }
        let end = end.map_or(len, |end| (end as u64).min(len));
        if end < start {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek end {end} is before its start {start}"),
            );
        }
        self.hasher = None;
        self.prefix = None;
        self.pos = start;
        self.end = end;
        Ok(())
    }
}

impl PartialHit {
    async fn read(&mut self) -> Result<Option<Bytes>> {
        loop {
            let progress = *self.progress.borrow_and_update();
            if progress.state == WriteState::Failed {
                return Error::e_explain(
                    ErrorType::InternalError,
                    "the cache write this hit follows failed",
                );
            }
            if self.pos < progress.written {
                let len = CHUNK.min((progress.written - self.pos) as usize);
                let file = self.write.file.clone();
                let offset = self.write.body_start + self.pos;
                let bytes = self
                    .cache
                    .blocking
                    .run("read a cache write", move || read_at(&file, len, offset))
                    .await?;
                if bytes.is_empty() {
                    return Error::e_explain(ErrorType::ReadError, "a cache write lost its bytes");
                }
                self.pos += bytes.len() as u64;
                return Ok(Some(Bytes::from(bytes)));
            }
            match progress.state {
                WriteState::Done => return Ok(None),
                WriteState::Writing if self.writer_gone => {
                    return Error::e_explain(
                        ErrorType::InternalError,
                        "the cache writer went away before finishing",
                    )
                }
                _ => {}
            }
            if self.progress.changed().await.is_err() {
                self.writer_gone = true;
            }
        }
    }
}

#[async_trait]
impl HandleHit for DiskHitHandler {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            DiskHitHandler::Complete(hit) => hit.read().await,
            DiskHitHandler::Partial(hit) => hit.read().await,
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
        matches!(self, DiskHitHandler::Complete(_))
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        match self {
            DiskHitHandler::Complete(hit) => hit.seek(start, end),
            DiskHitHandler::Partial(_) => Error::e_explain(
                ErrorType::InternalError,
                "cannot seek in an object still being written",
            ),
        }
    }

    /// Reads of writes in progress are not counted: the object is not admitted yet.
    fn should_count_access(&self) -> bool {
        matches!(self, DiskHitHandler::Complete(_))
    }

    fn get_eviction_weight(&self) -> usize {
        match self {
            DiskHitHandler::Complete(hit) => hit.weight,
            DiskHitHandler::Partial(_) => 0,
        }
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
