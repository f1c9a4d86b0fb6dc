//! Reading the facts a server needs from a TLS ClientHello before the handshake starts: the
//! server name (SNI) and the offered ALPN protocols.
//!
//! The listener reads the ClientHello itself, so that certificate selection and ALPN choice
//! work the same way, and asynchronously, for every backend; the bytes read are then replayed
//! to the backend.

/// The largest ClientHello accepted, in bytes (handshake message, not counting record headers).
pub const MAX_CLIENT_HELLO: usize = 64 * 1024;

/// What a ClientHello says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The host name from the `server_name` extension.
    pub server_name: Option<String>,
    /// The ALPN protocol names offered, in the client's order.
    pub alpn: Vec<Vec<u8>>,
}

/// The result of [`parse_client_hello`].
#[derive(Debug, PartialEq, Eq)]
pub enum HelloParse {
    /// More bytes are needed.
    Incomplete,
    /// The ClientHello.
    Complete(ClientHello),
    /// The bytes are not a TLS ClientHello.
    Invalid(&'static str),
}

const RECORD_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;

/// Parses the ClientHello at the start of `input`, the bytes received so far.
pub fn parse_client_hello(input: &[u8]) -> HelloParse {
    // Gather the handshake message from as many records as it spans.
    let mut message = Vec::new();
    let mut rest = input;
    loop {
        if rest.len() < 5 {
            return HelloParse::Incomplete;
        }
        if rest[0] != RECORD_HANDSHAKE {
            return HelloParse::Invalid("the first record is not a handshake record");
        }
        if rest[1] != 3 {
            return HelloParse::Invalid("not a TLS record");
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 || len > 16384 + 2048 {
            return HelloParse::Invalid("bad record length");
        }
        if rest.len() < 5 + len {
            return HelloParse::Incomplete;
        }
        message.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
        if message.len() >= 4 {
            if message[0] != HANDSHAKE_CLIENT_HELLO {
                return HelloParse::Invalid("the first handshake message is not a ClientHello");
            }
            let body_len = usize::from(message[1]) << 16
                | usize::from(message[2]) << 8
                | usize::from(message[3]);
            if body_len > MAX_CLIENT_HELLO {
                return HelloParse::Invalid("ClientHello too large");
            }
            if message.len() >= 4 + body_len {
                return match parse_body(&message[4..4 + body_len]) {
                    Some(hello) => HelloParse::Complete(hello),
                    None => HelloParse::Invalid("malformed ClientHello"),
                };
            }
        }
    }
}

/// A cursor over bytes that fails (returns `None`) instead of reading past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

fn parse_body(body: &[u8]) -> Option<ClientHello> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    let mut hello = ClientHello::default();
    if r.0.is_empty() {
        return Some(hello); // no extensions
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let ty = exts.u16()?;
        let mut data = Reader(exts.vec16()?);
        match ty {
            EXT_SERVER_NAME => {
                let mut list = Reader(data.vec16()?);
                while !list.0.is_empty() {
                    let kind = list.u8()?;
                    let name = list.vec16()?;
                    if kind == 0 && hello.server_name.is_none() {
                        hello.server_name = std::str::from_utf8(name).ok().map(str::to_string);
                    }
                }
            }
            EXT_ALPN => {
                let mut list = Reader(data.vec16()?);
                while !list.0.is_empty() {
                    hello.alpn.push(list.vec8()?.to_vec());
                }
            }
            _ => {}
        }
    }
    Some(hello)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello_bytes(sni: Option<&str>, alpn: &[&[u8]]) -> Vec<u8> {
        let mut exts = Vec::new();
        if let Some(sni) = sni {
            let mut entry = vec![0u8];
            entry.extend_from_slice(&(sni.len() as u16).to_be_bytes());
            entry.extend_from_slice(sni.as_bytes());
            let mut list = (entry.len() as u16).to_be_bytes().to_vec();
            list.extend(entry);
            exts.extend_from_slice(&0u16.to_be_bytes());
            exts.extend_from_slice(&(list.len() as u16).to_be_bytes());
            exts.extend(list);
        }
        if !alpn.is_empty() {
            let mut names = Vec::new();
            for name in alpn {
                names.push(name.len() as u8);
                names.extend_from_slice(name);
            }
            let mut list = (names.len() as u16).to_be_bytes().to_vec();
            list.extend(names);
            exts.extend_from_slice(&16u16.to_be_bytes());
            exts.extend_from_slice(&(list.len() as u16).to_be_bytes());
            exts.extend(list);
        }
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one suite
        body.extend([1, 0]); // null compression
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut msg = vec![1u8];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend(body);
        msg
    }

    fn records(msg: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in msg.chunks(chunk) {
            out.extend([22, 3, 1]);
            out.extend_from_slice(&(part.len() as u16).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    #[test]
    fn parses_sni_and_alpn_across_records() {
        let msg = hello_bytes(Some("a.example"), &[b"h2", b"http/1.1"]);
        for chunk in [msg.len(), 10, 1] {
            let wire = records(&msg, chunk);
            let expected = ClientHello {
                server_name: Some("a.example".into()),
                alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            };
            assert_eq!(parse_client_hello(&wire), HelloParse::Complete(expected));
            for cut in [0, 3, wire.len() / 2, wire.len() - 1] {
                assert_eq!(parse_client_hello(&wire[..cut]), HelloParse::Incomplete);
            }
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            parse_client_hello(b"GET / HTTP/1.1\r\n"),
            HelloParse::Invalid(_)
        ));
        let mut msg = hello_bytes(None, &[]);
        msg[0] = 2;
        assert!(matches!(
            parse_client_hello(&records(&msg, 100)),
            HelloParse::Invalid(_)
        ));
        // A truncated extension inside a complete message.
        let mut msg = hello_bytes(Some("a.example"), &[]);
        msg.pop();
        let body_len = (msg.len() - 4) as u32;
        msg[1..4].copy_from_slice(&body_len.to_be_bytes()[1..]);
        assert!(matches!(
            parse_client_hello(&records(&msg, 1000)),
            HelloParse::Invalid(_)
        ));
        let msg = hello_bytes(None, &[]);
        assert_eq!(
            parse_client_hello(&records(&msg, 1000)),
            HelloParse::Complete(ClientHello::default())
        );
    }
}
