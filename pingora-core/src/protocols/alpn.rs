//! Application-Layer Protocol Negotiation (RFC 7301) choices.

use std::fmt;

/// The HTTP versions a connection may negotiate with ALPN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ALPN {
    /// HTTP/1.1 only.
    H1,
    /// HTTP/2 only.
    H2,
    /// HTTP/2 preferred, HTTP/1.1 accepted.
    H2H1,
    /// A protocol other than HTTP.
    Custom(CustomALPN),
}

impl ALPN {
    /// The choice that allows HTTP versions `min` to `max`: `(1, 1)` is [`ALPN::H1`], `(2, 2)` is
    /// [`ALPN::H2`] and anything else is [`ALPN::H2H1`].
    pub fn new(max: u8, min: u8) -> Self {
        match (max, min) {
            (1, _) => ALPN::H1,
            (2, 2) => ALPN::H2,
            _ => ALPN::H2H1,
        }
    }

    /// The highest HTTP version allowed (0 for a custom protocol).
    pub fn get_max_http_version(&self) -> u8 {
        match self {
            ALPN::H1 => 1,
            ALPN::H2 | ALPN::H2H1 => 2,
            ALPN::Custom(_) => 0,
        }
    }

    /// The lowest HTTP version allowed (0 for a custom protocol).
    pub fn get_min_http_version(&self) -> u8 {
        match self {
            ALPN::H1 | ALPN::H2H1 => 1,
            ALPN::H2 => 2,
            ALPN::Custom(_) => 0,
        }
    }

    /// The protocol list as sent on the wire: each name prefixed by its length, most preferred
    /// first.
    pub fn to_wire_preference(&self) -> &[u8] {
        match self {
            ALPN::H1 => b"\x08http/1.1",
            ALPN::H2 => b"\x02h2",
            ALPN::H2H1 => b"\x02h2\x08http/1.1",
            ALPN::Custom(custom) => custom.wire(),
        }
    }

    /// The choice corresponding to the protocol name the handshake selected.
    pub fn from_wire_selected(raw: &[u8]) -> Option<Self> {
        match raw {
            b"http/1.1" => Some(ALPN::H1),
            b"h2" => Some(ALPN::H2),
            _ => CustomALPN::new(raw.to_vec()).ok().map(ALPN::Custom),
        }
    }

    /// The protocol names, most preferred first.
    pub fn protocol_names(&self) -> Vec<&[u8]> {
        let mut names = Vec::with_capacity(2);
        let mut wire = self.to_wire_preference();
        while let Some((&len, rest)) = wire.split_first() {
            let len = usize::from(len).min(rest.len());
            names.push(&rest[..len]);
            wire = &rest[len..];
        }
        names
    }
}

impl fmt::Display for ALPN {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ALPN::H1 => f.write_str("H1"),
            ALPN::H2 => f.write_str("H2"),
            ALPN::H2H1 => f.write_str("H2H1"),
            ALPN::Custom(custom) => write!(f, "Custom({})", String::from_utf8_lossy(custom.name())),
        }
    }
}

/// A non-HTTP ALPN protocol name of 1 to 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomALPN {
    /// The name with its one-byte length prefix, as sent on the wire.
    wire: Vec<u8>,
}

impl CustomALPN {
    /// A custom protocol called `name`.
    ///
    /// # Errors
    /// The name must be 1 to 255 bytes long and must not be `h2` or `http/1.1`, which have
    /// their own [`ALPN`] variants.
    pub fn new(name: Vec<u8>) -> pingora_error::Result<Self> {
        use pingora_error::{Error, ErrorType};
        if name.is_empty() || name.len() > 255 {
            return Error::e_explain(
                ErrorType::InternalError,
                "a custom ALPN name must be 1 to 255 bytes long",
            );
        }
        if name == b"h2" || name == b"http/1.1" {
            return Error::e_explain(
                ErrorType::InternalError,
                "h2 and http/1.1 are not custom ALPN names",
            );
        }
        let mut wire = Vec::with_capacity(name.len() + 1);
        // The length fits in a byte: checked above.
        wire.push(name.len() as u8);
        wire.extend_from_slice(&name);
        Ok(CustomALPN { wire })
    }

    /// The protocol name.
    pub fn name(&self) -> &[u8] {
        &self.wire[1..]
    }

    /// The protocol name with its length prefix.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(ALPN::new(1, 1), ALPN::H1);
        assert_eq!(ALPN::new(2, 2), ALPN::H2);
        assert_eq!(ALPN::new(2, 1), ALPN::H2H1);
        assert_eq!(ALPN::H2H1.get_max_http_version(), 2);
        assert_eq!(ALPN::H2H1.get_min_http_version(), 1);
        assert_eq!(ALPN::H2.get_min_http_version(), 2);
    }

    #[test]
    fn wire() {
        assert_eq!(
            ALPN::H2H1.protocol_names(),
            vec![&b"h2"[..], &b"http/1.1"[..]]
        );
        assert_eq!(ALPN::from_wire_selected(b"h2"), Some(ALPN::H2));
        assert_eq!(ALPN::from_wire_selected(b"http/1.1"), Some(ALPN::H1));
        let custom = ALPN::from_wire_selected(b"imap").unwrap();
        assert_eq!(custom.to_wire_preference(), b"\x04imap");
        assert_eq!(custom.to_string(), "Custom(imap)");
        assert!(ALPN::from_wire_selected(b"").is_none());
        assert!(CustomALPN::new(vec![b'a'; 256]).is_err());
        assert!(CustomALPN::new(b"h2".to_vec()).is_err());
    }
}
