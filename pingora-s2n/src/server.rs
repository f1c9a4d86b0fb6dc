//! The server side: one s2n `Config` per (certificate, ALPN protocol) pair in use, built on
//! first use; all share one session ticket key so that tickets resume across them.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, OrErr, Result};
use pingora_tls::{
    AcceptParams, BoxFuture, CertKey, ClientAuth, ServerConfig, TlsServer, TlsSession, Transport,
};
use s2n_tls::callbacks::VerifyHostNameCallback;
use s2n_tls::config::Config;
use s2n_tls::enums::ClientAuthType;
use s2n_tls_tokio::TlsAcceptor;

use crate::session;
use crate::{config_builder, s2n_error, S2nProvider};

/// The most configurations kept; the cache is cleared when it is full.
const MAX_CONFIGS: usize = 256;

/// A certificate (compared by content) and the ALPN protocol to select.
type ConfigKey = (Arc<CertKey>, Option<Vec<u8>>);

/// An s2n server for one listener.
pub(crate) struct S2nServer {
    provider: S2nProvider,
    config: ServerConfig,
    ticket_key: [u8; 32],
    configs: Mutex<HashMap<ConfigKey, Config>>,
}

/// Client certificates are checked against the CAs only, not against a host name.
struct AnyClientName;

impl VerifyHostNameCallback for AnyClientName {
    fn verify_host_name(&self, _host_name: &str) -> bool {
        true
    }
}

impl S2nServer {
    pub(crate) fn new(provider: S2nProvider, config: ServerConfig) -> Result<Self> {
        let mut ticket_key = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut ticket_key))
            .or_err(ErrorType::InternalError, "cannot draw a session ticket key")?;
        let server = S2nServer {
            provider,
            config,
            ticket_key,
            configs: Mutex::new(HashMap::new()),
        };
        if let Some(cert_key) = server.config.cert_key.clone() {
            server.s2n_config(&cert_key, None)?;
        }
        Ok(server)
    }

    fn s2n_config(&self, cert_key: &Arc<CertKey>, alpn: Option<&[u8]>) -> Result<Config> {
        let key = (Arc::clone(cert_key), alpn.map(<[u8]>::to_vec));
        if let Some(config) = self.configs.lock().get(&key) {
            return Ok(config.clone());
        }
        let mut builder = config_builder(
            self.provider,
            self.config.min_version,
            self.config.max_version,
        )?;
        let wrap = |what: &'static str| move |e| s2n_error(e, what);
        builder
            .load_pem(
                cert_key.certs_pem().as_bytes(),
                cert_key.key_pem().as_bytes(),
            )
            .map_err(|e| {
                Error::because(ErrorType::InvalidCert, "unusable certificate or key", e)
            })?;
        if let Some(alpn) = alpn {
            builder
                .set_application_protocol_preference([alpn])
                .map_err(wrap("cannot set ALPN"))?;
        }
        builder
            .enable_session_tickets(true)
            .map_err(wrap("cannot enable session tickets"))?;
        builder
            .add_session_ticket_key(b"pingora", &self.ticket_key, SystemTime::now())
            .map_err(wrap("cannot add the session ticket key"))?;
        match &self.config.client_auth {
            ClientAuth::None => {}
            ClientAuth::Optional(ca) | ClientAuth::Required(ca) => {
                let required = matches!(self.config.client_auth, ClientAuth::Required(_));
                builder
                    .set_client_auth_type(if required {
                        ClientAuthType::Required
                    } else {
                        ClientAuthType::Optional
                    })
                    .map_err(wrap("cannot ask for client certificates"))?;
                builder
                    .with_system_certs(false)
                    .map_err(wrap("cannot drop the system trust store"))?;
                for der in ca.iter() {
                    builder
                        .trust_pem(pingora_tls::pem_encode("CERTIFICATE", der).as_bytes())
                        .map_err(|e| {
                            Error::because(ErrorType::InvalidCert, "unusable client CA", e)
                        })?;
                }
                builder
                    .set_verify_host_callback(AnyClientName)
                    .map_err(wrap("cannot set the client name check"))?;
            }
        }
        let config = builder
            .build()
            .map_err(wrap("cannot build the s2n config"))?;
        let mut configs = self.configs.lock();
        if configs.len() >= MAX_CONFIGS {
            configs.clear();
        }
        configs.insert(key, config.clone());
        Ok(config)
    }
}

impl fmt::Debug for S2nServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S2nServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TlsServer for S2nServer {
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
            let config = self.s2n_config(&cert_key, params.alpn.as_deref())?;
            let stream = TlsAcceptor::new(config)
                .accept(io)
                .await
                .map_err(|e| s2n_error(e, "TLS handshake with the client failed"))?;
            Ok(Box::new(session::established(stream)) as Box<dyn TlsSession>)
        })
    }
}
