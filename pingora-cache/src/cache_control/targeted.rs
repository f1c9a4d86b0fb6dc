//! Targeted cache-control fields (RFC 9213), such as `CDN-Cache-Control`.
//!
//! A targeted field is a Structured Field Dictionary (RFC 8941 section 3.2). A cache that a
//! targeted field addresses uses the first one with a valid, non-empty value in place of
//! `Cache-Control` and `Expires` for all of its decisions; a field that does not parse is
//! ignored as if absent (RFC 9213 section 2.1).

use http::header::HeaderMap;

use super::CacheControl;

/// The directives of the first field of `names` (in order of precedence, e.g.
/// `["example-cdn-cache-control", "cdn-cache-control"]`) whose value is a valid, non-empty
/// Structured Field Dictionary; `None` when there is none, and the cache falls back to
/// `Cache-Control` and `Expires`.
pub fn targeted_cache_control(headers: &HeaderMap, names: &[&str]) -> Option<CacheControl> {
    names.iter().find_map(|name| {
        let mut lines = headers.get_all(*name).iter().peekable();
        lines.peek()?;
        let combined = lines
            .map(|line| line.as_bytes())
            .collect::<Vec<_>>()
            .join(&b", "[..]);
        if !is_sf_dictionary(&combined) {
            return None;
        }
        CacheControl::from_headers_named(name, headers)
    })
}

/// Whether `value` is a non-empty Structured Field Dictionary (RFC 8941 sections 3.2 and
/// 4.2.2).
pub fn is_sf_dictionary(value: &[u8]) -> bool {
    let mut p = Parser(value);
    p.skip_sp();
    if p.0.is_empty() {
        return false;
    }
    loop {
        if p.key().is_none() {
            return false;
        }
        let member = if p.eat(b'=') {
            p.item_or_inner_list()
        } else {
            p.params()
        };
        if member.is_none() {
            return false;
        }
        p.skip_ows();
        if p.0.is_empty() {
            return true;
        }
        if !p.eat(b',') {
            return false;
        }
        p.skip_ows();
        if p.0.is_empty() {
            return false;
        }
    }
}

/// A cursor over the value; each method consumes what it recognises and returns `None` on a
/// syntax error.
struct Parser<'a>(&'a [u8]);

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.0 = &self.0[1..];
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &[u8] {
        let n = self.0.iter().position(|&b| !f(b)).unwrap_or(self.0.len());
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }

    fn skip_sp(&mut self) {
        self.take_while(|b| b == b' ');
    }

    fn skip_ows(&mut self) {
        self.take_while(|b| b == b' ' || b == b'\t');
    }

    /// `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`
    fn key(&mut self) -> Option<()> {
        match self.peek() {
            Some(b'a'..=b'z' | b'*') => {}
            _ => return None,
        }
        self.take_while(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*'));
        Some(())
    }

    /// `*( ";" *SP key [ "=" bare-item ] )`
    fn params(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    fn item_or_inner_list(&mut self) -> Option<()> {
        if !self.eat(b'(') {
            self.bare_item()?;
            return self.params();
        }
        loop {
            self.skip_sp();
            if self.eat(b')') {
                return self.params();
            }
            self.bare_item()?;
            self.params()?;
            match self.peek() {
                Some(b' ' | b')') => {}
                _ => return None,
            }
        }
    }

    fn bare_item(&mut self) -> Option<()> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string(),
            b':' => self.byte_sequence(),
            b'?' => {
                self.0 = &self.0[1..];
                (self.eat(b'0') || self.eat(b'1')).then_some(())
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'*' => {
                self.take_while(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b));
                Some(())
            }
            _ => None,
        }
    }

    /// An integer of at most 15 digits, or a decimal with at most 12 integer and 1 to 3
    /// fractional digits.
    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        let int = self.take_while(|b| b.is_ascii_digit()).len();
        if int == 0 {
            return None;
        }
        if !self.eat(b'.') {
            return (int <= 15).then_some(());
        }
        let frac = self.take_while(|b| b.is_ascii_digit()).len();
        (int <= 12 && (1..=3).contains(&frac)).then_some(())
    }

    /// A quoted string of printable ASCII, with `\"` and `\\` the only escapes.
    fn string(&mut self) -> Option<()> {
        self.eat(b'"');
        loop {
            match self.peek()? {
                b'"' => {
                    self.0 = &self.0[1..];
                    return Some(());
                }
                b'\\' => {
                    self.0 = &self.0[1..];
                    if !(self.eat(b'"') || self.eat(b'\\')) {
                        return None;
                    }
                }
                0x20..=0x7e => self.0 = &self.0[1..],
                _ => return None,
            }
        }
    }

    /// `:` base64 `:`.
    fn byte_sequence(&mut self) -> Option<()> {
        self.eat(b':');
        self.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        self.eat(b':').then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache_control::InterpretCacheControl;
    use std::time::Duration;

    #[test]
    fn dictionaries() {
        let valid = [
            "max-age=60",
            "max-age=60, s-maxage=10",
            "no-store",
            "  private ,no-cache ",
            "a=1;p, b=?0, c=\"x\\\"y\", d=:aGk=:, e=(1 2 \"x\");q=1, f=*tok/en:x",
            "a=-1.5, b=123456789012345, c=()",
            "a;x;y=1",
            "private=\"a\", max-age=1; x",
        ];
        let invalid = [
            "",
            "   ",
            "Max-Age=60",
            "max-age=60,",
            "max-age=60,,s-maxage=1",
            "max-age=",
            "max-age=6 0",
            "a=1234567890123456",
            "a=1.2345",
            "a=1.",
            "a=\"unterminated",
            "a=\"bad\\escape\"",
            "a=:bad",
            "a=?2",
            "a=(1 2",
            "a=(1,2)",
            "1a",
            "a=é",
            "a=1 ;x",
        ];
        for v in valid {
            assert!(is_sf_dictionary(v.as_bytes()), "{v}");
        }
        for v in invalid {
            assert!(!is_sf_dictionary(v.as_bytes()), "{v}");
        }
    }

    use crate::test_util::header_map as map;

    #[test]
    fn first_valid_targeted_field_wins() {
        let names = ["example-cdn-cache-control", "cdn-cache-control"];
        // (fields, the chosen freshness lifetime, or None to fall back)
        let cases: &[(&[(&str, &str)], Option<u64>)] = &[
            (&[("cache-control", "max-age=5")], None),
            (&[("cdn-cache-control", "max-age=60")], Some(60)),
            (
                &[
                    ("cdn-cache-control", "max-age=60"),
                    ("example-cdn-cache-control", "max-age=9"),
                ],
                Some(9),
            ),
            (
                &[
                    ("cdn-cache-control", "max-age=60"),
                    ("example-cdn-cache-control", "Max-Age=9"),
                ],
                Some(60),
            ),
            (&[("cdn-cache-control", "")], None),
            (
                &[
                    ("cdn-cache-control", "max-age=1"),
                    ("cdn-cache-control", "s-maxage=2"),
                ],
                Some(2),
            ),
            (
                &[
                    ("cdn-cache-control", "max-age=1"),
                    ("cdn-cache-control", "bad="),
                ],
                None,
            ),
        ];
        for (fields, lifetime) in cases {
            let cc = targeted_cache_control(&map(fields), &names);
            let got = cc.map(|cc| cc.fresh_duration());
            let expected = lifetime.map(|s| Some(Duration::from_secs(s)));
            assert_eq!(got, expected, "{fields:?}");
        }
    }
}
