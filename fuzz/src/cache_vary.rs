//! The `Vary` rules (`pingora_cache::variance`): the variant a request selects does not
//! change when the request's fields are respelled (name case, whitespace around list
//! members, the order of unlisted fields), absent differs from empty, and `*` never matches.
//!
//! Input: a byte of respelling choices, then text lines: `V <value>` adds a `Vary` line to
//! the response, `H <name>:<value>` adds a request field.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use pingora_cache::variance::{request_variance, vary_field_names, VarianceBuilder, VaryKey};

use crate::Input;

/// The fuzz check.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let choices = input.byte();
    let mut resp = HeaderMap::new();
    let mut req: Vec<(HeaderName, Vec<u8>)> = Vec::new();
    for line in input.rest().split(|&b| b == b'\n') {
        if let Some(value) = line.strip_prefix(b"V ") {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                resp.append("vary", value);
            }
        } else if let Some(field) = line.strip_prefix(b"H ") {
            let Some(colon) = field.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (&field[..colon], &field[colon + 1..]);
            if let (Ok(name), Ok(_)) =
                (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
            {
                req.push((name, value.to_vec()));
            }
        }
    }
    let key = request_variance(&resp, &build(&req, 0));
    let names = vary_field_names(&resp);
    let Some(names) = names else {
        assert_eq!(key, VaryKey::Never);
        assert!(!key.matches(None));
        return;
    };
    assert_ne!(key, VaryKey::Never);
    assert!(key.matches(key.hash()));

    // Respelled requests select the same variant.
    assert_eq!(request_variance(&resp, &build(&req, choices | 1)), key);
    assert_eq!(request_variance(&resp, &build(&req, choices | 2)), key);
    // An unlisted field changes nothing.
    let mut extra = req.clone();
    let unlisted = HeaderName::from_static("x-fuzz-unlisted");
    if !names.contains(&unlisted) {
        extra.insert(0, (unlisted, b"1".to_vec()));
        assert_eq!(request_variance(&resp, &build(&extra, 0)), key);
    }
    // Absent is not empty: adding a listed field that was absent changes the variant.
    if let Some(absent) = names.iter().find(|n| !req.iter().any(|(r, _)| r == *n)) {
        let mut more = req.clone();
        more.push((absent.clone(), Vec::new()));
        assert_ne!(request_variance(&resp, &build(&more, 0)), key);
    }
    // Without a listed field in the request there is no variance.
    let listed_present = names.iter().any(|n| req.iter().any(|(r, _)| r == n));
    assert_eq!(key == VaryKey::Invariant, !listed_present);

    // The builder ignores call order.
    let mut forward = VarianceBuilder::new();
    let mut backward = VarianceBuilder::new();
    for (name, value) in &req {
        forward.add_owned_name_value(name.as_str().to_string(), value.clone());
    }
    let mut dedup: Vec<&(HeaderName, Vec<u8>)> = Vec::new();
    for pair in req.iter().rev() {
        if !dedup.iter().any(|(n, _)| *n == pair.0) {
            dedup.push(pair);
        }
    }
    for (name, value) in &dedup {
        backward.add_value(name.as_str(), value);
    }
    assert_eq!(forward.finalize(), backward.finalize());
}

/// The request fields, respelled by `mode`: bit 0 adds spaces around list commas, bit 1
/// upper-cases names (the map lower-cases them again) and splits lists over two lines.
fn build(fields: &[(HeaderName, Vec<u8>)], mode: u8) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        let mut value = value.clone();
        if mode & 1 != 0 {
            value = value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .collect::<Vec<_>>()
                .join(&b" , "[..]);
        }
        let name = if mode & 2 != 0 {
            HeaderName::from_bytes(name.as_str().to_ascii_uppercase().as_bytes()).expect("valid")
        } else {
            name.clone()
        };
        let split = mode & 2 != 0 && value.contains(&b',');
        let parts: Vec<Vec<u8>> = if split {
            let at = value.iter().position(|&b| b == b',').expect("has a comma");
            vec![value[..at].to_vec(), value[at + 1..].to_vec()]
        } else {
            vec![value]
        };
        for part in parts {
            if let Ok(value) = HeaderValue::from_bytes(&part) {
                map.append(name.clone(), value);
            }
        }
    }
    map
}
