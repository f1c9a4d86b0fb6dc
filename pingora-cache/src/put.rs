//! Putting responses into the cache outside the proxy path: a service receives a response
//! (for example in the body of a request to a purge-and-put endpoint) and stores it.
//!
//! [`CachePut`] decides whether a response may be stored and with which defaults;
//! [`CachePutCtx`] stores one response under one key: it builds the [`CacheMeta`], writes the
//! body through a [`MissHandler`], enforces the size limit, and admits
//! the object into the eviction manager, purging what it evicts.
//!
//! The response comes in one of three forms:
//!
//! * [`CachePutCtx::cache_put_response`]: a parsed head and its body, framing removed;
//! * [`CachePutCtx::cache_put_raw_body`]: a parsed head and its body as sent on an HTTP/1
//!   connection (`Content-Length`, chunked, or until the end of the input);
//! * [`CachePutCtx::cache_put_raw`]: a whole HTTP/1 response, head and body, as Pingora's
//!   `cache_put` reads from a request body.
//!
//! A body is stored only when it is complete: a chunked body without its last chunk, or
//! fewer bytes than `Content-Length` announces, is an error and nothing is stored.

use bytes::{Bytes, BytesMut};
use http::Method;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_http_codec::h1::decode::{BodyDecoder, Decoded};
use pingora_http_codec::h1::head::{outgoing_framing, parse_response, response_framing};
use pingora_http_codec::h1::{Framing, Limits};

use crate::cache_control::CacheControl;
use crate::eviction::EvictionManager;
use crate::storage::{MissFinishType, MissHandler, PurgeType, Storage};
use crate::trace::Span;
use crate::{filters, CacheKey, CacheMeta, CacheMetaDefaults, NoCacheReason, RespCacheable};

/// The error of a body larger than the limit set by
/// [`CachePutCtx::set_max_file_size_bytes`]; nothing is stored.
pub const ERR_RESPONSE_TOO_LARGE: ErrorType = ErrorType::new("origin response too large");

/// The error of a body that ended before its framing said it would (a short
/// `Content-Length` body, a chunked body without its last chunk); nothing is stored.
pub const ERR_INCOMPLETE_BODY: ErrorType = ErrorType::new("IncompleteHttpBody");

/// How a [`CachePutCtx`] decides what to store.
pub trait CachePut {
    /// Whether `response` may be stored, and its metadata if so. The default reads its
    /// `Cache-Control` with [`filters::resp_cacheable`] and [`Self::cache_defaults`], as for a
    /// request without `Authorization`.
    fn cacheable(&self, response: ResponseHeader) -> RespCacheable {
        let cc = CacheControl::from_resp_headers(&response);
        filters::resp_cacheable(cc.as_ref(), response, false, Self::cache_defaults())
    }

    /// The defaults for responses that do not give their freshness.
    fn cache_defaults() -> &'static CacheMetaDefaults;

    /// Called with each response head before [`cacheable`](Self::cacheable), to record
    /// what is interesting about it. Does nothing by default.
    fn trace_header(&mut self, _response: &ResponseHeader) {}
}

/// Stores one response under one key (see the module docs).
pub struct CachePutCtx<C: CachePut> {
    cache_put: C,
    key: CacheKey,
    storage: &'static (dyn Storage + Sync),
    eviction: Option<&'static (dyn EvictionManager + Sync)>,
    max_file_size_bytes: Option<usize>,
    trace: Span,
}

/// A body being written: the miss handler, the metadata it was opened with, and the bytes
/// written so far.
struct Write {
    handler: MissHandler,
    meta: CacheMeta,
    written: usize,
}

// === impl CachePutCtx ===

impl<C: CachePut> std::fmt::Debug for CachePutCtx<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachePutCtx")
            .field("key", &self.key)
            .field("eviction", &self.eviction.is_some())
            .field("max_file_size_bytes", &self.max_file_size_bytes)
            .finish_non_exhaustive()
    }
}

