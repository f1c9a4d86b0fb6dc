//! Idle connections watched by a task of their own: Pingora's [`ConnectionPool::put`],
//! [`ConnectionPool::idle_poll`] and [`ConnectionPool::idle_timeout`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use log::{debug, warn};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{oneshot, watch, Notify, OwnedMutexGuard};

use crate::connection::ConnectionPool;
use crate::lru::signal_identity;
use crate::{ConnectionMeta, GroupKey};

/// Why an idle watcher stopped waiting.
enum IdleEnd {
    Data,
    Closed,
    Error(io::Error),
    TimedOut,
}

// === impl ConnectionPool ===

impl<S> ConnectionPool<S> {
    /// Watches an idle connection until it is picked up, evicted, or found unusable.
    ///
    /// Meant to run as its own task for as long as the connection is idle, holding the
    /// connection's lock (`connection`) so that a caller who [`get`](Self::get)s it waits
    /// until this watcher lets go. It returns when:
    ///
    /// * the connection is picked up (`watch_use` resolves) or evicted (`notify_evicted`
    ///   fires), leaving the connection alone;
    /// * the peer sends data (logged as a warning: an idle connection must stay silent),
    ///   closes it, or errors, or `timeout` passes: the connection is removed from the pool and
    ///   dropped, so no later `get` returns it.
    ///
    /// The lock is held until after the removal, so a caller that won a `get` against this
    /// watcher only proceeds once the watcher is done with the connection. In that race the
    /// watcher may already have consumed one byte of unexpected data; the caller sees the
    /// connection's state (closed, failed, or further data) when it checks it before use.
    pub async fn idle_poll<Stream>(
        &self,
        connection: OwnedMutexGuard<Stream>,
        meta: &ConnectionMeta,
        timeout: Option<Duration>,
        notify_evicted: Arc<Notify>,
        watch_use: oneshot::Receiver<bool>,
    ) where
        Stream: AsyncRead + Unpin + Send,
    {
        let mut connection = connection;
        let end = tokio::select! {
            biased;
            picked_up = watch_use => {
                log_pick_up(meta, picked_up.is_ok());
                return;
            }
            () = notify_evicted.notified() => {
                debug!("idle connection evicted (meta={meta:?})");
                return;
            }
            end = wait_for_end(&mut *connection, timeout) => end,
        };
        match end {
            IdleEnd::Data => warn!("data on idle connection, closing it (meta={meta:?})"),
            IdleEnd::Closed => debug!("idle connection closed by peer (meta={meta:?})"),
            IdleEnd::Error(error) => {
                debug!("idle connection failed, closing it (meta={meta:?}, error={error})")
            }
            IdleEnd::TimedOut => {
                debug!("idle connection timed out, closing it (meta={meta:?}, timeout={timeout:?})")
            }
        }
        self.close_slot(meta.key, &notify_evicted);
        drop(connection);
    }

    /// Watches an idle connection that cannot be read while idle (such as a multiplexed
    /// HTTP/2 connection, whose own task reads it) until it is picked up, evicted, closed, or
    /// idle for `timeout`.
    ///
    /// `notify_closed` reports the connection's closed state: when it becomes `true` (or its
    /// sender is dropped), or when `timeout` passes first, the connection is removed from the
    /// pool and dropped. Picked up or evicted, it is left alone.
    pub async fn idle_timeout(
        &self,
        meta: &ConnectionMeta,
        timeout: Duration,
        notify_evicted: Arc<Notify>,
        mut notify_closed: watch::Receiver<bool>,
        watch_use: oneshot::Receiver<bool>,
    ) {
        tokio::select! {
            biased;
            picked_up = watch_use => log_pick_up(meta, picked_up.is_ok()),
            () = notify_evicted.notified() => {
                debug!("idle connection evicted (meta={meta:?})");
            }
            closed = notify_closed.wait_for(|closed| *closed) => {
                drop(closed);
                debug!("idle connection closed (meta={meta:?})");
                self.close_slot(meta.key, &notify_evicted);
            }
            () = tokio::time::sleep(timeout) => {
                debug!("idle connection timed out (meta={meta:?}, timeout={timeout:?})");
                self.close_slot(meta.key, &notify_evicted);
            }
        }
    }

    /// Removes and drops the idle connection whose eviction signal is `evicted`, if it is
    /// still in the pool.
    pub(crate) fn close_slot(&self, key: GroupKey, evicted: &Arc<Notify>) {
        if let Some(entry) = self.remove_slot(key, signal_identity(evicted)) {
            self.close_entry(entry);
        }
        // Else a `get` or an eviction holds it and decides its fate.
    }
}

/// Logs why `watch_use` resolved: a pick-up, or the pool dropping the connection.
fn log_pick_up(meta: &ConnectionMeta, picked_up: bool) {
    if picked_up {
        debug!("idle connection picked up (meta={meta:?})");
    } else {
        debug!("idle connection dropped by the pool (meta={meta:?})");
    }
}

/// Waits until an idle connection becomes unusable: readable (data, EOF or error) or idle for
/// longer than `timeout`.
async fn wait_for_end<R>(connection: &mut R, timeout: Option<Duration>) -> IdleEnd
where
    R: AsyncRead + Unpin,
{
    let mut byte = [0u8; 1];
    let read = connection.read(&mut byte);
    let result = match timeout {
        Some(timeout) => match tokio::time::timeout(timeout, read).await {
            Ok(result) => result,
            Err(_) => return IdleEnd::TimedOut,
        },
        None => read.await,
    };
    match result {
        Ok(0) => IdleEnd::Closed,
        Ok(_) => IdleEnd::Data,
        Err(error) => IdleEnd::Error(error),
    }
}
