//! Response compression and decompression: gzip, brotli, zstd and dictionary zstd (`dcz`,
//! RFC 9842), streamed chunk by chunk.
//!
//! A [`ResponseCompressionCtx`] follows one response. It sees the request head (for
//! `Accept-Encoding`), then the response head, where it decides, then each piece of the body:
//!
//! - **compress** a response without a content coding when the client names an algorithm the
//!   context has a level for (by its `q` weight; ties go to the server's preference, zstd,
//!   then brotli, then gzip by default), the response is big enough (20 bytes, when its length
//!   is known) and of a type worth compressing ([`default_compressible_type`]);
//! - **decompress** a gzip, brotli or zstd response the client does not accept, when
//!   decompression of that algorithm is on;
//! - otherwise leave it alone: `206`, `204`, `304`, responses with `Content-Range`,
//!   `Cache-Control: no-transform` on the request or the response (RFC 9111 section 5.2), 101
//!   upgrades, unknown or stacked codings.
//!
//! A transformed response loses its `Content-Length`, `Accept-Ranges` and digests, its strong
//! `ETag` becomes weak (unless told to preserve it), and it gets `Vary: Accept-Encoding`
//! (whenever the decision depended on that field, whether or not it transformed). A `HEAD`
//! gets the head a `GET` would. Memory stays bounded: each piece of body is encoded and flushed
//! as it passes, nothing is buffered whole.
//!
//! Levels are per algorithm: gzip 1-9, brotli 0-11, zstd 1-22 (a higher level is clamped);
//! level 0 switches an algorithm off.

mod codec;
mod negotiate;

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderName;
use log::{debug, warn};
use pingora_error::{ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};

use super::HttpTask;
use negotiate::{Action, Policy, RequestFacts};

pub use codec::{DCZ_HEADER_SIZE, DCZ_MAGIC, MAX_DECOMPRESSION_RATIO};
pub use negotiate::default_compressible_type;

/// The error type of a failed compression or decompression.
pub const COMPRESSION_ERROR: ErrorType = ErrorType::new("CompressionError");

/// Responses with a known length below this are not compressed by default (gzip's own framing
/// is 18 bytes).
pub const DEFAULT_MIN_SIZE: usize = 20;

/// `Available-Dictionary`, the request field naming the client's dictionary (RFC 9842).
static AVAILABLE_DICTIONARY: HeaderName = HeaderName::from_static("available-dictionary");

/// A streaming encoder or decoder: bytes in, bytes out.
pub trait Encode {
    /// Encodes `input`; `end` marks the last input, after which the encoder finishes its
    /// stream. Returns what the input produced (possibly nothing).
    fn encode(&mut self, input: &[u8], end: bool) -> Result<Bytes>;

    /// The encoder's name, the bytes it took, the bytes it gave, and the time it spent.
    fn stat(&self) -> (&'static str, usize, usize, Duration);
}

/// A compression dictionary for `dcz` (RFC 9842): its bytes and their SHA-256.
#[derive(Clone, Debug)]
pub struct DictionaryData {
    /// The dictionary.
    pub bytes: Bytes,
    /// The SHA-256 of [`bytes`](Self::bytes), which names it in `Available-Dictionary`.
    pub hash: [u8; 32],
}

/// A content coding.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Algorithm {
    /// `*` in `Accept-Encoding`.
    Any,
    /// `gzip` (and `x-gzip`).
    Gzip,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
    /// `dcb`: brotli with a dictionary (passed through, not produced).
    Dcb,
    /// `dcz`: zstd with a dictionary.
    Dcz,
    /// Any other coding.
    Other,
}

impl Algorithm {
    /// The number of variants.
    pub const COUNT: usize = 7;

