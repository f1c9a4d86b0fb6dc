//! [`ResponseHeader`]: a response head that keeps header-name case.

use std::ops::{Deref, DerefMut};

use bytes::BufMut;
use http::header::{AsHeaderName, HeaderValue};
use http::response::Parts as RespParts;
use pingora_error::{Error, ErrorType, OrErr, Result};

use crate::case_header_name::IntoCaseHeaderName;
use crate::case_map::CaseMap;
use crate::{header_capacity, HeaderNameVariant, StatusCode, Version};

/// An HTTP response head: status, reason phrase, version, headers and extensions.
///
/// It dereferences to [`http::response::Parts`], so `resp.status` and `resp.headers` read
/// as usual. On top of the parts it records how each header name was spelled, which
/// [`header_to_h1_wire`](Self::header_to_h1_wire) writes back, and an optional custom reason
/// phrase.
///
/// Change headers with [`append_header`](Self::append_header),
/// [`insert_header`](Self::insert_header) and [`remove_header`](Self::remove_header). Direct
/// edits through `DerefMut` still work, as the [crate docs](crate#the-header-map-is-the-source-of-truth)
/// explain, but the headers they add take their default spelling.
///
/// ```
/// use pingora_http::ResponseHeader;
///
/// let mut resp = ResponseHeader::build(200, None)?;
/// resp.append_header("Set-Cookie", "a=1")?;
/// resp.append_header("set-cookie", "b=2")?;
/// resp.set_content_length(5)?;
///
/// let mut wire = Vec::new();
/// resp.header_to_h1_wire(&mut wire);
/// assert_eq!(wire, b"Set-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 5\r\n");
/// # Ok::<(), pingora_error::BError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ResponseHeader {
    base: RespParts,
    case: CaseMap,
    /// A reason phrase other than the status code's canonical one.
    reason_phrase: Option<Box<str>>,
}

// === impl ResponseHeader ===

impl ResponseHeader {
    /// An empty head with room for `size_hint` headers, recording spellings if
    /// `preserve_case`.
    fn new(preserve_case: bool, size_hint: Option<usize>) -> Self {
        let (mut base, ()) = http::Response::new(()).into_parts();
        base.headers.reserve(header_capacity(size_hint));
        // The same room for spellings as the map has for values, so both grow together.
        let case = if preserve_case {
            CaseMap::with_case()
        } else {
            CaseMap::no_case()
        };
        ResponseHeader {
            base,
            case,
            reason_phrase: None,
        }
    }

