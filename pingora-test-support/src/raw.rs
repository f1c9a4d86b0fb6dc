//! [`RawConn`]: one connection spoken to in raw HTTP/1 bytes, as a client or as an origin.
//!
//! It writes exactly the bytes it is given (malformed requests included) and reads messages
//! as they are on the wire: header names as spelled, heads as received, bodies decoded by
//! their framing. Every read is bounded by [`TIMEOUT`](crate::TIMEOUT).

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::within;

// === Head ===

/// A message head: the start line and the fields in order.
#[derive(Debug, Clone, Default)]
pub struct Head {
    /// The request or status line, without CRLF.
    pub line: String,
    /// The fields, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The head as received, final CRLF CRLF included.
    pub raw: Vec<u8>,
}

impl Head {
    /// Parses a head (`raw` ends with the empty line).
    fn parse(raw: Vec<u8>) -> Head {
        let text = String::from_utf8_lossy(&raw[..raw.len().saturating_sub(4)]).into_owned();
        let mut lines = text.split("\r\n");
        let line = lines.next().unwrap_or_default().to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_string(), v.trim().to_string()))
            .collect();
        Head { line, headers, raw }
    }

    /// The status code of a response head.
    ///
    /// # Panics
    ///
    /// If the start line is not a status line.
    pub fn status(&self) -> u16 {
        self.line
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {:?}", self.line))
    }

    /// The first value of field `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of field `name` (any case), which must not appear more than once.
    ///
    /// # Panics
    ///
    /// If `name` appears more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = found.next();
        assert!(found.next().is_none(), "{name} appears more than once");
        first
    }

    /// The lowercased field names, in order.
    pub fn names(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect()
    }

    /// The method of a request head.
    pub fn method(&self) -> &str {
        self.line.split(' ').next().unwrap_or("")
    }

    /// The target of a request head.
    pub fn target(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    fn framing(&self) -> Framing {
        if self
            .get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked
        } else if let Some(n) = self.get("content-length") {
            Framing::Length(n.trim().parse().expect("a numeric Content-Length"))
        } else {
            Framing::None
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Chunked,
    Length(usize),
    None,
}

/// A chunked body as far as it was read.
struct Chunked {
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
    end: ChunkedEnd,
}

/// How a chunked body ended.
#[derive(PartialEq, Eq)]
enum ChunkedEnd {
    /// With its last chunk and trailer section.
    Complete,
    /// The connection closed first.
    CutShort,
    /// Not chunked coding; what was wrong.
    Malformed(String),
}

// === Message ===

/// A request or a response with its body.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// Informational (1xx) heads received before the final one (responses read with
    /// [`RawConn::read_response`] only).
    pub interim: Vec<Head>,
    /// The head.
    pub head: Head,
    /// The decoded body.
    pub body: Vec<u8>,
    /// The trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// Whether the body was chunked and ended with its last chunk.
    pub chunked_complete: bool,
}

impl Message {
    /// Takes `chunked` as the body.
    fn set_chunked(&mut self, chunked: Chunked) {
        self.body = chunked.body;
        self.trailers = chunked.trailers;
        self.chunked_complete = chunked.end == ChunkedEnd::Complete;
    }

    /// The status code of a response.
    pub fn status(&self) -> u16 {
        self.head.status()
    }

    /// The value of header `name`; see [`Head::header`].
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

// === RawConn ===

/// How a connection ended, as this side saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// A clean close: read returned 0.
    Eof,
    /// The peer reset the connection.
    Reset,
}

/// One connection (or its reading half) spoken to in raw HTTP/1, with a read buffer.
#[derive(Debug)]
pub struct RawConn<S = TcpStream> {
    /// The connection.
    pub stream: S,
    buf: Vec<u8>,
}

impl RawConn<TcpStream> {
    /// Connects to `addr`.
    ///
    /// # Panics
    ///
    /// If the connection fails or takes longer than [`TIMEOUT`](crate::TIMEOUT).
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        RawConn::new(stream)
    }

    /// Closes the connection with a reset (RST) instead of a FIN: `SO_LINGER` of zero, then
    /// dropped. What a crashed peer or a middlebox giving up looks like.
    ///
    /// # Panics
    ///
    /// If the socket option cannot be set.
    pub fn reset(self) {
        self.stream
            .set_zero_linger()
            .expect("set SO_LINGER to zero");
        drop(self);
    }
}