    /// The coding's name in HTTP fields.
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::Any => "*",
            Algorithm::Gzip => "gzip",
            Algorithm::Brotli => "br",
            Algorithm::Zstd => "zstd",
            Algorithm::Dcb => "dcb",
            Algorithm::Dcz => "dcz",
            Algorithm::Other => "other",
        }
    }

    /// A compressor at `level`; `None` for level 0 or an algorithm that needs a dictionary or
    /// is not produced here.
    pub fn compressor(&self, level: u32) -> Option<Box<dyn Encode + Send + Sync>> {
        if level == 0 {
            return None;
        }
        match self {
            Algorithm::Gzip => Some(Box::new(codec::gzip_encoder(level))),
            Algorithm::Brotli => Some(Box::new(codec::brotli_encoder(level))),
            Algorithm::Zstd => codec::zstd_encoder(level)
                .inspect_err(|e| warn!("no zstd encoder: {e}"))
                .ok()
                .map(|e| Box::new(e) as _),
            _ => None,
        }
    }

    /// A `dcz` compressor with `dictionary` at `level`; `None` for other algorithms, level 0
    /// or a dictionary zstd refuses.
    pub fn maybe_compressor_with_dictionary(
        &self,
        level: u32,
        dictionary: &DictionaryData,
    ) -> Option<Box<dyn Encode + Send + Sync>> {
        if level == 0 || *self != Algorithm::Dcz {
            return None;
        }
        codec::dcz_encoder(level, &dictionary.bytes, dictionary.hash)
            .inspect_err(|e| warn!("no dcz encoder: {e}"))
            .ok()
            .map(|e| Box::new(e) as _)
    }

    /// A decompressor if `enabled` and the algorithm is gzip, brotli or zstd.
    pub fn decompressor(&self, enabled: bool) -> Option<Box<dyn Encode + Send + Sync>> {
        if !enabled {
            return None;
        }
        match self {
            Algorithm::Gzip => Some(Box::new(codec::gzip_decoder())),
            Algorithm::Brotli => Some(Box::new(codec::brotli_decoder())),
            Algorithm::Zstd => codec::zstd_decoder()
                .inspect_err(|e| warn!("no zstd decoder: {e}"))
                .ok()
                .map(|e| Box::new(e) as _),
            _ => None,
        }
    }

    /// The variant's index, for per-algorithm settings.
    pub fn index(&self) -> usize {
        *self as usize
    }
}

impl From<&str> for Algorithm {
    /// A coding by name, ignoring case; `""` and `*` are [`Any`](Algorithm::Any).
    fn from(name: &str) -> Self {
        let name = name.trim();
        [
            ("gzip", Algorithm::Gzip),
            ("x-gzip", Algorithm::Gzip),
            ("br", Algorithm::Brotli),
            ("zstd", Algorithm::Zstd),
            ("dcb", Algorithm::Dcb),
            ("dcz", Algorithm::Dcz),
            ("*", Algorithm::Any),
            ("", Algorithm::Any),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map_or(Algorithm::Other, |(_, a)| a)
    }
}

/// The server's default order of preference among compression algorithms the client weighs
/// equally: the client's dictionary first, then zstd (fastest for its ratio), brotli, gzip.
const DEFAULT_PREFERENCE: [Algorithm; 4] = [
    Algorithm::Dcz,
    Algorithm::Zstd,
    Algorithm::Brotli,
    Algorithm::Gzip,
];

/// The settings and request facts gathered before the response head.
struct Settings {
    levels: [u32; Algorithm::COUNT],
    decompress: [bool; Algorithm::COUNT],
    preserve_etag: [bool; Algorithm::COUNT],
    dictionary: Option<DictionaryData>,
    preference: Cow<'static, [Algorithm]>,
    min_size: usize,
    compressible_type: fn(&str) -> bool,
    request: RequestFacts,
}

// The settings stay inline: a context lives inside a boxed module or in the proxy's session, and
// boxing them would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// Before the final response head: settings can change.
    Header(Settings),
    /// After it: the encoder, if the response is transformed.
    Body(Option<Box<dyn Encode + Send + Sync>>),
}

