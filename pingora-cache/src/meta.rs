//! [`CacheMeta`]: what the cache knows about a stored response besides its body, and
//! [`CacheMetaDefaults`], the cache's defaults when the response does not say.
//!
//! Times are [`SystemTime`]s with one-second resolution in practice (HTTP dates). Every
//! decision takes the time to judge at as an argument, so it is deterministic under test.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use http::{Extensions, StatusCode};
use pingora_header_serde::HeaderSerde;
use pingora_http::{HMap, ResponseHeader};

use crate::key::HashBinary;

mod codec;

/// The stored metadata of a cached response: its freshness, how long it may be served
/// stale, its variance and its response header.
#[derive(Debug)]
pub struct CacheMeta(Box<CacheMetaInner>);

/// The part of a [`CacheMeta`] that is not the response header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Internal {
    pub(crate) fresh_until: SystemTime,
    pub(crate) created: SystemTime,
    pub(crate) updated: SystemTime,
    pub(crate) stale_while_revalidate_sec: u32,
    pub(crate) stale_if_error_sec: u32,
    pub(crate) variance: Option<HashBinary>,
    pub(crate) epoch_override: Option<SystemTime>,
}

#[derive(Debug)]
struct CacheMetaInner {
    internal: Internal,
    header: ResponseHeader,
    extensions: Extensions,
}

// === impl CacheMeta ===

impl CacheMeta {
    /// Metadata for a response stored at `created`, fresh until `fresh_until`, that may be
    /// served stale for `stale_while_revalidate_sec` while revalidating and for
    /// `stale_if_error_sec` when revalidation fails.
    pub fn new(
        fresh_until: SystemTime,
        created: SystemTime,
        stale_while_revalidate_sec: u32,
        stale_if_error_sec: u32,
        header: ResponseHeader,
    ) -> CacheMeta {
        let internal = Internal {
            fresh_until,
            created,
            updated: created,
            stale_while_revalidate_sec,
            stale_if_error_sec,
            variance: None,
            epoch_override: None,
        };
        CacheMeta::from_parts(internal, header)
    }

    pub(crate) fn from_parts(internal: Internal, header: ResponseHeader) -> CacheMeta {
        CacheMeta(Box::new(CacheMetaInner {
            internal,
            header,
            extensions: Extensions::new(),
        }))
    }

    /// When the response was first stored (or the time its age counts from, see the
    /// default policy in [`filters`](crate::filters)).
    pub fn created(&self) -> SystemTime {
        self.0.internal.created
    }

    /// When the metadata was last refreshed (stored, or revalidated); `created` until then.
    pub fn updated(&self) -> SystemTime {
        self.0.internal.updated
    }

    /// Marks the metadata refreshed at `updated` (after a revalidation).
    pub fn set_updated(&mut self, updated: SystemTime) {
        self.0.internal.updated = updated;
    }

    /// The time the age counts from: the epoch override if set, else [`updated`](Self::updated).
    pub fn epoch(&self) -> SystemTime {
        self.0
            .internal
            .epoch_override
            .unwrap_or(self.0.internal.updated)
    }

    /// The epoch override, if set.
    pub fn epoch_override(&self) -> Option<SystemTime> {
        self.0.internal.epoch_override
    }

    /// Makes the age count from `epoch` instead of [`updated`](Self::updated).
    pub fn set_epoch_override(&mut self, epoch: SystemTime) {
        self.0.internal.epoch_override = Some(epoch);
    }

    /// Removes the epoch override.
    pub fn remove_epoch_override(&mut self) {
        self.0.internal.epoch_override = None;
    }

    /// Whether the response is fresh at `time`: strictly before
    /// [`fresh_until`](Self::fresh_until) (RFC 9111 section 4.2: fresh while the freshness
    /// lifetime is greater than the current age).
    pub fn is_fresh(&self, time: SystemTime) -> bool {
        time < self.0.internal.fresh_until
    }

    /// The freshness lifetime in seconds, counted from the [`epoch`](Self::epoch); 0 for a
    /// response stored already stale.
    pub fn fresh_sec(&self) -> u64 {
        self.0
            .internal
            .fresh_until
            .duration_since(self.epoch())
            .map_or(0, |d| d.as_secs())
    }

    /// When the response stops being fresh.
    pub fn fresh_until(&self) -> SystemTime {
        self.0.internal.fresh_until
    }

    /// The age now (see [`age_at`](Self::age_at)).
    pub fn age(&self) -> Duration {
        self.age_at(SystemTime::now())
    }

    /// The age at `now`: the time since the [`epoch`](Self::epoch), zero if the epoch is
    /// later.
    pub fn age_at(&self, now: SystemTime) -> Duration {
        now.duration_since(self.epoch()).unwrap_or_default()
    }

