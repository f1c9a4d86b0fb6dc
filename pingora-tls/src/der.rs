//! The few facts of an X.509 certificate the digests need, read from its DER encoding with a
//! minimal, bounds-checked DER walker (no backend needed).

use sha2::{Digest as _, Sha256};

/// Facts about a certificate: what [`SslDigest`](crate::HandshakeInfo) and logs show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject's organization (`O`), if any.
    pub organization: Option<String>,
    /// The subject's common name (`CN`), if any.
    pub common_name: Option<String>,
    /// The serial number as upper-case hex without leading zeros.
    pub serial_number: Option<String>,
}

/// The SHA-256 digest of `der`.
pub fn sha256(der: &[u8]) -> Vec<u8> {
    Sha256::digest(der).to_vec()
}

/// Reads the summary of a DER certificate. Malformed input gives an empty summary, never a
/// panic.
pub fn summarize(der: &[u8]) -> CertSummary {
    parse(der).unwrap_or_default()
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const VERSION_TAG: u8 = 0xa0;
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_ORG: &[u8] = &[0x55, 0x04, 0x0a];

/// Splits one TLV off `input`: `(tag, value, rest)`.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, value, rest) = tlv(input)?;
    (t == tag).then_some((value, rest))
}

fn parse(der: &[u8]) -> Option<CertSummary> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION_TAG) {
        rest = tlv(rest)?.2;
    }
    let (serial, rest) = expect(rest, INTEGER)?;
    let (_signature, rest) = expect(rest, SEQUENCE)?;
    let (_issuer, rest) = expect(rest, SEQUENCE)?;
    let (_validity, rest) = expect(rest, SEQUENCE)?;
    let (subject, _) = expect(rest, SEQUENCE)?;

    let mut summary = CertSummary {
        serial_number: Some(hex_upper(serial)),
        ..CertSummary::default()
    };
    let mut rdns = subject;
    while !rdns.is_empty() {
        let (set, next) = expect(rdns, SET)?;
        rdns = next;
        let mut attrs = set;
        while !attrs.is_empty() {
            let (attr, next) = expect(attrs, SEQUENCE)?;
            attrs = next;
            let (oid, value) = expect(attr, OID)?;
            let (_, text, _) = tlv(value)?;
            let text = String::from_utf8_lossy(text).into_owned();
            if oid == OID_ORG && summary.organization.is_none() {
                summary.organization = Some(text);
            } else if oid == OID_CN && summary.common_name.is_none() {
                summary.common_name = Some(text);
            }
        }
    }
    Some(summary)
}

fn hex_upper(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let bytes = &bytes[start..];
    if bytes.is_empty() {
        return "0".to_string();
    }
    let mut out = String::with_capacity(bytes.len() * 2);
    for (i, b) in bytes.iter().enumerate() {
        if i == 0 {
            let _ = write!(out, "{b:X}");
        } else {
            let _ = write!(out, "{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_subject_and_serial() {
        let mut params = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme Corp");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "a.example");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x00, 0x0a, 0xbc]));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let summary = summarize(cert.der());
        assert_eq!(summary.organization.as_deref(), Some("Acme Corp"));
        assert_eq!(summary.common_name.as_deref(), Some("a.example"));
        assert_eq!(summary.serial_number.as_deref(), Some("ABC"));
        assert_eq!(sha256(cert.der()).len(), 32);
    }

    #[test]
    fn malformed_input_is_empty() {
        assert_eq!(summarize(b""), CertSummary::default());
        assert_eq!(
            summarize(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            CertSummary::default()
        );
        assert_eq!(summarize(&[0x30, 0x03, 0x30, 0x01]), CertSummary::default());
    }
}
