//! Writing objects of [`DiskCache`](super::DiskCache): the miss handler, which streams a body
//! into a temporary file and renames it into place, and the metadata rewrite of
//! `update_meta`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::{Error, ErrorType, Result};
use tokio::sync::watch;

use super::format::{Fixed, FIXED_LEN};
use super::handler::read_head;
use super::index::{Entry, Progress, WriteState};
use super::io_util::recreating_parent;
use super::io_util::{self, remove_file, sync_dir};
use super::{DiskCache, OBJECT_TOO_LARGE, STORAGE_FULL};
use crate::key::CompactCacheKey;
use crate::storage::streaming_write::U64WriteId;
use crate::storage::{HandleMiss, MissFinishType};

/// The miss handler of [`DiskCache`].
#[derive(Debug)]
pub(super) struct DiskMissHandler {
    cache: &'static DiskCache,
    primary: u128,
    combined: u128,
    key: CompactCacheKey,
    fixed: Fixed,
    /// The variable sections (user tag and metadata), kept to recompute the meta CRC.
    variable: Vec<u8>,
    file: Arc<File>,
    tag: U64WriteId,
    /// Shared with the commit, which outlives the handler if `finish` is cancelled.
    sender: Arc<watch::Sender<Progress>>,
    hasher: crc32fast::Hasher,
    written: u64,
    /// Bytes taken from the cache's budget: the file so far.
    reserved: usize,
    eof: bool,
    /// The write finished or failed; nothing is left to undo.
    over: bool,
}

/// How a commit ended.
enum Committed {
    /// The file is in place.
    Stored,
    /// The key was purged during the write: nothing is stored.
    Purged,
}

impl DiskMissHandler {
    pub(super) fn new(
        cache: &'static DiskCache,
        (primary, combined): (u128, u128),
        key: CompactCacheKey,
        (fixed, variable): (Fixed, Vec<u8>),
        file: Arc<File>,
        sender: watch::Sender<Progress>,
    ) -> Self {
        DiskMissHandler {
            cache,
            primary,
            combined,
            key,
            tag: U64WriteId::from(fixed.stamp),
            reserved: FIXED_LEN + variable.len(),
            fixed,
            variable,
            file,
            sender: Arc::new(sender),
            hasher: crc32fast::Hasher::new(),
            written: 0,
            eof: false,
            over: false,
        }
    }

    /// Fails the write: readers get an error, the index forgets it, the bytes go back; the
    /// temporary file is removed in the background.
    fn fail(&mut self) {
        if self.over {
            return;
        }
        self.over = true;
        self.sender
            .send_modify(|progress| progress.state = WriteState::Failed);
        self.cache.shard(self.primary).write().take_write(
            self.primary,
            self.combined,
            self.fixed.stamp,
        );
        self.cache.release(self.reserved);
        let cache = self.cache;
        let path = cache.layout.tmp_path(self.fixed.stamp);
        let remove = async move {
            let removed = cache
                .blocking
                .run("remove a cache temporary file", move || remove_file(&path))
                .await;
            if let Err(err) = removed {
                log::warn!("disk cache: {err}");
            }
        };
        // Outside a runtime (a handler dropped at shutdown) the file stays: the open at
        // the next start removes it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(remove);
        }
    }

    /// Rewrites the header with the body's length and CRC, syncs, and renames the file into
    /// place with the shard lock held. The blocking task does all the bookkeeping of the
    /// outcome (budget, temporary file, readers' state), so a `finish` cancelled while it
    /// runs leaves nothing half done.
    async fn commit(&mut self) -> Result<Committed> {
        self.over = true;
        self.fixed.body_len = self.written;
        self.fixed.body_crc = self.hasher.clone().finalize();
        let job = Commit {
            header: self.fixed.encode(&self.variable),
            cache: self.cache,
            primary: self.primary,
            combined: self.combined,
            entry: Entry {
                stamp: self.fixed.stamp,
                size: self.reserved,
                key: self.key.clone(),
            },
            file: self.file.clone(),
        };
        let sender = self.sender.clone();
        self.cache
            .blocking
            .run("store a cache object", move || {
                let (cache, size, stamp) = (job.cache, job.entry.size, job.entry.stamp);
                let (primary, combined) = (job.primary, job.combined);
                let tmp = cache.layout.tmp_path(stamp);
                let result = job.run();
                if result.is_err() {
                    // The failure may have come before the write left the index.
                    cache
                        .shard(primary)
                        .write()
                        .take_write(primary, combined, stamp);
                }
                let state = match &result {
                    Ok(Committed::Stored) => WriteState::Done,
                    Ok(Committed::Purged) => WriteState::Done,
                    Err(_) => WriteState::Failed,
                };
                if !matches!(result, Ok(Committed::Stored)) {
                    cache.release(size);
                    let _ = remove_file(&tmp);
                }
                sender.send_modify(|progress| progress.state = state);
                result
            })
            .await
    }
}

