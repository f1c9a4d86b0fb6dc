//! The `Cache-Status` response field (RFC 9211): one list member per cache that handled the
//! request, saying whether it was a hit, why it went forward, and what it stored.
//!
//! ```
//! use pingora_cache::cache_status::{CacheStatus, FwdReason};
//!
//! let miss = CacheStatus::forward("edge", FwdReason::UriMiss).fwd_status(200).stored(true);
//! assert_eq!(miss.to_member(), "edge; fwd=uri-miss; fwd-status=200; stored");
//!
//! // A stale answer served while revalidating is a hit with a negative ttl.
//! let stale = CacheStatus::hit("edge").ttl(-5);
//! let value = stale.append_to(Some(b"origin-cache; hit"));
//! assert_eq!(value, b"origin-cache; hit, edge; hit; ttl=-5");
//! ```

/// Why a request went forward (the `fwd` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FwdReason {
    /// The cache was configured not to handle this request.
    Bypass,
    /// The request method is not cacheable.
    Method,
    /// No stored response for the URI.
    UriMiss,
    /// Stored responses exist, but none for the request's `Vary` fields.
    VaryMiss,
    /// No stored response, reason unspecified.
    Miss,
    /// The request's directives required going forward (e.g. `no-cache`).
    Request,
    /// The stored response was stale and had to be revalidated.
    Stale,
    /// Only part of the response was stored.
    Partial,
}

impl FwdReason {
    /// The parameter value.
    pub fn as_str(&self) -> &'static str {
        match self {
            FwdReason::Bypass => "bypass",
            FwdReason::Method => "method",
            FwdReason::UriMiss => "uri-miss",
            FwdReason::VaryMiss => "vary-miss",
            FwdReason::Miss => "miss",
            FwdReason::Request => "request",
            FwdReason::Stale => "stale",
            FwdReason::Partial => "partial",
        }
    }
}

/// One `Cache-Status` member: this cache's account of a request.
///
/// It has exactly one of `hit` and `fwd`; the cache key (`key`) is never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    name: String,
    fwd: Option<FwdReason>,
    fwd_status: Option<u16>,
    ttl: Option<i64>,
    stored: bool,
    collapsed: bool,
    detail: Option<String>,
}

// === impl CacheStatus ===

impl CacheStatus {
    fn new(name: &str, fwd: Option<FwdReason>) -> Self {
        CacheStatus {
            name: name.to_string(),
            fwd,
            fwd_status: None,
            ttl: None,
            stored: false,
            collapsed: false,
            detail: None,
        }
    }

    /// A hit in the cache named `name`.
    pub fn hit(name: &str) -> Self {
        CacheStatus::new(name, None)
    }

    /// A request the cache named `name` sent forward, for `reason`.
    pub fn forward(name: &str, reason: FwdReason) -> Self {
        CacheStatus::new(name, Some(reason))
    }

    /// The status of the response from the next hop (`fwd-status`).
    pub fn fwd_status(mut self, status: u16) -> Self {
        self.fwd_status = Some(status);
        self
    }

    /// The remaining freshness in seconds (`ttl`), negative when stale.
    pub fn ttl(mut self, ttl: i64) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Whether the response was stored (`stored`).
    pub fn stored(mut self, stored: bool) -> Self {
        self.stored = stored;
        self
    }

    /// Whether the request was collapsed with another one (`collapsed`).
    pub fn collapsed(mut self, collapsed: bool) -> Self {
        self.collapsed = collapsed;
        self
    }

