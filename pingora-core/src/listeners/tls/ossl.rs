//! Pingora's OpenSSL-shaped TLS listener API, compiled with the `openssl` or `boringssl`
//! feature: [`TlsAccept`] over the library's `SslRef`, and [`TlsSettings`] dereferencing to
//! its `SslAcceptorBuilder`.
//!
//! The handshake itself stays where it is for every backend (the acceptor in the parent
//! module): the ClientHello is read first, then the certificate callback gets the
//! connection's `Ssl` before the library sees a byte. The server name is set on that `Ssl`
//! beforehand, so `servername(NameType::HOST_NAME)` answers in the callback as it does in
//! Pingora's (which runs inside the library's certificate callback); what the callback sets on
//! the `Ssl` (`ext::ssl_use_certificate`, verification settings) is used by the handshake.

use std::any::Any;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use async_trait::async_trait;
use pingora_error::{Error, ErrorType, OrErr, Result};

use super::{TlsAcceptCallbacks, TlsSettings, TLS_CONF_ERR};
use crate::protocols::tls::ssl::{Ssl, SslAcceptor, SslAcceptorBuilder, SslMethod, SslRef};
use crate::protocols::tls::{Native, TlsServer, TlsSession};

/// Pingora's callbacks run during TLS handshakes of a listener, over the OpenSSL-family
/// library's `SslRef` (see the [parent module](super) for the backend-neutral
/// [`HandshakeCallbacks`](super::HandshakeCallbacks)).
#[async_trait]
pub trait TlsAccept {
    /// Runs after the ClientHello arrived and before the handshake proceeds. The connection's
    /// `ssl` already knows the server name the client asked for (`servername`); a certificate
    /// and key set on it (`tls::ext::ssl_use_certificate`, `ssl_use_private_key`) replace the
    /// listener's. The handshake waits for it.
    async fn certificate_callback(&self, _ssl: &mut SslRef) {}

    /// Runs after a successful handshake, with the established session (peer certificate,
    /// server name, cipher). The value returned is kept in the connection's
    /// [`SslDigest::extension`](crate::protocols::digest::SslDigest::extension).
    async fn handshake_complete_callback(
        &self,
        _ssl: &SslRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        None
    }
}

/// The settings' acceptor builder, and whether the user changed it.
pub(super) struct NativeSettings {
    builder: SslAcceptorBuilder,
    /// Set on the first mutable access: only then does the listener need this backend.
    changed: bool,
}

// === impl NativeSettings ===

impl NativeSettings {
    /// A builder with Mozilla's intermediate (v5) profile, as Pingora's settings start from.
    pub(super) fn new() -> Result<Self> {
        let builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
            .or_err(TLS_CONF_ERR, "cannot create the TLS acceptor builder")?;
        Ok(NativeSettings {
            builder,
            changed: false,
        })
    }

    /// The builder for the backend, if the user changed it.
    pub(super) fn into_config(self) -> Option<Native> {
        self.changed.then(|| Native::new(self.builder))
    }
}

impl From<SslAcceptorBuilder> for TlsSettings {
    /// Settings made of `builder` as it is (certificate, verification, versions): the listener
    /// runs on the OpenSSL-family backend.
    fn from(builder: SslAcceptorBuilder) -> Self {
        TlsSettings::with_native(NativeSettings {
            builder,
            changed: true,
        })
    }
}

impl Deref for TlsSettings {
    type Target = SslAcceptorBuilder;

    fn deref(&self) -> &SslAcceptorBuilder {
        &self.native.builder
    }
}

impl DerefMut for TlsSettings {
    /// The builder, to change as in Pingora (`set_verify`, `set_ca_file`, ...). A listener
    /// whose builder was changed runs on the OpenSSL-family backend; its ALPN selection stays
    /// [`TlsSettings::set_alpn`]'s.
    fn deref_mut(&mut self) -> &mut SslAcceptorBuilder {
        self.native.changed = true;
        &mut self.native.builder
    }
}

/// Fails unless `server` can prepare OpenSSL sessions for [`TlsAccept`] callbacks.
pub(super) fn check_server(server: &dyn TlsServer, provider: &str) -> Result<()> {
    match server.prepare()?.map(Native::downcast::<Ssl>) {
        Some(Ok(_)) => Ok(()),
        _ => Error::e_explain(TLS_CONF_ERR, not_openssl(provider)),
    }
}

fn not_openssl(provider: &str) -> String {
    format!(
        "TlsAccept callbacks work on OpenSSL's SslRef and need the OpenSSL-family backend, \
         but this listener uses {provider}; use HandshakeCallbacks for other backends"
    )
}

/// Prepares the connection's `Ssl` with the client's server name and runs the certificate
/// callback on it; returns it for the handshake.
pub(super) async fn certificate_callback(
    server: &dyn TlsServer,
    callbacks: &TlsAcceptCallbacks,
    server_name: Option<&str>,
) -> Result<Native> {
    let native = server.prepare()?;
    let Some(Ok(mut ssl)) = native.map(Native::downcast::<Ssl>) else {
        return Error::e_explain(TLS_CONF_ERR, not_openssl("another backend"));
    };
    if let Some(name) = server_name {
        // A name the library refuses (an embedded NUL) is one no callback could match.
        let _ = ssl.set_hostname(name);
    }
    callbacks.certificate_callback(&mut ssl).await;
    Ok(Native::new(ssl))
}

/// Runs the handshake-complete callback on the established `session`'s `SslRef`.
pub(super) async fn handshake_complete_callback(
    callbacks: &TlsAcceptCallbacks,
    session: &dyn TlsSession,
) -> Result<Option<Arc<dyn Any + Send + Sync>>> {
    let Some(ssl) = session.native().and_then(|n| n.downcast_ref::<SslRef>()) else {
        return Error::e_explain(
            ErrorType::InternalError,
            "the TLS session does not expose an SslRef",
        );
    };
    Ok(callbacks.handshake_complete_callback(ssl).await)
}
