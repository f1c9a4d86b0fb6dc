//! The client side: one s2n `Config` per distinct (server name, CA set, client certificate,
//! ALPN, verification policy), built on first use; session tickets kept per config; and
//! Pingora's hostname rules (see [`pingora_tls::verify`]) applied through s2n's host name
//! callback.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, Result};
use pingora_tls::{
    pem_encode, verify, BoxFuture, CaType, CertKey, ClientConfig, ConnectParams, TlsClient,
    TlsSession, Transport,
};
use s2n_tls::callbacks::{SessionTicket, SessionTicketCallback, VerifyHostNameCallback};
use s2n_tls::config::Config;
use s2n_tls::connection::{Builder, Connection};
use s2n_tls::enums::Mode;
use s2n_tls_tokio::TlsConnector;

use crate::session;
use crate::{config_builder, danger, s2n_error, S2nProvider};

/// The most configurations (and tickets) kept unless the client config says otherwise
/// ([`ClientConfig::config_cache_size`]); the caches are cleared when full.
pub(crate) const DEFAULT_CONFIG_CACHE_SIZE: usize = 1024;

/// An s2n client for one connector.
pub(crate) struct S2nClient {
    provider: S2nProvider,
    ca: Option<Arc<CaType>>,
    default_cert_key: Option<Arc<CertKey>>,
    configs: Mutex<HashMap<ConfigKey, (u64, Config)>>,
    /// The most configurations, and tickets, kept.
    max_configs: usize,
    tickets: Arc<Mutex<HashMap<u64, Vec<u8>>>>,
    next_id: AtomicU64,
}

/// What distinguishes one client configuration from another.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ConfigKey {
    sni: String,
    ca: Option<Arc<CaType>>,
    cert_key: Option<Arc<CertKey>>,
    alpn: Vec<Vec<u8>>,
    verify_cert: bool,
    verify_hostname: bool,
    alternative_cn: Option<String>,
}

/// Accepts a certificate name that covers one of the accepted names.
struct NameRules(Vec<String>);

impl VerifyHostNameCallback for NameRules {
    fn verify_host_name(&self, host_name: &str) -> bool {
        self.0
            .iter()
            .any(|name| verify::dns_name_matches(host_name, name))
    }
}

/// Accepts any name (hostname verification off).
struct AnyName;

impl VerifyHostNameCallback for AnyName {
    fn verify_host_name(&self, _host_name: &str) -> bool {
        true
    }
}

/// Keeps the tickets a config's connections receive.
struct KeepTickets {
    id: u64,
    tickets: Arc<Mutex<HashMap<u64, Vec<u8>>>>,
    max_tickets: usize,
}

impl SessionTicketCallback for KeepTickets {
    fn on_session_ticket(&self, _connection: &mut Connection, ticket: &SessionTicket) {
        let Ok(len) = ticket.len() else { return };
        let mut data = vec![0u8; len];
        if ticket.data(&mut data).is_ok() {
            let mut tickets = self.tickets.lock();
            if tickets.len() >= self.max_tickets {
                tickets.clear();
            }
            tickets.insert(self.id, data);
        }
    }
}

/// Makes client connections with a config and, when one is kept, a session ticket.
#[derive(Clone)]
struct WithTicket {
    config: Config,
    ticket: Option<Vec<u8>>,
}

impl Builder for WithTicket {
    type Output = Connection;

    fn build_connection(
        &self,
        mode: Mode,
    ) -> std::result::Result<Connection, s2n_tls::error::Error> {
        let mut conn = Connection::new(mode);
        conn.set_config(self.config.clone())?;
        if let Some(ticket) = &self.ticket {
            // A stale or foreign ticket only means a full handshake.
            let _ = conn.set_session_ticket(ticket);
        }
        Ok(conn)
    }
}

