//! HTTP/2 frames built and read by hand (RFC 9113 section 4; HPACK of RFC 7541 without
//! Huffman coding or indexing), for malformed and hostile input and for watching exactly what
//! a peer sends.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::raw::RawConn;

/// The client connection preface (RFC 9113 section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame type DATA.
pub const DATA: u8 = 0;
/// Frame type HEADERS.
pub const HEADERS: u8 = 1;
/// Frame type RST_STREAM.
pub const RST_STREAM: u8 = 3;
/// Frame type SETTINGS.
pub const SETTINGS: u8 = 4;
/// Frame type PING.
pub const PING: u8 = 6;
/// Frame type GOAWAY.
pub const GOAWAY: u8 = 7;
/// Frame type WINDOW_UPDATE.
pub const WINDOW_UPDATE: u8 = 8;
/// Frame type CONTINUATION.
pub const CONTINUATION: u8 = 9;

/// Flag END_STREAM (DATA, HEADERS).
pub const END_STREAM: u8 = 0x1;
/// Flag ACK (SETTINGS, PING).
pub const ACK: u8 = 0x1;
/// Flag END_HEADERS (HEADERS, CONTINUATION).
pub const END_HEADERS: u8 = 0x4;

/// Error code PROTOCOL_ERROR.
pub const PROTOCOL_ERROR: u32 = 0x1;
/// Error code FLOW_CONTROL_ERROR.
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
/// Error code STREAM_CLOSED.
pub const STREAM_CLOSED: u32 = 0x5;
/// Error code FRAME_SIZE_ERROR.
pub const FRAME_SIZE_ERROR: u32 = 0x6;
/// Error code CANCEL.
pub const CANCEL: u32 = 0x8;
/// Error code ENHANCE_YOUR_CALM.
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

// === building ===

/// A frame: 9-byte head, then `payload`.
///
/// # Panics
///
/// If `payload` is 4 GiB or more.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a small frame");
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A WINDOW_UPDATE of `increment` on `stream` (0: the connection).
pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// A RST_STREAM of `stream` with error `code`.
pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// The acknowledgement of a PING carrying `payload`.
pub fn ping_ack(payload: &[u8]) -> Vec<u8> {
    frame(PING, ACK, 0, payload)
}

/// A HEADERS frame carrying the whole `block`, ending the stream when `end`.
pub fn headers(stream: u32, block: &[u8], end: bool) -> Vec<u8> {
    let flags = END_HEADERS | if end { END_STREAM } else { 0 };
    frame(HEADERS, flags, stream, block)
}

/// An HPACK integer with a `prefix`-bit prefix whose other bits are `flags`, appended to `out`.
pub fn hpack_int(flags: u8, prefix: u32, value: usize, out: &mut Vec<u8>) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// An HPACK field "literal without indexing, new name" (RFC 7541 section 6.2.2), no Huffman.
pub fn field(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0];
    hpack_int(0, 7, name.len(), &mut out);
    out.extend_from_slice(name.as_bytes());
    hpack_int(0, 7, value.len(), &mut out);
    out.extend_from_slice(value.as_bytes());
    out
}

/// The pseudo-header fields of `method` (GET or POST) for `path` on authority `a`.
pub fn request_fields(method: &str, path: &str) -> Vec<u8> {
    // Static table: 2 = `:method GET`, 3 = `:method POST`, 6 = `:scheme http`.
    let mut out = vec![if method == "POST" { 0x83 } else { 0x82 }, 0x86];
    out.extend(field(":path", path));
    out.extend(field(":authority", "a"));
    out
}

/// The preface, an empty SETTINGS frame, and a HEADERS frame opening stream 1 with
/// `GET http://a<path>`, ending the stream: a whole request that needs no answer to the
/// server's SETTINGS first.
pub fn preface_and_get(path: &str) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(headers(1, &request_fields("GET", path), true));
    out
}

// === reading ===

/// A frame as received.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The frame type.
    pub kind: u8,
    /// The flags.
    pub flags: u8,
    /// The stream identifier (reserved bit cleared).
    pub stream: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY.
    ///
    /// # Panics
    ///
    /// If the payload is too short for one.
    pub fn error_code(&self) -> u32 {
        let at = if self.kind == GOAWAY { 4 } else { 0 };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().expect("4 bytes"))
    }

    /// The last stream identifier of a GOAWAY.
    ///
    /// # Panics
    ///
    /// If the payload is too short for one.
    pub fn last_stream(&self) -> u32 {
        u32::from_be_bytes(self.payload[..4].try_into().expect("4 bytes")) & 0x7fff_ffff
    }
}

/// Reads the next frame from `conn`; `None` once the connection ends.
pub async fn read_frame<S: AsyncRead + Unpin>(conn: &mut RawConn<S>) -> Option<Frame> {
    let head = conn.try_read_exact(9).await?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let payload = conn.try_read_exact(len).await?;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    Some(Frame {
        kind: head[3],
        flags: head[4],
        stream,
        payload,
    })
}

