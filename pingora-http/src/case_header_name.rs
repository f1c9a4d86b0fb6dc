//! Header names as they were spelled, and the default spelling of names with no recorded one.

use std::fmt;
use std::sync::LazyLock;

use bytes::Bytes;
use http::header::HeaderName;

/// A header name spelled exactly as it was received or set, e.g. `X-Request-ID`.
///
/// HTTP field names are case-insensitive (RFC 9110 section 5.1), so [`http::HeaderMap`] stores
/// them in lowercase. A transparent proxy should not change the bytes it forwards, so
/// [`RequestHeader`](crate::RequestHeader) and [`ResponseHeader`](crate::ResponseHeader) keep
/// the original spelling of every name next to the map, in a `CaseHeaderName`.
///
/// The bytes are not validated here; they are checked to be a valid field name when the name
/// is added to a header.
///
/// ```
/// use pingora_http::CaseHeaderName;
///
/// let name = CaseHeaderName::from_slice(b"X-Request-ID");
/// assert_eq!(name.as_slice(), b"X-Request-ID");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CaseHeaderName(Bytes);

// === impl CaseHeaderName ===

impl CaseHeaderName {
    /// Wraps an owned string without copying it.
    pub fn new(name: String) -> Self {
        CaseHeaderName(name.into())
    }

    /// Copies `buf` into a new name.
    pub fn from_slice(buf: &[u8]) -> Self {
        CaseHeaderName(Bytes::copy_from_slice(buf))
    }

    /// The name as spelled.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Whether this is a spelling of `name`, i.e. equal to it ignoring ASCII case.
    #[inline]
    pub(crate) fn spells(&self, name: &HeaderName) -> bool {
        // A `HeaderName` is always lowercase.
        let name = name.as_str().as_bytes();
        self.0.len() == name.len() && eq_ignore_case(&self.0, name, |lower| lower)
    }

    /// Whether both are spellings of the same name.
    #[inline]
    pub(crate) fn same_name(&self, other: &CaseHeaderName) -> bool {
        self.0.len() == other.0.len() && eq_ignore_case(&self.0, &other.0, to_lower_8)
    }
}

/// ASCII case-insensitive equality of `a` and `b`, eight bytes at a time; `b` is lowered
/// with `lower_b` (the identity when it is known to be lowercase). Callers check the
/// lengths first, inline, as most names differ in length.
///
/// This is on the path of every header written, where `<[u8]>::eq_ignore_ascii_case`, a
/// byte at a time, cost as much as the rest of the writer.
#[inline]
fn eq_ignore_case(a: &[u8], b: &[u8], lower_b: impl Fn(u64) -> u64) -> bool {
    eq_words(a, b, to_lower_8, lower_b)
}

/// Byte-for-byte equality of two short slices, a word at a time: for header names, where
/// a call to `memcmp` costs more than the comparison.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    eq_words(a, b, |word| word, |word| word)
}

/// Whether `a` and `b` have the same length and equal words once mapped by `map_a` and
/// `map_b`.
#[inline]
fn eq_words(a: &[u8], b: &[u8], map_a: impl Fn(u64) -> u64, map_b: impl Fn(u64) -> u64) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    let same = |x: u64, y: u64| map_a(x) == map_b(y);
    if len < 8 {
        return same(load_short(a), load_short(b));
    }
    let mut a_words = a.chunks_exact(8);
    let mut b_words = b.chunks_exact(8);
    if !(&mut a_words)
        .zip(&mut b_words)
        .all(|(x, y)| same(load(x), load(y)))
    {
        return false;
    }
    // The last eight bytes, overlapping words already compared, cover the remainder.
    a_words.remainder().is_empty() || same(load(&a[len - 8..]), load(&b[len - 8..]))
}

/// Eight bytes as a little-endian word.
#[inline]
fn load(bytes: &[u8]) -> u64 {
    let word: [u8; 8] = bytes.try_into().expect("callers pass eight bytes");
    u64::from_le_bytes(word)
}

/// A word made of bytes of a slice shorter than eight, covering every byte. Two slices of
/// the same length are equal exactly when their words are.
#[inline]
fn load_short(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    match len {
        0 => 0,
        1..=3 => {
            u64::from(bytes[0]) | u64::from(bytes[len / 2]) << 8 | u64::from(bytes[len - 1]) << 16
        }
        _ => {
            let head: [u8; 4] = bytes[..4].try_into().expect("four bytes");
            let tail: [u8; 4] = bytes[len - 4..].try_into().expect("four bytes");
            u64::from(u32::from_le_bytes(head)) | u64::from(u32::from_le_bytes(tail)) << 32
        }
    }
}

