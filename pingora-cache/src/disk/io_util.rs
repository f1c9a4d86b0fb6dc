//! Blocking file IO of [`DiskCache`](super::DiskCache), run off the async worker threads and
//! bounded, and the paths of its directory.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pingora_error::{Error, ErrorType, Result};
use tokio::sync::Semaphore;

use super::FsyncPolicy;

/// The error type of a failed disk operation.
pub(super) const DISK_IO: ErrorType = ErrorType::Custom("DiskCacheIo");

/// Runs blocking closures on tokio's blocking pool, at most `permits` at a time, so a slow
/// disk holds at most that many blocking threads.
#[derive(Debug, Clone)]
pub(super) struct Blocking {
    permits: Arc<Semaphore>,
}

impl Blocking {
    pub(super) fn new(permits: usize) -> Self {
        Blocking {
            permits: Arc::new(Semaphore::new(permits.max(1))),
        }
    }

    /// Runs `work` on the blocking pool once a permit is free.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the work started gives the permit back and runs nothing;
    /// dropping it later lets the work finish in the background (its result is lost).
    pub(super) async fn run<T, F>(&self, what: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return Error::e_explain(DISK_IO, "the disk cache's IO semaphore is closed");
        };
        let task = tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        });
        match task.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Error::e_because(DISK_IO, what, err),
            Err(join) => Error::e_because(DISK_IO, what, join),
        }
    }
}

/// The directory layout: `<root>/objects/<2 hex digits>/<32 hex digits>` for objects (the
/// digits of the combined hash), `<root>/tmp/` for writes in progress.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(super) fn new(root: PathBuf) -> Self {
        Layout { root }
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(super) fn objects_dir(&self) -> PathBuf {
        self.root.join("objects")
    }

    /// The shard directory of the objects whose combined hash starts with byte `prefix`.
    pub(super) fn shard_dir(&self, prefix: u8) -> PathBuf {
        self.objects_dir().join(format!("{prefix:02x}"))
    }

    pub(super) fn object_path(&self, combined: u128) -> PathBuf {
        let name = format!("{combined:032x}");
        self.shard_dir((combined >> 120) as u8).join(name)
    }

    pub(super) fn tmp_path(&self, stamp: u64) -> PathBuf {
        self.tmp_dir().join(format!("{stamp:016x}.tmp"))
    }

    /// Creates the directories (every shard directory up front, so writes never race to
    /// create one).
    pub(super) fn create_dirs(&self) -> io::Result<()> {
        fs::create_dir_all(self.tmp_dir())?;
        for prefix in 0..=u8::MAX {
            fs::create_dir_all(self.shard_dir(prefix))?;
        }
        Ok(())
    }
}

/// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
pub(super) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(buf, offset)
}

/// Reads up to `len` bytes at `offset`; fewer only at the end of the file.
pub(super) fn read_at(file: &File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Makes a rename or unlink in `dir` durable.
pub(super) fn sync_dir(dir: &Path, policy: FsyncPolicy) -> io::Result<()> {
    match policy {
        FsyncPolicy::Always => File::open(dir)?.sync_all(),
        FsyncPolicy::Never => Ok(()),
    }
}

/// Removes `path`; a file already gone is not an error.
pub(super) fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Runs `op`, which creates or renames a file into `path`; when it fails because the parent
/// directory is gone (removed behind the store's back), creates the directory and runs `op`
/// once more.
pub(super) fn recreating_parent<T>(
    path: &Path,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    match op() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            op()
        }
        other => other,
    }
}
