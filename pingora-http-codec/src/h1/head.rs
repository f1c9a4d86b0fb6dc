//! Parsing and writing HTTP/1 message heads, and deciding how their bodies are framed
//! (RFC 9112 sections 2-6).
//!
//! Heads are parsed with `httparse`; the checks a proxy needs on top of it (one framing, one
//! Host, no conflicting lengths) are here. Header values are not copied: they are slices of the
//! buffer the head was read into.
//!
//! The parsers take the buffer a session reads into and remove a complete head from its front,
//! leaving what follows (body bytes, a pipelined request) in place; `Ok(None)` asks for more
//! bytes. Any byte sequence is a valid input: malformed ones give an error, never a panic.

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode, Version};
use pingora_error::{BError, Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};

use super::fields::{self, ConnectionTokens};
use super::{Framing, Limits};

/// Header fields parsed without allocating, up to this many (the default limit); beyond, the
/// slots are on the heap. The slots take 8 KiB of stack in a synchronous call.
const STACK_HEADERS: usize = 256;

/// A parsed request head with what the session needs to know about it.
#[derive(Debug)]
#[non_exhaustive]
pub struct RequestHead {
    /// The request line and header fields; values share the bytes of [`RequestHead::raw`].
    pub header: RequestHeader,
    /// How the request body is delimited.
    pub framing: Framing,
    /// What the request asks for; the server's own settings may still turn keepalive off.
    pub keepalive: bool,
    /// The request carries `Expect: 100-continue` (HTTP/1.1 only).
    pub expect_continue: bool,
    /// The request asks to switch protocols (HTTP/1.1 `Upgrade`).
    pub upgrade: bool,
    /// The raw bytes of the head.
    pub raw: Bytes,
}

/// A parsed response head.
#[derive(Debug)]
#[non_exhaustive]
pub struct ResponseHead {
    /// The status line and header fields; values share the bytes of [`ResponseHead::raw`].
    pub header: ResponseHeader,
    /// How the body would be framed if the response has one; the caller applies the
    /// request-dependent rules (HEAD, 1xx, 204, 304, CONNECT) with [`response_framing`].
    pub framing: Framing,
    /// The tokens of the response's `Connection` fields.
    pub connection: ConnectionTokens,
    /// A `Keep-Alive: timeout=N` parameter.
    pub keepalive_timeout: Option<u64>,
    /// The raw bytes of the head.
    pub raw: Bytes,
}

/// Byte ranges of one header field within the head.
#[derive(Clone, Copy, Default)]
struct FieldPos {
    name: (u32, u32),
    value: (u32, u32),
}

impl FieldPos {
    fn new(base: *const u8, name: &[u8], value: &[u8]) -> Self {
        FieldPos {
            name: offsets(base, name),
            value: offsets(base, value),
        }
    }

    fn name(&self) -> Range<usize> {
        self.name.0 as usize..self.name.1 as usize
    }

    fn value(&self) -> Range<usize> {
        self.value.0 as usize..self.value.1 as usize
    }
}

/// Field positions kept without allocating, up to this many: most heads have fewer fields,
/// and the slots are zeroed on every parse.
const INLINE_FIELDS: usize = 32;

/// The positions of the parsed `headers` within the buffer starting at `base`, in `slots`
/// when they fit, else in `heap`.
fn field_positions<'s>(
    base: *const u8,
    headers: &[httparse::Header<'_>],
    slots: &'s mut [FieldPos; INLINE_FIELDS],
    heap: &'s mut Vec<FieldPos>,
) -> &'s [FieldPos] {
    let positions = headers
        .iter()
        .map(|h| FieldPos::new(base, h.name.as_bytes(), h.value));
    if headers.len() <= INLINE_FIELDS {
        for (slot, pos) in slots.iter_mut().zip(positions) {
            *slot = pos;
        }
        &slots[..headers.len()]
    } else {
        heap.extend(positions);
        heap
    }
}

/// The position of `part` inside the buffer starting at `base`.
fn offsets(base: *const u8, part: &[u8]) -> (u32, u32) {
    // httparse hands out slices of the buffer it parsed, so the subtraction stays inside one
    // allocation; heads are far smaller than 4 GiB (bounded by `max_header_bytes`).
    let start = (part.as_ptr() as usize).wrapping_sub(base as usize) as u32;
    (start, start + part.len() as u32)
}

