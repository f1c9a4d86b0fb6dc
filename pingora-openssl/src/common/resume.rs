//! Client session resumption: sessions (TLS 1.3 tickets included) kept per connection
//! identity and offered again on the next connection with the same identity.
//!
//! Setting a session on a connection is `unsafe` in the `openssl` and `boring` crates because the session
//! must come from the same `SslContext`; the cache key includes the context's identity.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use pingora_tls::{CaType, CertKey};

use crate::ossl::ssl::{SslRef, SslSession};

/// The most sessions kept; the cache is cleared when it is full.
const MAX_SESSIONS: usize = 4096;

/// What a session may be resumed for: the same context, server name, client identity, ALPN
/// offer and verification policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SessionKey {
    pub(crate) context_id: u64,
    pub(crate) ca: Option<Arc<CaType>>,
    pub(crate) sni: String,
    pub(crate) cert_key: Option<Arc<CertKey>>,
    pub(crate) alpn: Vec<u8>,
    pub(crate) verify_cert: bool,
    pub(crate) verify_hostname: bool,
    pub(crate) alternative_cn: Option<String>,
}

/// The client's session cache.
#[derive(Default)]
pub(crate) struct Sessions {
    sessions: Mutex<HashMap<SessionKey, SslSession>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("len", &self.sessions.lock().len())
            .finish()
    }
}

impl Sessions {
    /// Keeps `session`, which a connection made for `key` received.
    pub(crate) fn store(&self, key: SessionKey, session: SslSession) {
        let mut sessions = self.sessions.lock();
        if sessions.len() >= MAX_SESSIONS && !sessions.contains_key(&key) {
            sessions.clear();
        }
        sessions.insert(key, session);
    }

    /// Offers the session kept for `key`, if any, on `ssl`, a connection of the context
    /// `key.context_id` names.
    pub(crate) fn offer(&self, key: &SessionKey, ssl: &mut SslRef) {
        let Some(session) = self.sessions.lock().get(key).cloned() else {
            return;
        };
        // SAFETY: sessions are stored under the id of the context whose connection received
        // them (see `client.rs`), and `ssl` was created from the context `key.context_id`
        // names, so the session belongs to the same `SslContext` as `ssl`.
        let _ = unsafe { ssl.set_session(&session) };
    }
}
