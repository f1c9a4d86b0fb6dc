//! Mutual TLS: an HTTPS server that only talks to clients holding a certificate from its
//! client CA, and tells the application who each client is.
//!
//! ```sh
//! cargo run -p pingora-core --example client_cert --features rustls   # or openssl, s2n, boringssl
//! cd /tmp/pingora-client-cert
//! curl --cacert ca.pem --cert alice.crt --key alice.key https://localhost:6203/
//! curl --cacert ca.pem --cert alice.crt --key alice.key https://localhost:6203/admin
//! curl --cacert ca.pem --cert bob.crt --key bob.key https://localhost:6203/admin   # 403
//! curl --cacert ca.pem --cert stranger.crt --key stranger.key https://localhost:6203/  # refused
//! curl --cacert ca.pem https://localhost:6203/     # no certificate: refused
//! ```
//!
//! At start it writes a small PKI to `--keys` (`/tmp/pingora-client-cert` by default): a CA
//! (`ca.pem`) that issues the server's certificate (`server.crt`, for `localhost`) and two
//! client certificates (`alice.crt` of organization "Kettle Works", `bob.crt` of "Teapot
//! Guild"), and a `stranger.crt` issued by another CA, which the server refuses.
//!
//! The listener's settings:
//!
//! * `TlsSettings::intermediate` serves the server certificate
//!   (`TlsSettings::with_handshake_callbacks` would leave choosing it to the callbacks'
//!   `certificate_callback` instead, as in the `https_echo` example of the `pingora` crate);
//! * `set_client_ca_file(ca.pem, true)` asks every client for a certificate issued by that
//!   CA, and fails the handshake without one;
//! * `set_handshake_callbacks` installs backend-neutral `HandshakeCallbacks` whose
//!   `handshake_complete_callback` reads the verified client certificate's details from the
//!   handshake's digest (`HandshakeRef`), and returns them as a `ClientIdentity`. (Pingora's
//!   `TlsAccept`, over OpenSSL's `SslRef`, works too with an OpenSSL-family backend.) The server keeps that value in the connection's
//!   `SslDigest::extension`, where the application finds it for every request on the
//!   connection.
//!
//! Without a TLS backend compiled in, the example says which feature to enable and exits.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use clap::Parser;
use http::{header, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::listeners::tls::{HandshakeCallbacks, HandshakeRef, TlsSettings};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_core::services::listening::Service;
use pingora_core::tls::Backend;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The command line: the server's options, where to listen and where to write the PKI.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    server: Opt,
    /// Where the HTTPS service listens.
    #[arg(long, default_value = "127.0.0.1:6203")]
    listen: String,
    /// The directory the generated CA, server and client certificates are written to.
    #[arg(long, default_value = "/tmp/pingora-client-cert")]
    keys: PathBuf,
}

/// The organization allowed on `/admin`.
const ADMIN_ORGANIZATION: &str = "Kettle Works";

/// Who is on the other end of a connection, as the handshake established it.
#[derive(Debug, Clone)]
struct ClientIdentity {
    /// The server name the client asked for (SNI).
    server_name: Option<String>,
    /// The organization (`O`) of the client certificate's subject.
    organization: Option<String>,
    /// The client certificate's serial number, in hex.
    serial_number: Option<String>,
    /// The SHA-256 fingerprint of the client certificate, in hex.
    fingerprint: String,
    /// The protocol version and cipher suite negotiated.
    protocol: String,
}

/// The handshake callbacks: turn the verified client certificate into a [`ClientIdentity`].
#[derive(Debug)]
struct IdentifyClient;

#[async_trait]
impl HandshakeCallbacks for IdentifyClient {
    async fn handshake_complete_callback(
        &self,
        tls: &HandshakeRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        // The digest describes the finished handshake; with a required client CA, the peer
        // certificate in it is one the CA issued.
        let digest = tls.ssl_digest()?;
        let identity = ClientIdentity {
            server_name: tls.server_name().map(str::to_owned),
            organization: digest.organization.clone(),
            serial_number: digest.serial_number.clone(),
            fingerprint: to_hex(&digest.cert_digest),
            protocol: format!("{} {}", digest.version, digest.cipher),
        };
        Some(Arc::new(identity))
    }
}

/// Greets the client by its certificate; `/admin` is for [`ADMIN_ORGANIZATION`] only.
#[derive(Debug)]
struct Greeter;

