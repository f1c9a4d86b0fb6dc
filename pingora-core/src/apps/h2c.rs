//! HTTP/2 over cleartext TCP with prior knowledge ("h2c", RFC 9113 section 3.3): recognising
//! the client connection preface, and refusing connections that do not open with it on a
//! listener that serves HTTP/2 only.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use log::debug;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::h2_conn::serve_h2;
use super::{wait_for_request, HttpServerApp, DEFAULT_KEEPALIVE_SECS};
use crate::protocols::http::v2::server as h2_server;
use crate::protocols::{PrefixedStream, Stream};
use crate::shutdown::ShutdownWatch;

/// How long a client that started sending the HTTP/2 preface may take to send the rest.
const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);

/// What an h2c-only listener sends a client whose connection does not open with the preface,
/// a connection error of type PROTOCOL_ERROR (RFC 9113 section 3.4): the server's own preface,
/// an empty SETTINGS frame, then GOAWAY with last-stream-id 0 (no stream was processed) and
/// the error code PROTOCOL_ERROR (0x1). Each frame is a 9-byte header (24-bit length, type,
/// flags, reserved bit and 31-bit stream id, section 4.1) followed by its payload.
pub(super) const PREFACE_REFUSAL: [u8; 26] = [
    // SETTINGS (type 0x4): length 0, no flags, stream 0.
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, //
    // GOAWAY (type 0x7): length 8, no flags, stream 0; last-stream-id 0, error code 0x1.
    0, 0, 8, 0x7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1,
];

/// How long a refused connection is given to take [`PREFACE_REFUSAL`], and then to stop
/// sending, before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);

/// The most bytes read and discarded from a refused connection before it is closed.
const REFUSAL_DRAIN_BYTES: usize = 64 * 1024;

/// Reads on until `buf` holds as many bytes as the HTTP/2 preface or stops matching it, for at
/// most [`PREFACE_TIMEOUT`] in all. Returns whether it starts with the preface. Bytes read are
/// left in `buf` either way.
pub(super) async fn read_preface(stream: &mut Stream, buf: &mut BytesMut) -> bool {
    let read = async {
        let preface = h2_server::H2_PREFACE;
        loop {
            let n = buf.len().min(preface.len());
            if buf[..n] != preface[..n] {
                return false;
            }
            if n == preface.len() {
                return true;
            }
            match stream.read_buf(buf).await {
                Ok(read) if read > 0 => {}
                // The caller decides what an incomplete preface means.
                _ => return false,
            }
        }
    };
    pingora_timeout::timeout(PREFACE_TIMEOUT, read)
        .await
        .unwrap_or(false)
}

/// Serves a plaintext connection of an h2c-only listener
/// ([`HttpServerOptions::h2c_only`](super::HttpServerOptions::h2c_only)): HTTP/2 if it opens
/// with the preface, otherwise refused with [`PREFACE_REFUSAL`] and closed, without a byte of
/// HTTP/1. A connection closed, or silent for the keepalive timeout, before sending anything is
/// closed without a word; one that sends part of the preface then stops is refused after
/// [`PREFACE_TIMEOUT`].
pub(super) async fn serve_prior_knowledge_only<T>(
    app: &Arc<T>,
    mut stream: Stream,
    shutdown: &ShutdownWatch,
) -> Option<Stream>
where
    T: HttpServerApp + Send + Sync + 'static,
{
    let mut watch = shutdown.clone();
    let mut first_bytes = wait_for_request(&mut stream, DEFAULT_KEEPALIVE_SECS, &mut watch).await?;
    if read_preface(&mut stream, &mut first_bytes).await {
        let stream = PrefixedStream::prepend(stream, first_bytes.freeze());
        return serve_h2(app, stream, shutdown).await;
    }
    debug!("h2c-only listener: the connection does not open with the HTTP/2 preface");
    refuse(stream).await;
    None
}

/// Sends [`PREFACE_REFUSAL`], ends the sending side, then reads and discards what the client
/// still sends (up to [`REFUSAL_DRAIN_BYTES`]) until it closes, so that closing does not reset
/// the connection before the client has read the GOAWAY. Bounded by [`REFUSAL_LINGER`] in all.
async fn refuse(mut stream: Stream) {
    let linger = async {
        if stream.write_all(&PREFACE_REFUSAL).await.is_err() || stream.flush().await.is_err() {
            return;
        }
        // `AsyncWriteExt::shutdown`: a FIN after the GOAWAY, the connection still readable.
        if AsyncWriteExt::shutdown(&mut stream).await.is_err() {
            return;
        }
        let mut discarded = 0;
        let mut buf = vec![0; 4096];
        while discarded < REFUSAL_DRAIN_BYTES {
            match stream.read(&mut buf).await {
                Ok(n) if n > 0 => discarded += n,
                _ => return,
            }
        }
    };
    let _ = pingora_timeout::timeout(REFUSAL_LINGER, linger).await;
}

#[cfg(test)]
mod tests {
    use super::PREFACE_REFUSAL;

    #[test]
    fn the_refusal_is_an_empty_settings_then_goaway_protocol_error() {
        let (settings, goaway) = PREFACE_REFUSAL.split_at(9);
        // Length 0, type SETTINGS, no flags, stream 0.
        assert_eq!(settings, [0, 0, 0, 4, 0, 0, 0, 0, 0]);
        let (header, payload) = goaway.split_at(9);
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]);
        assert_eq!(length as usize, payload.len());
        assert_eq!((header[3], header[4]), (7, 0), "GOAWAY, no flags");
        assert_eq!(&header[5..], [0; 4], "on stream 0");
        assert_eq!(&payload[..4], [0; 4], "last-stream-id 0");
        assert_eq!(&payload[4..], 1u32.to_be_bytes(), "PROTOCOL_ERROR");
    }
}
