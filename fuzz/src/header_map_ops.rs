//! `RequestHeader` and `ResponseHeader` edited by a sequence of operations the input picks
//! (append, insert, remove, set the target, method, version, status, reason), checked against
//! a simple model, then written as an HTTP/1 head and parsed back: the round trip keeps every
//! name (with its spelling), value and order.

use std::collections::BTreeMap;

use bytes::BytesMut;
use http::{Method, Uri, Version};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_http_codec::h1::fields::is_valid_host;
use pingora_http_codec::h1::head::{
    parse_request, parse_response, write_request_head, write_response_head,
};
use pingora_http_codec::h1::Limits;

use crate::{pick_name, pick_value, trim_ows, Input};

const METHODS: [&str; 6] = ["GET", "POST", "HEAD", "PUT", "OPTIONS", "PATCH"];
const PATHS: [&str; 6] = [
    "/",
    "/a?b=c",
    "*",
    "http://h.example/x",
    "/%ff",
    "/caf\u{e9}",
];

/// Fields as (spelling, value) pairs, in order.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// What the model expects: for each name (lowercase), its values with their spellings, in
/// order. `http::HeaderMap` keeps no order between names after a removal, so none is modelled.
type Model = BTreeMap<Vec<u8>, Fields>;

/// One edit the input asks for.
enum Op {
    Append(Vec<u8>, Vec<u8>),
    Insert(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
    Other(u8, Vec<u8>),
}

fn next_op(input: &mut Input<'_>) -> Op {
    match input.byte() % 5 {
        0 | 1 => Op::Append(pick_name(input), pick_value(input)),
        2 => Op::Insert(pick_name(input), pick_value(input)),
        3 => Op::Remove(pick_name(input)),
        _ => Op::Other(input.byte(), input.slice8().to_vec()),
    }
}

/// Applies `op` to the model, given whether the header accepted it.
fn apply(model: &mut Model, op: &Op, accepted: bool) {
    match op {
        Op::Append(name, value) if accepted => model
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push((name.clone(), value.clone())),
        Op::Insert(name, value) if accepted => {
            model.insert(
                name.to_ascii_lowercase(),
                vec![(name.clone(), value.clone())],
            );
        }
        Op::Remove(name) => {
            model.remove(&name.to_ascii_lowercase());
        }
        _ => {}
    }
}

/// Checks that the fields as written (`case_header_iter`) follow the map (`headers`), and
/// agree with the model; returns them.
fn fields_match(
    case: impl Iterator<Item = (Vec<u8>, Vec<u8>)>,
    headers: &http::HeaderMap,
    model: &Model,
) -> Fields {
    let fields: Fields = case.collect();
    assert_eq!(fields.len(), headers.len());
    for ((spelling, value), (name, map_value)) in fields.iter().zip(headers.iter()) {
        assert!(spelling.eq_ignore_ascii_case(name.as_str().as_bytes()));
        assert_eq!(value, map_value.as_bytes());
    }
    assert_eq!(&group(&fields), model, "the header differs from the model");
    fields
}

/// The fuzz check.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    if input.byte() & 1 == 0 {
        check_request(&mut input);
    } else {
        check_response(&mut input);
    }
}

