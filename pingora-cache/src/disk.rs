//! [`DiskCache`]: a [`Storage`] that keeps one file per object in a directory and survives
//! restarts, with streaming partial writes and seekable hits.

use std::any::Any;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use pingora_error::{Error, ErrorType, Result};
use tokio::sync::watch;

use crate::key::CompactCacheKey;
use crate::memory::hashes;
use crate::storage::streaming_write::U64WriteId;
use crate::storage::{HitHandler, MissHandler, PurgeType, Storage};
use crate::trace::SpanHandle;
use crate::{CacheKey, CacheMeta};

mod format;
mod handler;
mod handover;
mod index;
mod io_util;
mod miss;
mod rebuild;
#[cfg(test)]
mod tests;

pub use handover::DISK_CACHE_LOCKED;

use format::{Fixed, FIXED_LEN, WRITING};
use handler::{open_object, Opened};
use index::{Entry, Progress, Shard, Write};
use io_util::{Blocking, Layout};
use miss::DiskMissHandler;

pub use rebuild::RebuildStats;

/// The number of index shards of a [`DiskCache`].
const SHARDS: usize = 16;

/// The error type of a write refused because the total size limit would be exceeded.
const STORAGE_FULL: ErrorType = ErrorType::Custom("DiskCacheFull");

/// The error type of a write refused because its object exceeds the per-object limit.
const OBJECT_TOO_LARGE: ErrorType = ErrorType::Custom("DiskCacheObjectTooLarge");

/// Whether [`DiskCache`] waits for data to reach the disk before an object is visible as
/// complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Fsync each object file before it is renamed into place, and its directory after
    /// (and after a purge), so a complete object survives a power loss. The default.
    #[default]
    Always,
    /// Never fsync: faster, and still safe against a process crash (the page cache
    /// survives it), but a power loss may lose recent objects or leave files that fail
    /// their checks (which are then discarded, never served).
    Never,
}

/// The options of a [`DiskCache`]: chainable setters on [`Default`].
///
/// The defaults (which may change): no total limit, no per-object limit,
/// [`FsyncPolicy::Always`], 16 concurrent blocking IO operations.
///
/// ```
/// use pingora_cache::{DiskCacheOptions, FsyncPolicy};
///
/// let options = DiskCacheOptions::default()
///     .max_bytes(10 << 30)
///     .max_object_bytes(64 << 20)
///     .fsync(FsyncPolicy::Never)
///     .io_concurrency(32);
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct DiskCacheOptions {
    max_bytes: usize,
    max_object_bytes: usize,
    fsync: FsyncPolicy,
    io_concurrency: usize,
}

impl Default for DiskCacheOptions {
    fn default() -> Self {
        DiskCacheOptions {
            max_bytes: usize::MAX,
            max_object_bytes: usize::MAX,
            fsync: FsyncPolicy::Always,
            io_concurrency: 16,
        }
    }
}

impl DiskCacheOptions {
    /// The most bytes the object files (complete and being written) may take on disk; a
    /// write that would exceed it fails with `Custom("DiskCacheFull")`.
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The largest object file (header, metadata and body); a larger write fails with
    /// `Custom("DiskCacheObjectTooLarge")`.
    pub fn max_object_bytes(mut self, bytes: usize) -> Self {
        self.max_object_bytes = bytes;
        self
    }

    /// When to fsync (see [`FsyncPolicy`]).
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// How many blocking file operations may run at once (at least 1): a slow disk then
    /// holds at most this many of tokio's blocking threads.
    pub fn io_concurrency(mut self, operations: usize) -> Self {
        self.io_concurrency = operations.max(1);
        self
    }
}