/// A field value `httparse` accepted, as a [`HeaderValue`] sharing the head's bytes.
///
/// `httparse` accepts exactly the bytes `HeaderValue` does in a value (HTAB, SP to `~`, and
/// 0x80 to 0xFF; no other control byte), so checking them again, a byte at a time on every
/// field of every head, is skipped. Unfolded obs-fold (CR and LF made spaces) keeps that true.
/// Debug builds (every test and fuzz run) check anyway: `http` panics there on an invalid byte.
#[allow(unsafe_code)]
#[inline]
fn parsed_value(value: Bytes) -> HeaderValue {
    debug_assert!(value
        .iter()
        .all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f)));
    // SAFETY: the bytes are a field value `httparse` validated (see above); the function's
    // only requirement is that they are valid in a header value.
    unsafe { HeaderValue::from_maybe_shared_unchecked(value) }
}

fn reject(code: u16, why: &'static str) -> BError {
    Error::explain(ErrorType::HTTPStatus(code), why).into_down()
}

/// The error for a head that is still incomplete but already too large.
fn too_large(buf: &[u8], limits: &Limits, is_request: bool) -> Option<BError> {
    if buf.len() <= limits.max_header_bytes {
        return None;
    }
    Some(oversized(buf, limits, is_request))
}

/// The error for a head over the size limit: 414 when the request line alone is over it
/// (whether or not its end has arrived), 431 otherwise.
fn oversized(buf: &[u8], limits: &Limits, is_request: bool) -> BError {
    if is_request && request_line_len(buf) > limits.max_header_bytes {
        return reject(414, "request line too long");
    }
    reject(431, "request header section too large")
}

/// The length of the request line at the front of `buf` (all of `buf` if its end has not
/// arrived), not counting the empty lines a client may send before it (RFC 9112 section 2.2).
fn request_line_len(buf: &[u8]) -> usize {
    let Some(start) = buf.iter().position(|&b| b != b'\r' && b != b'\n') else {
        return 0;
    };
    buf[start..]
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(buf.len() - start)
}

/// Whether the request line ends with something shaped like a version, `HTTP/d.d`: then a
/// version error from the parser means a version we do not speak (505), not a malformed line.
fn has_version_shape(buf: &[u8]) -> bool {
    let Some(start) = buf.iter().position(|&b| b != b'\r' && b != b'\n') else {
        return false;
    };
    let line = &buf[start..];
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut tokens = line.split(|&b| b == b' ');
    let (Some(_method), Some(_target), Some(version), None) =
        (tokens.next(), tokens.next(), tokens.next(), tokens.next())
    else {
        return false;
    };
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
}

/// Parses a request head from the front of `buf`. On success the head's bytes are removed from
/// `buf`; bytes after it (body or a pipelined request) stay. `Ok(None)`: more bytes are needed.
///
/// The version must be exactly `HTTP/` DIGIT "." DIGIT (RFC 9112 section 2.3). A request
/// of a later HTTP/1 minor version (`HTTP/1.2` to `HTTP/1.9`) is read and answered as
/// HTTP/1.1 (RFC 9110 section 2.5): its version token is rewritten in `buf`.
///
/// # Errors
/// [`ErrorType::HTTPStatus`] with the status to answer: 400 for malformed or ambiguous requests,
/// 414/431 for oversized heads, 501 for unsupported transfer codings, 505 for other versions.
pub fn parse_request(buf: &mut BytesMut, limits: &Limits) -> Result<Option<RequestHead>> {
    match parse_request_head(buf, limits) {
        // httparse knows only 1.0 and 1.1: a higher minor version is retried as 1.1. This
        // costs nothing on the usual path, which never fails.
        Err(e) if *e.etype() == ErrorType::HTTPStatus(505) && downgrade_minor_version(buf) => {
            parse_request_head(buf, limits)
        }
        result => result,
    }
}

