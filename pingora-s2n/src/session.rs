//! The established session: an s2n-tls-tokio stream and what its handshake agreed.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use pingora_tls::{Established, HandshakeInfo, Transport};
use s2n_tls::connection::Connection;
use s2n_tls::enums::Version;
use s2n_tls_tokio::TlsStream;

/// The established session of `stream`.
pub(crate) fn established(
    stream: TlsStream<Transport, Connection>,
) -> Established<TlsStream<Transport, Connection>> {
    let conn: &Connection = stream.as_ref();
    let peer_certs = conn
        .peer_cert_chain()
        .map(|chain| {
            chain
                .iter()
                .filter_map(|cert| cert.ok()?.der().ok().map(<[u8]>::to_vec))
                .collect()
        })
        .unwrap_or_default();
    let info = HandshakeInfo {
        version: match conn.actual_protocol_version() {
            Ok(Version::TLS13) => "TLSv1.3",
            Ok(Version::TLS12) => "TLSv1.2",
            _ => "unknown",
        },
        cipher: conn.cipher_suite().map(intern).unwrap_or("unknown"),
        alpn: conn.application_protocol().map(<[u8]>::to_vec),
        peer_certs,
        resumed: conn.resumed(),
    };
    Established::new("s2n-tls", stream, info)
}

/// A `'static` copy of a cipher suite name. There are a few dozen names, each kept once.
fn intern(name: &str) -> &'static str {
    static NAMES: LazyLock<Mutex<HashSet<&'static str>>> =
        LazyLock::new(|| Mutex::new(HashSet::new()));
    let mut names = NAMES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = names.get(name) {
        return found;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}
