//! The body framing decisions (`response_framing`, `outgoing_framing`) and the field parsers
//! of `h1::fields`, checked against a plain reading of the RFC rules.

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use pingora_http_codec::h1::fields::{self, ConnectionTokens};
use pingora_http_codec::h1::head::{outgoing_framing, response_framing};
use pingora_http_codec::h1::Framing;

use crate::Input;

const METHODS: [Method; 5] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::CONNECT,
    Method::OPTIONS,
];

/// The fuzz check.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let method = METHODS[usize::from(input.byte()) % METHODS.len()].clone();
    let status = StatusCode::from_u16(100 + input.u16() % 900).expect("100..=999");
    let framing = match input.byte() % 4 {
        0 => Framing::Empty,
        1 => Framing::Chunked,
        2 => Framing::UntilClose,
        _ => Framing::Length(u64::from(input.u16())),
    };
    check_response_framing(&method, status, framing);

    let mut headers = HeaderMap::new();
    while !input.is_empty() {
        let name = crate::pick_name(&mut input);
        let value = crate::pick_value(&mut input);
        check_value(&value);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&name),
            HeaderValue::from_bytes(&value),
        ) {
            headers.append(name, value);
        }
    }
    check_outgoing(&headers);
}

fn check_response_framing(method: &Method, status: StatusCode, framing: Framing) {
    let decided = response_framing(method, status, framing);
    let no_body = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if no_body {
        assert_eq!(decided, Framing::Empty);
    } else if *method == Method::CONNECT && status.is_success() {
        assert_eq!(decided, Framing::UntilClose);
    } else {
        assert_eq!(decided, framing);
    }
}

/// The field parsers on one value.
fn check_value(value: &[u8]) {
    for item in fields::list_items(value) {
        assert!(!item.is_empty() && !item.contains(&b','));
        assert_eq!(item, item.trim_ascii());
    }

    // Content-Length: a list of identical decimal numbers.
    let expected = {
        let items: Vec<&[u8]> = value
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .collect();
        let numbers: Option<Vec<u64>> = items
            .iter()
            .map(|item| {
                if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                std::str::from_utf8(item).ok()?.parse().ok()
            })
            .collect();
        numbers.and_then(|n| n.windows(2).all(|w| w[0] == w[1]).then(|| n[0]))
    };
    assert_eq!(fields::parse_content_length(value), expected, "{value:?}");

    let codings: Vec<&[u8]> = fields::list_items(value).collect();
    let chunked = |c: &&[u8]| c.eq_ignore_ascii_case(b"chunked");
    assert_eq!(
        fields::is_exactly_chunked(value),
        codings.len() == 1 && chunked(&codings[0])
    );
    assert_eq!(
        fields::last_coding_is_chunked(value),
        codings.last().is_some_and(chunked)
    );

    let mut tokens = ConnectionTokens::default();
    tokens.add(value);
    let has = |t: &[u8]| codings.iter().any(|c| c.eq_ignore_ascii_case(t));
    assert_eq!(tokens.close, has(b"close"));
    assert_eq!(tokens.keep_alive, has(b"keep-alive"));
    assert_eq!(tokens.upgrade, has(b"upgrade"));
    assert!(!fields::request_keepalive(1, &tokens) || !tokens.close);

    if let Some(timeout) = fields::parse_keepalive_timeout(value) {
        let text = String::from_utf8_lossy(value);
        assert!(text.contains(&timeout.to_string()) || text.contains('+'));
    }
}

/// `outgoing_framing` against the rule it documents.
fn check_outgoing(headers: &HeaderMap) {
    let te_chunked = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .next_back()
        .is_some_and(|v| fields::last_coding_is_chunked(v.as_bytes()));
    let expected = if te_chunked {
        Framing::Chunked
    } else {
        match headers
            .get(http::header::CONTENT_LENGTH)
            .map(|v| fields::parse_content_length(v.as_bytes()))
        {
            Some(Some(n)) => Framing::Length(n),
            _ => Framing::UntilClose,
        }
    };
    assert_eq!(outgoing_framing(headers), expected);
    let tokens = ConnectionTokens::from_headers(headers);
    let mut by_hand = ConnectionTokens::default();
    for v in headers.get_all(http::header::CONNECTION) {
        by_hand.add(v.as_bytes());
    }
    assert_eq!(tokens, by_hand);
}
