//! The established session: a tokio-rustls stream and what its handshake agreed.

use pingora_tls::{Established, HandshakeInfo, Transport};
use rustls::{CommonState, HandshakeKind, ProtocolVersion};
use tokio_rustls::TlsStream;

/// The established session of `stream`.
pub(crate) fn established(stream: TlsStream<Transport>) -> Established<TlsStream<Transport>> {
    let state: &CommonState = match &stream {
        TlsStream::Client(s) => s.get_ref().1,
        TlsStream::Server(s) => s.get_ref().1,
    };
    let info = HandshakeInfo {
        version: match state.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        },
        cipher: state
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown"),
        alpn: state.alpn_protocol().map(<[u8]>::to_vec),
        peer_certs: state
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.to_vec()).collect())
            .unwrap_or_default(),
        resumed: state.handshake_kind() == Some(HandshakeKind::Resumed),
    };
    Established::new("rustls", stream, info)
}
