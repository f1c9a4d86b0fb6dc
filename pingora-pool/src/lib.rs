//! Connection pooling for Pingora.
//!
//! [`ConnectionPool`] keeps idle, reusable connections (upstream TCP or TLS streams, HTTP/2
//! sessions) grouped by a [`GroupKey`], usually a hash of the peer: any idle connection of a
//! group can serve the next request to that peer. It is built for many threads releasing and
//! taking connections at high rates:
//!
//! * each group keeps up to 16 idle connections in a lock-free queue, so taking and returning
//!   connections of a busy group usually takes no lock; more spill into a locked overflow,
//!   from which the most recently released is taken first;
//! * a global LRU caps the number of idle connections: releasing one more than the capacity
//!   evicts the least recently released idle connection, of whatever group, and tells its idle
//!   watcher; [`ConnectionPool::get`] never touches the LRU's lock;
//! * an idle connection is dropped from the pool when the peer closes it, sends unexpected
//!   data, or it stays idle too long. Either a task per connection watches it
//!   ([`ConnectionPool::put`] and [`ConnectionPool::idle_poll`], Pingora's API), or the pool
//!   looks after it by itself with one sweeper task ([`ConnectionPool::release`] and
//!   [`ConnectionPool::get_checked`], for connection types that implement [`IdleCheck`]):
//!   that costs no task, channel or allocation per connection, and is what `pingora-core`'s
//!   connectors use.
//!
//! [`MultiplexPool`] keeps connections that carry several requests at once (HTTP/2), busy and
//! idle, and [`ConnectGate`] lets requests arriving together at a cold pool share one new
//! connection. [`PoolNode`] is the per-group store on its own, for callers that pool items by
//! ID.
//!
//! ```
//! use pingora_pool::{ConnectionMeta, ConnectionPool};
//! use std::sync::Arc;
//! use tokio::sync::Mutex;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Share each stream between the pool and its idle watcher.
//! let pool = Arc::new(ConnectionPool::new(128));
//! let stream = Arc::new(Mutex::new(tokio::io::empty()));
//! let meta = ConnectionMeta::new(42, 7);
//!
//! let watcher_lock = Arc::clone(&stream).try_lock_owned().unwrap();
//! let (evicted, picked_up) = pool.put(&meta, stream);
//! let watcher = tokio::spawn({
//!     let pool = Arc::clone(&pool);
//!     async move { pool.idle_poll(watcher_lock, &meta, None, evicted, picked_up).await }
//! });
//!
//! // `tokio::io::empty()` reads as closed, so the watcher drops it from the pool.
//! watcher.await.unwrap();
//! assert!(pool.get(&42).is_none());
//! # }
//! ```
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod connection;
mod lru;
mod multiplex;
mod node;
mod sweep;
mod watch;

pub use connection::ConnectionPool;
pub use multiplex::{ConnectGate, ConnectingGuard, Joined, MultiplexPool, Multiplexed};
pub use node::PoolNode;
pub use sweep::{IdleCheck, IdleState, SWEEP_INTERVAL, THOROUGH_CHECK_AFTER};

/// Identifies a group of interchangeable connections, such as those to one peer.
pub type GroupKey = u64;

/// Identifies one connection: its file descriptor.
#[cfg(not(windows))]
pub type ID = i32;

/// Identifies one connection: its socket.
#[cfg(windows)]
pub type ID = usize;

/// What the pool needs to know about a connection it is given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionMeta {
    /// The group the connection belongs to; connections of one group are interchangeable.
    pub key: GroupKey,
    /// The connection's ID, unique among open connections.
    pub id: ID,
}

// === impl ConnectionMeta ===

impl ConnectionMeta {
    /// Creates the metadata of connection `id` in group `key`.
    pub fn new(key: GroupKey, id: ID) -> Self {
        Self { key, id }
    }
}
