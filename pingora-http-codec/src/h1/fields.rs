//! The header fields that decide HTTP/1 framing and connection handling: `Connection` tokens,
//! `Content-Length`, `Transfer-Encoding` codings, `Keep-Alive` parameters.
//!
//! Each function reads one field value as bytes, so it can be tested on any input.

use http::header::{self, HeaderMap};

/// The tokens of `Connection` fields that matter to HTTP/1 (RFC 9110 section 7.6.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionTokens {
    /// `close`: the connection ends after this message.
    pub close: bool,
    /// `keep-alive`: an HTTP/1.0 peer asks to keep the connection.
    pub keep_alive: bool,
    /// `upgrade`: the `Upgrade` field is meant for this connection.
    pub upgrade: bool,
}

// === impl ConnectionTokens ===

impl ConnectionTokens {
    /// Adds the tokens of one `Connection` field value.
    pub fn add(&mut self, value: &[u8]) {
        for token in list_items(value) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            }
        }
    }

    /// The tokens of every `Connection` field in `headers`.
    #[inline]
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut tokens = ConnectionTokens::default();
        for value in headers.get_all(header::CONNECTION) {
            tokens.add(value.as_bytes());
        }
        tokens
    }
}

/// The items of a comma-separated list (RFC 9110 section 5.6.1), trimmed, empty ones skipped.
pub fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|item| !item.is_empty())
}

/// Whether a request asks to keep the connection open: HTTP/1.1 unless `close`, HTTP/1.0 only
/// with `keep-alive` (RFC 9112 section 9.3).
pub fn request_keepalive(minor: u8, tokens: &ConnectionTokens) -> bool {
    if tokens.close {
        return false;
    }
    minor >= 1 || tokens.keep_alive
}

/// Parses a `Content-Length` value: `1*DIGIT`, or a list of identical such values
/// (RFC 9110 section 8.6). `None` if invalid, conflicting or over `u64::MAX`.
pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    // The usual value, one number alone, parsed in one pass; 19 digits cannot overflow.
    if (1..=19).contains(&value.len()) && value.iter().all(u8::is_ascii_digit) {
        return Some(
            value
                .iter()
                .fold(0, |n, &digit| n * 10 + u64::from(digit - b'0')),
        );
    }
    let mut result = None;
    let mut items = 0;
    for item in value.split(|&b| b == b',') {
        let item = item.trim_ascii();
        items += 1;
        if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut n: u64 = 0;
        for &digit in item {
            n = n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
        }
        if result.is_some_and(|prev| prev != n) {
            return None;
        }
        result = Some(n);
    }
    (items > 0).then_some(result).flatten()
}

/// Whether a `Transfer-Encoding` value is exactly the one coding `chunked`.
pub fn is_exactly_chunked(value: &[u8]) -> bool {
    let mut items = list_items(value);
    matches!(items.next(), Some(coding) if coding.eq_ignore_ascii_case(b"chunked"))
        && items.next().is_none()
}

/// Whether the last coding of a `Transfer-Encoding` value is `chunked`.
pub fn last_coding_is_chunked(value: &[u8]) -> bool {
    list_items(value)
        .last()
        .is_some_and(|coding| coding.eq_ignore_ascii_case(b"chunked"))
}

/// Whether a `Host` value (or the authority of an absolute-form target) is a valid
/// `uri-host [ ":" port ]` (RFC 9112 section 3.2, RFC 3986 section 3.2.2).
///
/// Stricter than RFC 3986 on purpose: the host must not be empty, a port must be 1 to 5
/// digits, `,` is refused (it would make the value a list), and an IP literal must be an
/// IPv6 address (no IPvFuture). Userinfo (`@`), whitespace, controls, `/ ? #` and an
/// unbracketed IPv6 address are invalid, as the grammar says.
pub fn is_valid_host(value: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..end];
        let is_v6 = std::str::from_utf8(literal)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
            .is_some();
        if !is_v6 {
            return false;
        }
        match &rest[end + 1..] {
            [] => (&b"x"[..], None),
            [b':', port @ ..] => (&b"x"[..], Some(port)),
            _ => return false,
        }
    } else {
        match value.iter().rposition(|&b| b == b':') {
            Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
            None => (value, None),
        }
    };
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.iter().all(u8::is_ascii_digit));
    port_ok && is_reg_name(host)
}

