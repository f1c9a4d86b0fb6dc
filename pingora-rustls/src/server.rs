//! The server side: one rustls `ServerConfig` per (certificate, ALPN protocol) pair in use,
//! built on first use and sharing one session cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, Result};
use pingora_tls::{
    AcceptParams, BoxFuture, CaType, CertKey, ClientAuth, ServerConfig, TlsServer, TlsSession,
    Transport,
};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::session;

/// The most configurations kept; the cache is cleared when it is full.
const MAX_CONFIGS: usize = 256;

/// A certificate (compared by content) and the ALPN protocol to select.
type ConfigKey = (Arc<CertKey>, Option<Vec<u8>>);

/// A rustls server for one listener.
pub(crate) struct RustlsServer {
    crypto: Arc<CryptoProvider>,
    config: ServerConfig,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
    sessions: Arc<dyn StoresServerSessions>,
    configs: Mutex<HashMap<ConfigKey, Arc<rustls::ServerConfig>>>,
}

impl RustlsServer {
    pub(crate) fn new(crypto: Arc<CryptoProvider>, config: ServerConfig) -> Result<Self> {
        let client_verifier = match &config.client_auth {
            ClientAuth::None => None,
            ClientAuth::Optional(ca) => Some(client_verifier(&crypto, ca, false)?),
            ClientAuth::Required(ca) => Some(client_verifier(&crypto, ca, true)?),
        };
        let server = RustlsServer {
            crypto,
            config,
            client_verifier,
            sessions: ServerSessionMemoryCache::new(4096),
            configs: Mutex::new(HashMap::new()),
        };
        // Fail at start, not at the first handshake, when the certificate or key is unusable.
        if let Some(cert_key) = server.config.cert_key.clone() {
            server.rustls_config(&cert_key, None)?;
        }
        Ok(server)
    }

    /// The configuration presenting `cert_key` and selecting `alpn`.
    fn rustls_config(
        &self,
        cert_key: &Arc<CertKey>,
        alpn: Option<&[u8]>,
    ) -> Result<Arc<rustls::ServerConfig>> {
        let key = (Arc::clone(cert_key), alpn.map(<[u8]>::to_vec));
        if let Some(config) = self.configs.lock().get(&key) {
            return Ok(Arc::clone(config));
        }
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.crypto))
            .with_protocol_versions(&crate::versions(
                self.config.min_version,
                self.config.max_version,
            ))
            .map_err(|e| crate::config_error(e, "unsupported TLS versions"))?;
        let builder = match &self.client_verifier {
            Some(verifier) => builder.with_client_cert_verifier(Arc::clone(verifier)),
            None => builder.with_no_client_auth(),
        };
        let chain = cert_key
            .certs()
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect();
        let private_key = PrivateKeyDer::try_from(cert_key.key().to_vec()).map_err(|e| {
            Error::explain(ErrorType::InvalidCert, format!("unusable private key: {e}"))
        })?;
        let mut config = builder
            .with_single_cert(chain, private_key)
            .map_err(|e| crate::config_error(e, "unusable certificate or key"))?;
        config.alpn_protocols = alpn.map(|p| vec![p.to_vec()]).unwrap_or_default();
        config.session_storage = Arc::clone(&self.sessions);
        let config = Arc::new(config);
        let mut configs = self.configs.lock();
        if configs.len() >= MAX_CONFIGS {
            configs.clear();
        }
        configs.insert(key, Arc::clone(&config));
        Ok(config)
    }
}

fn client_verifier(
    crypto: &Arc<CryptoProvider>,
    ca: &CaType,
    required: bool,
) -> Result<Arc<dyn ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    for cert in ca.iter() {
        roots
            .add(CertificateDer::from(cert.clone()))
            .map_err(|e| crate::config_error(e, "unusable client CA certificate"))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(crypto));
    let builder = if required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|e| {
        Error::explain(
            ErrorType::InvalidCert,
            format!("cannot verify client certificates: {e}"),
        )
    })
}

impl fmt::Debug for RustlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TlsServer for RustlsServer {
    fn accept(
        &self,
        io: Transport,
        params: AcceptParams,
    ) -> BoxFuture<'_, Result<Box<dyn TlsSession>>> {
        Box::pin(async move {
            let Some(cert_key) = params.cert_key.or_else(|| self.config.cert_key.clone()) else {
                return Error::e_explain(
                    ErrorType::TLSHandshakeFailure,
                    "no certificate for this handshake",
                );
            };
            let config = self.rustls_config(&cert_key, params.alpn.as_deref())?;
            let stream = tokio_rustls::TlsAcceptor::from(config)
                .accept(io)
                .await
                .map_err(|e| crate::map_io_error(e, "TLS handshake with the client failed"))?;
            Ok(Box::new(session::established(stream.into())) as Box<dyn TlsSession>)
        })
    }
}
