//! The secondary cache key: which variant of a response a request selects (RFC 9111
//! section 4.1).
//!
//! A response with `Vary` is stored under a variance hash built from the values the listed
//! request fields had in the request that produced it; a later request reuses it only if its
//! own fields hash the same. [`VarianceBuilder`] builds the hash from name-value pairs (the
//! proxy's `cache_vary_filter` may add its own, normalised values); [`request_variance`]
//! applies the `Vary` rules:
//!
//! * field lines are combined, whitespace around list members trimmed, names are
//!   case-insensitive, and `Accept-Encoding` and `Accept-Language` values are compared
//!   case-insensitively (their tokens are);
//! * a field absent from the request is not the same as the field present and empty;
//! * `Vary: *` (as any member) never matches.
//!
//! ```
//! use http::HeaderMap;
//! use pingora_cache::variance::{request_variance, VaryKey};
//!
//! let mut resp = HeaderMap::new();
//! resp.insert("vary", "Accept-Encoding".parse().unwrap());
//! let mut gzip = HeaderMap::new();
//! gzip.insert("accept-encoding", "GZIP , br".parse().unwrap());
//! let mut gzip2 = HeaderMap::new();
//! gzip2.insert("Accept-Encoding", "gzip,br".parse().unwrap());
//! assert_eq!(request_variance(&resp, &gzip), request_variance(&resp, &gzip2));
//! assert_ne!(request_variance(&resp, &gzip), request_variance(&resp, &HeaderMap::new()));
//!
//! resp.insert("vary", "*".parse().unwrap());
//! assert_eq!(request_variance(&resp, &gzip), VaryKey::Never);
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;

use blake2::Digest;
use http::header::{self, HeaderMap, HeaderName};

use crate::key::{Blake2b128, HashBinary};

/// Builds a variance hash from request field names and values, in any order.
///
/// Each name holds one value (a later value for the same name replaces the earlier). The
/// hash covers the names and values sorted by name, so the order of calls does not matter;
/// it is the same as Pingora's for the same pairs. Without any pair there is no variance.
#[derive(Debug, Default, Clone)]
pub struct VarianceBuilder<'a> {
    values: BTreeMap<Cow<'a, str>, Cow<'a, [u8]>>,
}

// === impl VarianceBuilder ===

impl<'a> VarianceBuilder<'a> {
    /// An empty builder.
    pub fn new() -> Self {
        VarianceBuilder::default()
    }

    /// Adds a borrowed name and value.
    pub fn add_value(&mut self, name: &'a str, value: &'a (impl AsRef<[u8]> + ?Sized)) {
        self.values
            .insert(Cow::Borrowed(name), Cow::Borrowed(value.as_ref()));
    }

    /// Adds a borrowed name and an owned value.
    pub fn add_owned_value(&mut self, name: &'a str, value: Vec<u8>) {
        self.values.insert(Cow::Borrowed(name), Cow::Owned(value));
    }

    /// Adds an owned name and value.
    pub fn add_owned_name_value(&mut self, name: String, value: Vec<u8>) {
        self.values.insert(Cow::Owned(name), Cow::Owned(value));
    }

    /// Whether any value was added.
    pub fn has_variance(&self) -> bool {
        !self.values.is_empty()
    }

    /// The variance hash, `None` if nothing was added.
    pub fn finalize(self) -> Option<HashBinary> {
        // Field names and values cannot contain a zero byte, so it separates them unambiguously.
        const SEPARATOR: [u8; 1] = [0];
        if !self.has_variance() {
            return None;
        }
        let mut hasher = Blake2b128::new();
        for (name, value) in &self.values {
            hasher.update(name.as_bytes());
            hasher.update(SEPARATOR);
            hasher.update(value);
            hasher.update(SEPARATOR);
        }
        Some(hasher.finalize().into())
    }
}

/// The variant a request selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaryKey {
    /// No variance: no `Vary`, or none of the listed fields is in the request.
    Invariant,
    /// The variance hash of the listed fields' values.
    Variant(HashBinary),
    /// `Vary: *`: no request matches.
    Never,
}