impl<C: CachePut> CachePutCtx<C> {
    /// A context storing the response of `key` in `storage`, admitting it into `eviction` if
    /// given. No size limit until [`set_max_file_size_bytes`](Self::set_max_file_size_bytes).
    pub fn new(
        cache_put: C,
        key: CacheKey,
        storage: &'static (dyn Storage + Sync),
        eviction: Option<&'static (dyn EvictionManager + Sync)>,
        trace: Span,
    ) -> Self {
        CachePutCtx {
            cache_put,
            key,
            storage,
            eviction,
            max_file_size_bytes: None,
            trace,
        }
    }

    /// Refuses bodies larger than `max_file_size_bytes`: a response whose `Content-Length`
    /// is larger is not cacheable ([`NoCacheReason::ResponseTooLarge`]); a body that grows
    /// past the limit is an [`ERR_RESPONSE_TOO_LARGE`] error. Either way nothing is stored.
    pub fn set_max_file_size_bytes(&mut self, max_file_size_bytes: usize) {
        self.max_file_size_bytes = Some(max_file_size_bytes);
    }

    /// Stores `head` with `body`, the body's pieces with any transfer framing removed.
    ///
    /// Returns `Ok(None)` when the response was stored, `Ok(Some(reason))` when it may not
    /// be (the body is then not read). A body for a 204 or 304 is ignored.
    ///
    /// # Errors
    ///
    /// When the body's length differs from a valid `Content-Length` ([`ERR_INCOMPLETE_BODY`]),
    /// is larger than the size limit ([`ERR_RESPONSE_TOO_LARGE`]), or the storage fails.
    /// Nothing is stored then.
    pub async fn cache_put_response<I>(
        &mut self,
        head: ResponseHeader,
        body: I,
    ) -> Result<Option<NoCacheReason>>
    where
        I: IntoIterator<Item = Bytes>,
    {
        let framing = body_framing(&head);
        let mut write = match self.start(head).await? {
            Ok(write) => write,
            Err(reason) => return Ok(Some(reason)),
        };
        if framing != Framing::Empty {
            for piece in body {
                self.write_body(&mut write, piece).await?;
            }
        }
        let expected = match framing {
            Framing::Empty => Some(0),
            Framing::Length(n) => Some(n),
            Framing::Chunked | Framing::UntilClose => None,
        };
        if let Some(expected) = expected.filter(|&n| n != write.written as u64) {
            return Error::e_explain(
                ERR_INCOMPLETE_BODY,
                format!(
                    "the body has {} bytes, Content-Length says {expected}",
                    write.written
                ),
            );
        }
        self.finish(write).await?;
        Ok(None)
    }

    /// Stores `head` with `body`, the body as sent on an HTTP/1 connection after `head`:
    /// framed by `Content-Length`, chunked, or (with neither) everything until the end of
    /// `body`. Bytes after the end of a delimited body are ignored.
    ///
    /// Returns as [`cache_put_response`](Self::cache_put_response).
    ///
    /// # Errors
    ///
    /// When the body is malformed or ends early ([`ERR_INCOMPLETE_BODY`]), is larger than
    /// the size limit ([`ERR_RESPONSE_TOO_LARGE`]), or the storage fails. Nothing is stored
    /// then.
    pub async fn cache_put_raw_body<I>(
        &mut self,
        head: ResponseHeader,
        body: I,
    ) -> Result<Option<NoCacheReason>>
    where
        I: IntoIterator<Item = Bytes>,
    {
        let framing = body_framing(&head);
        self.put_framed(head, framing, BytesMut::new(), body.into_iter())
            .await
    }

    /// Stores the HTTP/1 response in `raw`: its head, then its body framed as in
    /// [`cache_put_raw_body`](Self::cache_put_raw_body). This is what Pingora's `cache_put`
    /// reads from the body of a request.
    ///
    /// Returns as [`cache_put_response`](Self::cache_put_response).
    ///
    /// # Errors
    ///
    /// As [`cache_put_raw_body`](Self::cache_put_raw_body), and
    /// [`ErrorType::InvalidHTTPHeader`] for a malformed head or ambiguous framing, or
    /// [`ERR_INCOMPLETE_BODY`] when `raw` ends inside the head.
    pub async fn cache_put_raw<I>(&mut self, raw: I) -> Result<Option<NoCacheReason>>
    where
        I: IntoIterator<Item = Bytes>,
    {
        let limits = Limits::default();
        let mut raw = raw.into_iter();
        let mut buf = BytesMut::new();
        let head = loop {
            if let Some(head) = parse_response(&mut buf, &limits, true)? {
                break head;
            }
            match raw.next() {
                Some(piece) => buf.extend_from_slice(&piece),
                None => {
                    return Error::e_explain(ERR_INCOMPLETE_BODY, "the input ends inside the head")
                }
            }
        };
        let framing = response_framing(&Method::GET, head.header.status, head.framing);
        self.put_framed(head.header, framing, buf, raw).await
    }