/// Lowercases the ASCII letters among eight bytes; other bytes are unchanged.
#[inline]
const fn to_lower_8(word: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = word & !HIGH;
    // Per byte, without carries between bytes: the high bit is set iff the low seven bits
    // are at least b'A' (resp. greater than b'Z').
    let at_least_a = low7 + 0x3f3f_3f3f_3f3f_3f3f;
    let above_z = low7 + 0x2525_2525_2525_2525;
    let upper = at_least_a & !above_z & !word & HIGH;
    word | (upper >> 2)
}

impl fmt::Debug for CaseHeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names are ASCII once validated; show unvalidated bytes escaped rather than lossily.
        write!(f, "CaseHeaderName(\"{}\")", self.0.escape_ascii())
    }
}

impl AsRef<[u8]> for CaseHeaderName {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&HeaderName> for CaseHeaderName {
    /// The default spelling of `name`: see [`default_spelling`].
    fn from(name: &HeaderName) -> Self {
        match canonical_spelling(name.as_str()) {
            Some(canonical) => CaseHeaderName(Bytes::from_static(canonical.as_bytes())),
            None => CaseHeaderName::from_slice(name.as_str().as_bytes()),
        }
    }
}

/// Conversion into a [`CaseHeaderName`]: what the `name` argument of `append_header` and
/// `insert_header` accepts.
///
/// Strings and byte buffers keep their spelling; a [`HeaderName`], which is always lowercase,
/// takes its default spelling ([`default_spelling`]), e.g. `Content-Length` for
/// [`http::header::CONTENT_LENGTH`].
///
/// ```
/// use pingora_http::IntoCaseHeaderName;
///
/// assert_eq!("X-Foo".into_case_header_name().as_slice(), b"X-Foo");
/// assert_eq!(http::header::ETAG.into_case_header_name().as_slice(), b"ETag");
/// ```
pub trait IntoCaseHeaderName {
    /// Performs the conversion.
    fn into_case_header_name(self) -> CaseHeaderName;
}

// === impl IntoCaseHeaderName ===

impl IntoCaseHeaderName for CaseHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        self
    }
}

impl IntoCaseHeaderName for String {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName::new(self)
    }
}

impl IntoCaseHeaderName for &'static str {
    /// Borrows the static string; nothing is copied.
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(Bytes::from_static(self.as_bytes()))
    }
}

impl IntoCaseHeaderName for Bytes {
    /// Keeps the buffer, so a parser can pass a slice of its read buffer without copying.
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(self)
    }
}

impl IntoCaseHeaderName for HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName::from(&self)
    }
}

impl IntoCaseHeaderName for &HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName::from(self)
    }
}

/// How a header name with no recorded spelling is written: the conventional spelling for
/// well-known names (`content-length` becomes `Content-Length`, `etag` becomes `ETag`), and
/// the lowercase name otherwise (`x-custom` stays `x-custom`, as an HTTP/2 peer sends it).
///
/// Names have no recorded spelling when the header was built with `build_no_case` or from
/// [`http`] parts, or when the header map was changed directly through `DerefMut`.
///
/// ```
/// use pingora_http::default_spelling;
///
/// assert_eq!(default_spelling(&http::header::CONTENT_LENGTH), "Content-Length");
/// assert_eq!(default_spelling(&http::HeaderName::from_static("x-custom")), "x-custom");
/// ```
#[inline]
pub fn default_spelling(name: &HeaderName) -> &str {
    canonical_spelling(name.as_str()).unwrap_or(name.as_str())
}

/// The conventional spelling of a lowercase header name, when it is a well-known one.
#[inline]
fn canonical_spelling(lowercase: &str) -> Option<&'static str> {
    WellKnown::find(lowercase.as_bytes()).map(WellKnown::canonical)
}

/// A well-known header name, found from its spelling in any case.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WellKnown(usize);

