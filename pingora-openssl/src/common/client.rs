//! The client side: one `SslConnector` per trust store (the connector's, or a peer's own CA
//! set), per-connection identity, ALPN and verification, session resumption, and Pingora's
//! hostname rules (see [`pingora_tls::verify`]) checked after the handshake.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, Result};
use pingora_tls::{
    verify, BoxFuture, CaType, CertKey, ClientConfig, ConnectParams, TlsClient, TlsSession,
    Transport,
};

use super::resume::{SessionKey, Sessions};
use super::session::{established, Side};
use super::{internal, x509_store, Identity};
use crate::ossl::nid::Nid;
use crate::ossl::ssl::{
    Ssl, SslConnector, SslMethod, SslRef, SslSession, SslSessionCacheMode, SslVerifyMode,
};
use crate::ossl::x509::X509Ref;
use crate::{ossl, shim};

/// The most trust stores or identities kept; each cache is cleared when full.
const MAX_CACHED: usize = 256;

/// Where each connection keeps the key its new sessions are stored under.
static SESSION_KEY_INDEX: LazyLock<Option<ossl::ex_data::Index<Ssl, SessionKey>>> =
    LazyLock::new(|| Ssl::new_ex_index().ok());

/// Distinguishes contexts, for the session cache.
static NEXT_CONTEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A client for one connector.
pub(crate) struct Client {
    default: (u64, SslConnector),
    per_ca: Mutex<HashMap<Arc<CaType>, (u64, SslConnector)>>,
    default_cert_key: Option<Arc<CertKey>>,
    identities: Mutex<HashMap<Arc<CertKey>, Arc<Identity>>>,
    sessions: Arc<Sessions>,
    keylog: bool,
}

impl Client {
    pub(crate) fn new(config: ClientConfig) -> Result<Self> {
        let sessions = Arc::new(Sessions::default());
        let default = build_connector(config.ca.as_deref(), &sessions, config.keylog)?;
        let client = Client {
            default,
            per_ca: Mutex::new(HashMap::new()),
            default_cert_key: config.cert_key,
            identities: Mutex::new(HashMap::new()),
            sessions,
            keylog: config.keylog,
        };
        if let Some(cert_key) = client.default_cert_key.clone() {
            client.identity(&cert_key)?;
        }
        Ok(client)
    }

    fn connector(&self, ca: Option<&Arc<CaType>>) -> Result<(u64, SslConnector)> {
        let Some(ca) = ca else {
            return Ok(self.default.clone());
        };
        let mut per_ca = self.per_ca.lock();
        if let Some(found) = per_ca.get(ca) {
            return Ok(found.clone());
        }
        let built = build_connector(Some(ca), &self.sessions, self.keylog)?;
        if per_ca.len() >= MAX_CACHED {
            per_ca.clear();
        }
        per_ca.insert(Arc::clone(ca), built.clone());
        Ok(built)
    }

    fn identity(&self, cert_key: &Arc<CertKey>) -> Result<Arc<Identity>> {
        let mut identities = self.identities.lock();
        if let Some(found) = identities.get(cert_key) {
            return Ok(Arc::clone(found));
        }
        let identity = Arc::new(Identity::parse(cert_key)?);
        if identities.len() >= MAX_CACHED {
            identities.clear();
        }
        identities.insert(Arc::clone(cert_key), Arc::clone(&identity));
        Ok(identity)
    }

    fn configure(&self, params: &ConnectParams) -> Result<Ssl> {
        let (context_id, connector) = self.connector(params.ca.as_ref())?;
        let mut config = connector
            .configure()
            .map_err(|e| internal(e, "cannot configure a session"))?;
        // Names are checked after the handshake, by Pingora's rules.
        config.set_verify_hostname(false);
        config.set_use_server_name_indication(!params.sni.is_empty());
        if !params.verifies() {
            config.set_verify(SslVerifyMode::NONE);
        }
        let cert_key = params
            .cert_key
            .clone()
            .or_else(|| self.default_cert_key.clone());
        if let Some(cert_key) = &cert_key {
            self.identity(cert_key)?.apply(&mut config)?;
        }
        let mut alpn = Vec::new();
        for name in &params.alpn {
            if let Ok(len) = u8::try_from(name.len()) {
                alpn.push(len);
                alpn.extend_from_slice(name);
            }
        }
        if !alpn.is_empty() {
            config
                .set_alpn_protos(&alpn)
                .map_err(|e| internal(e, "cannot set ALPN"))?;
        }
        let mut ssl = config
            .into_ssl(&params.sni)
            .map_err(|e| internal(e, "cannot create a session"))?;
        let key = SessionKey {
            context_id,
            ca: params.ca.clone(),
            sni: params.sni.clone(),
            cert_key,
            alpn,
            verify_cert: params.verifies(),
            verify_hostname: params.verifies_hostname(),
            alternative_cn: params.alternative_cn.clone(),
        };
        self.sessions.offer(&key, &mut ssl);
        if let Some(index) = SESSION_KEY_INDEX.as_ref() {
            ssl.set_ex_data(*index, key);
        }
        Ok(ssl)
    }
}

