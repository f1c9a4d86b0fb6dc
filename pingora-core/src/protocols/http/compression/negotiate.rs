//! Content negotiation for response compression: `Accept-Encoding` with its weights (RFC 9110
//! section 12.5.3), the decision to compress, decompress or leave a response alone, and the
//! header changes a transformed response needs.

use http::header::{
    HeaderName, HeaderValue, ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING,
    CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, VARY,
};
use http::{HeaderMap, Method, StatusCode};
use pingora_http::{RequestHeader, ResponseHeader};

use super::Algorithm;

/// A weight in thousandths: `q=1` is 1000, `q=0` (not acceptable) is 0.
type Weight = u16;

const FULL: Weight = 1000;

/// One coding of an `Accept-Encoding` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Known(Algorithm),
    Identity,
    /// `*`: any coding not listed.
    Star,
}

/// A parsed `Accept-Encoding`.
#[derive(Debug, Clone, Default)]
pub(super) struct AcceptEncoding {
    /// The request had the field (an absent field and an empty one mean different things).
    present: bool,
    entries: Vec<(Coding, Weight)>,
}

impl AcceptEncoding {
    /// Parses the `Accept-Encoding` field lines `lines`. Codings this module does not know are
    /// left out; an entry with a malformed weight is ignored.
    pub(super) fn parse<'a>(lines: impl IntoIterator<Item = &'a HeaderValue>) -> Self {
        let mut parsed = AcceptEncoding::default();
        for value in lines {
            parsed.present = true;
            // Common single-coding values skip the general parser.
            match value.as_bytes() {
                b"gzip" => parsed.entries.push((Coding::Known(Algorithm::Gzip), FULL)),
                b"br" => parsed
                    .entries
                    .push((Coding::Known(Algorithm::Brotli), FULL)),
                bytes => {
                    for item in bytes.split(|b| *b == b',') {
                        if let Some(entry) = parse_item(item) {
                            parsed.entries.push(entry);
                        }
                    }
                }
            }
        }
        parsed
    }

    /// The weight the client gives `coding`: listed explicitly, else through `*`, else
    /// identity is acceptable and other codings are not.
    fn weight(&self, coding: Coding) -> Weight {
        let listed = |c: Coding| self.entries.iter().find(|(e, _)| *e == c).map(|e| e.1);
        listed(coding)
            .or_else(|| listed(Coding::Star))
            .unwrap_or(if coding == Coding::Identity { FULL } else { 0 })
    }

    /// Whether a response already encoded with `coding` may go to this client as it is.
    ///
    /// A request without `Accept-Encoding` may take any coding by RFC 9110, but clients that
    /// send none (scripts, `curl` without `--compressed`) rarely decode one, so when the proxy
    /// is allowed to decompress it does so for them, as Pingora and nginx's gunzip do.
    pub(super) fn accepts(&self, coding: Algorithm) -> bool {
        self.present && self.weight(Coding::Known(coding)) > 0
    }

    /// The coding to compress with among `candidates` (in the server's order of preference):
    /// the client's highest weight, ties going to the server's preference. A coding counts
    /// only when the client names it (one acceptable only through `*` is not chosen, as the
    /// client may not decode it after all), and only if the client does not prefer identity.
    pub(super) fn choose(&self, candidates: impl Iterator<Item = Algorithm>) -> Option<Algorithm> {
        let mut best: Option<(Algorithm, Weight)> = None;
        for algorithm in candidates {
            let Some(&(_, weight)) = self
                .entries
                .iter()
                .find(|(c, _)| *c == Coding::Known(algorithm))
            else {
                continue;
            };
            if weight > 0 && best.is_none_or(|(_, w)| weight > w) {
                best = Some((algorithm, weight));
            }
        }
        let (algorithm, weight) = best?;
        // Identity is always acceptable, but preferred only when the client weighs it (by
        // name or through `*`) above the coding.
        let listed = |c: Coding| self.entries.iter().find(|(e, _)| *e == c).map(|e| e.1);
        let identity = listed(Coding::Identity).or_else(|| listed(Coding::Star));
        (weight >= identity.unwrap_or(0)).then_some(algorithm)
    }
}