/// What a commit needs, moved to the blocking pool.
struct Commit {
    header: [u8; FIXED_LEN],
    cache: &'static DiskCache,
    primary: u128,
    combined: u128,
    entry: Entry,
    file: Arc<File>,
}

impl Commit {
    /// Errors happen only before the entry is in the index (a failed directory sync after
    /// the rename is logged: the object is in place).
    fn run(self) -> io::Result<Committed> {
        let Commit {
            header,
            cache,
            primary,
            combined,
            entry,
            file,
        } = self;
        file.write_all_at(&header, 0)?;
        let fsync = cache.options.fsync;
        if fsync == super::FsyncPolicy::Always {
            file.sync_all()?;
        }
        let tmp = cache.layout.tmp_path(entry.stamp);
        let path = cache.layout.object_path(combined);
        {
            let mut shard = cache.shard(primary).write();
            if shard.take_write(primary, combined, entry.stamp).is_none() {
                return Ok(Committed::Purged);
            }
            if cache.is_read_only() {
                // The directory was handed over: this write stores nothing.
                return Ok(Committed::Purged);
            }
            recreating_parent(&path, || fs::rename(&tmp, &path))?;
            let slot = shard.slot_mut_or_insert(primary, combined);
            if let Some(previous) = slot.complete.replace(entry) {
                cache.release(previous.size);
            }
        }
        if let Some(dir) = path.parent() {
            if let Err(err) = sync_dir(dir, fsync) {
                log::warn!("disk cache: syncing {}: {err}", dir.display());
            }
        }
        Ok(Committed::Stored)
    }
}

#[async_trait]
impl HandleMiss for DiskMissHandler {
    /// # Errors
    ///
    /// After the end of the body (`eof`) or a failure; `Custom("DiskCacheFull")` or
    /// `Custom("DiskCacheObjectTooLarge")` when the data does not fit, `DiskCacheIo` when
    /// the file cannot be written (a full disk included). The write then fails.
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        if self.over || self.eof {
            return Error::e_explain(
                ErrorType::InternalError,
                "body written after its end or after the write failed",
            );
        }
        if !data.is_empty() {
            let len = data.len();
            if self.reserved.saturating_add(len) > self.cache.options.max_object_bytes {
                self.fail();
                return Error::e_explain(OBJECT_TOO_LARGE, "the object exceeds the object limit");
            }
            if !self.cache.reserve(len) {
                self.fail();
                return Error::e_explain(STORAGE_FULL, "no room for the body of a new object");
            }
            self.reserved += len;
            let file = self.file.clone();
            let offset = self.fixed.body_start() + self.written;
            let chunk = data.clone();
            let result = self
                .cache
                .blocking
                .run("write a cache object", move || {
                    file.write_all_at(&chunk, offset)
                })
                .await;
            if let Err(err) = result {
                self.fail();
                return Err(err);
            }
            self.hasher.update(&data);
            self.written += len as u64;
            let written = self.written;
            self.sender
                .send_modify(|progress| progress.written = written);
        }
        self.eof = eof;
        Ok(())
    }

    /// The later of two finished writes of one key replaces the earlier.
    ///
    /// # Errors
    ///
    /// When the write failed before, the file could not be stored, or its key was purged
    /// while it was being written (the body is then complete for its readers, but not
    /// stored).
    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        if self.over {
            return Error::e_explain(ErrorType::InternalError, "finish after a failed write");
        }
        match self.commit().await? {
            Committed::Stored => Ok(MissFinishType::Created(self.reserved)),
            Committed::Purged => Error::e_explain(
                ErrorType::InternalError,
                "the object was purged while it was being written",
            ),
        }
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(self.tag.as_bytes())
    }
}