impl WellKnown {
    /// The well-known name `spelled` is a spelling of, if it is one. This runs for most
    /// headers parsed or written: one hash, one slot, one comparison.
    #[inline]
    pub(crate) fn find(spelled: &[u8]) -> Option<WellKnown> {
        let at = usize::from(SLOTS[slot(spelled)]);
        let (known, _) = CANONICAL.get(at)?;
        let known = known.as_bytes();
        (known.len() == spelled.len() && eq_ignore_case(spelled, known, |lower| lower))
            .then_some(WellKnown(at))
    }

    /// The name, as the header map keys it.
    #[inline]
    pub(crate) fn name(self) -> HeaderName {
        NAMES[self.0].clone()
    }

    /// Its lowercase spelling.
    #[inline]
    pub(crate) fn lowercase(self) -> &'static str {
        CANONICAL[self.0].0
    }

    /// Its default spelling.
    #[inline]
    pub(crate) fn canonical(self) -> &'static str {
        CANONICAL[self.0].1
    }
}

/// The names of [`CANONICAL`] as [`HeaderName`]s, in its order: a clone is a copy, where
/// parsing a name costs a case-folding pass and a lookup of its own.
static NAMES: LazyLock<Box<[HeaderName]>> = LazyLock::new(|| {
    CANONICAL
        .iter()
        .map(|(lower, _)| HeaderName::from_static(lower))
        .collect()
});

/// The slot of a name, in any case, in [`SLOTS`]: a multiplicative hash of its length and
/// of its (lowercased) [`name_word`], with a multiplier chosen so that no two names of
/// [`CANONICAL`] share a slot (which building [`SLOTS`] checks at compile time).
#[inline]
fn slot(bytes: &[u8]) -> usize {
    let len = bytes.len();
    // The same word as `name_word`, loaded as a whole.
    let word = if len >= 8 {
        load(&bytes[len - 8..])
    } else {
        load_short(bytes)
    };
    slot_of_word(word, len)
}

#[inline]
const fn slot_of_word(word: u64, len: usize) -> usize {
    const MULTIPLIER: u64 = 0x1de6_8cbc_7368_d8cd;
    let key = to_lower_8(word) ^ len as u64;
    (key.wrapping_mul(MULTIPLIER) >> (u64::BITS - SLOT_BITS)) as usize
}

/// A word made of a name's bytes: all of them when it is shorter than a word (as
/// [`load_short`] makes it), else its last eight; the well-known names differ in it or in
/// their length.
const fn name_word(bytes: &[u8]) -> u64 {
    const fn byte(bytes: &[u8], i: usize) -> u64 {
        bytes[i] as u64
    }
    let len = bytes.len();
    match len {
        0 => 0,
        1..=3 => byte(bytes, 0) | byte(bytes, len / 2) << 8 | byte(bytes, len - 1) << 16,
        4..=7 => {
            byte(bytes, 0)
                | byte(bytes, 1) << 8
                | byte(bytes, 2) << 16
                | byte(bytes, 3) << 24
                | byte(bytes, len - 4) << 32
                | byte(bytes, len - 3) << 40
                | byte(bytes, len - 2) << 48
                | byte(bytes, len - 1) << 56
        }
        _ => {
            let mut word = 0;
            let mut i = 0;
            while i < 8 {
                word |= byte(bytes, len - 8 + i) << (8 * i);
                i += 1;
            }
            word
        }
    }
}

/// Bits of a [`slot`].
const SLOT_BITS: u32 = 9;

/// For each slot, the index in [`CANONICAL`] of the name hashed there, or `u8::MAX`.
static SLOTS: [u8; 1 << SLOT_BITS] = slots();

const fn slots() -> [u8; 1 << SLOT_BITS] {
    assert!(CANONICAL.len() < u8::MAX as usize);
    let mut slots = [u8::MAX; 1 << SLOT_BITS];
    let mut i = 0;
    while i < CANONICAL.len() {
        let name = CANONICAL[i].0.as_bytes();
        let at = slot_of_word(name_word(name), name.len());
        assert!(slots[at] == u8::MAX, "two well-known names share a slot");
        slots[at] = i as u8;
        i += 1;
    }
    slots
}