fn check_request(input: &mut Input<'_>) {
    let method = METHODS[usize::from(input.byte()) % METHODS.len()];
    let path = PATHS[usize::from(input.byte()) % PATHS.len()];
    let mut req = RequestHeader::build(method, path.as_bytes(), None).expect("a valid target");
    let mut model = Model::new();
    while !input.is_empty() {
        let op = next_op(input);
        let accepted = match &op {
            Op::Append(n, v) => req
                .append_header(bytes::Bytes::from(n.clone()), v.as_slice())
                .is_ok(),
            Op::Insert(n, v) => req
                .insert_header(bytes::Bytes::from(n.clone()), v.as_slice())
                .is_ok(),
            Op::Remove(n) => {
                // Only names a header can have; the model drops nothing otherwise.
                if let Ok(name) = http::HeaderName::from_bytes(n) {
                    req.remove_header(&name);
                } else {
                    continue;
                }
                true
            }
            Op::Other(what, arg) => {
                match what % 4 {
                    0 => {
                        let before = req.raw_path().to_vec();
                        if req.set_raw_path(arg).is_err() {
                            assert_eq!(req.raw_path(), before, "a failed set keeps the target");
                        }
                    }
                    1 => {
                        if let Ok(uri) = Uri::try_from(arg.as_slice()) {
                            req.set_uri(uri);
                        }
                    }
                    2 => {
                        if let Ok(m) = Method::from_bytes(arg) {
                            req.set_method(m);
                        }
                    }
                    _ => req.set_version(if arg.is_empty() {
                        Version::HTTP_10
                    } else {
                        Version::HTTP_11
                    }),
                }
                true
            }
        };
        apply(&mut model, &op, accepted);
    }
    let fields = fields_match(case_fields(&req), &req.headers, &model);

    let mut wire = BytesMut::new();
    write_request_head(&req, &mut wire);
    let wire_len = wire.len();
    match parse_request(&mut wire, &Limits::default()) {
        Ok(Some(head)) => {
            assert!(wire.is_empty(), "the head is parsed whole");
            assert_eq!(head.raw.len(), wire_len);
            assert_eq!(head.header.method, req.method);
            let path = if req.raw_path().is_empty() {
                &b"/"[..]
            } else {
                req.raw_path()
            };
            assert_eq!(head.header.raw_path(), path);
            let back: Fields = case_fields(&head.header).collect();
            // Identical Content-Length values, in a list or in several fields, are forwarded
            // as one (RFC 9110 section 8.6).
            let (back, fields) = (merge_lengths(&back), merge_lengths(&fields));
            if head.header.uri.scheme().is_some() {
                // An absolute-form target's authority is the Host (RFC 9112 section 3.2.2):
                // the written Host fields give way to it; the other fields survive.
                let without_host = |f: &Fields| -> Fields {
                    f.iter()
                        .filter(|(n, _)| !n.eq_ignore_ascii_case(b"host"))
                        .cloned()
                        .collect()
                };
                assert_eq!(
                    without_host(&back),
                    without_host(&trimmed(&fields)),
                    "fields do not survive a round trip"
                );
                let hosts: Vec<&[u8]> = back
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(b"host"))
                    .map(|(_, v)| v.as_slice())
                    .collect();
                let authority = head.header.uri.authority().map(|a| a.as_str().as_bytes());
                assert_eq!(hosts, authority.into_iter().collect::<Vec<_>>());
            } else {
                assert_eq!(back, trimmed(&fields), "fields do not survive a round trip");
            }
        }
        Ok(None) => panic!("a written head is incomplete: {wire:?}"),
        // The framing and Host rules refuse some heads the map can hold; nothing else may.
        Err(e) => assert!(
            // A target may hold bytes over 0x7f (Pingora forwards such paths), which the
            // request parser (`httparse`) refuses.
            framing_may_refuse(&fields, req.version)
                || over_limits(fields.len(), wire_len)
                || !req.raw_path().is_ascii()
                // An absolute-form target's authority must be a valid Host.
                || !req.raw_path().starts_with(b"/")
                // So must every Host value.
                || fields
                    .iter()
                    .any(|(n, v)| n.eq_ignore_ascii_case(b"host") && !is_valid_host(trim_ows(v))),
            "a written head is refused: {e} {:?}",
            String::from_utf8_lossy(&wire)
        ),
    }
}