/// A cache storage on disk: one file per object, an index in memory rebuilt at start.
///
/// # Layout and crash safety
///
/// Objects are files named by the hex digits of their combined hash, under
/// `<dir>/objects/<first two digits>/`. A write goes to a file in `<dir>/tmp/` that is
/// renamed into place by [`HandleMiss::finish`] (after an fsync, see [`FsyncPolicy`]), so
/// an object is either whole or absent. Each file carries a versioned header, a CRC32 of
/// the header and metadata and a CRC32 of the body (the format is documented in the
/// `format` module of the source). [`DiskCache::open`] deletes every temporary file and
/// every object whose header or metadata fails its check or whose length does not match
/// its header. A body CRC is checked while a hit is read from its start to its end: a
/// mismatch, or a file shorter than its header says, makes the last `read_body` fail (the
/// client sees an abort, never a clean end) and purges the object. Ranges (after a seek)
/// are checked against the length only.
///
/// # Index
///
/// The index (16 shards, like [`MemCache`](crate::MemCache)'s) maps a combined hash to the
/// object's stamp, size and key, and a primary hash to its variants; it keeps no metadata,
/// so an object costs a small fixed entry (hashes, stamp, size) plus its user tag. Lookups
/// read the metadata from the file. A lookup whose file was removed behind the store's
/// back is a miss and drops the entry.
///
/// One process at a time may use a directory: nothing locks it.
///
/// # Streaming partial writes
///
/// A write is visible to lookups from [`Storage::get_miss_handler`] on: its readers read the
/// temporary file by position as bytes land, and wait on a watch channel for more. When the
/// writer fails (an error, or its handler dropped before `finish`) its readers get an error.
///
/// # Blocking IO
///
/// Every file operation runs on tokio's blocking pool, at most
/// [`DiskCacheOptions::io_concurrency`] at a time. The index's shard lock is held (on a
/// blocking thread) across the rename or unlink that changes an object file, so the files
/// and the index change together.
///
/// # Size
///
/// An object weighs its file's length. Bytes are reserved as they are written, writes in
/// progress included, so the total never exceeds [`DiskCacheOptions::max_bytes`]: such a
/// write fails and the proxy serves the response without caching it. Eviction is an
/// eviction manager's job; after a restart, [`DiskCache::entries`] lists the objects to
/// admit into it. A disk that fills up (`ENOSPC`) fails the write at hand, whose temporary
/// file is removed.
///
/// # Example
///
/// ```no_run
/// use pingora_cache::{DiskCache, DiskCacheOptions};
///
/// # async fn start() -> pingora_error::Result<()> {
/// let (cache, stats) = DiskCache::open("/var/cache/proxy", DiskCacheOptions::default()).await?;
/// println!("kept {} objects, discarded {}", stats.kept, stats.discarded);
/// let cache: &'static DiskCache = Box::leak(Box::new(cache));
/// # let _ = cache;
/// # Ok(())
/// # }
/// ```
///
/// [`HandleMiss::finish`]: crate::storage::HandleMiss::finish
#[derive(Debug)]
pub struct DiskCache {
    layout: Layout,
    options: DiskCacheOptions,
    shards: Box<[RwLock<Shard>]>,
    used: AtomicUsize,
    blocking: Blocking,
    /// The directory's lock, held while this store may write (see `set_read_only`).
    lock: parking_lot::Mutex<Option<nix::fcntl::Flock<File>>>,
    read_only: AtomicBool,
}

// === impl DiskCache ===

