//! Rebuilding the index of [`DiskCache`](super::DiskCache) from its directory at start.

use std::fs::{self, File};
use std::io;

use pingora_error::{Error, Result};
use tokio::task::JoinSet;

use super::format::Sections;
use super::handler::read_head;
use super::index::Entry;
use super::io_util::{remove_file, Blocking, Layout, DISK_IO};
use crate::key::{CacheHashKey, CompactCacheKey};

/// What [`DiskCache::open`](super::DiskCache::open) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RebuildStats {
    /// Objects kept in the index.
    pub kept: usize,
    /// Object files deleted because they failed a check (header, metadata CRC, length,
    /// name) or are not ours.
    pub discarded: usize,
    /// Temporary files of interrupted writes deleted.
    pub temp_removed: usize,
    /// The bytes of the objects kept.
    pub bytes: usize,
}

/// One shard directory's scan: the objects kept (combined hash, entry) and how many files
/// were discarded.
type ShardScan = (Vec<(u128, Entry)>, usize);

/// Creates the directories, empties `tmp/` and scans every shard directory, as many at
/// once as `blocking` allows.
pub(super) async fn scan(
    layout: &Layout,
    blocking: &Blocking,
) -> Result<(Vec<(u128, Entry)>, RebuildStats)> {
    let prepare = layout.clone();
    let temp_removed = blocking
        .run("prepare the cache directory", move || {
            prepare.create_dirs()?;
            clear_tmp(&prepare)
        })
        .await?;
    let mut tasks = JoinSet::new();
    for prefix in 0..=u8::MAX {
        let (layout, blocking) = (layout.clone(), blocking.clone());
        tasks.spawn(async move {
            blocking
                .run("scan a cache directory", move || {
                    scan_shard(&layout, prefix)
                })
                .await
        });
    }
    let mut found = Vec::new();
    let mut stats = RebuildStats {
        temp_removed,
        ..RebuildStats::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let (entries, discarded) = match joined {
            Ok(scanned) => scanned?,
            Err(err) => return Error::e_because(DISK_IO, "scan a cache directory", err),
        };
        stats.discarded += discarded;
        stats.kept += entries.len();
        stats.bytes += entries.iter().map(|(_, entry)| entry.size).sum::<usize>();
        found.extend(entries);
    }
    Ok((found, stats))
}

/// Deletes everything in `tmp/`; returns how many files.
fn clear_tmp(layout: &Layout) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(layout.tmp_dir())? {
        let path = entry?.path();
        if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            remove_file(&path)?;
        }
        removed += 1;
    }
    Ok(removed)
}

fn scan_shard(layout: &Layout, prefix: u8) -> io::Result<ShardScan> {
    let mut kept = Vec::new();
    let mut discarded = 0;
    for dir_entry in fs::read_dir(layout.shard_dir(prefix))? {
        let path = dir_entry?.path();
        let checked = path
            .file_name()
            .and_then(|name| name.to_str())
            .filter(|name| name.len() == 32)
            .and_then(|name| u128::from_str_radix(name, 16).ok())
            .filter(|combined| (combined >> 120) as u8 == prefix)
            .map(|combined| check_file(&path, combined).map(|entry| entry.map(|e| (combined, e))));
        match checked {
            Some(Ok(Some(found))) => kept.push(found),
            Some(Err(err)) => return Err(err),
            Some(Ok(None)) | None => {
                log::warn!("disk cache: discarding {}", path.display());
                if path.is_dir() {
                    fs::remove_dir_all(&path)?;
                } else {
                    remove_file(&path)?;
                }
                discarded += 1;
            }
        }
    }
    Ok((kept, discarded))
}

/// The entry of the object file `path`, named `combined`, or `None` when it fails a check.
fn check_file(path: &std::path::Path, combined: u128) -> io::Result<Option<Entry>> {
    let file = match File::open(path) {
        Ok(file) => file,
        // A directory or a file we cannot open is discarded by the caller.
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => return Err(err),
        Err(_) => return Ok(None),
    };
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let Ok((fixed, variable)) = read_head(&file)? else {
        return Ok(None);
    };
    let Some(sections) = Sections::split(&fixed, &variable) else {
        return Ok(None);
    };
    let Ok(user_tag) = std::str::from_utf8(sections.user_tag) else {
        return Ok(None);
    };
    let key = CompactCacheKey {
        primary: fixed.primary,
        variance: fixed.variance.map(Box::new),
        user_tag: user_tag.into(),
    };
    let named = u128::from_be_bytes(match key.variance {
        Some(_) => key.combined_bin(),
        None => key.primary,
    });
    if named != combined {
        return Ok(None);
    }
    Ok(Some(Entry {
        stamp: fixed.stamp,
        size: fixed.file_len() as usize,
        key,
    }))
}