/// Compresses or decompresses one response; see the [module docs](self).
///
/// Create one per request with [`new`](Self::new), feed it the request head
/// ([`request_filter`](Self::request_filter)), the response head
/// ([`response_header_filter`](Self::response_header_filter)) and each piece of the body
/// ([`response_body_filter`](Self::response_body_filter)). Calls out of that order are logged
/// and ignored; they never panic.
pub struct ResponseCompressionCtx {
    phase: Phase,
    /// What [`request_filter`](Self::request_filter) negotiated, when it ran while enabled.
    negotiated: Option<Option<Algorithm>>,
}

impl std::fmt::Debug for ResponseCompressionCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCompressionCtx")
            .field("enabled", &self.is_enabled())
            .field("info", &self.get_info())
            .finish()
    }
}

impl ResponseCompressionCtx {
    /// A context compressing at `compression_level` with every algorithm (0: no compression),
    /// decompressing when `decompress_enable`, and weakening `ETag`s of transformed responses
    /// unless `preserve_etag`.
    pub fn new(compression_level: u32, decompress_enable: bool, preserve_etag: bool) -> Self {
        let phase = Phase::Header(Settings {
            levels: [compression_level; Algorithm::COUNT],
            decompress: [decompress_enable; Algorithm::COUNT],
            preserve_etag: [preserve_etag; Algorithm::COUNT],
            dictionary: None,
            preference: Cow::Borrowed(&DEFAULT_PREFERENCE),
            min_size: DEFAULT_MIN_SIZE,
            compressible_type: default_compressible_type,
            request: RequestFacts::default(),
        });
        ResponseCompressionCtx {
            phase,
            negotiated: None,
        }
    }

    /// Whether the context may still change the response: before the response head, whether
    /// any algorithm is on; after it, whether the body is being transformed.
    pub fn is_enabled(&self) -> bool {
        match &self.phase {
            Phase::Header(s) => s.levels.iter().any(|l| *l != 0) || s.decompress.iter().any(|d| *d),
            Phase::Body(encoder) => encoder.is_some(),
        }
    }

    /// The encoder's name, bytes in, bytes out and time spent, once the body is transformed.
    pub fn get_info(&self) -> Option<(&'static str, usize, usize, Duration)> {
        match &self.phase {
            Phase::Body(Some(encoder)) => Some(encoder.stat()),
            _ => None,
        }
    }

    /// The settings, or `None` (logged) once the response head was seen.
    fn settings(&mut self, what: &str) -> Option<&mut Settings> {
        match &mut self.phase {
            Phase::Header(settings) => Some(settings),
            Phase::Body(_) => {
                warn!("response compression: {what} after the response head is ignored");
                None
            }
        }
    }

    /// Sets the compression level of every algorithm (0: no compression).
    pub fn adjust_level(&mut self, new_level: u32) {
        if let Some(s) = self.settings("adjust_level") {
            s.levels = [new_level; Algorithm::COUNT];
        }
    }

    /// Sets the compression level of `algorithm` (0: off).
    pub fn adjust_algorithm_level(&mut self, algorithm: Algorithm, new_level: u32) {
        if let Some(s) = self.settings("adjust_algorithm_level") {
            s.levels[algorithm.index()] = new_level;
        }
    }

    /// Turns decompression of every algorithm on or off.
    pub fn adjust_decompression(&mut self, enabled: bool) {
        if let Some(s) = self.settings("adjust_decompression") {
            s.decompress = [enabled; Algorithm::COUNT];
        }
    }

    /// Turns decompression of `algorithm` on or off.
    pub fn adjust_algorithm_decompression(&mut self, algorithm: Algorithm, enabled: bool) {
        if let Some(s) = self.settings("adjust_algorithm_decompression") {
            s.decompress[algorithm.index()] = enabled;
        }
    }

    /// Whether transformed responses keep their `ETag` as it is (every algorithm).
    pub fn adjust_preserve_etag(&mut self, enabled: bool) {
        if let Some(s) = self.settings("adjust_preserve_etag") {
            s.preserve_etag = [enabled; Algorithm::COUNT];
        }
    }

    /// Whether responses transformed with `algorithm` keep their `ETag` as it is.
    pub fn adjust_algorithm_preserve_etag(&mut self, algorithm: Algorithm, enabled: bool) {
        if let Some(s) = self.settings("adjust_algorithm_preserve_etag") {
            s.preserve_etag[algorithm.index()] = enabled;
        }
    }