impl DiskCache {
    /// Opens (creating it if needed) the cache in `dir`: removes the temporary files of
    /// writes a crash interrupted and rebuilds the index from the object files, discarding
    /// the ones that fail their checks. The scan runs on the blocking pool, as many shard
    /// directories at once as [`DiskCacheOptions::io_concurrency`] allows; it needs a tokio
    /// runtime.
    ///
    /// Objects found count towards [`used_bytes`](Self::used_bytes) even beyond
    /// [`DiskCacheOptions::max_bytes`] (writes are refused until purges make room).
    ///
    /// # Errors
    ///
    /// When the directories cannot be created or listed.
    pub async fn open(
        dir: impl AsRef<Path>,
        options: DiskCacheOptions,
    ) -> Result<(DiskCache, RebuildStats)> {
        let Some(lock) = handover::lock_dir(dir.as_ref())? else {
            return Error::e_explain(
                DISK_CACHE_LOCKED,
                "another process (or store) holds this cache directory",
            );
        };
        let layout = Layout::new(dir.as_ref().to_path_buf());
        let blocking = Blocking::new(options.io_concurrency);
        let (found, stats) = rebuild::scan(&layout, &blocking).await?;
        let cache = DiskCache {
            layout,
            options,
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            used: AtomicUsize::new(0),
            blocking,
            lock: parking_lot::Mutex::new(Some(lock)),
            read_only: AtomicBool::new(false),
        };
        for (combined, entry) in found {
            let primary = u128::from_be_bytes(entry.key.primary);
            cache.used.fetch_add(entry.size, Ordering::AcqRel);
            let mut shard = cache.shard(primary).write();
            shard.slot_mut_or_insert(primary, combined).complete = Some(entry);
        }
        Ok((cache, stats))
    }

    /// The directory of the cache.
    pub fn dir(&self) -> &Path {
        self.layout.root()
    }

    /// The total size limit ([`DiskCacheOptions::max_bytes`]).
    pub fn capacity_bytes(&self) -> usize {
        self.options.max_bytes
    }

    /// The bytes on disk: complete object files and writes in progress.
    pub fn used_bytes(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The number of complete objects.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let shard = shard.read();
                shard
                    .slots
                    .values()
                    .filter(|s| s.complete.is_some())
                    .count()
            })
            .sum()
    }

    /// Whether there is no complete object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The size of the complete object of `key`: its file's length, the size
    /// [`HandleMiss::finish`](crate::storage::HandleMiss::finish) reported (or its new size
    /// after [`Storage::update_meta`]).
    pub fn object_size(&self, key: &CompactCacheKey) -> Option<usize> {
        let (primary, combined) = hashes(key);
        let shard = self.shard(primary).read();
        Some(shard.slots.get(&combined)?.complete.as_ref()?.size)
    }

    /// Every complete object's key and size, to admit into an eviction manager after
    /// [`open`](Self::open).
    pub fn entries(&self) -> Vec<(CompactCacheKey, usize)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.read();
            let complete = shard.slots.values().filter_map(|s| s.complete.as_ref());
            out.extend(complete.map(|entry| (entry.key.clone(), entry.size)));
        }
        out
    }

    fn shard(&self, primary: u128) -> &RwLock<Shard> {
        &self.shards[(primary % SHARDS as u128) as usize]
    }

    /// Takes `bytes` from the budget, or returns `false` if that would exceed the limit.
    fn reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|total| *total <= self.options.max_bytes)
            })
            .is_ok()
    }

    /// Gives `bytes` back to the budget.
    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Drops the entry of `combined` if it is still the file stamped `stamp`, and deletes
    /// that file: it is corrupt or gone. Errors are logged only (the entry is gone anyway).
    async fn discard(&'static self, primary: u128, combined: u128, stamp: u64) {
        let result = self
            .blocking
            .run("discard a cache object", move || {
                let mut shard = self.shard(primary).write();
                if shard.entry_with_stamp(combined, stamp).is_none() {
                    return Ok(());
                }
                if let Some(entry) = shard.take_entry(primary, combined) {
                    self.release(entry.size);
                }
                io_util::remove_file(&self.layout.object_path(combined))
            })
            .await;
        if let Err(err) = result {
            log::warn!("disk cache: {err}");
        }
    }

    /// Removes the slot of `combined` (its file and any writes in progress, which are
    /// detached), with the shard lock held. Returns whether it held anything and the file
    /// removed, if any.
    fn remove_slot_locked(
        &self,
        shard: &mut Shard,
        primary: u128,
        combined: u128,
    ) -> io::Result<(bool, Option<PathBuf>)> {
        let Some(slot) = shard.remove_slot(primary, combined) else {
            return Ok((false, None));
        };
        let mut removed_file = None;
        if let Some(entry) = &slot.complete {
            self.release(entry.size);
            let path = self.layout.object_path(combined);
            io_util::remove_file(&path)?;
            removed_file = Some(path);
        }
        Ok((
            slot.complete.is_some() || !slot.writes.is_empty(),
            removed_file,
        ))
    }

    async fn lookup_complete(
        &'static self,
        key: &CacheKey,
        (primary, combined): (u128, u128),
        entry: Entry,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let path = self.layout.object_path(combined);
        let expected = key.to_compact();
        let opened = self
            .blocking
            .run("open a cache object", move || open_object(&path, &expected))
            .await?;
        match opened {
            Opened::Found(found) => Ok(Some(found.into_hit(self, (primary, combined)))),
            Opened::Gone => {
                self.discard(primary, combined, entry.stamp).await;
                Ok(None)
            }
            Opened::Corrupt(reason) => {
                log::warn!("disk cache: discarding {combined:032x}: {reason}");
                self.discard(primary, combined, entry.stamp).await;
                Ok(None)
            }
        }
    }

    /// Creates the temporary file of a new write holding `head` (fixed header and variable
    /// sections).
    async fn create_temp(&'static self, stamp: u64, head: Vec<u8>) -> Result<Arc<File>> {
        let path = self.layout.tmp_path(stamp);
        self.blocking
            .run("create a cache file", move || {
                let file = io_util::recreating_parent(&path, || {
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(&path)
                })?;
                if let Err(err) = std::os::unix::fs::FileExt::write_all_at(&file, &head, 0) {
                    let _ = fs::remove_file(&path);
                    return Err(err);
                }
                Ok(Arc::new(file))
            })
            .await
    }
}