/// Rewrites a request line's version `HTTP/1.x`, x from 2 to 9, to `HTTP/1.1`, when the
/// token is complete (followed by CR, LF or the end of what arrived so far). Returns whether
/// it did.
fn downgrade_minor_version(buf: &mut BytesMut) -> bool {
    let Some(start) = buf.iter().position(|&b| b != b'\r' && b != b'\n') else {
        return false;
    };
    // method SP target SP version: httparse allows exactly one space between them.
    let mut spaces = buf[start..]
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b' ' || b == b'\n')
        .map(|(i, _)| start + i);
    let (Some(first), Some(second)) = (spaces.next(), spaces.next()) else {
        return false;
    };
    if buf[first] != b' ' || buf[second] != b' ' {
        return false;
    }
    let version = second + 1;
    let Some(token) = buf.get(version..version + 8) else {
        return false;
    };
    let higher_minor = matches!(
        token,
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9']
    );
    let complete = matches!(buf.get(version + 8), None | Some(b'\r' | b'\n'));
    if !(higher_minor && complete) {
        return false;
    }
    buf[version + 7] = b'1';
    true
}

/// [`parse_request`] without the version fallback.
fn parse_request_head(buf: &mut BytesMut, limits: &Limits) -> Result<Option<RequestHead>> {
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap = Vec::with_capacity(limits.max_headers);
        heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    let status =
        httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, slots);
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return match too_large(buf, limits, true) {
                Some(e) => Err(e),
                None => Ok(None),
            }
        }
        Err(httparse::Error::TooManyHeaders) => return Err(reject(431, "too many header fields")),
        Err(httparse::Error::Version) if has_version_shape(buf) => {
            return Err(reject(505, "unsupported HTTP version"))
        }
        Err(_) => return Err(reject(400, "malformed request head")),
    };
    if head_len > limits.max_header_bytes {
        return Err(oversized(buf, limits, true));
    }
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(reject(400, "incomplete request line"));
    };
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| reject(400, "invalid method"))?;
    let base = buf.as_ptr();
    let path_pos = offsets(base, path.as_bytes());
    let mut field_slots = [FieldPos::default(); INLINE_FIELDS];
    let mut field_heap = Vec::new();
    let fields = field_positions(base, req.headers, &mut field_slots, &mut field_heap);

    let raw = buf.split_to(head_len).freeze();
    let path = raw.slice(path_pos.0 as usize..path_pos.1 as usize);
    let mut header =
        RequestHeader::build_shared(method, path, Some(fields.len())).map_err(|e| {
            Error::because(ErrorType::HTTPStatus(400), "invalid request target", e).into_down()
        })?;
    header.set_version(if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    });

    let mut checks = FramingChecks::default();
    for field in fields {
        let name = raw.slice(field.name());
        let mut value = raw.slice(field.value());
        let length_seen = checks.content_length.is_some();
        checks.observe(&name, &value)?;
        if name.eq_ignore_ascii_case(b"content-length") {
            // Identical values were merged into one (RFC 9110 section 8.6): exactly one
            // `Content-Length` with a single value goes on.
            if length_seen {
                continue;
            }
            if !value.iter().all(u8::is_ascii_digit) {
                let n = checks.content_length.unwrap_or_default();
                value = Bytes::from(n.to_string());
            }
        }
        header
            .append_header(name, parsed_value(value))
            .map_err(|e| {
                Error::because(ErrorType::HTTPStatus(400), "invalid header", e).into_down()
            })?;
    }
    let framing = checks.request_framing(minor)?;
    if header.uri.scheme().is_some() {
        absolute_form_host(&mut header, &raw[path_pos.0 as usize..path_pos.1 as usize])?;
    }
    let keepalive = fields::request_keepalive(minor, &checks.connection);
    let upgrade = minor == 1 && checks.upgrade;
    Ok(Some(RequestHead {
        header,
        framing,
        keepalive,
        // HTTP/1.0 has no 100 Continue: the expectation is ignored (RFC 9110 section 10.1.1).
        expect_continue: checks.expect_continue && minor == 1,
        upgrade,
        raw,
    }))
}

/// Makes the authority of an absolute-form `target` the request's `Host` (RFC 9112 section
/// 3.2.2: it wins over whatever `Host` the client sent, which was still required).
fn absolute_form_host(header: &mut RequestHeader, target: &[u8]) -> Result<()> {
    let Some(scheme_end) = target.windows(3).position(|w| w == b"://") else {
        return Err(reject(400, "invalid absolute-form target"));
    };
    let rest = &target[scheme_end + 3..];
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains(&b'@') {
        return Err(reject(400, "userinfo in the request target"));
    }
    if !fields::is_valid_host(authority) {
        return Err(reject(400, "invalid authority in the request target"));
    }
    let host = HeaderValue::from_bytes(authority)
        .map_err(|_| reject(400, "invalid authority in the request target"))?;
    header
        .insert_header(http::header::HOST, host)
        .map_err(|e| Error::because(ErrorType::HTTPStatus(400), "invalid Host", e).into_down())?;
    Ok(())
}