    /// Seconds after going stale during which the response may be served while it is
    /// revalidated.
    pub fn stale_while_revalidate_sec(&self) -> u32 {
        self.0.internal.stale_while_revalidate_sec
    }

    /// Seconds after going stale during which the response may be served when revalidation
    /// fails.
    pub fn stale_if_error_sec(&self) -> u32 {
        self.0.internal.stale_if_error_sec
    }

    /// Whether, at `time`, the response may be served stale while it is revalidated.
    pub fn serve_stale_while_revalidate(&self, time: SystemTime) -> bool {
        self.can_serve_stale(self.0.internal.stale_while_revalidate_sec, time)
    }

    /// Whether, at `time`, the response may be served stale because revalidation failed.
    pub fn serve_stale_if_error(&self, time: SystemTime) -> bool {
        self.can_serve_stale(self.0.internal.stale_if_error_sec, time)
    }

    /// Never serve this response stale.
    pub fn disable_serve_stale(&mut self) {
        self.0.internal.stale_while_revalidate_sec = 0;
        self.0.internal.stale_if_error_sec = 0;
    }

    fn can_serve_stale(&self, stale_sec: u32, time: SystemTime) -> bool {
        if stale_sec == 0 {
            return false;
        }
        match self
            .0
            .internal
            .fresh_until
            .checked_add(Duration::from_secs(u64::from(stale_sec)))
        {
            Some(stale_until) => time < stale_until,
            // Past the end of representable time: no limit.
            None => true,
        }
    }

    /// The variance hash of this variant, if the response varies.
    pub fn variance(&self) -> Option<HashBinary> {
        self.0.internal.variance
    }

    /// Sets the variance hash.
    pub fn set_variance_key(&mut self, variance_key: HashBinary) {
        self.0.internal.variance = Some(variance_key);
    }

    /// Sets the variance hash (the same as [`set_variance_key`](Self::set_variance_key)).
    pub fn set_variance(&mut self, variance: HashBinary) {
        self.set_variance_key(variance);
    }

    /// Removes the variance hash.
    pub fn remove_variance(&mut self) {
        self.0.internal.variance = None;
    }

    /// The stored response header.
    pub fn response_header(&self) -> &ResponseHeader {
        &self.0.header
    }

    /// The stored response header, to change.
    pub fn response_header_mut(&mut self) -> &mut ResponseHeader {
        &mut self.0.header
    }

    /// A copy of the stored response header.
    pub fn response_header_copy(&self) -> ResponseHeader {
        self.0.header.clone()
    }

    /// The stored header fields.
    pub fn headers(&self) -> &HMap {
        &self.0.header.headers
    }

    /// The stored forms of the metadata: `(internal, header)`. The internal part is a
    /// small versioned binary (freshness, stale windows, variance, epoch); the header is
    /// written by [`pingora_header_serde`] (its HTTP/1 form, field-name spelling kept,
    /// zstd-compressed with the dictionary set by [`set_compression_dict_content`] or
    /// [`set_compression_dict_path`], if any). Extensions are not stored.
    ///
    /// # Errors
    ///
    /// When header compression fails.
    pub fn serialize(&self) -> pingora_error::Result<(Vec<u8>, Vec<u8>)> {
        let header = header_serde().serialize(&self.0.header)?;
        Ok((codec::encode_internal(&self.0.internal), header))
    }

    /// Reads metadata back from what [`serialize`](Self::serialize) wrote. Stored data is
    /// untrusted: any input gives metadata or an error, never a panic.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`](pingora_error::ErrorType::InternalError) for an unknown
    /// version, truncated or trailing bytes or an out-of-range time in the internal part, or a
    /// header that does not decompress (another dictionary, corrupt data);
    /// [`ErrorType::InvalidHTTPHeader`](pingora_error::ErrorType::InvalidHTTPHeader) for a
    /// header that is not a valid response head.
    pub fn deserialize(internal: &[u8], header: &[u8]) -> pingora_error::Result<Self> {
        let internal = codec::decode_internal(internal)?;
        let header = header_serde().deserialize(header)?;
        Ok(CacheMeta::from_parts(internal, header))
    }

    /// Typed data attached to the metadata; never stored.
    pub fn extensions(&self) -> &Extensions {
        &self.0.extensions
    }

    /// Typed data attached to the metadata, to change; never stored.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.0.extensions
    }

    /// The extensions, taken out of the metadata.
    pub fn into_extensions(self) -> Extensions {
        self.0.extensions
    }

    /// Sets when the response was first stored (kept across revalidations).
    pub fn set_created(&mut self, created: SystemTime) {
        self.0.internal.created = created;
    }
}