/// A connector trusting `ca`, or the system's trust store, that stores new sessions in
/// `sessions` and logs secrets when `keylog`.
fn build_connector(
    ca: Option<&CaType>,
    sessions: &Arc<Sessions>,
    keylog: bool,
) -> Result<(u64, SslConnector)> {
    let mut builder = SslConnector::builder(SslMethod::tls())
        .map_err(|e| internal(e, "cannot create a connector"))?;
    if let Some(ca) = ca {
        builder
            .set_verify_cert_store(x509_store(ca)?)
            .map_err(|e| internal(e, "cannot set the CA store"))?;
    }
    builder.set_session_cache_mode(SslSessionCacheMode::CLIENT);
    // One system call per read, not two per record (see the server's acceptor).
    builder.set_read_ahead(true);
    let store = Arc::clone(sessions);
    builder.set_new_session_callback(move |ssl, session| {
        // Keep a copy: the library marks the connection's own session object unresumable when
        // the connection is dropped without a close_notify, as pooled connections often are.
        let copy = session.to_der().and_then(|der| SslSession::from_der(&der));
        if let (Some(key), Ok(copy)) = (
            SESSION_KEY_INDEX.as_ref().and_then(|i| ssl.ex_data(*i)),
            copy,
        ) {
            store.store(key.clone(), copy);
        }
    });
    if keylog {
        if let Some(path) = std::env::var_os("SSLKEYLOGFILE") {
            builder.set_keylog_callback(move |_, line| {
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .and_then(|mut f| writeln!(f, "{line}"));
                if let Err(e) = written {
                    log::warn!("cannot write to SSLKEYLOGFILE: {e}");
                }
            });
        }
    }
    Ok((
        NEXT_CONTEXT_ID.fetch_add(1, Ordering::Relaxed),
        builder.build(),
    ))
}

/// Whether `cert` is valid for one of `names`: its DNS and IP subject alternative names, or
/// its common name when it has no DNS name.
fn cert_matches(cert: &X509Ref, names: &[String]) -> bool {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Some(sans) = cert.subject_alt_names() {
        for san in sans.iter() {
            if let Some(name) = san.dnsname() {
                dns.push(name.to_string());
            } else if let Some(ip) = san.ipaddress() {
                ips.push(ip.to_vec());
            }
        }
    }
    if dns.is_empty() {
        for entry in cert.subject_name().entries_by_nid(Nid::COMMONNAME) {
            if let Some(cn) = shim::asn1_text(entry.data()) {
                dns.push(cn);
            }
        }
    }
    names.iter().any(|name| match name.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ips.iter().any(|i| i.as_slice() == ip.octets()),
        Ok(IpAddr::V6(ip)) => ips.iter().any(|i| i.as_slice() == ip.octets()),
        Err(_) => dns
            .iter()
            .any(|pattern| verify::dns_name_matches(pattern, name)),
    })
}

fn check_hostname(ssl: &SslRef, params: &ConnectParams) -> Result<()> {
    let names = verify::accepted_names(&params.sni, params.alternative_cn.as_deref());
    match ssl.peer_certificate() {
        Some(cert) if cert_matches(&cert, &names) => Ok(()),
        Some(_) => Error::e_explain(
            ErrorType::InvalidCert,
            format!("the server certificate is not valid for any of {names:?}"),
        ),
        None => Error::e_explain(ErrorType::InvalidCert, "the server sent no certificate"),
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("library", &shim::LIBRARY)
            .field("keylog", &self.keylog)
            .finish_non_exhaustive()
    }
}

impl TlsClient for Client {
    fn connect(
        &self,
        io: Transport,
        params: ConnectParams,
    ) -> BoxFuture<'_, Result<Box<dyn TlsSession>>> {
        Box::pin(async move {
            let ssl = self.configure(&params)?;
            let stream = shim::handshake(ssl, io, Side::Client).await?;
            if params.verifies_hostname() {
                check_hostname(stream.ssl(), &params)?;
            }
            Ok(Box::new(established(stream)) as Box<dyn TlsSession>)
        })
    }
}