/// What the header fields say about framing and the connection, gathered in one pass.
#[derive(Debug, Default)]
struct FramingChecks {
    content_length: Option<u64>,
    transfer_encoding: Option<Codings>,
    host_count: usize,
    host_invalid: bool,
    connection: ConnectionTokens,
    upgrade: bool,
    expect_continue: bool,
    keepalive_timeout: Option<u64>,
}

/// The transfer codings of all `Transfer-Encoding` fields of a message, which form one list
/// (RFC 9110 section 5.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Codings {
    /// How many times `chunked` is listed.
    chunked: u32,
    /// How many other codings are listed.
    others: u32,
    /// The last coding listed is `chunked`.
    chunked_last: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransferCoding {
    /// Exactly one coding, `chunked`.
    Chunked,
    /// The final coding is not `chunked` (or there is none): the length cannot be known.
    NotChunkedLast,
    /// `chunked` applied more than once.
    ChunkedTwice,
    /// `chunked` last, after other codings we do not decode.
    Unknown,
}

// === impl Codings ===

impl Codings {
    fn add(&mut self, value: &[u8]) {
        for coding in fields::list_items(value) {
            let chunked = coding.eq_ignore_ascii_case(b"chunked");
            if chunked {
                self.chunked += 1;
            } else {
                self.others += 1;
            }
            self.chunked_last = chunked;
        }
    }

    fn kind(&self) -> TransferCoding {
        if !self.chunked_last {
            TransferCoding::NotChunkedLast
        } else if self.chunked > 1 {
            TransferCoding::ChunkedTwice
        } else if self.others > 0 {
            TransferCoding::Unknown
        } else {
            TransferCoding::Chunked
        }
    }
}