    /// A response with the given status code, which records header-name spellings.
    /// `size_hint` is how many headers to reserve room for (at most 4096).
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`] if `code` is not a valid status code (100 to 999).
    pub fn build(code: impl TryInto<StatusCode>, size_hint: Option<usize>) -> Result<Self> {
        let mut resp = Self::new(true, size_hint);
        resp.set_status(code)?;
        Ok(resp)
    }

    /// Like [`build`](Self::build), but records no spellings: every name is written with
    /// its [default spelling](crate::default_spelling). Cheaper, and enough for HTTP/2, where
    /// names are lowercase anyway.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`] if `code` is not a valid status code.
    pub fn build_no_case(code: impl TryInto<StatusCode>, size_hint: Option<usize>) -> Result<Self> {
        let mut resp = Self::new(false, size_hint);
        resp.set_status(code)?;
        Ok(resp)
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
    /// order of [`headers`](http::response::Parts::headers), with recorded spellings.
    ///
    /// The status line and the empty line that ends the head are not written.
    pub fn header_to_h1_wire(&self, buf: &mut impl BufMut) {
        self.case.write_h1(&self.base.headers, buf);
    }

    /// The headers with the name as it is written on the wire, in the order
    /// [`header_to_h1_wire`](Self::header_to_h1_wire) writes them. Empty when the response
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

    /// The response's extensions, for typed per-response data.
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.base.extensions
    }

    /// Sets the status code. A custom reason phrase is kept.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`], leaving the status unchanged, if `status` is not a
    /// valid status code.
    pub fn set_status(&mut self, status: impl TryInto<StatusCode>) -> Result<()> {
        self.base.status = status
            .try_into()
            .explain_err(ErrorType::InvalidHTTPHeader, |_| "invalid status code")?;
        Ok(())
    }

    /// Sets the HTTP version.
    pub fn set_version(&mut self, version: Version) {
        self.base.version = version;
    }

    /// Sets the reason phrase of the status line; `None`, or the status code's canonical
    /// phrase, restores the default.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`], leaving the phrase unchanged, if it has a
    /// character outside `HTAB / SP / VCHAR / obs-text` (RFC 9112 section 4), such as CR or
    /// LF.
    pub fn set_reason_phrase(&mut self, reason_phrase: Option<&str>) -> Result<()> {
        let Some(phrase) = reason_phrase else {
            self.reason_phrase = None;
            return Ok(());
        };
        if let Some(bad) = phrase
            .bytes()
            .find(|&b| (b.is_ascii_control() && b != b'\t') || b == 0x7f)
        {
            return Err(Error::explain(
                ErrorType::InvalidHTTPHeader,
                format!("invalid byte {bad:#04x} in reason phrase"),
            ));
        }
        self.reason_phrase =
            (Some(phrase) != self.base.status.canonical_reason()).then(|| phrase.into());
        Ok(())
    }

    /// The reason phrase for the status line: the one set with
    /// [`set_reason_phrase`](Self::set_reason_phrase), else the status code's canonical one
    /// (`None` for codes without one).
    pub fn reason_phrase(&self) -> Option<&str> {
        self.reason_phrase
            .as_deref()
            .or_else(|| self.base.status.canonical_reason())
    }

    /// The reason phrase; the name Pingora 0.8 uses for [`reason_phrase`](Self::reason_phrase).
    pub fn get_reason_phrase(&self) -> Option<&str> {
        self.reason_phrase()
    }

    /// A copy of the parts. Spellings and the reason phrase are not part of it.
    pub fn as_owned_parts(&self) -> RespParts {
        self.base.clone()
    }

    /// Sets `Content-Length` to `len`, replacing any previous value.
    ///
    /// # Errors
    ///
    /// Only if the header map is full.
    pub fn set_content_length(&mut self, len: usize) -> Result<()> {
        self.insert_header(http::header::CONTENT_LENGTH, len)
    }
}

#[cfg(test)]
impl ResponseHeader {
    /// Whether the recorded spellings line up with the map (the writer's fast path).
    pub(crate) fn spellings_in_step(&self) -> bool {
        self.case.in_step(&self.base.headers)
    }

    /// Whether a custom reason phrase is stored.
    pub(crate) fn has_custom_reason(&self) -> bool {
        self.reason_phrase.is_some()
    }
}

impl Deref for ResponseHeader {
    type Target = RespParts;

    #[inline]
    fn deref(&self) -> &RespParts {
        &self.base
    }
}

impl DerefMut for ResponseHeader {
    /// Mutable access to the parts. The headers may then change without the recorded
    /// spellings; see the [crate docs](crate#the-header-map-is-the-source-of-truth).
    #[inline]
    fn deref_mut(&mut self) -> &mut RespParts {
        self.case.mark_stale(&self.base.headers);
        &mut self.base
    }
}

impl AsRef<RespParts> for ResponseHeader {
    fn as_ref(&self) -> &RespParts {
        &self.base
    }
}

impl From<RespParts> for ResponseHeader {
    /// Wraps parts; no spellings are recorded, since parts keep none.
    fn from(parts: RespParts) -> Self {
        ResponseHeader {
            base: parts,
            case: CaseMap::no_case(),
            reason_phrase: None,
        }
    }
}

impl From<ResponseHeader> for RespParts {
    fn from(resp: ResponseHeader) -> Self {
        resp.base
    }
}

impl From<Box<ResponseHeader>> for Box<RespParts> {
    fn from(resp: Box<ResponseHeader>) -> Self {
        Box::new(resp.base)
    }
}
