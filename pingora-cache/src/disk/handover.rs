//! One process per cache directory, and the hand-over of a warm directory at a graceful
//! upgrade: the old process stops writing and releases the directory's lock, the new one
//! takes it and rebuilds its index from the files.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use pingora_error::{Error, ErrorType, OrErr, Result};
use tokio::time::Instant;

use super::{DiskCache, DiskCacheOptions, RebuildStats};

/// The error type of [`DiskCache::open`] when another process holds the directory.
pub const DISK_CACHE_LOCKED: ErrorType = ErrorType::Custom("DiskCacheLocked");

/// The error type of a write refused because the store is read-only.
pub(super) const READ_ONLY: ErrorType = ErrorType::Custom("DiskCacheReadOnly");

/// How often [`DiskCache::open_when_unlocked`] tries the lock again.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// Takes the exclusive lock of `dir` (the file `lock` in it, created if needed): `None` when
/// another process (or another store of this one) holds it. The lock is released when the
/// file is closed, so a crashed process never leaves it held.
pub(super) fn lock_dir(dir: &Path) -> Result<Option<Flock<File>>> {
    std::fs::create_dir_all(dir).or_err(ErrorType::Custom("DiskCacheIo"), "creating the dir")?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .or_err(ErrorType::Custom("DiskCacheIo"), "opening the lock file")?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(Error::because(
            ErrorType::Custom("DiskCacheIo"),
            "locking the cache directory",
            e,
        )),
    }
}

impl DiskCache {
    /// [`open`](Self::open), waiting up to `max_wait` for another process to release the
    /// directory first: at a graceful upgrade the new process calls this (in a task, serving
    /// without the cache meanwhile) while the old one finishes and calls
    /// [`set_read_only`](Self::set_read_only).
    ///
    /// # Errors
    ///
    /// [`DISK_CACHE_LOCKED`] when the directory is still held after `max_wait`, and the
    /// errors of [`open`](Self::open).
    pub async fn open_when_unlocked(
        dir: impl AsRef<Path>,
        options: DiskCacheOptions,
        max_wait: Duration,
    ) -> Result<(DiskCache, RebuildStats)> {
        let dir = dir.as_ref();
        let deadline = Instant::now() + max_wait;
        loop {
            match Self::open(dir, options.clone()).await {
                Err(e) if *e.etype() == DISK_CACHE_LOCKED && Instant::now() < deadline => {
                    tokio::time::sleep(LOCK_POLL).await;
                }
                other => return other,
            }
        }
    }

    /// Stops writing to the directory and releases it to another process: new writes are
    /// refused, writes in progress store nothing (their readers still get the whole body),
    /// purges and metadata updates no longer touch the files; lookups and hits go on, read
    /// only. Call it when the process stops serving for good (a graceful upgrade or
    /// shutdown: when the server's shutdown watch fires). It cannot be undone.
    pub fn set_read_only(&self) {
        self.read_only.store(true, Ordering::Release);
        // Commits check the flag under their shard's lock: once every shard lock was taken,
        // no commit is renaming a file any more.
        for shard in self.shards.iter() {
            drop(shard.write());
        }
        // Dropping the lock releases it.
        drop(self.lock.lock().take());
    }

    /// Whether [`set_read_only`](Self::set_read_only) was called.
    pub fn is_read_only(&self) -> bool {
        self.read_only.load(Ordering::Acquire)
    }
}

/// The error of a write refused because the store is read-only.
pub(super) fn read_only_error<T>() -> Result<T> {
    Error::e_explain(READ_ONLY, "the disk cache was handed over: read only")
}