    /// The smallest response (by `Content-Length`) worth compressing; default
    /// [`DEFAULT_MIN_SIZE`]. Responses of unknown length are always candidates.
    pub fn adjust_min_size(&mut self, bytes: usize) {
        if let Some(s) = self.settings("adjust_min_size") {
            s.min_size = bytes;
        }
    }

    /// The server's order of preference among compression algorithms the client weighs
    /// equally; algorithms left out are not used for compression.
    pub fn adjust_preference(&mut self, order: &[Algorithm]) {
        if let Some(s) = self.settings("adjust_preference") {
            s.preference = Cow::Owned(order.to_vec());
        }
    }

    /// Which media types (lowercase, without parameters) are compressed; default
    /// [`default_compressible_type`].
    pub fn adjust_compressible_type(&mut self, filter: fn(&str) -> bool) {
        if let Some(s) = self.settings("adjust_compressible_type") {
            s.compressible_type = filter;
        }
    }

    /// Sets the `dcz` dictionary (its bytes and SHA-256). It is used for clients that accept
    /// `dcz` and name this dictionary in `Available-Dictionary`.
    pub fn set_dictionary(&mut self, dictionary_bytes: Bytes, dictionary_hash: [u8; 32]) {
        if let Some(s) = self.settings("set_dictionary") {
            s.dictionary = Some(DictionaryData {
                bytes: dictionary_bytes,
                hash: dictionary_hash,
            });
        }
    }

    /// Whether a dictionary is set.
    pub fn has_dictionary(&self) -> bool {
        matches!(&self.phase, Phase::Header(s) if s.dictionary.is_some())
    }

    /// Removes the dictionary.
    pub fn clear_dictionary(&mut self) {
        if let Some(s) = self.settings("clear_dictionary") {
            s.dictionary = None;
        }
    }

    /// Takes in the request head (its `Accept-Encoding`, method, `Cache-Control` and
    /// `Available-Dictionary`).
    ///
    /// The request is recorded even while the context is off, so an application may turn it
    /// on after the modules saw the request (in `request_filter`, say).
    pub fn request_filter(&mut self, req: &RequestHeader) {
        let enabled = self.is_enabled();
        let Some(s) = self.settings("request_filter") else {
            return;
        };
        s.request = RequestFacts::from_request(req);
        if !enabled {
            return;
        }
        let policy = policy(s);
        let negotiated = s.request.accept().choose(policy.candidates());
        self.negotiated = Some(negotiated);
    }

    /// The coding this context would compress a compressible response with for the request
    /// it saw, or `None` for identity (and when it saw no request while enabled).
    pub fn negotiated_encoding(&self) -> Option<Algorithm> {
        self.negotiated.flatten()
    }

