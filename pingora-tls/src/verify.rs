//! The rules for which names an upstream certificate must carry, shared by every backend.
//!
//! * An empty SNI means no SNI is sent and the certificate is **not verified** (nginx does the
//!   same).
//! * `verify_cert` checks the chain against the trusted CAs and the validity dates.
//! * `verify_hostname` additionally requires the certificate to be valid for one of
//!   [`accepted_names`]: the SNI; the SNI with underscores in its leftmost label replaced by
//!   `-` (only when the name has more than one label, as certificate authorities do not issue
//!   names with underscores); the peer's `alternative_cn`, and its underscore variant.

/// The names a certificate may be valid for to pass hostname verification, most expected
/// first, without duplicates.
pub fn accepted_names(sni: &str, alternative_cn: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(4);
    let mut push = |name: String| {
        if !name.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            names.push(name);
        }
    };
    for name in std::iter::once(sni).chain(alternative_cn) {
        push(name.to_string());
        if let Some(variant) = underscore_variant(name) {
            push(variant);
        }
    }
    names
}

/// `name` with the underscores of its leftmost label replaced by `-`, when it has any and is
/// a subdomain (has a dot).
fn underscore_variant(name: &str) -> Option<String> {
    let (first, rest) = name.split_once('.')?;
    if !first.contains('_') || rest.is_empty() {
        return None;
    }
    Some(format!("{}.{rest}", first.replace('_', "-")))
}

/// Whether a DNS name from a certificate (`pattern`, possibly with a leading `*.` wildcard
/// standing for exactly one label) covers `host`. Case-insensitive; a trailing dot is ignored.
pub fn dns_name_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    let host = host.trim_end_matches('.');
    if pattern.is_empty() || host.is_empty() {
        return false;
    }
    if let Some(suffix) = pattern.strip_prefix("*.") {
        // The wildcard covers one whole, non-empty leftmost label, and never a bare suffix.
        return match host.split_once('.') {
            Some((label, rest)) => {
                !label.is_empty() && suffix.contains('.') && rest.eq_ignore_ascii_case(suffix)
            }
            None => false,
        };
    }
    pattern.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(accepted_names("a.example", None), ["a.example"]);
        assert_eq!(
            accepted_names("my_host.example", Some("alt_x.example")),
            [
                "my_host.example",
                "my-host.example",
                "alt_x.example",
                "alt-x.example"
            ]
        );
        // Only the leftmost label, and only for subdomains.
        assert_eq!(accepted_names("my_host", None), ["my_host"]);
        assert_eq!(accepted_names("a.b_c.example", None), ["a.b_c.example"]);
        assert_eq!(
            accepted_names("a.example", Some("A.EXAMPLE")),
            ["a.example"]
        );
        assert!(accepted_names("", None).is_empty());
    }

    #[test]
    fn wildcards() {
        assert!(dns_name_matches("a.example", "A.Example."));
        assert!(dns_name_matches("*.example.com", "x.example.com"));
        assert!(!dns_name_matches("*.example.com", "example.com"));
        assert!(!dns_name_matches("*.example.com", "x.y.example.com"));
        assert!(!dns_name_matches("*.com", "example.com"));
        assert!(!dns_name_matches("", "a"));
        assert!(!dns_name_matches("b.example", "a.example"));
    }
}