/// Parses one `coding;q=x` list member.
fn parse_item(item: &[u8]) -> Option<(Coding, Weight)> {
    let mut parts = item.split(|b| *b == b';');
    let name = parts.next()?.trim_ascii();
    const NAMES: [(&[u8], Coding); 8] = [
        (b"gzip", Coding::Known(Algorithm::Gzip)),
        (b"br", Coding::Known(Algorithm::Brotli)),
        (b"zstd", Coding::Known(Algorithm::Zstd)),
        (b"x-gzip", Coding::Known(Algorithm::Gzip)),
        (b"dcz", Coding::Known(Algorithm::Dcz)),
        (b"dcb", Coding::Known(Algorithm::Dcb)),
        (b"identity", Coding::Identity),
        (b"*", Coding::Star),
    ];
    let coding = NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?.1;
    let mut weight = FULL;
    for param in parts {
        let param = param.trim_ascii();
        let Some(value) = param
            .strip_prefix(b"q=")
            .or_else(|| param.strip_prefix(b"Q="))
        else {
            continue;
        };
        weight = parse_qvalue(value)?;
    }
    Some((coding, weight))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(value: &[u8]) -> Option<Weight> {
    let (int, frac) = match value.iter().position(|b| *b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Weight = 0;
    for (i, digit) in frac.iter().enumerate() {
        thousandths += Weight::from(digit - b'0') * [100, 10, 1][i];
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(FULL),
        _ => None,
    }
}

/// What the request tells the compression decision. Recorded raw (cheap, whether or not the
/// context is enabled yet: an application may enable it after the modules saw the request) and
/// parsed when the response head is decided on.
#[derive(Debug, Clone, Default)]
pub(super) struct RequestFacts {
    /// The `Accept-Encoding` fields.
    accept_encoding: Vec<HeaderValue>,
    /// A `HEAD`: the response head changes as a `GET`'s would, with no body to encode.
    pub(super) head: bool,
    /// `Cache-Control: no-transform` on the request (RFC 9111 section 5.2.1.6).
    pub(super) no_transform: bool,
    /// `Available-Dictionary` (RFC 9842).
    available_dictionary: Option<HeaderValue>,
}

impl RequestFacts {
    pub(super) fn from_request(req: &RequestHeader) -> Self {
        // Recorded on every request, compression on or not (see `request_filter`): one pass
        // over the fields, comparing names (two of them standard, compared as such), is
        // cheaper than a hashed lookup for each of the three; no map is built.
        let mut facts = RequestFacts {
            head: req.method == Method::HEAD,
            ..RequestFacts::default()
        };
        for (name, value) in &req.headers {
            if name == ACCEPT_ENCODING {
                facts.accept_encoding.push(value.clone());
            } else if name == CACHE_CONTROL {
                facts.no_transform |= lists_no_transform(value);
            } else if name == super::AVAILABLE_DICTIONARY && facts.available_dictionary.is_none() {
                facts.available_dictionary = Some(value.clone());
            }
        }
        facts
    }

    /// The parsed `Accept-Encoding`.
    pub(super) fn accept(&self) -> AcceptEncoding {
        AcceptEncoding::parse(&self.accept_encoding)
    }

    /// The SHA-256 `Available-Dictionary` names, when well formed.
    pub(super) fn available_dictionary(&self) -> Option<[u8; 32]> {
        parse_sf_binary_sha256(self.available_dictionary.as_ref()?.as_bytes())
    }
}

/// Parses a structured-field byte sequence (`:base64:`) holding a SHA-256.
fn parse_sf_binary_sha256(value: &[u8]) -> Option<[u8; 32]> {
    use base64::Engine;
    let inner = value.trim_ascii().strip_prefix(b":")?.strip_suffix(b":")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .ok()?;
    decoded.try_into().ok()
}

/// Whether `Cache-Control` has `no-transform`.
fn has_no_transform(headers: &HeaderMap) -> bool {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .any(lists_no_transform)
}

/// Whether one `Cache-Control` field lists `no-transform`.
fn lists_no_transform(value: &HeaderValue) -> bool {
    value
        .as_bytes()
        .split(|b| *b == b',')
        .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
}

/// What to do with a response.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) enum Action {
    Noop,
    Compress(Algorithm),
    Decompress(Algorithm),
}

/// The knobs of the decision.
pub(super) struct Policy<'a> {
    /// Compression level per algorithm (0: off).
    pub(super) levels: &'a [u32; Algorithm::COUNT],
    pub(super) decompress: &'a [bool; Algorithm::COUNT],
    /// Compression algorithms in the server's order of preference.
    pub(super) preference: &'a [Algorithm],
    /// Responses with a known length below this are not compressed.
    pub(super) min_size: usize,
    /// Whether a `Content-Type` is worth compressing.
    pub(super) compressible_type: fn(&str) -> bool,
    /// `dcz` is possible: the client has the dictionary the context holds.
    pub(super) dictionary_matches: bool,
}

impl Policy<'_> {
    fn compressing(&self) -> bool {
        self.levels.iter().any(|l| *l != 0)
    }

    pub(super) fn candidates(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.preference.iter().copied().filter(|a| {
            self.levels[a.index()] != 0 && (*a != Algorithm::Dcz || self.dictionary_matches)
        })
    }
}

/// Decides what to do with `resp` for the request `req`; the second value says whether the
/// decision depended on `Accept-Encoding` (the response then needs `Vary: Accept-Encoding`).
pub(super) fn decide(
    resp: &ResponseHeader,
    req: &RequestFacts,
    policy: &Policy<'_>,
) -> (Action, bool) {
    let status = resp.status;
    if status == StatusCode::NO_CONTENT
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || resp.headers.contains_key(CONTENT_RANGE)
        || req.no_transform
        || has_no_transform(&resp.headers)
    {
        return (Action::Noop, false);
    }
    match content_coding(&resp.headers) {
        Some(Some(coding)) => {
            let can_decode = matches!(
                coding,
                Algorithm::Gzip | Algorithm::Brotli | Algorithm::Zstd
            ) && policy.decompress[coding.index()];
            if !can_decode {
                (Action::Noop, false)
            } else if req.accept().accepts(coding) {
                (Action::Noop, true)
            } else {
                (Action::Decompress(coding), true)
            }
        }
        // Stacked or unknown codings are passed on untouched.
        Some(None) => (Action::Noop, false),
        None => {
            if !policy.compressing() || !compressible(resp, policy) {
                return (Action::Noop, false);
            }
            match req.accept().choose(policy.candidates()) {
                Some(algorithm) => (Action::Compress(algorithm), true),
                None => (Action::Noop, true),
            }
        }
    }
}