    /// `Accept-Encoding` normalised to what this context negotiated for the request (`br`,
    /// `zstd`, `gzip`, `dcz` or `identity`), or `None` if it saw no request while enabled. A
    /// cache storing responses this context compressed keys their variants by it rather than
    /// by the raw field, so one variant per coding is stored.
    pub fn normalized_accept_encoding(&self) -> Option<&'static str> {
        self.negotiated
            .map(|n| n.map_or("identity", |algorithm| algorithm.as_str()))
    }

    /// Takes in the response head (`end`: no body follows) and decides; changes the head
    /// when the body will be transformed.
    pub fn response_header_filter(&mut self, resp: &mut ResponseHeader, end: bool) {
        if !self.is_enabled() {
            return;
        }
        let Phase::Header(settings) = &self.phase else {
            warn!("response compression: a second response head is ignored");
            return;
        };
        if resp.status.is_informational() {
            if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
                // The connection carries another protocol from now on.
                self.phase = Phase::Body(None);
            }
            return;
        }
        if end && !settings.request.head {
            // No body, so nothing to say about its coding.
            self.phase = Phase::Body(None);
            return;
        }
        let (action, varies) = negotiate::decide(resp, &settings.request, &policy(settings));
        debug!("response compression: {action:?}");
        if varies {
            negotiate::add_vary(resp, &http::header::ACCEPT_ENCODING);
        }
        let (encoder, preserve_etag) = match action {
            Action::Noop => (None, false),
            Action::Compress(algorithm) => {
                let level = settings.levels[algorithm.index()];
                let encoder = match (&settings.dictionary, algorithm) {
                    (Some(dictionary), Algorithm::Dcz) => {
                        negotiate::add_vary(resp, &AVAILABLE_DICTIONARY);
                        algorithm.maybe_compressor_with_dictionary(level, dictionary)
                    }
                    _ => algorithm.compressor(level),
                };
                (encoder, settings.preserve_etag[algorithm.index()])
            }
            Action::Decompress(algorithm) => (
                algorithm.decompressor(true),
                settings.preserve_etag[algorithm.index()],
            ),
        };
        if encoder.is_some() {
            negotiate::adjust_header(resp, action, preserve_etag);
        }
        // A HEAD's head changed as a GET's would; there is no body to encode.
        self.phase = Phase::Body(if end { None } else { encoder });
    }

    /// Transforms a piece of the body (`None`: no bytes, for example to finish at `end`).
    /// Returns the bytes to send instead, or `None` when the body passes untransformed.
    ///
    /// An encoder error switches the context off and returns `None`, as Pingora does; the
    /// bytes already sent were encoded, so the response is then broken.
    /// [`try_response_body_filter`](Self::try_response_body_filter) reports the error instead,
    /// so the caller can abort the response (the module does).
    pub fn response_body_filter(&mut self, data: Option<&Bytes>, end: bool) -> Option<Bytes> {
        self.try_response_body_filter(data, end)
            .unwrap_or_else(|e| {
                warn!("response compression failed, switched off: {e}");
                None
            })
    }

    /// Like [`response_body_filter`](Self::response_body_filter), but an encoder error is
    /// returned (and the context switched off).
    pub fn try_response_body_filter(
        &mut self,
        data: Option<&Bytes>,
        end: bool,
    ) -> Result<Option<Bytes>> {
        let encoder = match &mut self.phase {
            Phase::Body(Some(encoder)) => encoder,
            Phase::Body(None) => return Ok(None),
            Phase::Header(_) => {
                if self.is_enabled() {
                    warn!("response compression: body before the response head passes as is");
                }
                return Ok(None);
            }
        };
        let input = data.map_or(&[][..], |d| d.as_ref());
        match encoder.encode(input, end) {
            Ok(out) => Ok(Some(out)),
            Err(e) => {
                self.phase = Phase::Body(None);
                Err(e)
            }
        }
    }

    /// Transforms one response task in place (head, body, or the end, which may flush the
    /// encoder's last bytes into a final body task).
    pub fn response_filter(&mut self, task: &mut HttpTask) {
        if !self.is_enabled() {
            return;
        }
        match task {
            HttpTask::Header(resp, end) => self.response_header_filter(resp, *end),
            HttpTask::Body(data, end) => {
                if let Some(out) = self.response_body_filter(data.as_ref(), *end) {
                    *task = HttpTask::Body(Some(out), *end);
                }
            }
            HttpTask::Done => {
                if let Some(out) = self.response_body_filter(None, true) {
                    *task = HttpTask::Body(Some(out), true);
                }
            }
            HttpTask::UpgradedBody(..) | HttpTask::Trailer(_) | HttpTask::Failed(_) => {}
        }
    }
}

/// The decision's knobs from `settings`.
fn policy(settings: &Settings) -> Policy<'_> {
    let dictionary_matches = match (
        &settings.dictionary,
        settings.request.available_dictionary(),
    ) {
        (Some(dictionary), Some(named)) => dictionary.hash == named,
        _ => false,
    };
    Policy {
        levels: &settings.levels,
        decompress: &settings.decompress,
        preference: &settings.preference,
        min_size: settings.min_size,
        compressible_type: settings.compressible_type,
        dictionary_matches,
    }
}

#[cfg(test)]
mod tests;