    /// Implementation-specific detail (`detail`).
    pub fn detail(mut self, detail: &str) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    /// The member as a Structured Field item with parameters (RFC 8941): the name as a
    /// token when it is one, else as a string.
    pub fn to_member(&self) -> String {
        let mut out = String::new();
        push_token_or_string(&mut out, &self.name);
        match self.fwd {
            None => out.push_str("; hit"),
            Some(reason) => {
                out.push_str("; fwd=");
                out.push_str(reason.as_str());
            }
        }
        if let Some(status) = self.fwd_status {
            out.push_str(&format!("; fwd-status={status}"));
        }
        if let Some(ttl) = self.ttl {
            out.push_str(&format!("; ttl={ttl}"));
        }
        if self.stored {
            out.push_str("; stored");
        }
        if self.collapsed {
            out.push_str("; collapsed");
        }
        if let Some(detail) = &self.detail {
            out.push_str("; detail=");
            push_token_or_string(&mut out, detail);
        }
        out
    }

    /// The field value with this member appended to `existing` (the upstream's value, if
    /// any): caches closer to the client come last.
    pub fn append_to(&self, existing: Option<&[u8]>) -> Vec<u8> {
        let member = self.to_member();
        match existing.map(<[u8]>::trim_ascii).filter(|e| !e.is_empty()) {
            Some(existing) => [existing, b", ", member.as_bytes()].concat(),
            None => member.into_bytes(),
        }
    }
}

/// Whether `s` is an sf-token: `( ALPHA / "*" ) *( tchar / ":" / "/" )`.
fn is_token(s: &str) -> bool {
    let mut bytes = s.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == b'*')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b))
}

/// Writes `s` as an sf-token if it is one, else as an sf-string (printable ASCII only:
/// other characters become `?`; `"` and `\` are escaped).
fn push_token_or_string(out: &mut String, s: &str) {
    if is_token(s) {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members() {
        let cases = [
            (CacheStatus::hit("edge"), "edge; hit"),
            (CacheStatus::hit("edge").ttl(30), "edge; hit; ttl=30"),
            (CacheStatus::hit("edge").ttl(-3), "edge; hit; ttl=-3"),
            (
                CacheStatus::forward("edge", FwdReason::Stale)
                    .fwd_status(304)
                    .ttl(60)
                    .stored(true)
                    .collapsed(true),
                "edge; fwd=stale; fwd-status=304; ttl=60; stored; collapsed",
            ),
            (
                CacheStatus::forward("a", FwdReason::Bypass),
                "a; fwd=bypass",
            ),
            (
                CacheStatus::forward("a", FwdReason::Method),
                "a; fwd=method",
            ),
            (
                CacheStatus::forward("a", FwdReason::VaryMiss),
                "a; fwd=vary-miss",
            ),
            (CacheStatus::forward("a", FwdReason::Miss), "a; fwd=miss"),
            (
                CacheStatus::forward("a", FwdReason::Request),
                "a; fwd=request",
            ),
            (
                CacheStatus::forward("a", FwdReason::Partial),
                "a; fwd=partial",
            ),
            (
                CacheStatus::forward("a", FwdReason::UriMiss).stored(false),
                "a; fwd=uri-miss",
            ),
            (CacheStatus::hit("my cache"), "\"my cache\"; hit"),
            (CacheStatus::hit("1st"), "\"1st\"; hit"),
            (CacheStatus::hit(""), "\"\"; hit"),
            (CacheStatus::hit("a\"b\\c\u{e9}"), "\"a\\\"b\\\\c?\"; hit"),
            (
                CacheStatus::hit("host.example:8080/x"),
                "host.example:8080/x; hit",
            ),
            (
                CacheStatus::hit("e").detail("lock-timeout"),
                "e; hit; detail=lock-timeout",
            ),
            (
                CacheStatus::hit("e").detail("two words"),
                "e; hit; detail=\"two words\"",
            ),
        ];
        for (status, expected) in cases {
            assert_eq!(status.to_member(), expected);
        }
    }

    #[test]
    fn appending() {
        let me = CacheStatus::hit("edge");
        assert_eq!(me.append_to(None), b"edge; hit");
        assert_eq!(me.append_to(Some(b"  ")), b"edge; hit");
        assert_eq!(
            me.append_to(Some(b"up; fwd=miss ")),
            b"up; fwd=miss, edge; hit"
        );
    }
}