/// The response's content coding: `None` without one (or `identity`), `Some(None)` for one
/// this module cannot handle (unknown, or several stacked).
fn content_coding(headers: &HeaderMap) -> Option<Option<Algorithm>> {
    let mut values = headers.get_all(CONTENT_ENCODING).iter();
    let first = values.next()?;
    if values.next().is_some() || first.as_bytes().contains(&b',') {
        return Some(None);
    }
    let name = first.to_str().ok().map(str::trim);
    match name.map(|n| (n, Algorithm::from(n))) {
        Some((n, _)) if n.eq_ignore_ascii_case("identity") || n.is_empty() => None,
        Some((_, Algorithm::Other | Algorithm::Any)) | None => Some(None),
        Some((_, algorithm)) => Some(Some(algorithm)),
    }
}

/// Whether a response without a content coding is worth compressing: big enough (when its
/// length is known) and of a compressible type.
fn compressible(resp: &ResponseHeader, policy: &Policy<'_>) -> bool {
    if let Some(len) = resp
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        if len < policy.min_size {
            return false;
        }
    }
    resp.headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let media_type = ct.split(';').next().unwrap_or("").trim();
            (policy.compressible_type)(&media_type.to_ascii_lowercase())
        })
}

/// The default for which media types (lowercase, without parameters) are compressed: text,
/// `application/*`, fonts, SVG and icons, `binary/octet-stream`, as Pingora; minus types that
/// are compressed already (archives, `zstd`) and gRPC (it has its own message compression).
pub fn default_compressible_type(media_type: &str) -> bool {
    const ALREADY_PACKED: [&str; 6] = ["zip", "compressed", "zstd", "x-xz", "rar", "grpc"];
    let allowed = media_type.starts_with("text/")
        || media_type.starts_with("application/")
        || media_type.starts_with("font/")
        || matches!(
            media_type,
            "image/svg+xml" | "image/x-icon" | "image/vnd.microsoft.icon" | "binary/octet-stream"
        );
    allowed && !ALREADY_PACKED.iter().any(|p| media_type.contains(p))
}

/// Adds `name` to the response's `Vary`, unless it is there already or `Vary` is `*`.
pub(super) fn add_vary(resp: &mut ResponseHeader, name: &HeaderName) {
    let present = resp.headers.get_all(VARY).iter().any(|value| {
        value.as_bytes().split(|b| *b == b',').any(|v| {
            let v = v.trim_ascii();
            v == b"*" || v.eq_ignore_ascii_case(name.as_str().as_bytes())
        })
    });
    if !present {
        // A header name is always a valid value.
        let _ = resp.append_header(VARY, HeaderValue::from_name(name.clone()));
    }
}

/// Fields that describe the bytes of the content, wrong once it is re-encoded.
const CONTENT_BOUND: [&str; 5] = [
    "content-length",
    "accept-ranges",
    "content-md5",
    "content-digest",
    "repr-digest",
];

/// The header changes for `action`: the content coding, the fields bound to the old bytes
/// removed (the length among them: the new body is streamed), and a strong `ETag` made weak
/// (RFC 9110 section 8.8.1: the new bytes are another representation) unless `preserve_etag`.
pub(super) fn adjust_header(resp: &mut ResponseHeader, action: Action, preserve_etag: bool) {
    match action {
        Action::Noop => return,
        Action::Compress(algorithm) => {
            let value = HeaderValue::from_static(algorithm.as_str());
            let _ = resp.insert_header(CONTENT_ENCODING, value);
        }
        Action::Decompress(_) => {
            resp.remove_header(&CONTENT_ENCODING);
        }
    }
    for name in CONTENT_BOUND {
        resp.remove_header(name);
    }
    debug_assert!(!resp.headers.contains_key(CONTENT_LENGTH));
    debug_assert!(!resp.headers.contains_key(ACCEPT_RANGES));
    if !preserve_etag {
        weaken_etag(resp);
    }
}

/// Makes a strong `ETag` weak; drops one that is not a valid entity tag.
fn weaken_etag(resp: &mut ResponseHeader) {
    let Some(etag) = resp.headers.get(ETAG) else {
        return;
    };
    let bytes = etag.as_bytes();
    if bytes.starts_with(b"W/") {
        return;
    }
    if bytes.len() >= 2 && bytes.starts_with(b"\"") && bytes.ends_with(b"\"") {
        if let Ok(weak) = HeaderValue::from_bytes(&[b"W/", bytes].concat()) {
            let _ = resp.insert_header(ETAG, weak);
            return;
        }
    }
    resp.remove_header(&ETAG);
}
