//! [`RequestHeader`]: a request head that keeps header-name case and raw request targets.

use std::ops::{Deref, DerefMut};

use bytes::BufMut;
use http::header::{AsHeaderName, HeaderValue};
use http::request::Parts as ReqParts;
use http::uri::Uri;
use pingora_error::{Error, ErrorType, OrErr, Result};

use crate::case_header_name::IntoCaseHeaderName;
use crate::case_map::CaseMap;
use crate::{header_capacity, HeaderNameVariant, Method, Version};

/// An HTTP request head: method, target, version, headers and extensions.
///
/// It dereferences to [`http::request::Parts`], so `req.method`, `req.uri` and
/// `req.headers` read as usual. On top of the parts it records how each header name was
/// spelled, which [`header_to_h1_wire`](Self::header_to_h1_wire) writes back, and keeps a
/// request target that [`http::Uri`] cannot reproduce (not UTF-8, or with bytes `Uri`
/// rejects) so [`raw_path`](Self::raw_path) can forward it unchanged.
///
/// Change headers with [`append_header`](Self::append_header),
/// [`insert_header`](Self::insert_header) and [`remove_header`](Self::remove_header). Direct
/// edits through `DerefMut` still work, as the [crate docs](crate#the-header-map-is-the-source-of-truth)
/// explain, but the headers they add take their default spelling.
///
/// ```
/// use pingora_http::{Method, RequestHeader};
///
/// let mut req = RequestHeader::build(Method::POST, b"/upload?id=7", Some(4))?;
/// req.insert_header("Content-Type", "text/plain")?;
/// assert_eq!(req.uri.query(), Some("id=7"));
/// assert_eq!(req.raw_path(), b"/upload?id=7");
/// # Ok::<(), pingora_error::BError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RequestHeader {
    base: ReqParts,
    case: CaseMap,
    /// The target as given, when `base.uri` does not reproduce it.
    raw_target: Option<Box<RawTarget>>,
    /// Whether HTTP/2 HEADERS may carry END_STREAM when there is no body.
    send_end_stream: bool,
}

/// A request target kept byte for byte, with the `Uri` that stood for it when it was set.
/// The bytes only apply while `base.uri` is still that `Uri`: a `Uri` changed through
/// `DerefMut` wins.
#[derive(Debug, Clone)]
struct RawTarget {
    bytes: Box<[u8]>,
    uri: Uri,
}

// === impl RequestHeader ===

impl RequestHeader {
    /// An empty head with room for `size_hint` headers, recording spellings if
    /// `preserve_case`.
    fn new(preserve_case: bool, size_hint: Option<usize>) -> Self {
        let (mut base, ()) = http::Request::new(()).into_parts();
        base.headers.reserve(header_capacity(size_hint));
        // The same room for spellings as the map has for values, so both grow together.
        let case = if preserve_case {
            CaseMap::with_case()
        } else {
            CaseMap::no_case()
        };
        RequestHeader {
            base,
            case,
            raw_target: None,
            send_end_stream: true,
        }
    }