#[async_trait]
impl ServeHttp for Greeter {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let identity = session
            .digest()
            .and_then(|digest| digest.ssl_digest.as_ref())
            .and_then(|ssl| ssl.extension.get::<ClientIdentity>())
            .cloned();
        let Some(identity) = identity else {
            // Not reachable through this listener: every handshake ends in the callback.
            return text(StatusCode::FORBIDDEN, "no client certificate\n".to_string());
        };
        let organization = identity.organization.as_deref().unwrap_or("<none>");
        if session.req_header().uri.path() == "/admin" && organization != ADMIN_ORGANIZATION {
            return text(
                StatusCode::FORBIDDEN,
                format!("{organization} may not see /admin\n"),
            );
        }
        let body = format!(
            "protocol: {}\nserver name: {}\nclient organization: {organization}\nclient serial: {}\nclient certificate SHA-256: {}\n",
            identity.protocol,
            identity.server_name.as_deref().unwrap_or("<none>"),
            identity.serial_number.as_deref().unwrap_or("<none>"),
            identity.fingerprint,
        );
        text(StatusCode::OK, body)
    }
}

/// A plain-text response.
fn text(status: StatusCode, body: String) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body.into_bytes())
        .expect("a valid response")
}

/// Lower-case hex of `bytes`.
fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A CA whose common name is `name`.
fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("a CA key");
    CertifiedIssuer::self_signed(params, key).expect("a CA certificate")
}

/// Writes a certificate issued by `ca` to `<dir>/<file>.crt` and its key to `<file>.key`.
/// Its subject is `common_name` of `organization`; `names` are its subject alternative names;
/// `client` picks the extended key usage (client or server authentication).
fn issue(
    ca: &CertifiedIssuer<'static, KeyPair>,
    dir: &Path,
    file: &str,
    common_name: &str,
    organization: &str,
    names: &[&str],
    client: bool,
) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("valid names");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, organization);
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = KeyPair::generate().expect("a key");
    let cert = params.signed_by(&key, ca).expect("a certificate");
    write(&dir.join(format!("{file}.crt")), &cert.pem());
    write(&dir.join(format!("{file}.key")), &key.serialize_pem());
}

/// Writes `contents` to `path`, or exits with the reason.
fn write(path: &Path, contents: &str) {
    if let Err(e) = std::fs::write(path, contents) {
        eprintln!("cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
}

/// Generates the example's PKI in `dir` (see the module docs).
fn write_pki(dir: &Path) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    let ca = new_ca("Example CA");
    write(&dir.join("ca.pem"), &ca.pem());
    let localhost = ["localhost", "127.0.0.1"];
    issue(
        &ca,
        dir,
        "server",
        "localhost",
        "Example",
        &localhost,
        false,
    );
    issue(&ca, dir, "alice", "alice", ADMIN_ORGANIZATION, &[], true);
    issue(&ca, dir, "bob", "bob", "Teapot Guild", &[], true);
    // Well-formed, but from a CA the server does not trust.
    let other = new_ca("Other CA");
    issue(&other, dir, "stranger", "mallory", "Elsewhere", &[], true);
}

/// The path of `file` in `dir`, as the `&str` the TLS settings take.
fn path_in(dir: &Path, file: &str) -> String {
    dir.join(file).to_string_lossy().into_owned()
}

fn main() {
    env_logger::init();
    if Backend::compiled_in().is_empty() {
        eprintln!(
            "client_cert needs a TLS backend: run it with --features rustls (or openssl, s2n, \
             boringssl)"
        );
        return;
    }
    let args = Args::parse();
    write_pki(&args.keys);

    let mut server = Server::new(Some(args.server)).expect("server set-up");
    server.bootstrap();

    let mut tls = TlsSettings::intermediate(
        &path_in(&args.keys, "server.crt"),
        &path_in(&args.keys, "server.key"),
    )
    .expect("the generated server certificate and key");
    tls.set_client_ca_file(&path_in(&args.keys, "ca.pem"), true)
        .expect("the generated CA");
    tls.set_handshake_callbacks(Box::new(IdentifyClient));
    tls.enable_h2();

    let mut greeter = Service::new("greeter".to_string(), Greeter);
    greeter.add_tls_with_settings(&args.listen, None, tls);
    server.add_service(greeter);
    println!(
        "mutual TLS on {}; certificates and keys in {}",
        args.listen,
        args.keys.display()
    );
    server.run_forever();
}
