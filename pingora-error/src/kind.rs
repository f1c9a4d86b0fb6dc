//! What went wrong ([`ErrorType`]), who is to blame ([`ErrorSource`]) and whether to try again
//! ([`RetryType`]).

/// Which side of the proxy an error is blamed on.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub enum ErrorSource {
    /// The upstream server misbehaved or could not be reached.
    Upstream,
    /// The downstream client misbehaved or went away.
    Downstream,
    /// Our own logic failed.
    Internal,
    /// Not decided yet (displayed as an empty string).
    Unset,
}

impl ErrorSource {
    /// A short name for logs: `"Upstream"`, `"Downstream"`, `"Internal"` or `""` when unset.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorSource::Upstream => "Upstream",
            ErrorSource::Downstream => "Downstream",
            ErrorSource::Internal => "Internal",
            ErrorSource::Unset => "",
        }
    }
}

/// Whether the operation that failed may be tried again.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub enum RetryType {
    /// The answer is known.
    Decided(bool),
    /// Retry only if the failure happened on a reused (pooled) connection.
    ///
    /// A pooled connection may have been closed by the peer while it sat idle, so a failure
    /// before any byte of the response arrived says nothing about the request itself. On a
    /// fresh connection the same failure is real and is not retried.
    ReusedOnly,
}

impl RetryType {
    /// Settles [`RetryType::ReusedOnly`] now that it is known whether the connection was reused.
    /// A decided value is left as it is.
    pub fn decide_reuse(&mut self, reused: bool) {
        if *self == RetryType::ReusedOnly {
            *self = RetryType::Decided(reused);
        }
    }

    /// Whether to retry.
    ///
    /// An undecided [`RetryType::ReusedOnly`] answers `false`: without knowing that the
    /// connection was reused, retrying is not known to be safe. (Pingora panics here.)
    pub fn retry(&self) -> bool {
        match self {
            RetryType::Decided(retry) => *retry,
            RetryType::ReusedOnly => false,
        }
    }
}

impl From<bool> for RetryType {
    fn from(retry: bool) -> Self {
        RetryType::Decided(retry)
    }
}

/// The kind of an error.
///
/// The variant names are those of Pingora 0.8 so that code matching on them keeps compiling.
#[derive(Debug, PartialEq, Eq, Clone, Hash)]
pub enum ErrorType {
    // Connecting.
    /// Connecting took longer than the connect timeout.
    ConnectTimedout,
    /// The peer refused the connection.
    ConnectRefused,
    /// No route to the peer's network or host.
    ConnectNoRoute,
    /// The TLS library asked for a certificate lookup to finish before it can continue.
    TLSWantX509Lookup,
    /// The TLS handshake failed.
    TLSHandshakeFailure,
    /// The TLS handshake took longer than allowed.
    TLSHandshakeTimedout,
    /// The peer's certificate did not verify.
    InvalidCert,
    /// Another handshake (for example HTTP/2) failed.
    HandshakeError,
    /// Connecting failed for another reason.
    ConnectError,
    /// Binding a local address failed.
    BindError,
    /// Accepting a connection failed.
    AcceptError,
    /// Creating or configuring a socket failed.
    SocketError,
    /// A CONNECT proxy refused to open the tunnel.
    ConnectProxyFailure,
    // Protocol.
    /// A malformed or forbidden HTTP header.
    InvalidHTTPHeader,
    /// Any other HTTP/1 protocol error.
    H1Error,
    /// Any other HTTP/2 protocol error.
    H2Error,
    /// The HTTP/2 peer asked us to use HTTP/1.1 instead.
    H2Downgrade,
    /// The HTTP/2 peer sent invalid frames.
    InvalidH2,
    // I/O on an established connection.
    /// Reading failed.
    ReadError,
    /// Writing failed.
    WriteError,
    /// Reading took longer than the read timeout.
    ReadTimedout,
    /// Writing took longer than the write timeout.
    WriteTimedout,
    /// The connection was closed before the exchange finished.
    ConnectionClosed,
    // Application.
    /// The request should be answered with this HTTP status code.
    HTTPStatus(u16),
    // Files.
    /// Opening a file failed.
    FileOpenError,
    /// Creating a file failed.
    FileCreateError,
    /// Reading a file failed.
    FileReadError,
    /// Writing a file failed.
    FileWriteError,
    // Other.
    /// An internal invariant failed.
    InternalError,
    /// An error of unknown kind.
    UnknownError,
    /// A user-defined kind. Use a unique name; put run-time details in the context instead.
    Custom(&'static str),
    /// A user-defined kind with a numeric code.
    CustomCode(&'static str, u16),
}

impl ErrorType {
    /// A user-defined error kind named `name`.
    pub const fn new(name: &'static str) -> Self {
        ErrorType::Custom(name)
    }

    /// A user-defined error kind named `name` that carries `code`.
    pub const fn new_code(name: &'static str, code: u16) -> Self {
        ErrorType::CustomCode(name, code)
    }

    /// The name of this kind, as used in logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorType::ConnectTimedout => "ConnectTimedout",
            ErrorType::ConnectRefused => "ConnectRefused",
            ErrorType::ConnectNoRoute => "ConnectNoRoute",
            ErrorType::TLSWantX509Lookup => "TLSWantX509Lookup",
            ErrorType::TLSHandshakeFailure => "TLSHandshakeFailure",
            ErrorType::TLSHandshakeTimedout => "TLSHandshakeTimedout",
            ErrorType::InvalidCert => "InvalidCert",
            ErrorType::HandshakeError => "HandshakeError",
            ErrorType::ConnectError => "ConnectError",
            ErrorType::BindError => "BindError",
            ErrorType::AcceptError => "AcceptError",
            ErrorType::SocketError => "SocketError",
            ErrorType::ConnectProxyFailure => "ConnectProxyFailure",
            ErrorType::InvalidHTTPHeader => "InvalidHTTPHeader",
            ErrorType::H1Error => "H1Error",
            ErrorType::H2Error => "H2Error",
            ErrorType::H2Downgrade => "H2Downgrade",
            ErrorType::InvalidH2 => "InvalidH2",
            ErrorType::ReadError => "ReadError",
            ErrorType::WriteError => "WriteError",
            ErrorType::ReadTimedout => "ReadTimedout",
            ErrorType::WriteTimedout => "WriteTimedout",
            ErrorType::ConnectionClosed => "ConnectionClosed",
            ErrorType::HTTPStatus(_) => "HTTPStatus",
            ErrorType::FileOpenError => "FileOpenError",
            ErrorType::FileCreateError => "FileCreateError",
            ErrorType::FileReadError => "FileReadError",
            ErrorType::FileWriteError => "FileWriteError",
            ErrorType::InternalError => "InternalError",
            ErrorType::UnknownError => "UnknownError",
            ErrorType::Custom(name) | ErrorType::CustomCode(name, _) => name,
        }
    }

    /// The HTTP status carried by [`ErrorType::HTTPStatus`], if this is one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ErrorType::HTTPStatus(code) => Some(*code),
            _ => None,
        }
    }
}