    /// A request with the given method and target, which records header-name spellings.
    ///
    /// `path` is the request target as it appears on the request line; it may be any bytes
    /// but CR, LF, other control characters and space (see [`set_raw_path`](Self::set_raw_path)).
    /// `size_hint` is how many headers to reserve room for (at most 4096).
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`] if the method or the target is invalid.
    pub fn build(
        method: impl TryInto<Method>,
        path: &[u8],
        size_hint: Option<usize>,
    ) -> Result<Self> {
        Self::new(true, size_hint).init(method, path)
    }

    /// Like [`build`](Self::build), but records no spellings: every name is written with
    /// its [default spelling](crate::default_spelling). Cheaper, and enough for HTTP/2, where
    /// names are lowercase anyway.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`] if the method or the target is invalid.
    pub fn build_no_case(
        method: impl TryInto<Method>,
        path: &[u8],
        size_hint: Option<usize>,
    ) -> Result<Self> {
        Self::new(false, size_hint).init(method, path)
    }

    /// Like [`build`](Self::build), with the target in a shared buffer: a target in
    /// origin-form becomes the URI without being copied (a parser hands over a slice of the
    /// head it read).
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`] if the method or the target is invalid.
    pub fn build_shared(
        method: impl TryInto<Method>,
        path: bytes::Bytes,
        size_hint: Option<usize>,
    ) -> Result<Self> {
        let mut req = Self::new(true, size_hint).with_method(method)?;
        req.set_raw_path_shared(path)?;
        Ok(req)
    }

    /// [`set_raw_path`](Self::set_raw_path) without a copy when `path` is an origin-form
    /// target that the URI reproduces exactly (the common case).
    fn set_raw_path_shared(&mut self, path: bytes::Bytes) -> Result<()> {
        if path.first() == Some(&b'/') && path.is_ascii() && !path.contains(&b'#') {
            if let Ok(uri) = Uri::from_maybe_shared(path.clone()) {
                // The URI refuses control bytes and spaces, and must give back the same bytes.
                if uri
                    .path_and_query()
                    .is_some_and(|pq| pq.as_str().as_bytes() == &path[..])
                {
                    self.base.uri = uri;
                    self.raw_target = None;
                    return Ok(());
                }
            }
        }
        self.set_raw_path(&path)
    }

    fn init(self, method: impl TryInto<Method>, path: &[u8]) -> Result<Self> {
        let mut req = self.with_method(method)?;
        req.set_raw_path(path)?;
        Ok(req)
    }

    fn with_method(mut self, method: impl TryInto<Method>) -> Result<Self> {
        self.base.method = method
            .try_into()
            .explain_err(ErrorType::InvalidHTTPHeader, |_| "invalid method")?;
        Ok(self)
    }

    /// Adds a header after any existing values of the same name (compared ignoring case),
    /// keeping the spelling of `name`. Returns whether the name already had values.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`] if the name is not a valid field name, the value
    /// is not a valid [`HeaderValue`] (CR, LF and NUL are rejected), or the map is full.
    pub fn append_header(
        &mut self,
        name: impl IntoCaseHeaderName,
        value: impl TryInto<HeaderValue>,
    ) -> Result<bool> {
        let value = value
            .try_into()
            .explain_err(ErrorType::InvalidHTTPHeader, |_| "invalid header value")?;
        self.case.append(&mut self.base.headers, name, value)
    }

    /// Sets a header, replacing all values of the same name (compared ignoring case). The
    /// header keeps its place and takes the spelling of `name`.
    ///
    /// # Errors
    ///
    /// As for [`append_header`](Self::append_header).
    pub fn insert_header(
        &mut self,
        name: impl IntoCaseHeaderName,
        value: impl TryInto<HeaderValue>,
    ) -> Result<()> {
        let value = value
            .try_into()
            .explain_err(ErrorType::InvalidHTTPHeader, |_| "invalid header value")?;
        self.case.insert(&mut self.base.headers, name, value)
    }

    /// Removes every value of `name` (compared ignoring case) and returns the first.
    pub fn remove_header<'a, N: ?Sized>(&mut self, name: &'a N) -> Option<HeaderValue>
    where
        &'a N: 'a + AsHeaderName,
    {
        self.case.remove(&mut self.base.headers, name)
    }

    /// Writes the headers to `buf` as HTTP/1 field lines, `Name: value\r\n` each, in the
    /// order of [`headers`](http::request::Parts::headers), with recorded spellings.
    ///
    /// The request line and the empty line that ends the head are not written.
    pub fn header_to_h1_wire(&self, buf: &mut impl BufMut) {
        self.case.write_h1(&self.base.headers, buf);
    }

    /// The headers with the name as it is written on the wire, in the order
    /// [`header_to_h1_wire`](Self::header_to_h1_wire) writes them. Empty when the request
    /// does not record case ([`has_case`](Self::has_case) is false).
    pub fn case_header_iter(&self) -> impl Iterator<Item = (HeaderNameVariant<'_>, &HeaderValue)> {
        let iter = self
            .case
            .has_case()
            .then(|| self.case.iter(&self.base.headers));
        iter.into_iter().flatten()
    }

    /// Whether header-name spellings are recorded (built with [`build`](Self::build)).
    pub fn has_case(&self) -> bool {
        self.case.has_case()
    }

    /// Calls `f` with every header as [`header_to_h1_wire`](Self::header_to_h1_wire) would
    /// write it, stopping at the first error.
    ///
    /// # Errors
    ///
    /// The first error `f` returns.
    pub fn map<F>(&self, mut f: F) -> Result<()>
    where
        F: FnMut(HeaderNameVariant<'_>, &HeaderValue) -> Result<()>,
    {
        self.case
            .iter(&self.base.headers)
            .try_for_each(|(name, value)| f(name, value))
    }

    /// The request's extensions, for typed per-request data.
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.base.extensions
    }

    /// Sets the method.
    pub fn set_method(&mut self, method: Method) {
        self.base.method = method;
    }

    /// Sets the URI. Any raw target set earlier is dropped: the URI is written from now on.
    pub fn set_uri(&mut self, uri: Uri) {
        self.base.uri = uri;
        self.raw_target = None;
    }

    /// Sets the request target from the bytes of a request line.
    ///
    /// When [`http::Uri`] reproduces `path` exactly, only the URI is kept. Otherwise (the
    /// target is not UTF-8, has bytes `Uri` rejects such as `<`, or is in absolute or
    /// authority form) the bytes are kept for [`raw_path`](Self::raw_path) and the URI holds
    /// a lossy rendering for reading: invalid UTF-8 becomes U+FFFD and rejected bytes are
    /// percent-encoded. A fragment (`#...`) is dropped, as it is not part of a
    /// request-target (RFC 9112 section 3.2).
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`], leaving the target unchanged, if `path` is empty,
    /// contains a control character (CR, LF, NUL...) or space, which would corrupt the
    /// request line, or is too long for a URI (64 KiB).
    pub fn set_raw_path(&mut self, path: &[u8]) -> Result<()> {
        let path = strip_fragment(path);
        if path.is_empty() {
            return Error::e_explain(ErrorType::InvalidHTTPHeader, "empty request target");
        }
        if let Some(bad) = path.iter().find(|b| b.is_ascii_control() || **b == b' ') {
            return Err(Error::explain(
                ErrorType::InvalidHTTPHeader,
                format!("invalid byte {bad:#04x} in request target"),
            ));
        }
        if let Some(uri) = exact_uri(path) {
            self.base.uri = uri;
            self.raw_target = None;
            return Ok(());
        }
        let uri = lossy_uri(path)?;
        self.base.uri = uri.clone();
        self.raw_target = Some(Box::new(RawTarget {
            bytes: path.into(),
            uri,
        }));
        Ok(())
    }

    /// The request target as it should be written on the request line.
    ///
    /// These are the bytes given to [`set_raw_path`](Self::set_raw_path) (less any
    /// fragment), even when they are not UTF-8, unless the URI has been replaced since; then
    /// the URI's path and query, or its authority for a CONNECT target.
    pub fn raw_path(&self) -> &[u8] {
        if let Some(raw) = &self.raw_target {
            if raw.uri == self.base.uri {
                return &raw.bytes;
            }
        }
        let uri = &self.base.uri;
        match (uri.path_and_query(), uri.authority()) {
            (Some(pq), _) => pq.as_str().as_bytes(),
            (None, Some(authority)) => authority.as_str().as_bytes(),
            (None, None) => b"/",
        }
    }

    /// The file extension of the last path segment, without the dot: `Some("css")` for
    /// `/static/site.css?v=2`, `None` for `/v1.2/items`.
    pub fn uri_file_extension(&self) -> Option<&str> {
        let path = self.base.uri.path();
        let segment = path.rsplit('/').next()?;
        segment.rsplit_once('.').map(|(_, ext)| ext)
    }

    /// Sets the HTTP version.
    pub fn set_version(&mut self, version: Version) {
        self.base.version = version;
    }

    /// Sets whether an HTTP/2 request with no body ends its stream on the HEADERS frame
    /// (the default) rather than with an empty DATA frame.
    pub fn set_send_end_stream(&mut self, send_end_stream: bool) {
        self.send_end_stream = send_end_stream;
    }

    /// The [`set_send_end_stream`](Self::set_send_end_stream) choice, or `None` when the
    /// request is not HTTP/2.
    pub fn send_end_stream(&self) -> Option<bool> {
        (self.base.version == Version::HTTP_2).then_some(self.send_end_stream)
    }

    /// A copy of the parts. Spellings and a raw target are not part of it.
    pub fn as_owned_parts(&self) -> ReqParts {
        self.base.clone()
    }
}

#[cfg(test)]
impl RequestHeader {
    /// Whether the recorded spellings line up with the map (the writer's fast path).
    pub(crate) fn spellings_in_step(&self) -> bool {
        self.case.in_step(&self.base.headers)
    }

    /// Whether a raw target is stored next to the URI.
    pub(crate) fn has_raw_target(&self) -> bool {
        self.raw_target.is_some()
    }
}

impl Deref for RequestHeader {
    type Target = ReqParts;

    #[inline]
    fn deref(&self) -> &ReqParts {
        &self.base
    }
}

impl DerefMut for RequestHeader {
    /// Mutable access to the parts. The headers may then change without the recorded
    /// spellings; see the [crate docs](crate#the-header-map-is-the-source-of-truth).
    #[inline]
    fn deref_mut(&mut self) -> &mut ReqParts {
        self.case.mark_stale(&self.base.headers);
        &mut self.base
    }
}

impl AsRef<ReqParts> for RequestHeader {
    fn as_ref(&self) -> &ReqParts {
        &self.base
    }
}

impl From<ReqParts> for RequestHeader {
    /// Wraps parts; no spellings are recorded, since parts keep none.
    fn from(parts: ReqParts) -> Self {
        RequestHeader {
            base: parts,
            case: CaseMap::no_case(),
            raw_target: None,
            send_end_stream: true,
        }
    }
}

impl From<RequestHeader> for ReqParts {
    fn from(req: RequestHeader) -> Self {
        req.base
    }
}

/// `target` without a fragment.
fn strip_fragment(target: &[u8]) -> &[u8] {
    match target.iter().position(|&b| b == b'#') {
        Some(hash) => &target[..hash],
        None => target,
    }
}

/// The URI for an origin-form or asterisk-form `target`, if it reproduces it exactly.
fn exact_uri(target: &[u8]) -> Option<Uri> {
    let target_str = std::str::from_utf8(target).ok()?;
    let uri = origin_uri(target_str)?;
    let pq = uri.path_and_query()?;
    (pq.as_str().as_bytes() == target).then_some(uri)
}

/// A URI holding only `target` as its path and query, if it is one.
fn origin_uri(target: &str) -> Option<Uri> {
    if !(target.starts_with(['/', '?']) || target == "*") {
        return None;
    }
    Uri::builder().path_and_query(target).build().ok()
}

/// A URI close to `target` for reading, when none reproduces it.
fn lossy_uri(target: &[u8]) -> Result<Uri> {
    let lossy = String::from_utf8_lossy(target);
    let mut encoded = String::with_capacity(lossy.len());
    for c in lossy.chars() {
        match c {
            '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}' => {
                encoded.push_str(&format!("%{:02X}", u32::from(c)));
            }
            c => encoded.push(c),
        }
    }
    if let Some(uri) = origin_uri(&encoded) {
        return Ok(uri);
    }
    // Absolute form (`http://host/path`) or authority form (`host:443`).
    Uri::try_from(encoded.as_str()).explain_err(ErrorType::InvalidHTTPHeader, |e| {
        format!(
            "invalid request target {:?}: {e}",
            target.escape_ascii().to_string()
        )
    })
}