fn check_response(input: &mut Input<'_>) {
    let code = 100 + input.u16() % 900;
    let mut resp = ResponseHeader::build(code, None).expect("100..=999");
    let mut model = Model::new();
    while !input.is_empty() {
        let op = next_op(input);
        let accepted = match &op {
            Op::Append(n, v) => resp
                .append_header(bytes::Bytes::from(n.clone()), v.as_slice())
                .is_ok(),
            Op::Insert(n, v) => resp
                .insert_header(bytes::Bytes::from(n.clone()), v.as_slice())
                .is_ok(),
            Op::Remove(n) => {
                if let Ok(name) = http::HeaderName::from_bytes(n) {
                    resp.remove_header(&name);
                } else {
                    continue;
                }
                true
            }
            Op::Other(what, arg) => {
                match what % 3 {
                    0 => {
                        let phrase = String::from_utf8_lossy(arg);
                        let _ = resp.set_reason_phrase(Some(&phrase));
                    }
                    1 => {
                        let code = u16::from_be_bytes([
                            arg.first().copied().unwrap_or(0),
                            arg.get(1).copied().unwrap_or(0),
                        ]);
                        let _ = resp.set_status(code);
                    }
                    _ => resp.set_version(if arg.is_empty() {
                        Version::HTTP_10
                    } else {
                        Version::HTTP_11
                    }),
                }
                true
            }
        };
        apply(&mut model, &op, accepted);
    }
    let fields = fields_match(case_fields_resp(&resp), &resp.headers, &model);

    let mut wire = BytesMut::new();
    write_response_head(&resp, &mut wire);
    let wire_len = wire.len();
    // Strict, so that a written head the parser would have to repair shows up.
    match parse_response(&mut wire, &Limits::default(), true) {
        Ok(Some(head)) => {
            assert!(wire.is_empty(), "the head is parsed whole");
            assert_eq!(head.header.status, resp.status);
            assert_eq!(head.header.version, resp.version);
            // No phrase and an empty one are the same on the wire. `httparse` gives no
            // phrase for one with obs-text (non-ASCII bytes), so only ASCII ones survive.
            let reason = |r: Option<&str>| {
                r.map(|r| trim_ows(r.as_bytes()).to_vec())
                    .filter(|r| !r.is_empty())
            };
            if resp.reason_phrase().is_none_or(str::is_ascii) {
                assert_eq!(
                    reason(head.header.reason_phrase()),
                    reason(resp.reason_phrase())
                );
            }
            let back: Fields = case_fields_resp(&head.header).collect();
            let mut expected = trimmed(&fields);
            if fields
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(b"transfer-encoding"))
            {
                // The parser drops Content-Length when Transfer-Encoding frames the body.
                // `http::HeaderMap` fills the gap with its last name, so only the order
                // within each name is kept (the order between names carries no meaning).
                expected.retain(|(n, _)| !n.eq_ignore_ascii_case(b"content-length"));
                assert_eq!(
                    group(&back),
                    group(&expected),
                    "fields lost in a round trip"
                );
            } else {
                assert_eq!(back, expected, "fields do not survive a round trip");
            }
        }
        Ok(None) => panic!("a written head is incomplete: {wire:?}"),
        Err(e) => assert!(
            framing_may_refuse(&fields, Version::HTTP_10) || over_limits(fields.len(), wire_len),
            "a written head is refused: {e} {:?}",
            String::from_utf8_lossy(&wire)
        ),
    }
}

/// The fields of a request as written on the wire.
fn case_fields(req: &RequestHeader) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    req.case_header_iter()
        .map(|(n, v)| (n.as_slice().to_vec(), v.as_bytes().to_vec()))
}

/// The fields of a response as written on the wire.
fn case_fields_resp(resp: &ResponseHeader) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    resp.case_header_iter()
        .map(|(n, v)| (n.as_slice().to_vec(), v.as_bytes().to_vec()))
}

/// The fields grouped by name, each name's values in order.
fn group(fields: &Fields) -> Model {
    let mut model = Model::new();
    for (name, value) in fields {
        model
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push((name.clone(), value.clone()));
    }
    model
}

/// The values as they read after a trip through the wire.
/// `fields` with Content-Length fields whose values are all the same number replaced by one
/// field with that number, where the parser merges them.
fn merge_lengths(fields: &Fields) -> Fields {
    let is_length = |n: &[u8]| n.eq_ignore_ascii_case(b"content-length");
    let mut items = fields
        .iter()
        .filter(|(n, _)| is_length(n))
        .flat_map(|(_, v)| v.split(|&b| b == b',').map(trim_ows));
    let Some(first) = items.next() else {
        return fields.clone();
    };
    if first.is_empty() || !items.all(|item| item == first) {
        return fields.clone();
    }
    let mut merged = Vec::new();
    let mut done = false;
    for (n, v) in fields {
        if !is_length(n) {
            merged.push((n.clone(), v.clone()));
        } else if !done {
            merged.push((n.clone(), first.to_vec()));
            done = true;
        }
    }
    merged
}

/// Whether a head of `count` fields and `len` bytes is over the parser's default limits, which
/// a header map does not know of.
fn over_limits(count: usize, len: usize) -> bool {
    let limits = Limits::default();
    count > limits.max_headers || len > limits.max_header_bytes
}

fn trimmed(fields: &Fields) -> Fields {
    fields
        .iter()
        .map(|(n, v)| (n.clone(), trim_ows(v).to_vec()))
        .collect()
}

/// Whether the fields include one the framing or Host rules may refuse.
fn framing_may_refuse(fields: &Fields, version: Version) -> bool {
    let count = |name: &[u8]| {
        fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    };
    count(b"content-length") > 0
        || count(b"transfer-encoding") > 0
        || count(b"host") > 1
        || (version == Version::HTTP_11 && count(b"host") != 1)
}