impl FramingChecks {
    fn observe(&mut self, name: &[u8], value: &[u8]) -> Result<()> {
        // Every field of every head comes through here, and most are none of these: the
        // length picks the one name worth comparing (`connection` and `keep-alive` share one).
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        match name.len() {
            14 if is(b"content-length") => {
                let n = fields::parse_content_length(value)
                    .ok_or_else(|| reject(400, "invalid Content-Length"))?;
                if self.content_length.is_some_and(|prev| prev != n) {
                    return Err(reject(400, "conflicting Content-Length values"));
                }
                self.content_length = Some(n);
            }
            17 if is(b"transfer-encoding") => {
                self.transfer_encoding
                    .get_or_insert_with(Codings::default)
                    .add(value);
            }
            4 if is(b"host") => {
                self.host_count += 1;
                self.host_invalid |= !fields::is_valid_host(value);
            }
            10 if is(b"connection") => self.connection.add(value),
            10 if is(b"keep-alive") => {
                self.keepalive_timeout =
                    fields::parse_keepalive_timeout(value).or(self.keepalive_timeout);
            }
            7 if is(b"upgrade") => self.upgrade = true,
            6 if is(b"expect") => {
                self.expect_continue |= value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
        Ok(())
    }

    /// Request body framing (RFC 9112 section 6.3).
    fn request_framing(&self, minor: u8) -> Result<Framing> {
        if minor == 1 && self.host_count != 1 {
            return Err(reject(400, "an HTTP/1.1 request needs exactly one Host"));
        }
        if self.host_count > 1 {
            return Err(reject(400, "more than one Host"));
        }
        if self.host_invalid {
            return Err(reject(400, "invalid Host"));
        }
        let codings = self.transfer_encoding.map(|c| c.kind());
        match (codings, self.content_length) {
            (Some(_), _) if minor == 0 => {
                Err(reject(400, "Transfer-Encoding in an HTTP/1.0 request"))
            }
            (Some(_), Some(_)) => Err(reject(400, "both Transfer-Encoding and Content-Length")),
            (Some(TransferCoding::NotChunkedLast), None) => {
                Err(reject(400, "final transfer coding is not chunked"))
            }
            (Some(TransferCoding::ChunkedTwice), None) => {
                Err(reject(400, "chunked applied more than once"))
            }
            (Some(TransferCoding::Unknown), None) => {
                Err(reject(501, "unsupported transfer coding"))
            }
            (Some(TransferCoding::Chunked), None) => Ok(Framing::Chunked),
            (None, Some(n)) => Ok(Framing::Length(n)),
            (None, None) => Ok(Framing::Empty),
        }
    }
}

/// Parses a response head from the front of `buf` (the client side).
///
/// Unlike requests, an invalid or conflicting `Content-Length` is an error only when
/// `strict_length`; otherwise it is dropped and the body read until close.
///
/// # Errors
/// [`ErrorType::InvalidHTTPHeader`] for malformed heads, too-large heads or ambiguous framing;
/// the connection must not be reused.
pub fn parse_response(
    buf: &mut BytesMut,
    limits: &Limits,
    strict_length: bool,
) -> Result<Option<ResponseHead>> {
    let invalid = |why: &'static str| Error::explain(ErrorType::InvalidHTTPHeader, why).into_up();
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap = Vec::with_capacity(limits.max_headers);
        heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut heap[..]
    };
    let mut resp = httparse::Response::new(&mut []);
    let mut config = httparse::ParserConfig::default();
    // Upstreams are treated leniently where it cannot change framing (RFC 9112 section 5.2):
    // obs-fold is replaced by spaces when values are read.
    config.allow_obsolete_multiline_headers_in_responses(true);
    config.allow_spaces_after_header_name_in_responses(true);
    let head_len = match config.parse_response_with_uninit_headers(&mut resp, buf, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_header_bytes {
                return Err(invalid("response header section too large"));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(invalid("too many response header fields"))
        }
        Err(_) => return Err(invalid("malformed response head")),
    };
    if head_len > limits.max_header_bytes {
        return Err(invalid("response header section too large"));
    }
    let (Some(code), Some(minor)) = (resp.code, resp.version) else {
        return Err(invalid("incomplete status line"));
    };
    let base = buf.as_ptr();
    // The reason phrase is kept only when it is not the usual one, which is most of the time.
    let canonical = StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason());
    let reason = resp
        .reason
        .filter(|r| Some(*r) != canonical)
        .map(str::to_owned);
    let mut field_slots = [FieldPos::default(); INLINE_FIELDS];
    let mut field_heap = Vec::new();
    let fields = field_positions(base, resp.headers, &mut field_slots, &mut field_heap);
    let raw = buf.split_to(head_len).freeze();

    let mut header = ResponseHeader::build(code, Some(fields.len()))
        .map_err(|_| invalid("invalid status code"))?;
    header.set_version(if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    });
    if let Some(reason) = reason {
        // A reason phrase that cannot be a header value is dropped, not fatal.
        let _ = header.set_reason_phrase(Some(&reason));
    }

    let (checks, bad_length) = append_response_fields(
        &mut header,
        &raw,
        fields,
        strict_length,
        has_obs_fold(&raw, fields.len()),
    )?;
    let codings = checks.transfer_encoding.map(|c| c.kind());
    let framing = match (codings, checks.content_length) {
        // A response with a coding we cannot decode, or with both headers, is read until
        // close (RFC 9112 section 6.3 rules 3-4): the length cannot be trusted.
        (Some(TransferCoding::Chunked), _) if minor == 1 => Framing::Chunked,
        (Some(_), _) => Framing::UntilClose,
        (None, Some(n)) if !bad_length => Framing::Length(n),
        _ => Framing::UntilClose,
    };
    if checks.transfer_encoding.is_some() || bad_length {
        // Not the framing used: the client must not read it as one (a valid first value
        // may have been kept before a conflicting one came).
        header.remove_header(&http::header::CONTENT_LENGTH);
    }
    Ok(Some(ResponseHead {
        header,
        framing,
        connection: checks.connection,
        keepalive_timeout: checks.keepalive_timeout,
        raw,
    }))
}

/// Whether `head`, holding `fields` header fields, may have a folded field value (obs-fold,
/// RFC 9112 section 5.2). Without folds its line feeds end the status line, each field and
/// the empty line; a fold adds one. One vectorised count over the head, so that values are
/// searched for line breaks only when there may be some (empty lines before the status line
/// also count: then the values are searched for nothing).
fn has_obs_fold(head: &[u8], fields: usize) -> bool {
    memchr::memchr_iter(b'\n', head).count() != fields + 2
}