// === impl Storage for DiskCache ===

#[async_trait]
impl Storage for DiskCache {
    /// Prefers the newest write in progress over a complete object, as
    /// [`MemCache`](crate::MemCache) does.
    ///
    /// # Errors
    ///
    /// When the object file cannot be read (other than being gone or corrupt, which are
    /// misses).
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let (primary, combined) = hashes(key);
        let (write, entry) = {
            let shard = self.shard(primary).read();
            match shard.slots.get(&combined) {
                None => return Ok(None),
                Some(slot) => (slot.writes.last().cloned(), slot.complete.clone()),
            }
        };
        if let Some(write) = write {
            return Ok(Some(handler::follow(self, write)));
        }
        match entry {
            Some(entry) => self.lookup_complete(key, (primary, combined), entry).await,
            None => Ok(None),
        }
    }

    /// With a tag, returns only the write it names (`None` if that write is over or the tag
    /// is not one of ours).
    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(tag) = streaming_write_tag else {
            return self.lookup(key, trace).await;
        };
        let Ok(id) = U64WriteId::try_from(tag) else {
            return Ok(None);
        };
        let id = u64::from(id);
        let (primary, combined) = hashes(key);
        let write = {
            let shard = self.shard(primary).read();
            let slot = shard.slots.get(&combined);
            slot.and_then(|slot| slot.writes.iter().find(|w| w.id == id).cloned())
        };
        Ok(write.map(|write| handler::follow(self, write)))
    }

    /// # Errors
    ///
    /// `Custom("DiskCacheFull")` or `Custom("DiskCacheObjectTooLarge")` when the metadata
    /// alone does not fit, `Custom("DiskCacheIo")` when the temporary file cannot be
    /// written, and the errors of [`CacheMeta::serialize`].
    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        if self.is_read_only() {
            return handover::read_only_error();
        }
        let compact = key.to_compact();
        let (primary, combined) = hashes(key);
        let (internal, header) = meta.serialize()?;
        let variable = [compact.user_tag.as_bytes(), &internal, &header].concat();
        let mut fixed = Fixed {
            primary: compact.primary,
            variance: compact.variance.as_deref().copied(),
            stamp: format::next_stamp(),
            tag_len: section_len(compact.user_tag.len())?,
            internal_len: section_len(internal.len())?,
            header_len: section_len(header.len())?,
            body_crc: 0,
            body_len: WRITING,
            meta_crc: 0,
        };
        let head_len = FIXED_LEN + variable.len();
        if head_len > self.options.max_object_bytes {
            return Error::e_explain(OBJECT_TOO_LARGE, "the metadata exceeds the object limit");
        }
        if !self.reserve(head_len) {
            return Error::e_explain(STORAGE_FULL, "no room for the metadata of a new object");
        }
        let head = [&fixed.encode(&variable)[..], &variable].concat();
        let file = match self.create_temp(fixed.stamp, head).await {
            Ok(file) => file,
            Err(err) => {
                self.release(head_len);
                return Err(err);
            }
        };
        let (sender, progress) = watch::channel(Progress::default());
        let write = Arc::new(Write {
            id: fixed.stamp,
            meta: crate::memory::owned_copy(meta),
            file: file.clone(),
            body_start: fixed.body_start(),
            progress,
        });
        self.shard(primary)
            .write()
            .slot_mut_or_insert(primary, combined)
            .writes
            .push(write);
        let handler = DiskMissHandler::new(
            self,
            (primary, combined),
            compact,
            (fixed, variable),
            file,
            sender,
        );
        Ok(Box::new(handler))
    }

    /// An [`Invalidation`](PurgeType::Invalidation) of a key without variance removes the
    /// primary object and every variant of it; otherwise only the object of the key. Writes
    /// in progress are detached: their readers go on, but nothing is stored. With
    /// [`FsyncPolicy::Always`] the directories are synced, so a purged object does not come
    /// back after a power loss.
    ///
    /// # Errors
    ///
    /// When a file cannot be deleted (its entry is removed all the same).
    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        if self.is_read_only() {
            // The directory belongs to another process now.
            return Ok(false);
        }
        let (primary, combined) = hashes(key);
        let all_variants = combined == primary && purge_type == PurgeType::Invalidation;
        let fsync = self.options.fsync;
        self.blocking
            .run("purge a cache object", move || {
                let mut removed = false;
                let mut files = Vec::new();
                let mut result = Ok(());
                {
                    let mut shard = self.shard(primary).write();
                    let mut targets = vec![combined];
                    if all_variants {
                        targets.extend(shard.variants.get(&primary).cloned().unwrap_or_default());
                    }
                    for target in targets {
                        match self.remove_slot_locked(&mut shard, primary, target) {
                            Ok((any, file)) => {
                                removed |= any;
                                files.extend(file);
                            }
                            Err(err) => result = Err(err),
                        }
                    }
                }
                result?;
                for file in files {
                    if let Some(dir) = file.parent() {
                        io_util::sync_dir(dir, fsync)?;
                    }
                }
                Ok(removed)
            })
            .await
    }

    /// Writes a new file with the new metadata and the old body (copied with
    /// `copy_file_range` where the kernel has it) and renames it over the old one, so a
    /// crash leaves either the old or the new object, never a mix. The cost is a copy of
    /// the body per update. Returns `false` when there is no complete object, or when it
    /// was replaced or purged during the update.
    ///
    /// # Errors
    ///
    /// `Custom("DiskCacheFull")` when the larger metadata does not fit, `DiskCacheIo` when
    /// the copy fails, and the errors of [`CacheMeta::serialize`].
    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        if self.is_read_only() {
            return Ok(false);
        }
        let (primary, combined) = hashes(key);
        let exists = {
            let shard = self.shard(primary).read();
            let slot = shard.slots.get(&combined);
            slot.is_some_and(|slot| slot.complete.is_some())
        };
        if !exists {
            return Ok(false);
        }
        let (internal, header) = meta.serialize()?;
        miss::rewrite_meta(
            self,
            key.to_compact(),
            (primary, combined),
            internal,
            header,
        )
        .await
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// A section length as stored (`u32`).
fn section_len(len: usize) -> Result<u32> {
    u32::try_from(len).or_else(|_| {
        Error::e_explain(
            ErrorType::InternalError,
            "a metadata section over 4 GiB cannot be stored",
        )
    })
}
