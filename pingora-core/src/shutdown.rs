//! The server's shutdown signal as apps and services see it, below both (and the server) in
//! the crate's layers. Its public path is [`crate::server::ShutdownWatch`].

use tokio::sync::watch;

/// Watches for the server's shutdown: its value turns `true` when a graceful shutdown starts.
pub type ShutdownWatch = watch::Receiver<bool>;