impl Drop for DiskMissHandler {
    fn drop(&mut self) {
        self.fail();
    }
}

// === update_meta ===

/// Writes a new file for `key` with the metadata `(internal, header)` and the body of the
/// current file, and renames it into place if the index still points at the file copied.
pub(super) async fn rewrite_meta(
    cache: &'static DiskCache,
    key: CompactCacheKey,
    (primary, combined): (u128, u128),
    internal: Vec<u8>,
    header: Vec<u8>,
) -> Result<bool> {
    let variable = [key.user_tag.as_bytes(), &internal, &header].concat();
    let internal_len = super::section_len(internal.len())?;
    let header_len = super::section_len(header.len())?;
    let stamp = super::format::next_stamp();
    let copied = cache
        .blocking
        .run("copy a cache object", move || {
            copy_with_meta(cache, combined, stamp, (internal_len, header_len), variable)
        })
        .await?;
    let Some((old_stamp, new_size)) = copied else {
        return Ok(false);
    };
    let tmp = cache.layout.tmp_path(stamp);
    let fsync = cache.options.fsync;
    let replaced = cache
        .blocking
        .run("replace a cache object", move || {
            let path = cache.layout.object_path(combined);
            {
                let mut shard = cache.shard(primary).write();
                let old_size = shard.entry_with_stamp(combined, old_stamp).map(|e| e.size);
                let outcome = match old_size {
                    None => Replaced::Gone,
                    Some(old) if new_size > old && !cache.reserve(new_size - old) => Replaced::Full,
                    Some(old) => {
                        recreating_parent(&path, || fs::rename(&tmp, &path))?;
                        cache.release(old.saturating_sub(new_size));
                        let slot = shard.slot_mut_or_insert(primary, combined);
                        slot.complete = Some(Entry {
                            stamp,
                            size: new_size,
                            key,
                        });
                        Replaced::Yes
                    }
                };
                if outcome != Replaced::Yes {
                    drop(shard);
                    remove_file(&tmp)?;
                    return Ok(outcome);
                }
            }
            if let Some(dir) = path.parent() {
                sync_dir(dir, fsync)?;
            }
            Ok(Replaced::Yes)
        })
        .await?;
    match replaced {
        Replaced::Yes => Ok(true),
        Replaced::Gone => Ok(false),
        Replaced::Full => Error::e_explain(STORAGE_FULL, "no room for the updated metadata"),
    }
}

/// How the last step of `update_meta` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replaced {
    Yes,
    /// The object was replaced or purged during the copy.
    Gone,
    /// The larger file does not fit.
    Full,
}

/// Copies the object file of `combined` into a new temporary file with new variable
/// sections. Returns the stamp of the file copied and the new file's length, or `None`
/// when there is no valid file to copy.
fn copy_with_meta(
    cache: &DiskCache,
    combined: u128,
    stamp: u64,
    (internal_len, header_len): (u32, u32),
    variable: Vec<u8>,
) -> io::Result<Option<(u64, usize)>> {
    let old = match File::open(cache.layout.object_path(combined)) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let Ok((old_fixed, _)) = read_head(&old)? else {
        return Ok(None);
    };
    let mut fixed = Fixed {
        stamp,
        internal_len,
        header_len,
        ..old_fixed.clone()
    };
    let head = [&fixed.encode(&variable)[..], &variable].concat();
    let tmp = cache.layout.tmp_path(stamp);
    let copy = || -> io::Result<()> {
        let mut new = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        new.write_all_at(&head, 0)?;
        new.seek(SeekFrom::Start(head.len() as u64))?;
        let mut source = &old;
        source.seek(SeekFrom::Start(old_fixed.body_start()))?;
        let copied = io::copy(&mut io::Read::take(source, old_fixed.body_len), &mut new)?;
        if copied != old_fixed.body_len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the object file is shorter than its header says",
            ));
        }
        if cache.options.fsync == super::FsyncPolicy::Always {
            new.sync_all()?;
        }
        Ok(())
    };
    if let Err(err) = copy() {
        let _ = io_util::remove_file(&tmp);
        return Err(err);
    }
    Ok(Some((old_fixed.stamp, fixed.file_len() as usize)))
}
