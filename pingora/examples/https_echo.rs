//! An HTTPS echo server (HTTP/1.1 and HTTP/2 over TLS) whose certificate is chosen per
//! connection by an async callback, from the server name the client asked for.
//!
//! ```sh
//! cargo run -p pingora --example https_echo --features rustls   # or openssl, s2n, boringssl
//! curl -k https://localhost:6148/hello
//! curl -k --http2 --data-binary 'some bytes' https://localhost:6148/
//! ```
//!
//! The certificates (one for `localhost`, one for any other name) are self-signed and
//! generated at start. With several backends compiled in, `PINGORA_TLS_BACKEND=rustls` (or
//! `openssl`, `boringssl`, `s2n`) picks one at run time.

mod app;

use pingora::apps::http_app::HttpServer;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::*;
use pingora::services::listening::Service;
use pingora::tls::Backend;

fn main() {
    env_logger::init();
    if Backend::compiled_in().is_empty() {
        eprintln!(
            "no TLS backend compiled in: run with --features rustls (or openssl, s2n, boringssl)"
        );
        std::process::exit(2);
    }
    if let Ok(name) = std::env::var("PINGORA_TLS_BACKEND") {
        let backend = match name.as_str() {
            "openssl" => Backend::OpenSsl,
            "boringssl" => Backend::BoringSsl,
            "s2n" => Backend::S2n,
            "rustls" => Backend::Rustls,
            other => {
                eprintln!("unknown TLS backend {other:?}");
                std::process::exit(2);
            }
        };
        let provider = backend.provider().unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2);
        });
        let _ = pingora::tls::install_default_provider(provider);
    }
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    let by_sni = app::sni::BySni::self_signed(&["localhost"], "pingora.example");
    let mut tls = TlsSettings::with_handshake_callbacks(Box::new(by_sni)).expect("TLS settings");
    tls.enable_h2();
    let mut echo = Service::new(
        "https echo".to_string(),
        HttpServer::new_app(app::echo::HttpEchoApp),
    );
    echo.add_tls_with_settings("0.0.0.0:6148", None, tls);
    server.add_service(echo);
    server.run_forever();
}