/// Every header name [`http::header`] defines, plus a few common unregistered ones, with the
/// spelling their specifications use. Sorted by (length, lowercase name); at most 254.
pub(crate) const CANONICAL: &[(&str, &str)] = &[
    ("te", "TE"),
    ("age", "Age"),
    ("dnt", "DNT"),
    ("via", "Via"),
    ("date", "Date"),
    ("etag", "ETag"),
    ("from", "From"),
    ("host", "Host"),
    ("link", "Link"),
    ("vary", "Vary"),
    ("allow", "Allow"),
    ("range", "Range"),
    ("accept", "Accept"),
    ("cookie", "Cookie"),
    ("expect", "Expect"),
    ("origin", "Origin"),
    ("pragma", "Pragma"),
    ("server", "Server"),
    ("alt-svc", "Alt-Svc"),
    ("expires", "Expires"),
    ("referer", "Referer"),
    ("refresh", "Refresh"),
    ("trailer", "Trailer"),
    ("upgrade", "Upgrade"),
    ("warning", "Warning"),
    ("if-match", "If-Match"),
    ("if-range", "If-Range"),
    ("location", "Location"),
    ("forwarded", "Forwarded"),
    ("x-real-ip", "X-Real-IP"),
    ("connection", "Connection"),
    ("keep-alive", "Keep-Alive"),
    ("set-cookie", "Set-Cookie"),
    ("user-agent", "User-Agent"),
    ("retry-after", "Retry-After"),
    ("cache-status", "Cache-Status"),
    ("content-type", "Content-Type"),
    ("max-forwards", "Max-Forwards"),
    ("x-request-id", "X-Request-ID"),
    ("accept-ranges", "Accept-Ranges"),
    ("authorization", "Authorization"),
    ("cache-control", "Cache-Control"),
    ("content-range", "Content-Range"),
    ("if-none-match", "If-None-Match"),
    ("last-modified", "Last-Modified"),
    ("accept-charset", "Accept-Charset"),
    ("content-length", "Content-Length"),
    ("accept-encoding", "Accept-Encoding"),
    ("accept-language", "Accept-Language"),
    ("public-key-pins", "Public-Key-Pins"),
    ("referrer-policy", "Referrer-Policy"),
    ("x-forwarded-for", "X-Forwarded-For"),
    ("x-frame-options", "X-Frame-Options"),
    ("content-encoding", "Content-Encoding"),
    ("content-language", "Content-Language"),
    ("content-location", "Content-Location"),
    ("proxy-connection", "Proxy-Connection"),
    ("www-authenticate", "WWW-Authenticate"),
    ("x-forwarded-host", "X-Forwarded-Host"),
    ("x-xss-protection", "X-XSS-Protection"),
    ("cdn-cache-control", "CDN-Cache-Control"),
    ("if-modified-since", "If-Modified-Since"),
    ("sec-websocket-key", "Sec-WebSocket-Key"),
    ("transfer-encoding", "Transfer-Encoding"),
    ("x-forwarded-proto", "X-Forwarded-Proto"),
    ("proxy-authenticate", "Proxy-Authenticate"),
    ("content-disposition", "Content-Disposition"),
    ("if-unmodified-since", "If-Unmodified-Since"),
    ("proxy-authorization", "Proxy-Authorization"),
    ("sec-websocket-accept", "Sec-WebSocket-Accept"),
    ("sec-websocket-version", "Sec-WebSocket-Version"),
    ("access-control-max-age", "Access-Control-Max-Age"),
    ("sec-websocket-protocol", "Sec-WebSocket-Protocol"),
    ("x-content-type-options", "X-Content-Type-Options"),
    ("x-dns-prefetch-control", "X-DNS-Prefetch-Control"),
    ("content-security-policy", "Content-Security-Policy"),
    ("sec-websocket-extensions", "Sec-WebSocket-Extensions"),
    ("strict-transport-security", "Strict-Transport-Security"),
    ("upgrade-insecure-requests", "Upgrade-Insecure-Requests"),
    ("access-control-allow-origin", "Access-Control-Allow-Origin"),
    ("public-key-pins-report-only", "Public-Key-Pins-Report-Only"),
    (
        "access-control-allow-headers",
        "Access-Control-Allow-Headers",
    ),
    (
        "access-control-allow-methods",
        "Access-Control-Allow-Methods",
    ),
    (
        "access-control-expose-headers",
        "Access-Control-Expose-Headers",
    ),
    (
        "access-control-request-method",
        "Access-Control-Request-Method",
    ),
    (
        "access-control-request-headers",
        "Access-Control-Request-Headers",
    ),
    (
        "access-control-allow-credentials",
        "Access-Control-Allow-Credentials",
    ),
    (
        "content-security-policy-report-only",
        "Content-Security-Policy-Report-Only",
    ),
];
