//! The server side: one `SslAcceptor` per listener, built from the user's
//! `SslAcceptorBuilder` when the settings carry one (`ServerConfig::native`), else from the
//! Mozilla intermediate v5 profile; per-handshake certificates and the ALPN protocol chosen by
//! pingora-core are set on each connection, which may also arrive prepared by the caller
//! (`TlsServer::prepare`, then `AcceptParams::native`).

use std::fmt;
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, Result};
use pingora_tls::{
    AcceptParams, BoxFuture, CertKey, ClientAuth, Native, ServerConfig, TlsServer, TlsSession,
    Transport,
};

use super::session::{established, Side};
use super::{internal, ssl_version, x509_store, Identity};
use crate::ossl::ssl::{AlpnError, Ssl, SslAcceptor, SslAcceptorBuilder, SslMethod, SslVerifyMode};
use crate::{ossl, shim};

/// Where each connection keeps the ALPN protocol to select.
static ALPN_INDEX: LazyLock<Option<ossl::ex_data::Index<Ssl, Vec<u8>>>> =
    LazyLock::new(|| Ssl::new_ex_index().ok());

/// A server for one listener.
pub(crate) struct Server {
    acceptor: SslAcceptor,
    /// The last certificate a callback chose, parsed; most handshakes reuse it.
    last_override: Mutex<Option<(Arc<CertKey>, Arc<Identity>)>>,
}

impl Server {
    pub(crate) fn new(mut config: ServerConfig) -> Result<Self> {
        let mut builder = match config
            .native
            .take()
            .map(Native::downcast::<SslAcceptorBuilder>)
        {
            Some(Ok(builder)) => builder,
            Some(Err(_)) => {
                return Error::e_explain(
                    ErrorType::InternalError,
                    format!(
                        "{}: the native server configuration is not an SslAcceptorBuilder",
                        shim::LIBRARY
                    ),
                )
            }
            None => SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
                .map_err(|e| internal(e, "cannot create an acceptor"))?,
        };
        if let Some(min) = config.min_version {
            builder
                .set_min_proto_version(Some(ssl_version(min)))
                .map_err(|e| internal(e, "cannot set the minimum TLS version"))?;
        }
        if let Some(max) = config.max_version {
            builder
                .set_max_proto_version(Some(ssl_version(max)))
                .map_err(|e| internal(e, "cannot set the maximum TLS version"))?;
        }
        // Read whole records, and whatever follows them, in one system call rather than a
        // header read then a body read per record. Safe because nothing but TLS follows on
        // the connection, and our stream never waits for socket readiness before reading.
        builder.set_read_ahead(true);
        // Resumption needs a session id context once client certificates are verified.
        builder
            .set_session_id_context(b"pingora")
            .map_err(|e| internal(e, "cannot set the session id context"))?;
        match &config.client_auth {
            ClientAuth::None => {}
            ClientAuth::Optional(ca) | ClientAuth::Required(ca) => {
                let mut mode = SslVerifyMode::PEER;
                if matches!(config.client_auth, ClientAuth::Required(_)) {
                    mode |= SslVerifyMode::FAIL_IF_NO_PEER_CERT;
                }
                builder.set_verify(mode);
                for der in ca.iter() {
                    let cert = ossl::x509::X509::from_der(der).map_err(|e| {
                        Error::because(ErrorType::InvalidCert, "unusable client CA", e)
                    })?;
                    builder
                        .add_client_ca(&cert)
                        .map_err(|e| internal(e, "cannot add a client CA"))?;
                }
                builder
                    .set_verify_cert_store(x509_store(ca)?)
                    .map_err(|e| internal(e, "cannot set the client CA store"))?;
            }
        }
        builder.set_alpn_select_callback(|ssl, offered| {
            let chosen = ALPN_INDEX
                .as_ref()
                .and_then(|index| ssl.ex_data(*index))
                .ok_or(AlpnError::NOACK)?;
            // Return the client's own bytes, as the library requires.
            let mut rest = offered;
            while let Some((&len, tail)) = rest.split_first() {
                let len = usize::from(len).min(tail.len());
                let (name, next) = tail.split_at(len);
                if name == chosen.as_slice() {
                    return Ok(name);
                }
                rest = next;
            }
            Err(AlpnError::NOACK)
        });
        if let Some(cert_key) = &config.cert_key {
            {
                let identity = Identity::parse(cert_key)?;
                builder
                    .set_certificate(&identity.leaf)
                    .and_then(|()| builder.set_private_key(&identity.key))
                    .and_then(|()| builder.check_private_key())
                    .map_err(|e| {
                        Error::because(ErrorType::InvalidCert, "the key does not fit", e)
                    })?;
                for cert in &identity.chain {
                    builder
                        .add_extra_chain_cert(cert.clone())
                        .map_err(|e| internal(e, "cannot add an intermediate"))?;
                }
            }
        }
        Ok(Server {
            acceptor: builder.build(),
            last_override: Mutex::new(None),
        })
    }

    fn identity_for(&self, cert_key: &Arc<CertKey>) -> Result<Arc<Identity>> {
        let mut last = self.last_override.lock();
        if let Some((key, identity)) = &*last {
            if key == cert_key {
                return Ok(Arc::clone(identity));
            }
        }
        let identity = Arc::new(Identity::parse(cert_key)?);
        *last = Some((Arc::clone(cert_key), Arc::clone(&identity)));
        Ok(identity)
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("library", &shim::LIBRARY)
            .field(
                "default_cert",
                &self.acceptor.context().certificate().is_some(),
            )
            .finish_non_exhaustive()
    }
}

impl TlsServer for Server {
    fn prepare(&self) -> Result<Option<Native>> {
        let ssl = Ssl::new(self.acceptor.context())
            .map_err(|e| internal(e, "cannot create a session"))?;
        Ok(Some(Native::new(ssl)))
    }

    fn accept(
        &self,
        io: Transport,
        params: AcceptParams,
    ) -> BoxFuture<'_, Result<Box<dyn TlsSession>>> {
        Box::pin(async move {
            let mut ssl = match params.native.map(Native::downcast::<Ssl>) {
                Some(Ok(ssl)) => ssl,
                Some(Err(_)) => {
                    return Error::e_explain(
                        ErrorType::InternalError,
                        "the prepared session is not an Ssl",
                    )
                }
                None => Ssl::new(self.acceptor.context())
                    .map_err(|e| internal(e, "cannot create a session"))?,
            };
            if let Some(cert_key) = &params.cert_key {
                self.identity_for(cert_key)?.apply(&mut ssl)?;
            }
            // Either the listener's, or one a callback set on the prepared session.
            if ssl.certificate().is_none() {
                return Error::e_explain(
                    ErrorType::TLSHandshakeFailure,
                    "no certificate for this handshake",
                );
            }
            if let (Some(alpn), Some(index)) = (params.alpn, ALPN_INDEX.as_ref()) {
                ssl.set_ex_data(*index, alpn);
            }
            let stream = shim::handshake(ssl, io, Side::Server).await?;
            Ok(Box::new(established(stream)) as Box<dyn TlsSession>)
        })
    }
}