/// The header compression dictionary, set before the first use of [`HEADER_SERDE`].
static COMPRESSION_DICT: OnceLock<Cow<'static, [u8]>> = OnceLock::new();

/// The header serializer of every [`CacheMeta`], created on first use.
static HEADER_SERDE: OnceLock<HeaderSerde> = OnceLock::new();

fn header_serde() -> &'static HeaderSerde {
    HEADER_SERDE.get_or_init(|| HeaderSerde::new(COMPRESSION_DICT.get().map(|d| d.to_vec())))
}

/// Sets the zstd dictionary that compresses stored response headers (see
/// [`pingora_header_serde::dict`] to train one). Call it once, before the cache stores or
/// reads anything: headers stored with one dictionary read back only with the same one.
///
/// Returns false, and changes nothing, if a dictionary was already set or a header was
/// already serialized or deserialized (Pingora accepts the dictionary then but never uses it).
pub fn set_compression_dict_content(content: Cow<'static, [u8]>) -> bool {
    HEADER_SERDE.get().is_none() && COMPRESSION_DICT.set(content).is_ok()
}

/// Reads the header compression dictionary from the file at `path`; see
/// [`set_compression_dict_content`].
///
/// Returns false if the file cannot be read, or as [`set_compression_dict_content`] does.
pub fn set_compression_dict_path(path: &str) -> bool {
    match std::fs::read(path) {
        Ok(dict) => set_compression_dict_content(Cow::Owned(dict)),
        Err(_) => false,
    }
}

/// The type of [`CacheMetaDefaults`]' freshness function: the freshness lifetime of a
/// response with this status when the response gives none, or `None` to not cache it.
pub type FreshDurationByStatusFn = fn(StatusCode) -> Option<Duration>;

/// The cache's defaults for responses that do not say: freshness by status, and how long
/// to serve stale.
#[derive(Debug, Clone, Copy)]
pub struct CacheMetaDefaults {
    fresh_sec_fn: FreshDurationByStatusFn,
    stale_while_revalidate_sec: u32,
    stale_if_error_sec: u32,
}

// === impl CacheMetaDefaults ===

impl CacheMetaDefaults {
    /// Defaults from a freshness function and the stale-serving windows, in seconds.
    pub const fn new(
        fresh_sec_fn: FreshDurationByStatusFn,
        stale_while_revalidate_sec: u32,
        stale_if_error_sec: u32,
    ) -> Self {
        CacheMetaDefaults {
            fresh_sec_fn,
            stale_while_revalidate_sec,
            stale_if_error_sec,
        }
    }

    /// The default freshness lifetime for `resp_status`. A 304 gets the lifetime of a 200,
    /// because it refreshes a stored 200.
    pub fn fresh_sec(&self, resp_status: StatusCode) -> Option<Duration> {
        let status = if resp_status == StatusCode::NOT_MODIFIED {
            StatusCode::OK
        } else {
            resp_status
        };
        (self.fresh_sec_fn)(status)
    }

    /// The default stale-while-revalidate window, in seconds.
    pub fn serve_stale_while_revalidate_sec(&self) -> u32 {
        self.stale_while_revalidate_sec
    }

    /// The default stale-if-error window, in seconds.
    pub fn serve_stale_if_error_sec(&self) -> u32 {
        self.stale_if_error_sec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn meta(fresh_until: u64, created: u64, swr: u32, sie: u32) -> CacheMeta {
        let header = ResponseHeader::build(200, None).unwrap();
        CacheMeta::new(at(fresh_until), at(created), swr, sie, header)
    }

    #[test]
    fn freshness_and_age() {
        let mut m = meta(1_060, 1_000, 0, 0);
        assert_eq!(m.created(), at(1_000));
        assert_eq!(m.updated(), at(1_000));
        assert_eq!(m.epoch(), at(1_000));
        assert_eq!(m.fresh_sec(), 60);
        // (time, fresh)
        for (t, fresh) in [
            (999, true),
            (1_000, true),
            (1_059, true),
            (1_060, false),
            (2_000, false),
        ] {
            assert_eq!(m.is_fresh(at(t)), fresh, "{t}");
        }
        assert_eq!(m.age_at(at(1_030)), Duration::from_secs(30));
        assert_eq!(m.age_at(at(900)), Duration::ZERO);

        m.set_epoch_override(at(1_050));
        assert_eq!(m.epoch_override(), Some(at(1_050)));
        assert_eq!(m.fresh_sec(), 10);
        assert_eq!(m.age_at(at(1_060)), Duration::from_secs(10));
        m.remove_epoch_override();
        m.set_updated(at(1_020));
        assert_eq!(m.epoch(), at(1_020));
        assert_eq!(m.created(), at(1_000));
        assert_eq!(m.fresh_sec(), 40);
    }

    #[test]
    fn stored_stale_has_zero_lifetime() {
        let m = meta(999, 1_000, 0, 0);
        assert_eq!(m.fresh_sec(), 0);
        assert!(!m.is_fresh(at(1_000)));
    }

    #[test]
    fn stale_windows() {
        let mut m = meta(1_060, 1_000, 10, 100);
        // (time, serve while revalidating, serve on error)
        for (t, swr, sie) in [
            (1_000, true, true),
            (1_069, true, true),
            (1_070, false, true),
            (1_159, false, true),
            (1_160, false, false),
        ] {
            assert_eq!(m.serve_stale_while_revalidate(at(t)), swr, "{t}");
            assert_eq!(m.serve_stale_if_error(at(t)), sie, "{t}");
        }
        m.disable_serve_stale();
        assert!(!m.serve_stale_if_error(at(1_061)));
        assert_eq!(
            (m.stale_while_revalidate_sec(), m.stale_if_error_sec()),
            (0, 0)
        );

        // A window past the end of representable time never ends.
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 2);
        let header = ResponseHeader::build(200, None).unwrap();
        let end = CacheMeta::new(far, at(0), u32::MAX, 0, header);
        if far
            .checked_add(Duration::from_secs(u64::from(u32::MAX)))
            .is_none()
        {
            assert!(end.serve_stale_while_revalidate(far));
        }
    }