    /// Decodes a body framed by `framing` (its first bytes in `buf`, the rest from `raw`)
    /// and stores it with `head`.
    async fn put_framed(
        &mut self,
        head: ResponseHeader,
        framing: Framing,
        mut buf: BytesMut,
        mut raw: impl Iterator<Item = Bytes>,
    ) -> Result<Option<NoCacheReason>> {
        let mut write = match self.start(head).await? {
            Ok(write) => write,
            Err(reason) => return Ok(Some(reason)),
        };
        let limits = Limits::default();
        let mut decoder = BodyDecoder::new(framing);
        let mut eof = false;
        loop {
            let decoded = decoder.decode(&mut buf, eof, &limits).map_err(|e| {
                Error::because(
                    ERR_INCOMPLETE_BODY,
                    "the body is incomplete or malformed",
                    e,
                )
            })?;
            match decoded {
                Decoded::Data(data) => self.write_body(&mut write, data).await?,
                Decoded::Done => break,
                Decoded::NeedMore => match raw.next() {
                    Some(piece) => buf.extend_from_slice(&piece),
                    None => eof = true,
                },
            }
        }
        self.finish(write).await?;
        Ok(None)
    }

    /// Decides whether `head` may be stored and, if so, opens its write in the storage.
    async fn start(&mut self, head: ResponseHeader) -> Result<Result<Write, NoCacheReason>> {
        self.cache_put.trace_header(&head);
        let meta = match self.cache_put.cacheable(head) {
            RespCacheable::Cacheable(meta) => meta,
            RespCacheable::Uncacheable(reason) => return Ok(Err(reason)),
        };
        if let (Some(max), Framing::Length(length)) =
            (self.max_file_size_bytes, outgoing_framing(meta.headers()))
        {
            if length > max as u64 {
                return Ok(Err(NoCacheReason::ResponseTooLarge));
            }
        }
        let handler = self
            .storage
            .get_miss_handler(&self.key, &meta, &self.trace.handle())
            .await?;
        Ok(Ok(Write {
            handler,
            meta,
            written: 0,
        }))
    }

    /// Writes a piece of the body, within the size limit.
    async fn write_body(&self, write: &mut Write, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let written = write.written.saturating_add(data.len());
        if let Some(max) = self.max_file_size_bytes.filter(|&max| written > max) {
            return Error::e_explain(
                ERR_RESPONSE_TOO_LARGE,
                format!("the body grows past the limit of {max} bytes"),
            );
        }
        write.written = written;
        write.handler.write_body(data, false).await
    }

    /// Completes the write, admits the object into the eviction manager and purges what it
    /// evicts.
    async fn finish(&self, write: Write) -> Result<()> {
        let Write {
            mut handler, meta, ..
        } = write;
        handler.write_body(Bytes::new(), true).await?;
        let finished = handler.finish().await?;
        let Some(eviction) = self.eviction else {
            return Ok(());
        };
        let key = self.key.to_compact();
        let evicted = match finished {
            MissFinishType::Created(size) => eviction.admit(key, size, meta.fresh_until()),
            MissFinishType::Appended(delta, max) => eviction.increment_weight(&key, delta, max),
        };
        let trace = self.trace.handle();
        for item in evicted {
            // The object is stored; a failed purge only leaves an untracked object behind,
            // which the storage's own bound deals with.
            let _ = self.storage.purge(&item, PurgeType::Eviction, &trace).await;
        }
        Ok(())
    }
}

/// The framing a response's own headers give its body (as a response to GET): none for
/// 1xx, 204 and 304.
fn body_framing(head: &ResponseHeader) -> Framing {
    response_framing(&Method::GET, head.status, outgoing_framing(&head.headers))
}

#[cfg(test)]
mod tests;