/// Whether `host` is a non-empty reg-name (RFC 3986 section 3.2.2) without `,`; IPv4
/// addresses are reg-names too.
fn is_reg_name(host: &[u8]) -> bool {
    if host.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            b'%' => {
                let hex = host.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b';' | b'=' => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// The `timeout=N` parameter of a `Keep-Alive` field value.
pub fn parse_keepalive_timeout(value: &[u8]) -> Option<u64> {
    list_items(value).find_map(|item| {
        let (key, val) = item.split_at(item.iter().position(|&b| b == b'=')?);
        if !key.trim_ascii().eq_ignore_ascii_case(b"timeout") {
            return None;
        }
        std::str::from_utf8(val[1..].trim_ascii())
            .ok()?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length() {
        assert_eq!(parse_content_length(b"0"), Some(0));
        assert_eq!(parse_content_length(b"0042"), Some(42));
        assert_eq!(
            parse_content_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(parse_content_length(b" 42 "), Some(42));
        assert_eq!(parse_content_length(b"7, 7,7"), Some(7));
        assert_eq!(
            parse_content_length(b"18446744073709551615"),
            Some(u64::MAX)
        );
        for bad in [
            &b""[..],
            b" ",
            b"+1",
            b"-1",
            b"0x10",
            b"1 2",
            b"1,2",
            b"1,",
            b"18446744073709551616",
            b"1e3",
        ] {
            assert_eq!(
                parse_content_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn codings() {
        assert!(is_exactly_chunked(b"chunked"));
        assert!(is_exactly_chunked(b" Chunked "));
        assert!(!is_exactly_chunked(b"gzip, chunked"));
        assert!(!is_exactly_chunked(b"chunked, chunked"));
        assert!(!is_exactly_chunked(b"chunkedx"));
        assert!(last_coding_is_chunked(b"gzip, CHUNKED"));
        assert!(!last_coding_is_chunked(b"chunked, gzip"));
    }

    #[test]
    fn connection_tokens() {
        let mut t = ConnectionTokens::default();
        t.add(b"Keep-Alive, Upgrade");
        assert!(t.keep_alive && t.upgrade && !t.close);
        t.add(b"close");
        assert!(t.close);
        assert!(!request_keepalive(1, &t));
        assert!(request_keepalive(1, &ConnectionTokens::default()));
        assert!(!request_keepalive(0, &ConnectionTokens::default()));
        let ka = ConnectionTokens {
            keep_alive: true,
            ..Default::default()
        };
        assert!(request_keepalive(0, &ka));
    }

    #[test]
    fn keepalive_timeout() {
        assert_eq!(parse_keepalive_timeout(b"timeout=5, max=100"), Some(5));
        assert_eq!(parse_keepalive_timeout(b"max=100, Timeout = 7"), Some(7));
        assert_eq!(parse_keepalive_timeout(b"max=100"), None);
        assert_eq!(parse_keepalive_timeout(b"timeout=x"), None);
    }

    #[test]
    fn host_values() {
        for good in [
            &b"example.com"[..],
            b"example.com:8080",
            b"a",
            b"127.0.0.1",
            b"127.0.0.1:80",
            b"[::1]",
            b"[::1]:443",
            b"[2001:db8::7]",
            b"xn--bcher-kva.example",
            b"a%20b",
            b"under_score.example",
            b"sub!$&'()*+;=delims",
        ] {
            assert!(is_valid_host(good), "{:?}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b""[..],
            b":80",
            b"a:",
            b"a:8o",
            b"a:-1",
            b"a:123456",
            b"a b",
            b" a",
            b"a\tb",
            b"a\x01",
            b"a\x7f",
            b"u@a",
            b"a/b",
            b"a?b",
            b"a#b",
            b"a,b",
            b"::1",
            b"2001:db8::7",
            b"[::1",
            b"[::1]x",
            b"[v1.x]",
            b"[not-ip]",
            b"a%2",
            b"a%zz",
            b"a:80:80",
            b"caf\xc3\xa9",
        ] {
            assert!(!is_valid_host(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
