//! The checks behind each fuzz target of the sans-IO crates (`pingora-http-codec`,
//! `pingora-http`, `pingora-tls`, `pingora-cache`).
//!
//! Each module has one `check(data)` that a libFuzzer binary in `fuzz_targets/` calls, and that
//! `tests/corpus.rs` runs over the committed corpus on stable Rust. A check panics when an
//! invariant breaks; reaching the end without a panic is a pass. Any input is valid: inputs
//! the code under test rejects are checked for being rejected cleanly.

pub mod cache_control;
pub mod cache_meta;
pub mod cache_range;
pub mod cache_vary;
pub mod h1_body_decoder;
pub mod h1_framing;
pub mod h1_request_head;
pub mod h1_response_head;
pub mod h2_heads;
pub mod header_map_ops;
pub mod tls_client_hello;

/// The names of the targets, as the binaries and corpus directories are named.
pub const TARGETS: [&str; 11] = [
    "h1_request_head",
    "h1_response_head",
    "h1_body_decoder",
    "h1_framing",
    "header_map_ops",
    "tls_client_hello",
    "h2_heads",
    "cache_control",
    "cache_range",
    "cache_vary",
    "cache_meta",
];

/// Runs the check of the target named `name` on `data`.
///
/// # Panics
/// When `name` is not one of [`TARGETS`], or when the check finds a broken invariant.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "h1_request_head" => h1_request_head::check(data),
        "h1_response_head" => h1_response_head::check(data),
        "h1_body_decoder" => h1_body_decoder::check(data),
        "h1_framing" => h1_framing::check(data),
        "header_map_ops" => header_map_ops::check(data),
        "tls_client_hello" => tls_client_hello::check(data),
        "h2_heads" => h2_heads::check(data),
        "cache_control" => cache_control::check(data),
        "cache_range" => cache_range::check(data),
        "cache_vary" => cache_vary::check(data),
        "cache_meta" => cache_meta::check(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// Reads structured choices off the front of a fuzz input; past its end every read gives 0 or
/// an empty slice, so a check never runs out of input.
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// A cursor over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input(data)
    }

    /// The next byte, 0 past the end.
    pub fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// The next `n` bytes, or fewer at the end.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }

    /// A length byte, then that many bytes.
    pub fn slice8(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte());
        self.take(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.0.len())
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Field names the header targets pick from, so that the framing, host and hop-by-hop rules
/// are reached often; other names come from the input itself.
pub const NAMES: [&str; 16] = [
    "Host",
    "content-length",
    "Content-Length",
    "Transfer-Encoding",
    "transfer-encoding",
    "Connection",
    "Keep-Alive",
    "Upgrade",
    "TE",
    "Cookie",
    "cookie",
    "Proxy-Connection",
    "Expect",
    "X-Forwarded-For",
    "Set-Cookie",
    "Accept",
];

/// Values the header targets pick from, for the same reason.
pub const VALUES: [&str; 12] = [
    "example.com",
    "0",
    "5",
    "5, 5",
    "chunked",
    "gzip, chunked",
    "close",
    "keep-alive, upgrade",
    "trailers",
    "a=1",
    "timeout=5",
    "100-continue",
];

/// A header name chosen from [`NAMES`] or taken from the input.
pub fn pick_name(input: &mut Input<'_>) -> Vec<u8> {
    let choice = input.byte();
    match NAMES.get(usize::from(choice % 20)) {
        Some(name) => name.as_bytes().to_vec(),
        None => input.slice8().to_vec(),
    }
}

/// A header value chosen from [`VALUES`] or taken from the input.
pub fn pick_value(input: &mut Input<'_>) -> Vec<u8> {
    let choice = input.byte();
    match VALUES.get(usize::from(choice % 16)) {
        Some(value) => value.as_bytes().to_vec(),
        None => input.slice8().to_vec(),
    }
}

/// Values a field parsed from the wire can have: `http` accepts leading and trailing
/// whitespace, HTTP/1 does not carry it (RFC 9112 section 5: it is not part of the value).
pub fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &value[start..end]
}
