//! Small pingora applications for tests to serve.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::digest::SslDigest;
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

use crate::TIMEOUT;

/// What a [`ByteEcho`] has done.
#[derive(Debug, Default)]
pub struct EchoStats {
    /// Connections accepted.
    pub connections: AtomicUsize,
    /// Calls of [`ServerApp::cleanup`].
    pub cleanups: AtomicUsize,
    /// Notified at each cleanup.
    pub cleaned: Notify,
}

/// What a [`ByteEcho`] saw of one connection.
#[derive(Debug)]
pub struct Seen {
    /// The TLS facts, on a TLS connection.
    pub digest: Option<Arc<SslDigest>>,
    /// The protocol ALPN selected.
    pub alpn: Option<ALPN>,
}

/// The receiving end of a [`ByteEcho`]'s reports.
pub type SeenEvents = mpsc::UnboundedReceiver<Seen>;

/// Echoes every byte back until the peer closes (flushing after each write), counting
/// connections and cleanups and, if asked, reporting each connection's [`Seen`] facts.
#[derive(Debug, Default)]
pub struct ByteEcho {
    /// What it has done.
    pub stats: Arc<EchoStats>,
    seen: Option<mpsc::UnboundedSender<Seen>>,
}

impl ByteEcho {
    /// An echo that reports what it sees of each connection to the receiver returned.
    pub fn reporting() -> (ByteEcho, SeenEvents) {
        let (tx, rx) = mpsc::unbounded_channel();
        let echo = ByteEcho {
            stats: Arc::default(),
            seen: Some(tx),
        };
        (echo, rx)
    }
}

#[async_trait]
impl ServerApp for ByteEcho {
    async fn process_new(self: &Arc<Self>, mut io: Stream, _: &ShutdownWatch) -> Option<Stream> {
        self.stats.connections.fetch_add(1, Ordering::SeqCst);
        if let Some(seen) = &self.seen {
            let _ = seen.send(Seen {
                digest: io.get_ssl_digest(),
                alpn: io.selected_alpn_proto(),
            });
        }
        let mut buf = [0u8; 1024];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => io.write_all(&buf[..n]).await.ok()?,
            }
            io.flush().await.ok()?;
        }
    }

    async fn cleanup(&self) {
        self.stats.cleanups.fetch_add(1, Ordering::SeqCst);
        self.stats.cleaned.notify_one();
    }
}

/// Waits for the next report of a [`ByteEcho`].
///
/// # Panics
///
/// If none comes within [`TIMEOUT`].
pub async fn next_seen(events: &mut SeenEvents) -> Seen {
    tokio::time::timeout(TIMEOUT, events.recv())
        .await
        .expect("no connection seen")
        .expect("the echo is gone")
}

/// Sends `msg` on `client` and checks that it comes back.
///
/// # Panics
///
/// If it does not, whole, within [`TIMEOUT`].
pub async fn echo_round_trip<S: AsyncRead + AsyncWrite + Unpin>(client: &mut S, msg: &[u8]) {
    client.write_all(msg).await.expect("write");
    let mut buf = vec![0u8; msg.len()];
    tokio::time::timeout(TIMEOUT, client.read_exact(&mut buf))
        .await
        .expect("echo timed out")
        .expect("read");
    assert_eq!(buf, msg);
}