impl VaryKey {
    /// The variance hash to set on the cache key, if any.
    pub fn hash(&self) -> Option<HashBinary> {
        match self {
            VaryKey::Variant(hash) => Some(*hash),
            VaryKey::Invariant | VaryKey::Never => None,
        }
    }

    /// Whether a stored variant with variance `stored` answers a request that selects this
    /// key.
    pub fn matches(&self, stored: Option<HashBinary>) -> bool {
        match self {
            VaryKey::Never => false,
            _ => self.hash() == stored,
        }
    }
}

/// The field names a response's `Vary` lists, lower-cased, deduplicated, in order; `None`
/// when any member is `*`. Members that are not valid field names are ignored.
pub fn vary_field_names(resp_headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names: Vec<HeaderName> = Vec::new();
    let members = resp_headers
        .get_all(header::VARY)
        .iter()
        .flat_map(|line| line.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|member| !member.is_empty());
    for member in members {
        if member == b"*" {
            return None;
        }
        // `from_bytes` lower-cases the name.
        if let Ok(name) = HeaderName::from_bytes(member) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Some(names)
}

/// The normalised value of request field `name`, `None` when the request lacks it: its
/// lines combined, list members trimmed and joined by `,` (empty members dropped), and
/// lower-cased for fields whose tokens are case-insensitive.
pub fn normalized_field_value(req_headers: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut lines = req_headers.get_all(name).iter().peekable();
    lines.peek()?;
    let lower = *name == header::ACCEPT_ENCODING || *name == header::ACCEPT_LANGUAGE;
    let mut out = Vec::new();
    let members = lines
        .flat_map(|line| line.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|member| !member.is_empty());
    for member in members {
        if !out.is_empty() {
            out.push(b',');
        }
        if lower {
            out.extend(member.iter().map(u8::to_ascii_lowercase));
        } else {
            out.extend_from_slice(member);
        }
    }
    Some(out)
}

/// The variant of a stored response (`resp_headers`, for its `Vary`) that a request
/// (`req_headers`) selects; see the [module docs](self).
pub fn request_variance(resp_headers: &HeaderMap, req_headers: &HeaderMap) -> VaryKey {
    let Some(names) = vary_field_names(resp_headers) else {
        return VaryKey::Never;
    };
    let mut builder = VarianceBuilder::new();
    for name in &names {
        if let Some(value) = normalized_field_value(req_headers, name) {
            builder.add_owned_value(name.as_str(), value);
        }
    }
    builder
        .finalize()
        .map_or(VaryKey::Invariant, VaryKey::Variant)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::header_map as map;

    #[test]
    fn builder_basics() {
        assert_eq!(VarianceBuilder::new().finalize(), None);
        let mut borrowed = VarianceBuilder::new();
        borrowed.add_value("a", "x");
        assert!(borrowed.has_variance());
        let mut owned = VarianceBuilder::new();
        owned.add_owned_value("a", b"x".to_vec());
        let mut all_owned = VarianceBuilder::new();
        all_owned.add_owned_name_value("a".into(), b"x".to_vec());
        let hash = borrowed.finalize();
        assert!(hash.is_some());
        assert_eq!(hash, owned.finalize());
        assert_eq!(hash, all_owned.finalize());
    }

    #[test]
    fn builder_order_and_separation() {
        let build = |pairs: &[(&'static str, &'static str)]| {
            let mut b = VarianceBuilder::new();
            for (n, v) in pairs {
                b.add_value(n, *v);
            }
            b.finalize()
        };
        assert_eq!(
            build(&[("a", "1"), ("b", "2")]),
            build(&[("b", "2"), ("a", "1")])
        );
        assert_ne!(
            build(&[("a", "1"), ("b", "2")]),
            build(&[("a", "2"), ("b", "1")])
        );
        // Name and value boundaries matter.
        assert_ne!(build(&[("ab", "")]), build(&[("a", "b")]));
        // Empty value is a variance of its own.
        assert_ne!(build(&[("a", "")]), None);
        // The last value for a name wins.
        assert_eq!(build(&[("a", "1"), ("a", "2")]), build(&[("a", "2")]));
    }

    #[test]
    fn vary_names() {
        // (Vary lines, names or None for `*`)
        let cases: &[(&[&str], Option<&[&str]>)] = &[
            (&[], Some(&[])),
            (&[""], Some(&[])),
            (&["Accept-Encoding"], Some(&["accept-encoding"])),
            (
                &["accept-encoding, ACCEPT-ENCODING", "Origin"],
                Some(&["accept-encoding", "origin"]),
            ),
            (&[" a ,, b "], Some(&["a", "b"])),
            (&["a b, c"], Some(&["c"])),
            (&["*"], None),
            (&["Accept, *"], None),
            (&["Accept", " * "], None),
        ];
        for (lines, expected) in cases {
            let fields: Vec<_> = lines.iter().map(|l| ("vary", *l)).collect();
            let got = vary_field_names(&map(&fields));
            let got: Option<Vec<&str>> =
                got.as_ref().map(|v| v.iter().map(|n| n.as_str()).collect());
            assert_eq!(got.as_deref(), *expected, "{lines:?}");
        }
    }

    #[test]
    fn normalisation() {
        let ae = header::ACCEPT_ENCODING;
        let ua = header::USER_AGENT;
        // (request fields, field, normalised value)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a HeaderName, Option<&'a str>);
        let cases: &[Case<'_>] = &[
            (&[], &ae, None),
            (&[("accept-encoding", "")], &ae, Some("")),
            (&[("accept-encoding", " GZIP ,br ")], &ae, Some("gzip,br")),
            (
                &[("accept-encoding", "gzip"), ("accept-encoding", "br")],
                &ae,
                Some("gzip,br"),
            ),
            (&[("accept-encoding", "gzip,,  ,br")], &ae, Some("gzip,br")),
            (&[("user-agent", "A (X, Y)")], &ua, Some("A (X,Y)")),
            (&[("user-agent", "Agent")], &ua, Some("Agent")),
        ];
        for (fields, name, expected) in cases {
            let got = normalized_field_value(&map(fields), name);
            assert_eq!(got.as_deref(), expected.map(str::as_bytes), "{fields:?}");
        }
    }

    #[test]
    fn request_variance_table() {
        let vary_ae = map(&[("vary", "Accept-Encoding")]);
        let none = map(&[]);
        let gzip = map(&[("accept-encoding", "gzip")]);
        let gzip_upper = map(&[("Accept-Encoding", " GZIP")]);
        let empty = map(&[("accept-encoding", "")]);
        let br = map(&[("accept-encoding", "br")]);

        assert_eq!(request_variance(&none, &gzip), VaryKey::Invariant);
        assert_eq!(request_variance(&vary_ae, &none), VaryKey::Invariant);
        let g = request_variance(&vary_ae, &gzip);
        assert!(matches!(g, VaryKey::Variant(_)));
        assert_eq!(g, request_variance(&vary_ae, &gzip_upper));
        assert_ne!(g, request_variance(&vary_ae, &br));
        // Absent is not empty.
        let e = request_variance(&vary_ae, &empty);
        assert!(matches!(e, VaryKey::Variant(_)));
        assert_ne!(e, request_variance(&vary_ae, &none));

        // Only listed fields count.
        let gzip_cookie = map(&[("accept-encoding", "gzip"), ("cookie", "a=1")]);
        assert_eq!(request_variance(&vary_ae, &gzip_cookie), g);

        // Matching against what was stored.
        assert!(g.matches(g.hash()));
        assert!(!g.matches(None));
        assert!(VaryKey::Invariant.matches(None));
        let star = map(&[("vary", "*")]);
        let never = request_variance(&star, &gzip);
        assert_eq!(never, VaryKey::Never);
        assert!(!never.matches(None));
        assert_eq!(never.hash(), None);
    }
}
