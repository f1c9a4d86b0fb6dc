//! The in-memory index of [`DiskCache`](super::DiskCache): complete objects and writes in
//! progress by combined hash, and the variants of each primary hash.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use tokio::sync::watch;

use crate::key::CompactCacheKey;
use crate::CacheMeta;

/// One shard: slots by combined hash, and the variants of each primary hash.
#[derive(Debug, Default)]
pub(super) struct Shard {
    pub(super) slots: HashMap<u128, Slot>,
    /// Primary hash -> combined hashes of its slots that have a variance.
    pub(super) variants: HashMap<u128, Vec<u128>>,
}

/// What is stored under one combined hash.
#[derive(Debug, Default)]
pub(super) struct Slot {
    /// The object file in place, if any.
    pub(super) complete: Option<Entry>,
    /// Writes in progress, oldest first.
    pub(super) writes: Vec<Arc<Write>>,
}

/// A complete object: its file is `Layout::object_path(combined)`.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// The stamp in the file's header: tells this file from a later one at the same path.
    pub(super) stamp: u64,
    /// The file's length, the bytes it takes from the budget.
    pub(super) size: usize,
    /// The key, as eviction managers know it (the user tag is kept in the file).
    pub(super) key: CompactCacheKey,
}

/// A write in progress, as lookups see it.
#[derive(Debug)]
pub(super) struct Write {
    /// The write's stamp, also its streaming write tag.
    pub(super) id: u64,
    pub(super) meta: CacheMeta,
    /// The temporary file, shared with readers (positional reads survive its rename).
    pub(super) file: Arc<File>,
    pub(super) body_start: u64,
    pub(super) progress: watch::Receiver<Progress>,
}

/// What a write has produced so far; shared with its readers through a watch channel.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Progress {
    /// Body bytes in the file, readable by position.
    pub(super) written: u64,
    pub(super) state: WriteState,
}

/// The state of a write.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteState {
    /// More bytes may come.
    #[default]
    Writing,
    /// The body is complete.
    Done,
    /// The write failed: the body is incomplete.
    Failed,
}

// === impl Shard ===

impl Shard {
    pub(super) fn slot_mut_or_insert(&mut self, primary: u128, combined: u128) -> &mut Slot {
        let variants = &mut self.variants;
        self.slots.entry(combined).or_insert_with(|| {
            if combined != primary {
                variants.entry(primary).or_default().push(combined);
            }
            Slot::default()
        })
    }

    pub(super) fn remove_slot(&mut self, primary: u128, combined: u128) -> Option<Slot> {
        let slot = self.slots.remove(&combined)?;
        if combined != primary {
            if let Some(list) = self.variants.get_mut(&primary) {
                list.retain(|hash| *hash != combined);
                if list.is_empty() {
                    self.variants.remove(&primary);
                }
            }
        }
        Some(slot)
    }

    /// Removes the slot if it holds nothing any more.
    pub(super) fn remove_if_empty(&mut self, primary: u128, combined: u128) {
        let empty = self
            .slots
            .get(&combined)
            .is_some_and(|slot| slot.complete.is_none() && slot.writes.is_empty());
        if empty {
            self.remove_slot(primary, combined);
        }
    }

    /// Takes the write `id` out of slot `combined`; `None` if it was purged.
    pub(super) fn take_write(&mut self, primary: u128, combined: u128, id: u64) -> Option<()> {
        let slot = self.slots.get_mut(&combined)?;
        let index = slot.writes.iter().position(|write| write.id == id)?;
        slot.writes.remove(index);
        self.remove_if_empty(primary, combined);
        Some(())
    }

    /// The complete entry of `combined` if its stamp is `stamp`.
    pub(super) fn entry_with_stamp(&self, combined: u128, stamp: u64) -> Option<&Entry> {
        self.slots
            .get(&combined)?
            .complete
            .as_ref()
            .filter(|entry| entry.stamp == stamp)
    }

    /// Takes the complete entry of `combined` out (the slot stays while writes remain).
    pub(super) fn take_entry(&mut self, primary: u128, combined: u128) -> Option<Entry> {
        let entry = self.slots.get_mut(&combined)?.complete.take();
        self.remove_if_empty(primary, combined);
        entry
    }
}