/// The `:status` of a response HEADERS block that starts with it, as servers send it: an
/// indexed static entry (200, 204, 206, 304, 400, 404, 500) or a literal with the static
/// name `:status` (index 8) and a plain or Huffman-coded value.
///
/// # Panics
///
/// If the block does not start with a `:status` field of those forms.
pub fn status_of(block: &[u8]) -> u16 {
    const INDEXED: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    match block[0] {
        b @ 0x88..=0x8e => INDEXED[usize::from(b - 0x88)],
        0x48 | 0x08 | 0x18 => {
            let len = usize::from(block[1] & 0x7f);
            let value = &block[2..2 + len];
            let text = if block[1] & 0x80 == 0 {
                String::from_utf8_lossy(value).into_owned()
            } else {
                huffman_digits(value)
            };
            text.parse().expect("a numeric status")
        }
        other => panic!("a block not starting with :status ({other:#x})"),
    }
}

/// Decodes a Huffman-coded string of digits (RFC 7541 appendix B: `0`-`2` have 5-bit codes
/// `00000`-`00010`, `3`-`9` 6-bit codes `011001`-`011111`; padding is all ones).
fn huffman_digits(bytes: &[u8]) -> String {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let value = |bits: &[u8]| bits.iter().fold(0u8, |v, b| v << 1 | b);
    let mut out = String::new();
    let mut at = 0;
    while bits.len() - at >= 5 && bits[at..].contains(&0) {
        let five = value(&bits[at..at + 5]);
        if five <= 2 {
            out.push(char::from(b'0' + five));
            at += 5;
        } else {
            let six = value(&bits[at..at + 6]);
            assert!((0x19..=0x1f).contains(&six), "not a digit code");
            out.push(char::from(b'3' + six - 0x19));
            at += 6;
        }
    }
    out
}

/// The server's side of the connection set-up: reads the client's preface, sends an empty
/// SETTINGS frame. `None` if the client closes first.
///
/// # Panics
///
/// If the client sends something other than the preface.
pub async fn accept_preface<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut RawConn<S>,
) -> Option<()> {
    let preface = conn.try_read_exact(PREFACE.len()).await?;
    assert_eq!(preface, PREFACE, "the client preface");
    conn.send(frame(SETTINGS, 0, 0, &[])).await;
    Some(())
}

// === Wire ===

/// A raw HTTP/2 client connection that has done the connection set-up (preface, SETTINGS
/// both ways) and answers the server's PINGs, as a client must.
#[derive(Debug)]
pub struct Wire<S = TcpStream> {
    /// The connection.
    pub conn: RawConn<S>,
}

impl Wire<TcpStream> {
    /// Connects, sends the preface and SETTINGS, and acknowledges the server's SETTINGS.
    ///
    /// # Panics
    ///
    /// If the set-up fails.
    pub async fn open(addr: SocketAddr) -> Wire {
        let mut wire = Wire {
            conn: RawConn::connect(addr).await,
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        wire.send(&hello).await.expect("preface sent");
        loop {
            let f = wire.next().await.expect("the server's SETTINGS");
            if f.kind == SETTINGS && f.flags & ACK == 0 {
                break;
            }
        }
        wire.send(&frame(SETTINGS, ACK, 0, &[]))
            .await
            .expect("SETTINGS ACK sent");
        wire
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    /// Sends `bytes`; an error once the server closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.conn.try_send(bytes).await
    }

    /// The next frame; `None` once the server closed the connection. PINGs from the server
    /// are answered (a graceful shutdown waits for the answer).
    pub async fn next(&mut self) -> Option<Frame> {
        let f = read_frame(&mut self.conn).await?;
        if f.kind == PING && f.flags & ACK == 0 {
            let _ = self.send(&ping_ack(&f.payload)).await;
        }
        Some(f)
    }

    /// The next frame other than SETTINGS, PING and WINDOW_UPDATE.
    ///
    /// # Panics
    ///
    /// If the connection ends first.
    pub async fn next_significant(&mut self) -> Frame {
        loop {
            let f = self.next().await.expect("a frame, not the end");
            if ![SETTINGS, PING, WINDOW_UPDATE].contains(&f.kind) {
                return f;
            }
        }
    }

    /// Reads until a GOAWAY and returns it, then expects the connection to close with no
    /// HEADERS or DATA after it.
    ///
    /// # Panics
    ///
    /// If the connection ends before a GOAWAY, or a stream is answered after it.
    pub async fn goaway_then_close(&mut self) -> Frame {
        let goaway = loop {
            let f = self.next().await.expect("a GOAWAY before the close");
            if f.kind == GOAWAY {
                break f;
            }
        };
        while let Some(f) = self.next().await {
            assert!(
                f.kind != HEADERS && f.kind != DATA,
                "the server answered after its GOAWAY: {f:?}"
            );
        }
        goaway
    }

    /// Sends a valid GET on `stream` and expects its 200 (the connection is still fine).
    ///
    /// # Panics
    ///
    /// If the answer is anything else.
    pub async fn expect_served(&mut self, stream: u32) {
        let block = request_fields("GET", "/");
        self.send(&headers(stream, &block, true))
            .await
            .expect("request sent");
        let f = self.next_significant().await;
        assert_eq!((f.kind, f.stream), (HEADERS, stream), "{f:?}");
        assert_eq!(status_of(&f.payload), 200);
    }
}