impl S2nClient {
    pub(crate) fn new(provider: S2nProvider, config: ClientConfig) -> Result<Self> {
        Ok(S2nClient {
            provider,
            ca: config.ca,
            default_cert_key: config.cert_key,
            configs: Mutex::new(HashMap::new()),
            max_configs: config
                .config_cache_size
                .unwrap_or(DEFAULT_CONFIG_CACHE_SIZE),
            tickets: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(1),
        })
    }

    fn s2n_config(&self, params: &ConnectParams) -> Result<(u64, Config)> {
        let key = ConfigKey {
            sni: params.sni.clone(),
            ca: params.ca.clone().or_else(|| self.ca.clone()),
            cert_key: params
                .cert_key
                .clone()
                .or_else(|| self.default_cert_key.clone()),
            alpn: params.alpn.clone(),
            verify_cert: params.verifies(),
            verify_hostname: params.verifies_hostname(),
            alternative_cn: params.alternative_cn.clone(),
        };
        if let Some(found) = self.configs.lock().get(&key) {
            return Ok(found.clone());
        }
        let wrap = |what: &'static str| move |e| s2n_error(e, what);
        let mut builder = config_builder(self.provider, None, None)?;
        if key.verify_cert {
            if let Some(ca) = &key.ca {
                builder
                    .with_system_certs(false)
                    .map_err(wrap("cannot drop the system trust store"))?;
                for der in ca.iter() {
                    builder
                        .trust_pem(pem_encode("CERTIFICATE", der).as_bytes())
                        .map_err(|e| Error::because(ErrorType::InvalidCert, "unusable CA", e))?;
                }
            }
            if key.verify_hostname {
                let names = verify::accepted_names(&key.sni, key.alternative_cn.as_deref());
                builder.set_verify_host_callback(NameRules(names))
            } else {
                builder.set_verify_host_callback(AnyName)
            }
            .map_err(wrap("cannot set the host name check"))?;
        } else {
            danger::disable_verification(&mut builder)?;
        }
        if let Some(cert_key) = &key.cert_key {
            builder
                .load_pem(
                    cert_key.certs_pem().as_bytes(),
                    cert_key.key_pem().as_bytes(),
                )
                .map_err(|e| {
                    Error::because(ErrorType::InvalidCert, "unusable client certificate", e)
                })?;
        }
        if !key.alpn.is_empty() {
            builder
                .set_application_protocol_preference(&key.alpn)
                .map_err(wrap("cannot set ALPN"))?;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if self.max_configs > 0 {
            // Tickets are kept per cached config: without the cache, no resumption.
            builder
                .enable_session_tickets(true)
                .map_err(wrap("cannot enable session tickets"))?;
            builder
                .set_session_ticket_callback(KeepTickets {
                    id,
                    tickets: Arc::clone(&self.tickets),
                    max_tickets: self.max_configs,
                })
                .map_err(wrap("cannot keep session tickets"))?;
        }
        let config = builder
            .build()
            .map_err(wrap("cannot build the s2n config"))?;
        if self.max_configs == 0 {
            return Ok((id, config));
        }
        let mut configs = self.configs.lock();
        if configs.len() >= self.max_configs {
            configs.clear();
        }
        configs.insert(key, (id, config.clone()));
        Ok((id, config))
    }
}

impl fmt::Debug for S2nClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S2nClient")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl TlsClient for S2nClient {
    fn connect(
        &self,
        io: Transport,
        params: ConnectParams,
    ) -> BoxFuture<'_, Result<Box<dyn TlsSession>>> {
        Box::pin(async move {
            let (id, config) = self.s2n_config(&params)?;
            let ticket = self.tickets.lock().get(&id).cloned();
            let connector = TlsConnector::new(WithTicket { config, ticket });
            let stream = connector
                .connect(&params.sni, io)
                .await
                .map_err(|e| s2n_error(e, "TLS handshake with the server failed"))?;
            Ok(Box::new(session::established(stream)) as Box<dyn TlsSession>)
        })
    }
}
