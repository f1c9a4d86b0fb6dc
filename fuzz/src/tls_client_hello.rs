//! `parse_client_hello` on arbitrary bytes, and on ClientHellos built from the input: the
//! answer for a prefix never contradicts the answer for the whole, bytes after a complete
//! hello change nothing, and a well-formed hello gives back its SNI and ALPN list.

use pingora_tls::hello::{parse_client_hello, ClientHello, HelloParse};

use crate::Input;

/// The fuzz check.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    if input.byte() & 1 == 0 {
        consistent(input.rest());
    } else {
        built(&mut input);
    }
}

/// The parse of `data` agrees with those of its prefixes and of `data` with more after it.
fn consistent(data: &[u8]) {
    let whole = parse_client_hello(data);
    for cut in [
        0,
        data.len() / 3,
        data.len() / 2,
        data.len().saturating_sub(1),
    ] {
        match (parse_client_hello(&data[..cut]), &whole) {
            (HelloParse::Incomplete, _) => {}
            (HelloParse::Invalid(_), HelloParse::Invalid(_)) => {}
            (HelloParse::Complete(a), HelloParse::Complete(b)) => assert_eq!(&a, b),
            (prefix, whole) => panic!("{cut} bytes gave {prefix:?}, all gave {whole:?}"),
        }
    }
    let mut longer = data.to_vec();
    longer.extend_from_slice(b"\x17\x03\x03\x00\x05hello");
    match (&whole, parse_client_hello(&longer)) {
        (HelloParse::Incomplete, _) => {}
        (whole, more) => assert_eq!(whole, &more, "bytes after the hello matter"),
    }
}

/// A ClientHello with the input's server name and ALPN protocols, in records of the input's
/// size, parses to them.
fn built(input: &mut Input<'_>) {
    let record_size = usize::from(input.byte()) + 1;
    let sni = String::from_utf8_lossy(input.slice8()).into_owned();
    let sni = (!sni.is_empty()).then_some(sni);
    let mut alpn = Vec::new();
    while !input.is_empty() && alpn.len() < 16 {
        let name = input.slice8();
        if !name.is_empty() {
            alpn.push(name.to_vec());
        }
    }
    let message = hello_message(sni.as_deref(), &alpn);
    let wire = records(&message, record_size);
    let expected = ClientHello {
        server_name: sni,
        alpn,
    };
    assert_eq!(parse_client_hello(&wire), HelloParse::Complete(expected));
    consistent(&wire);
}

/// A TLS 1.3-shaped ClientHello handshake message.
fn hello_message(sni: Option<&str>, alpn: &[Vec<u8>]) -> Vec<u8> {
    let mut exts = Vec::new();
    if let Some(sni) = sni {
        let mut entry = vec![0u8];
        put16(&mut entry, sni.as_bytes());
        let mut list = Vec::new();
        put16(&mut list, &entry);
        exts.extend_from_slice(&0u16.to_be_bytes());
        put16(&mut exts, &list);
    }
    if !alpn.is_empty() {
        let mut names = Vec::new();
        for name in alpn {
            names.push(name.len() as u8);
            names.extend_from_slice(name);
        }
        let mut list = Vec::new();
        put16(&mut list, &names);
        exts.extend_from_slice(&16u16.to_be_bytes());
        put16(&mut exts, &list);
    }
    // An extension the parser skips.
    exts.extend_from_slice(&[0, 43, 0, 3, 2, 3, 4]);
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.push(0);
    body.extend([0, 2, 0x13, 0x01]);
    body.extend([1, 0]);
    put16(&mut body, &exts);
    let mut message = vec![1u8];
    message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    message.extend(body);
    message
}

fn put16(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

fn records(message: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in message.chunks(size) {
        out.extend([22, 3, 1]);
        put16(&mut out, part);
    }
    out
}
