//! Deferred cancellation.
//!
//! Most timeouts are cancelled, and a busy task starts its next timeout soon after cancelling
//! the previous one. Instead of locking the shard to remove a waiter when its stub is dropped,
//! the removal is queued in a small per-thread list. The next registration of this thread on
//! that shard then either
//!
//! * **adopts** the queued waiter, when it belongs to the same task and the same tick: the new
//!   timer takes over the waiter as it is, without taking any lock (see
//!   [`Shard::may_adopt`](super::shard::Shard::may_adopt)); or
//! * carries out the queued removals under the lock it takes anyway, reusing the slot and waker
//!   of a waiter of the same task for another tick.
//!
//! A task that keeps restarting a timeout therefore costs no lock and no waker clone per
//! timeout in the steady state.
//!
//! The list holds at most [`LIMIT`] waiters; beyond that, or when the thread exits, it is
//! flushed. Until a queued waiter is removed, its tick may still fire and wake its task once
//! more, which is harmless: a woken task only polls its futures again.

use super::shard::{Garbage, Key, Tick};
use super::ShardRef;
use std::cell::RefCell;
use std::task::Waker;

/// The most cancellations a thread keeps queued.
const LIMIT: usize = 8;

thread_local! {
    static QUEUE: RefCell<Queue> = const { RefCell::new(Queue(Vec::new())) };
}

/// The cancelled waiters of one thread.
struct Queue(Vec<Cancelled>);

/// A waiter whose stub was dropped.
pub(crate) struct Cancelled {
    pub(crate) shard: ShardRef,
    pub(crate) key: Key,
    pub(crate) tick: Tick,
    pub(crate) task: TaskId,
}

/// Which task a waker wakes, compared like [`Waker::will_wake`] does, without holding a
/// reference to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskId {
    data: usize,
    vtable: usize,
}

/// Up to [`LIMIT`] keys taken from the queue, without allocating.
pub(crate) struct Taken {
    keys: [Key; LIMIT],
    len: usize,
}

// === impl TaskId ===

impl TaskId {
    #[inline]
    pub(crate) fn of(waker: &Waker) -> Self {
        TaskId {
            data: waker.data() as usize,
            vtable: std::ptr::from_ref(waker.vtable()) as usize,
        }
    }
}

// === impl Taken ===

impl Taken {
    /// The taken keys.
    pub(crate) fn as_slice(&self) -> &[Key] {
        &self.keys[..self.len]
    }
}

/// Queues the removal of a waiter, or removes it at once if this thread cannot queue it (its
/// thread-local storage is being torn down, or the queue is in use further up the stack).
#[inline]
pub(crate) fn cancel(cancelled: Cancelled) {
    let mut item = Some(cancelled);
    let overflow = QUEUE
        .try_with(|queue| {
            let mut queue = queue.try_borrow_mut().ok()?;
            queue.0.push(item.take()?);
            (queue.0.len() > LIMIT).then(|| std::mem::take(&mut queue.0))
        })
        .ok()
        .flatten();
    if let Some(cancelled) = item {
        cancel_now(cancelled);
    }
    if let Some(list) = overflow {
        flush(list);
    }
}

#[cold]
fn cancel_now(cancelled: Cancelled) {
    cancelled.shard.get().cancel(cancelled.key);
}

/// Takes the queued waiter that a new timer of `tick` on `shard`, polled by `waker`, can adopt
/// without locking, if there is one.
#[inline]
pub(crate) fn adopt(shard: &ShardRef, tick: Tick, waker: &Waker) -> Option<Key> {
    if !shard.get().may_adopt(tick) {
        return None;
    }
    let task = TaskId::of(waker);
    let adopted = QUEUE
        .try_with(|queue| {
            let mut queue = queue.try_borrow_mut().ok()?;
            let position = queue.0.iter().rposition(|queued| {
                queued.tick == tick && queued.task == task && queued.shard.ptr_eq(shard)
            })?;
            Some(queue.0.swap_remove(position))
        })
        .ok()
        .flatten()?;
    // Dropped outside the queue's borrow; it is not the last reference to the shard (the
    // caller holds one), so this cannot run executor code.
    Some(adopted.key)
}

/// Takes the queued cancellations that belong to `shard`.
pub(crate) fn take(shard: &ShardRef) -> Taken {
    let mut taken = Taken {
        keys: [Key::DANGLING; LIMIT],
        len: 0,
    };
    let _ = QUEUE.try_with(|queue| {
        let Ok(mut queue) = queue.try_borrow_mut() else {
            return;
        };
        if queue.0.is_empty() {
            return;
        }
        // The shard references dropped here are not the last ones (the caller holds one), so
        // dropping them cannot run any executor code while the queue is borrowed.
        queue.0.retain(|queued| {
            if taken.len < LIMIT && queued.shard.ptr_eq(shard) {
                taken.keys[taken.len] = queued.key;
                taken.len += 1;
                false
            } else {
                true
            }
        });
    });
    taken
}

/// Removes every queued waiter in `list`, each under its shard's lock.
#[cold]
fn flush(list: Vec<Cancelled>) {
    let mut garbage = Garbage::new();
    for cancelled in &list {
        cancelled
            .shard
            .get()
            .cancel_all(std::iter::once(cancelled.key), &mut garbage);
    }
    drop(garbage);
    drop(list);
}

impl Drop for Queue {
    fn drop(&mut self) {
        flush(std::mem::take(&mut self.0));
    }
}

/// Test hook: carries out this thread's queued cancellations now.
#[cfg(test)]
pub(crate) fn flush_current_thread() {
    let list = QUEUE.with(|queue| std::mem::take(&mut queue.borrow_mut().0));
    flush(list);
}
