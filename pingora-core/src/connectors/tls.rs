//! The client side of TLS: handshakes with upstream peers through the connector's provider.

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, Result};

use super::ConnectorOptions;
use crate::metrics::{self, Side};
use crate::protocols::tls::stream::Underlying;
use crate::protocols::tls::{self, ClientConfig, ConnectParams, TlsClient, TlsProvider, TlsStream};
use crate::protocols::{Stream, ALPN};
use crate::upstreams::peer::Peer;
use crate::utils::tls::CertKey;

/// A connector's TLS client, created on first use from the connector's options.
pub(crate) struct TlsConnector {
    config: ClientConfigSource,
    provider: Mutex<Option<Arc<dyn TlsProvider>>>,
    client: Mutex<Option<Arc<dyn TlsClient>>>,
}

/// Where the client configuration comes from: the connector's options, read when first
/// needed so that a plaintext-only program never touches certificate files.
#[derive(Debug, Clone)]
struct ClientConfigSource {
    ca_file: Option<String>,
    cert_key_file: Option<(String, String)>,
    keylog: bool,
    config_cache_size: Option<usize>,
}

// === impl TlsConnector ===

impl TlsConnector {
    pub(crate) fn new(options: &ConnectorOptions) -> Self {
        TlsConnector {
            config: ClientConfigSource {
                ca_file: options.ca_file.clone(),
                cert_key_file: options.cert_key_file.clone(),
                keylog: options.debug_ssl_keylog,
                config_cache_size: options.s2n_config_cache_size,
            },
            provider: Mutex::new(None),
            client: Mutex::new(None),
        }
    }

    /// Uses `provider` from now on instead of the default one.
    pub(crate) fn set_provider(&self, provider: Arc<dyn TlsProvider>) {
        *self.provider.lock() = Some(provider);
        *self.client.lock() = None;
    }

    fn client(&self) -> Result<Arc<dyn TlsClient>> {
        if let Some(client) = &*self.client.lock() {
            return Ok(Arc::clone(client));
        }
        let provider = match &*self.provider.lock() {
            Some(provider) => Arc::clone(provider),
            None => tls::default_provider()?,
        };
        let ca = match &self.config.ca_file {
            Some(path) => Some(Arc::new(tls::CaType::from(pingora_tls::load_pem_certs(
                path,
            )?))),
            None => None,
        };
        let cert_key = match &self.config.cert_key_file {
            Some((cert, key)) => Some(Arc::new(CertKey::from_pem_files(cert, key)?)),
            None => None,
        };
        let client = provider.new_client(ClientConfig {
            ca,
            cert_key,
            keylog: self.config.keylog,
            config_cache_size: self.config.config_cache_size,
        })?;
        *self.client.lock() = Some(Arc::clone(&client));
        Ok(client)
    }

    /// Runs the TLS handshake with `peer` over `stream`, offering `alpn_override` instead of
    /// the peer's ALPN when set. Bounded by the peer's `connection_timeout`.
    pub(crate) async fn connect<P: Peer>(
        &self,
        stream: Stream,
        peer: &P,
        alpn_override: Option<ALPN>,
    ) -> Result<Stream> {
        let client = self
            .client()
            .map_err(|e| e.more_context(format!("cannot speak TLS to {peer}")))?;
        let alpn = alpn_override
            .as_ref()
            .or(peer.get_alpn())
            .map(|a| a.protocol_names().into_iter().map(<[u8]>::to_vec).collect())
            .unwrap_or_default();
        let params = ConnectParams {
            sni: peer.sni().to_string(),
            verify_cert: peer.verify_cert(),
            verify_hostname: peer.verify_hostname(),
            alternative_cn: peer.alternative_cn().cloned(),
            ca: peer.get_ca().cloned(),
            cert_key: peer.get_client_cert_key().cloned(),
            alpn,
        };
        let below = Underlying::of(&stream);
        let handshake = client.connect(Box::new(stream), params);
        let context = |e: Box<Error>| e.more_context(format!("TLS handshake with {peer}"));
        let session = match peer.connection_timeout() {
            Some(limit) => match pingora_timeout::timeout(limit, handshake).await {
                Ok(done) => done.map_err(context),
                Err(_) => Error::e_explain(
                    ErrorType::TLSHandshakeTimedout,
                    format!("TLS handshake with {peer} not done in {limit:?}"),
                ),
            },
            None => handshake.await.map_err(context),
        };
        let session = metrics::tls_handshake(Side::Upstream, session)?;
        let digest = Arc::new(tls::ssl_digest(session.info(), None));
        Ok(Box::new(TlsStream::new(session, below, digest)))
    }
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("config", &self.config)
            .field("provider", &self.provider.lock().as_ref().map(|p| p.name()))
            .finish_non_exhaustive()
    }
}
