//! The client side: rustls `ClientConfig`s per distinct (CA set, client certificate, ALPN,
//! verification policy), built on first use, sharing one session cache; and the verifier that
//! applies Pingora's verification rules (see [`pingora_tls::verify`]).

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use log::warn;
use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, Result};
use pingora_tls::{
    verify, BoxFuture, CaType, CertKey, ClientConfig, ConnectParams, TlsClient, TlsSession,
    Transport,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::session;

/// The most configurations kept; the cache is cleared when it is full.
const MAX_CONFIGS: usize = 1024;

/// The server name used, and never sent, when a peer has no SNI.
const NO_SNI_NAME: &str = "sni.invalid";

/// A rustls client for one connector.
pub(crate) struct RustlsClient {
    crypto: Arc<CryptoProvider>,
    default_roots: Arc<RootCertStore>,
    default_cert_key: Option<Arc<CertKey>>,
    keylog: bool,
    resumption: Resumption,
    configs: Mutex<HashMap<ConfigKey, Arc<rustls::ClientConfig>>>,
}

/// What distinguishes one client configuration from another.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ConfigKey {
    ca: Option<CaKey>,
    cert_key: Option<Arc<CertKey>>,
    alpn: Vec<Vec<u8>>,
    verify_cert: bool,
    verify_hostname: bool,
    alternative_cn: Option<String>,
    send_sni: bool,
}

/// A CA set compared by content.
#[derive(Clone)]
struct CaKey(Arc<CaType>);

impl PartialEq for CaKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for CaKey {}

impl Hash for CaKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl RustlsClient {
    pub(crate) fn new(crypto: Arc<CryptoProvider>, config: ClientConfig) -> Result<Self> {
        let default_roots = match &config.ca {
            Some(ca) => roots(ca)?,
            None => native_roots(),
        };
        Ok(RustlsClient {
            crypto,
            default_roots: Arc::new(default_roots),
            default_cert_key: config.cert_key,
            keylog: config.keylog,
            resumption: Resumption::store(Arc::new(ClientSessionMemoryCache::new(4096))),
            configs: Mutex::new(HashMap::new()),
        })
    }

    fn rustls_config(&self, params: &ConnectParams) -> Result<Arc<rustls::ClientConfig>> {
        let key = ConfigKey {
            ca: params.ca.clone().map(CaKey),
            cert_key: params
                .cert_key
                .clone()
                .or_else(|| self.default_cert_key.clone()),
            alpn: params.alpn.clone(),
            verify_cert: params.verifies(),
            verify_hostname: params.verifies_hostname(),
            alternative_cn: params.alternative_cn.clone(),
            send_sni: !params.sni.is_empty(),
        };
        if let Some(config) = self.configs.lock().get(&key) {
            return Ok(Arc::clone(config));
        }
        let roots = match &key.ca {
            Some(ca) => Arc::new(roots(&ca.0)?),
            None => Arc::clone(&self.default_roots),
        };
        let verifier = PolicyVerifier {
            webpki: if key.verify_cert {
                Some(
                    WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&self.crypto))
                        .build()
                        .map_err(|e| {
                            Error::explain(
                                ErrorType::InvalidCert,
                                format!("no usable CA certificates: {e}"),
                            )
                        })?,
                )
            } else {
                None
            },
            verify_hostname: key.verify_hostname,
            alternative_cn: key.alternative_cn.clone(),
            crypto: Arc::clone(&self.crypto),
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&self.crypto))
            .with_protocol_versions(&crate::versions(None, None))
            .map_err(|e| crate::config_error(e, "unsupported TLS versions"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match &key.cert_key {
            Some(cert_key) => {
                let chain = cert_key
                    .certs()
                    .iter()
                    .map(|c| CertificateDer::from(c.clone()))
                    .collect();
                let private_key =
                    PrivateKeyDer::try_from(cert_key.key().to_vec()).map_err(|e| {
                        Error::explain(
                            ErrorType::InvalidCert,
                            format!("unusable client private key: {e}"),
                        )
                    })?;
                builder
                    .with_client_auth_cert(chain, private_key)
                    .map_err(|e| crate::config_error(e, "unusable client certificate"))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = key.alpn.clone();
        config.enable_sni = key.send_sni;
        config.resumption = self.resumption.clone();
        if self.keylog {
            config.key_log = Arc::new(rustls::KeyLogFile::new());
        }
        let config = Arc::new(config);
        let mut configs = self.configs.lock();
        if configs.len() >= MAX_CONFIGS {
            configs.clear();
        }
        configs.insert(key, Arc::clone(&config));
        Ok(config)
    }
}

fn roots(ca: &CaType) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in ca.iter() {
        roots
            .add(CertificateDer::from(cert.clone()))
            .map_err(|e| crate::config_error(e, "unusable CA certificate"))?;
    }
    Ok(roots)
}

/// The system's trust store. Certificates that fail to load are logged and skipped.
fn native_roots() -> RootCertStore {
    let loaded = rustls_native_certs::load_native_certs();
    for e in &loaded.errors {
        warn!("loading the system CA certificates: {e}");
    }
    let mut roots = RootCertStore::empty();
    let (_added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        warn!("{ignored} system CA certificates could not be used");
    }
    roots
}

impl fmt::Debug for RustlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsClient")
            .field("roots", &self.default_roots.len())
            .field("keylog", &self.keylog)
            .finish_non_exhaustive()
    }
}

impl TlsClient for RustlsClient {
    fn connect(
        &self,
        io: Transport,
        params: ConnectParams,
    ) -> BoxFuture<'_, Result<Box<dyn TlsSession>>> {
        Box::pin(async move {
            let config = self.rustls_config(&params)?;
            let name = if params.sni.is_empty() {
                NO_SNI_NAME
            } else {
                params.sni.as_str()
            };
            let server_name = ServerName::try_from(name.to_string()).map_err(|e| {
                Error::explain(
                    ErrorType::TLSHandshakeFailure,
                    format!("invalid server name {name:?}: {e}"),
                )
            })?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(server_name, io)
                .await
                .map_err(|e| crate::map_io_error(e, "TLS handshake with the server failed"))?;
            Ok(Box::new(session::established(stream.into())) as Box<dyn TlsSession>)
        })
    }
}

/// Applies Pingora's rules: no chain check when verification is off; the chain, then one of
/// the accepted names, when on.
#[derive(Debug)]
struct PolicyVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    verify_hostname: bool,
    alternative_cn: Option<String>,
    crypto: Arc<CryptoProvider>,
}

fn wrong_name(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        let verify = |name: &ServerName<'_>| {
            webpki.verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
        };
        let first = match verify(server_name) {
            Err(e) if wrong_name(&e) => e,
            other => return other,
        };
        // The chain is good (webpki checks it before the name).
        if !self.verify_hostname {
            return Ok(ServerCertVerified::assertion());
        }
        let sni = server_name.to_str();
        for candidate in verify::accepted_names(&sni, self.alternative_cn.as_deref())
            .into_iter()
            .skip(1)
        {
            let Ok(name) = ServerName::try_from(candidate) else {
                continue;
            };
            if verify(&name).is_ok() {
                return Ok(ServerCertVerified::assertion());
            }
        }
        Err(first)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.crypto.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.crypto.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.crypto
            .signature_verification_algorithms
            .supported_schemes()
    }
}
