//! Transport and application protocols: the [`Stream`] every connection is carried by, the
//! digests that describe it, L4 (TCP and Unix sockets, virtual sockets), TLS and HTTP.
//!
//! A connection is a [`Stream`], a boxed [`IO`]: anything that reads and writes bytes and can
//! describe itself (its socket addresses, TLS parameters, timings). TCP, Unix and TLS streams all
//! implement [`IO`], as do `tokio::io::DuplexStream`, `std::io::Cursor<Vec<u8>>` and
//! `tokio_test::io::Mock`, so protocol code can be tested without sockets.

mod alpn;
pub mod digest;
pub mod http;
pub mod l4;
mod prefixed;
pub mod raw_connect;
pub mod tls;

use std::any::Any;
use std::fmt::Debug;
use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

pub use alpn::{CustomALPN, ALPN};
pub use digest::{
    Digest, GetProxyDigest, GetSocketDigest, GetTimingDigest, ProxyDigest, SocketDigest,
    TimingDigest,
};
pub use l4::ext::TcpKeepalive;
pub use prefixed::PrefixedStream;

/// The identifier of a connection, unique among the connections open in this process at one
/// time: the file descriptor of its socket. Connections without one (virtual sockets, in-memory
/// streams) all say `-1`.
pub type UniqueIDType = i32;

/// A connection: a boxed [`IO`].
pub type Stream = Box<dyn IO>;

/// Everything a connection must offer: byte I/O plus the ability to describe itself.
///
/// It is implemented for every type that implements all of its supertraits.
pub trait IO:
    AsyncRead
    + AsyncWrite
    + Shutdown
    + UniqueID
    + Ssl
    + GetTimingDigest
    + GetProxyDigest
    + GetSocketDigest
    + Peek
    + Unpin
    + Debug
    + Send
    + Sync
{
    /// This stream as [`Any`], to downcast to its concrete type.
    fn as_any(&self) -> &dyn Any;
    /// This stream as a boxed [`Any`], to take back its concrete type.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<
        T: AsyncRead
            + AsyncWrite
            + Shutdown
            + UniqueID
            + Ssl
            + GetTimingDigest
            + GetProxyDigest
            + GetSocketDigest
            + Peek
            + Unpin
            + Debug
            + Send
            + Sync
            + 'static,
    > IO for T
{
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Closes a connection the way its protocol wants (for TLS, sending close_notify first).
#[async_trait]
pub trait Shutdown {
    /// Shuts the connection down. Errors are ignored: the connection is being dropped anyway.
    async fn shutdown(&mut self);
}

/// Gives a connection's [`UniqueIDType`].
pub trait UniqueID {
    /// The identifier of this connection (its file descriptor, or -1 if it has none).
    fn id(&self) -> UniqueIDType;
}

/// TLS facts about a connection. Plaintext connections keep the defaults.
pub trait Ssl {
    /// The TLS parameters of the connection, if it is TLS.
    fn get_ssl_digest(&self) -> Option<Arc<digest::SslDigest>> {
        None
    }

    /// The application protocol chosen by ALPN during the TLS handshake.
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        None
    }
}

/// Looks at incoming bytes without consuming them.
#[async_trait]
pub trait Peek {
    /// Fills `buf` with the next bytes to be read, without consuming them.
    ///
    /// Returns `Ok(true)` if `buf` was filled, `Ok(false)` if this stream cannot peek or the
    /// connection ended before `buf.len()` bytes arrived.
    async fn try_peek(&mut self, _buf: &mut [u8]) -> io::Result<bool> {
        Ok(false)
    }

    /// Polls until bytes may be waiting to be read (or the peer has closed), without reading
    /// them, so that a caller can wait for a request before taking a buffer for it. `Ready`
    /// may be a false alarm (a read then waits as usual); a stream that cannot tell, such as a
    /// TLS stream with decrypted bytes of its own, says `Ready` at once (the default).
    fn poll_read_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

// === stream wrappers ===

/// Implements what a stream says about itself (every supertrait of [`IO`] but reading,
/// writing and [`Peek`]) for a wrapper type by forwarding to its `Stream` field.
macro_rules! forward_stream_facts {
    ($ty:ty, $inner:ident) => {
        #[async_trait::async_trait]
        impl $crate::protocols::Shutdown for $ty {
            async fn shutdown(&mut self) {
                self.$inner.shutdown().await
            }
        }

        impl $crate::protocols::UniqueID for $ty {
            fn id(&self) -> $crate::protocols::UniqueIDType {
                self.$inner.id()
            }
        }

        impl $crate::protocols::Ssl for $ty {
            fn get_ssl_digest(
                &self,
            ) -> Option<std::sync::Arc<$crate::protocols::digest::SslDigest>> {
                self.$inner.get_ssl_digest()
            }

            fn selected_alpn_proto(&self) -> Option<$crate::protocols::ALPN> {
                self.$inner.selected_alpn_proto()
            }
        }

        impl $crate::protocols::GetTimingDigest for $ty {
            fn get_timing_digest(&self) -> Vec<Option<$crate::protocols::TimingDigest>> {
                self.$inner.get_timing_digest()
            }

            fn get_read_pending_time(&self) -> std::time::Duration {
                self.$inner.get_read_pending_time()
            }

            fn get_write_pending_time(&self) -> std::time::Duration {
                self.$inner.get_write_pending_time()
            }
        }

        impl $crate::protocols::GetProxyDigest for $ty {
            fn get_proxy_digest(&self) -> Option<std::sync::Arc<$crate::protocols::ProxyDigest>> {
                self.$inner.get_proxy_digest()
            }

            fn set_proxy_digest(&mut self, digest: $crate::protocols::ProxyDigest) {
                self.$inner.set_proxy_digest(digest)
            }
        }

        impl $crate::protocols::GetSocketDigest for $ty {
            fn get_socket_digest(&self) -> Option<std::sync::Arc<$crate::protocols::SocketDigest>> {
                self.$inner.get_socket_digest()
            }

            fn set_socket_digest(&mut self, socket_digest: $crate::protocols::SocketDigest) {
                self.$inner.set_socket_digest(socket_digest)
            }
        }
    };
}
pub(crate) use forward_stream_facts;

// === impls for in-memory streams, used in tests ===

macro_rules! impl_plain_io {
    ($ty:ty) => {
        #[async_trait]
        impl Shutdown for $ty {
            async fn shutdown(&mut self) {
                let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
            }
        }
        impl UniqueID for $ty {
            fn id(&self) -> UniqueIDType {
                -1
            }
        }
        impl Ssl for $ty {}
        impl GetTimingDigest for $ty {
            fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
                vec![]
            }
        }
        impl GetProxyDigest for $ty {}
        impl GetSocketDigest for $ty {}
        impl Peek for $ty {}
    };
}

impl_plain_io!(tokio::io::DuplexStream);
impl_plain_io!(std::io::Cursor<Vec<u8>>);
impl_plain_io!(tokio_test::io::Mock);

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_io<T: IO>() {}

    #[test]
    fn stream_types_are_io() {
        assert_io::<l4::stream::Stream>();
        assert_io::<tokio::io::DuplexStream>();
        assert_io::<std::io::Cursor<Vec<u8>>>();
        assert_io::<PrefixedStream>();
    }
}