/// Appends the response's header `fields` (positions in `raw`) to `header`, unfolding
/// obs-fold when `folded` (see [`has_obs_fold`]), and runs the framing checks over them.
/// Returns the checks and whether an invalid `Content-Length` was dropped (only when not
/// `strict_length`).
fn append_response_fields(
    header: &mut ResponseHeader,
    raw: &Bytes,
    fields: &[FieldPos],
    strict_length: bool,
    folded: bool,
) -> Result<(FramingChecks, bool)> {
    let mut checks = FramingChecks::default();
    let mut bad_length = false;
    for field in fields {
        let name = raw.slice(field.name());
        let mut value = raw.slice(field.value());
        if folded && memchr::memchr2(b'\n', b'\r', &value).is_some() {
            // Unfold obs-fold: each CR/LF becomes a space.
            let unfolded: Vec<u8> = value
                .iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
                .collect();
            value = Bytes::from(unfolded);
        }
        if let Err(e) = checks.observe(&name, &value) {
            if !strict_length && name.eq_ignore_ascii_case(b"content-length") {
                bad_length = true;
                continue;
            }
            return Err(Error::because(
                ErrorType::InvalidHTTPHeader,
                "invalid response framing",
                e,
            )
            .into_up());
        }
        header
            .append_header(name, parsed_value(value))
            .map_err(|e| {
                Error::because(ErrorType::InvalidHTTPHeader, "invalid header", e).into_up()
            })?;
    }
    Ok((checks, bad_length))
}

/// The framing of a response body given the request it answers (RFC 9112 section 6.3 rules
/// 1-2): none for HEAD, 1xx, 204 and 304; a tunnel after a 2xx to CONNECT.
#[inline]
pub fn response_framing(request_method: &Method, status: StatusCode, framing: Framing) -> Framing {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || request_method == Method::HEAD
    {
        return Framing::Empty;
    }
    if request_method == Method::CONNECT && status.is_success() {
        return Framing::UntilClose;
    }
    framing
}

/// The framing a message to be sent announces with its own headers: chunked when the last
/// `Transfer-Encoding` coding is `chunked`, else its `Content-Length`, else until close.
#[inline]
pub fn outgoing_framing(headers: &http::HeaderMap) -> Framing {
    let te = headers.get_all(http::header::TRANSFER_ENCODING);
    if te
        .iter()
        .next_back()
        .is_some_and(|v| fields::last_coding_is_chunked(v.as_bytes()))
    {
        return Framing::Chunked;
    }
    match headers.get(http::header::CONTENT_LENGTH) {
        Some(v) => match fields::parse_content_length(v.as_bytes()) {
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        },
        None => Framing::UntilClose,
    }
}

fn version_str(version: Version) -> &'static [u8] {
    if version == Version::HTTP_10 {
        b"HTTP/1.0"
    } else {
        b"HTTP/1.1"
    }
}

/// Writes the request line and header fields of `req`, and the empty line after them.
pub fn write_request_head(req: &RequestHeader, out: &mut BytesMut) {
    let path = req.raw_path();
    out.reserve(64 + path.len() + req.headers.len() * 32);
    out.put_slice(req.method.as_str().as_bytes());
    out.put_u8(b' ');
    if path.is_empty() {
        out.put_u8(b'/');
    } else {
        out.put_slice(path);
    }
    out.put_u8(b' ');
    out.put_slice(version_str(req.version));
    out.put_slice(b"\r\n");
    req.header_to_h1_wire(out);
    out.put_slice(b"\r\n");
}

/// Writes the status line and header fields of `resp`, and the empty line after them.
pub fn write_response_head(resp: &ResponseHeader, out: &mut BytesMut) {
    out.reserve(64 + resp.headers.len() * 32);
    out.put_slice(version_str(resp.version));
    out.put_u8(b' ');
    out.put_slice(resp.status.as_str().as_bytes());
    out.put_u8(b' ');
    if let Some(reason) = resp.reason_phrase() {
        out.put_slice(reason.as_bytes());
    }
    out.put_slice(b"\r\n");
    resp.header_to_h1_wire(out);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests;