impl<S: AsyncWrite + Unpin> RawConn<S> {
    /// Writes `bytes` whole and flushes; an error once the peer closed the connection.
    ///
    /// # Panics
    ///
    /// If the write takes longer than [`TIMEOUT`](crate::TIMEOUT): the peer stopped reading
    /// without closing.
    pub async fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
        let write = async {
            self.stream.write_all(bytes.as_ref()).await?;
            self.stream.flush().await
        };
        within("write", write).await
    }

    /// Writes `bytes` whole and flushes.
    ///
    /// # Panics
    ///
    /// If the write fails or takes longer than [`TIMEOUT`](crate::TIMEOUT).
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.try_send(bytes).await.expect("write");
    }
}

impl<S: AsyncRead + Unpin> RawConn<S> {
    /// Reads from `stream` (an accepted or connected socket, a reading half, a byte slice).
    pub fn new(stream: S) -> Self {
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer; `Err` when the connection ended.
    async fn fill(&mut self) -> Result<(), Closed> {
        self.read_more(true).await
    }

    /// Waits, with no deadline, until the peer sends something or ends the connection;
    /// whether it sent something. This is a server's wait between keepalive requests, which
    /// lasts as long as the peer keeps the connection idle in its pool.
    ///
    /// # Panics
    ///
    /// On a read error other than a reset.
    pub async fn wait_idle(&mut self) -> bool {
        !self.buf.is_empty() || self.read_more(false).await.is_ok()
    }

    /// One read into the buffer, within the test deadline when `deadline`.
    async fn read_more(&mut self, deadline: bool) -> Result<(), Closed> {
        let mut chunk = vec![0u8; 64 * 1024];
        let read = self.stream.read(&mut chunk);
        let read = if deadline {
            within("read: the peer neither sent nor closed", read).await
        } else {
            read.await
        };
        match read {
            Ok(0) => Err(Closed::Eof),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Err(Closed::Reset),
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Takes the bytes up to and including the first `pattern`; `None` if the connection
    /// ends first.
    async fn try_take_until(&mut self, pattern: &[u8]) -> Option<Vec<u8>> {
        loop {
            if let Some(pos) = find(&self.buf, pattern) {
                return Some(self.buf.drain(..pos + pattern.len()).collect());
            }
            self.fill().await.ok()?;
        }
    }

    /// Reads exactly `n` bytes; `None` if the connection ends first.
    pub async fn try_read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            self.fill().await.ok()?;
        }
        Some(self.buf.drain(..n).collect())
    }

    /// Reads exactly `n` bytes.
    ///
    /// # Panics
    ///
    /// If the connection ends first.
    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        match self.try_read_exact(n).await {
            Some(bytes) => bytes,
            None => panic!(
                "connection closed with {} of {n} bytes: {:?}",
                self.buf.len(),
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Takes the bytes up to and including the first `pattern`.
    ///
    /// # Panics
    ///
    /// If the connection ends first.
    pub async fn read_until(&mut self, pattern: &[u8]) -> Vec<u8> {
        match self.try_take_until(pattern).await {
            Some(bytes) => bytes,
            None => panic!(
                "connection closed before {:?}; got {:?}",
                String::from_utf8_lossy(pattern),
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Reads everything until the peer closes; returns the bytes and how it closed.
    pub async fn read_to_close(&mut self) -> (Vec<u8>, Closed) {
        loop {
            if let Err(closed) = self.fill().await {
                return (std::mem::take(&mut self.buf), closed);
            }
        }
    }

    /// Reads until the peer closes, however it closes.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        self.read_to_close().await.0
    }

    /// Asserts the peer closed the connection cleanly with nothing more sent.
    ///
    /// # Panics
    ///
    /// If bytes came, or the connection was reset.
    pub async fn expect_eof(&mut self) {
        let (rest, closed) = self.read_to_close().await;
        assert_eq!(
            String::from_utf8_lossy(&rest),
            "",
            "unexpected bytes before close"
        );
        assert_eq!(closed, Closed::Eof, "the peer reset the connection");
    }

    /// Whether the peer closed the connection (EOF or reset) with nothing more to read.
    pub async fn is_closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill().await.is_err()
    }

    /// Bytes received but not consumed yet.
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }

    // --- heads and bodies ---

    /// Reads a head; `None` if the peer closed before sending a byte of it.
    ///
    /// # Panics
    ///
    /// If the peer closes in the middle of a head.
    pub async fn read_head(&mut self) -> Option<Head> {
        let head = self.try_take_until(b"\r\n\r\n").await.map(Head::parse);
        assert!(
            head.is_some() || self.buf.is_empty(),
            "connection closed in the middle of a head: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        head
    }

    /// Decodes a chunked body.
    async fn read_chunked_body(&mut self) -> Chunked {
        let mut chunked = Chunked {
            body: Vec::new(),
            trailers: Vec::new(),
            end: ChunkedEnd::Complete,
        };
        chunked.end = match self.read_chunks(&mut chunked).await {
            Ok(()) => ChunkedEnd::Complete,
            Err(end) => end,
        };
        chunked
    }

    /// Reads chunks into `out` until the end of the trailer section; `Err` says how it ended
    /// early.
    async fn read_chunks(&mut self, out: &mut Chunked) -> Result<(), ChunkedEnd> {
        loop {
            let line = self.try_read_line().await.ok_or(ChunkedEnd::CutShort)?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| ChunkedEnd::Malformed(format!("chunk size {line:?}")))?;
            if size == 0 {
                loop {
                    let line = self.try_read_line().await.ok_or(ChunkedEnd::CutShort)?;
                    if line.is_empty() {
                        return Ok(());
                    }
                    let (name, value) = line
                        .split_once(':')
                        .ok_or_else(|| ChunkedEnd::Malformed(format!("trailer {line:?}")))?;
                    out.trailers
                        .push((name.to_string(), value.trim().to_string()));
                }
            }
            let data = self
                .try_read_exact(size + 2)
                .await
                .ok_or(ChunkedEnd::CutShort)?;
            if &data[size..] != b"\r\n" {
                let what = "chunk data not followed by CRLF".to_string();
                return Err(ChunkedEnd::Malformed(what));
            }
            out.body.extend_from_slice(&data[..size]);
        }
    }

    /// A line without its CRLF; `None` if the connection ends first.
    async fn try_read_line(&mut self) -> Option<String> {
        let line = self.try_take_until(b"\r\n").await?;
        Some(String::from_utf8_lossy(&line[..line.len() - 2]).into_owned())
    }

    /// Reads a chunked body, trailers discarded.
    ///
    /// # Panics
    ///
    /// If the body is cut short or malformed.
    pub async fn read_chunked(&mut self) -> Vec<u8> {
        let chunked = self.read_chunked_body().await;
        match chunked.end {
            ChunkedEnd::Complete => chunked.body,
            ChunkedEnd::CutShort => panic!("a chunked body cut short"),
            ChunkedEnd::Malformed(what) => panic!("a malformed chunked body: {what}"),
        }
    }

    /// Reads the body `head` announces into `msg`; `until_close` reads an unframed body to
    /// the close. `None` if it is cut short or malformed.
    async fn try_read_body(&mut self, msg: &mut Message, until_close: bool) -> Option<()> {
        match msg.head.framing() {
            Framing::Chunked => {
                let chunked = self.read_chunked_body().await;
                if chunked.end != ChunkedEnd::Complete {
                    return None;
                }
                msg.set_chunked(chunked);
            }
            Framing::Length(n) => msg.body = self.try_read_exact(n).await?,
            Framing::None if until_close => msg.body = self.read_to_end().await,
            Framing::None => {}
        }
        Some(())
    }

    /// Reads the body that `head` announces (a request's: without framing there is none);
    /// `None` if it is cut short or malformed.
    pub async fn read_body(&mut self, head: &Head) -> Option<Vec<u8>> {
        let mut msg = Message {
            head: head.clone(),
            ..Message::default()
        };
        self.try_read_body(&mut msg, false).await?;
        Some(msg.body)
    }

    /// Reads a request with its body (and trailers); `None` if the peer closed (or broke the
    /// framing) first.
    pub async fn read_request(&mut self) -> Option<Message> {
        let head = self.try_take_until(b"\r\n\r\n").await.map(Head::parse)?;
        let mut msg = Message {
            head,
            ..Message::default()
        };
        self.try_read_body(&mut msg, false).await?;
        Some(msg)
    }

    /// Reads a final response to a request of `method`, collecting 1xx heads (but 101) in
    /// [`Message::interim`]; an unframed body is read to the close.
    ///
    /// # Panics
    ///
    /// If the peer closes before a whole response.
    pub async fn read_response(&mut self, method: &str) -> Message {
        let mut interim = Vec::new();
        loop {
            let head = self.read_head().await.expect("a response, not EOF");
            let status = head.status();
            if (100..200).contains(&status) && status != 101 {
                interim.push(head);
                continue;
            }
            let mut msg = Message {
                interim,
                head,
                ..Message::default()
            };
            let bodiless = method == "HEAD" || status == 204 || status == 304 || status == 101;
            if !bodiless {
                self.try_read_body(&mut msg, true)
                    .await
                    .expect("a complete response body");
            }
            return msg;
        }
    }

    /// Sends `request` and reads the response to it (see [`RawConn::read_response`]).
    pub async fn roundtrip(&mut self, request: impl AsRef<[u8]>) -> Message
    where
        S: AsyncWrite,
    {
        let request = request.as_ref();
        let method = String::from_utf8_lossy(request)
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        self.send(request).await;
        self.read_response(&method).await
    }

    /// Reads the next response exactly, to a request that was not `HEAD`: a 1xx head is a
    /// response of its own; the head must parse strictly (httparse); a chunked body cut short
    /// is returned as received with [`Message::chunked_complete`] false.
    ///
    /// # Panics
    ///
    /// If the head is invalid or incomplete, a framed body is cut short, or a body read to
    /// the close ends with a reset.
    pub async fn response(&mut self) -> Message {
        self.strict_response(false).await
    }

    /// [`RawConn::response`] to a `HEAD` request: no body.
    pub async fn response_to_head(&mut self) -> Message {
        self.strict_response(true).await
    }

    async fn strict_response(&mut self, head_request: bool) -> Message {
        let head = Head::parse(self.read_until(b"\r\n\r\n").await);
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut slots);
        let status = parsed.parse(&head.raw).expect("a valid response head");
        assert!(status.is_complete());
        let code = parsed.code.expect("a status code");
        let mut msg = Message {
            head,
            ..Message::default()
        };
        if head_request || (100..200).contains(&code) || code == 204 || code == 304 {
            return msg;
        }
        match msg.head.framing() {
            Framing::Chunked => {
                let chunked = self.read_chunked_body().await;
                if let ChunkedEnd::Malformed(what) = &chunked.end {
                    panic!("a malformed chunked body: {what}");
                }
                msg.set_chunked(chunked);
            }
            Framing::Length(n) => msg.body = self.read_exact(n).await,
            Framing::None => {
                let (body, closed) = self.read_to_close().await;
                assert_eq!(closed, Closed::Eof, "a body read until close was reset");
                msg.body = body;
            }
        }
        msg
    }
}

// === building messages ===

/// The position of the first `pattern` in `hay`.
pub fn find(hay: &[u8], pattern: &[u8]) -> Option<usize> {
    hay.windows(pattern.len()).position(|w| w == pattern)
}

/// A GET of `path` with the given extra header lines (each ending in CRLF).
pub fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n")
}

/// A POST of `body` to `path` with a Content-Length.
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// A 200 response with `body` and a Content-Length, keeping the connection.
pub fn ok_response(body: &[u8]) -> Vec<u8> {
    let mut resp =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    resp.extend_from_slice(body);
    resp
}

/// `body` in chunked coding, in chunks of sizes cycling through `sizes`.
pub fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 16);
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