    #[test]
    fn variance_header_and_extensions() {
        let mut m = meta(1, 0, 0, 0);
        assert_eq!(m.variance(), None);
        m.set_variance_key([1; 16]);
        assert_eq!(m.variance(), Some([1; 16]));
        m.set_variance([2; 16]);
        assert_eq!(m.variance(), Some([2; 16]));
        m.remove_variance();
        assert_eq!(m.variance(), None);

        m.response_header_mut()
            .insert_header("ETag", "\"a\"")
            .unwrap();
        assert_eq!(m.headers().get("etag").unwrap(), "\"a\"");
        assert_eq!(m.response_header_copy().headers.len(), 1);
        assert_eq!(m.response_header().status, StatusCode::OK);

        m.extensions_mut().insert(7u8);
        assert_eq!(m.extensions().get::<u8>(), Some(&7));
    }

    #[test]
    fn serialize_round_trip() {
        let mut m = meta(1_060, 1_000, 5, 6);
        m.set_variance_key([3; 16]);
        m.set_epoch_override(at(1_010));
        m.set_updated(at(1_020));
        m.response_header_mut()
            .append_header("ETag", "\"a\"")
            .unwrap();
        m.extensions_mut().insert(1u8);
        let (internal, header) = m.serialize().unwrap();
        let back = CacheMeta::deserialize(&internal, &header).unwrap();
        assert_eq!(back.fresh_until(), m.fresh_until());
        assert_eq!(back.created(), m.created());
        assert_eq!(back.updated(), m.updated());
        assert_eq!(back.epoch_override(), m.epoch_override());
        assert_eq!(back.variance(), m.variance());
        assert_eq!(back.stale_while_revalidate_sec(), 5);
        assert_eq!(back.stale_if_error_sec(), 6);
        assert_eq!(back.headers(), m.headers());
        assert!(back.extensions().get::<u8>().is_none());
        assert!(CacheMeta::deserialize(&internal[1..], &header).is_err());
        assert!(CacheMeta::deserialize(&internal, &header[1..]).is_err());
        assert!(CacheMeta::deserialize(&internal, b"HTTP/1.1 200 OK\r\n\r\n").is_err());

        // The dictionary cannot change once headers were serialized.
        assert!(!set_compression_dict_content(Cow::Borrowed(b"dictionary")));
        assert!(!set_compression_dict_path("/nonexistent/dictionary"));
    }

    #[test]
    fn defaults() {
        const DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::new(
            |status| match status {
                StatusCode::OK => Some(Duration::from_secs(10)),
                StatusCode::NOT_FOUND => Some(Duration::from_secs(5)),
                _ => None,
            },
            3,
            4,
        );
        assert_eq!(
            DEFAULTS.fresh_sec(StatusCode::OK),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            DEFAULTS.fresh_sec(StatusCode::NOT_MODIFIED),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            DEFAULTS.fresh_sec(StatusCode::NOT_FOUND),
            Some(Duration::from_secs(5))
        );
        assert_eq!(DEFAULTS.fresh_sec(StatusCode::BAD_GATEWAY), None);
        assert_eq!(DEFAULTS.serve_stale_while_revalidate_sec(), 3);
        assert_eq!(DEFAULTS.serve_stale_if_error_sec(), 4);
    }
}
