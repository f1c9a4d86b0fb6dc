//! A standalone HTTP client on Pingora's connector: no server, just
//! [`Connector`](pingora::connectors::http::Connector) and an
//! [`HttpPeer`](pingora::prelude::HttpPeer).
//!
//! Each fetch takes a session from the connector (over a pooled connection when one is idle),
//! writes the request and ends its body, reads the response head and body, and hands the
//! session back with `release_http_session` so the next request to the same peer can reuse the
//! connection.
//!
//! ```sh
//! cargo run --example client                                  # starts its own local origin
//! cargo run --example client -- http://127.0.0.1:6145/hello  # any plain-HTTP URLs
//! ```
//!
//! Without arguments it starts a tiny HTTP/1.1 origin on `127.0.0.1:0` in the same process and
//! fetches two paths from it: the second one reuses the first one's connection.

use std::net::SocketAddr;

use http::Uri;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// Fetches every URL of `args` with one connector, or, without arguments, two paths of a local
/// origin started for the purpose. Returns what a person would want to see of each response.
pub(crate) async fn run(args: &[String]) -> Result<String> {
    let urls = if args.is_empty() {
        let origin = start_origin()
            .await
            .or_err(ErrorType::BindError, "while starting the local origin")?;
        vec![
            format!("http://{origin}/hello"),
            format!("http://{origin}/again"),
        ]
    } else {
        args.to_vec()
    };
    let connector = Connector::new(None);
    let mut report = String::new();
    for url in &urls {
        let fetched = fetch(&connector, url).await?;
        report.push_str(&format!(
            "GET {url}\n{} (reused connection: {})\n",
            fetched.status, fetched.reused
        ));
        for (name, value) in &fetched.headers {
            report.push_str(&format!("{name}: {value}\n"));
        }
        report.push('\n');
        report.push_str(&String::from_utf8_lossy(&fetched.body));
        if !fetched.body.ends_with(b"\n") {
            report.push('\n');
        }
    }
    Ok(report)
}

/// What one fetch got.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The response status code.
    pub(crate) status: u16,
    /// The response headers, in order (values that are not text are shown lossily).
    pub(crate) headers: Vec<(String, String)>,
    /// The whole response body.
    pub(crate) body: Vec<u8>,
    /// Whether the request went over a pooled connection.
    pub(crate) reused: bool,
}

/// GETs a plain-HTTP `url` (`http://host[:port][/path]`) through `connector`, and gives the
/// connection back to its pool when the exchange allows reuse.
pub(crate) async fn fetch(connector: &Connector, url: &str) -> Result<Fetched> {
    let target = Target::parse(url)?;
    let addr = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .or_err_with(ConnectError, || format!("cannot resolve {}", target.host))?
        .next()
        .or_err_with(ConnectError, || format!("{} has no address", target.host))?;
    let peer = HttpPeer::new(addr, false, String::new());

    let (mut session, reused) = connector.get_http_session(&peer).await?;
    let mut request = RequestHeader::build("GET", target.path.as_bytes(), None)?;
    request.insert_header("Host", target.authority.as_str())?;
    request.insert_header("User-Agent", "pingora-example-client")?;
    session.write_request_header(Box::new(request)).await?;
    session.finish_request_body().await?;

    session.read_response_header().await?;
    let response = session
        .response_header()
        .expect("a response head was just read");
    let status = response.status.as_u16();
    let headers = response
        .headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.to_string(), value)
        })
        .collect();
    let mut body = Vec::new();
    while let Some(piece) = session.read_response_body().await? {
        body.extend_from_slice(&piece);
    }

    connector.release_http_session(session, &peer, None).await;
    Ok(Fetched {
        status,
        headers,
        body,
        reused,
    })
}

/// Where a URL points.
struct Target {
    host: String,
    port: u16,
    /// `host` or `host:port`, for the `Host` header.
    authority: String,
    /// The path and query, `/` when the URL has none.
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target> {
        let bad = |why: &str| Error::explain(Custom("BadUrl"), format!("{url}: {why}"));
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(bad("only plain http:// URLs are supported")),
            None => return Err(bad("an absolute http:// URL is needed")),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        // An IPv6 literal comes bracketed; the resolver wants it bare.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Ok(Target {
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_string(),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        })
    }
}

/// Starts a tiny HTTP/1.1 origin on `127.0.0.1:0` in this process, answering every `GET` with
/// `hello from <path>` and keeping connections open for more requests. Returns its address.
pub(crate) async fn start_origin() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(serve_origin(conn));
        }
    });
    Ok(addr)
}

/// Answers the requests of one connection until the client closes it. Request bodies are
/// not supported: a request announcing one is answered, then the connection is closed.
async fn serve_origin(mut conn: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 64 * 1024 {
                return; // no head is that long
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let path = head.split(' ').nth(1).unwrap_or("/");
        let lower = head.to_ascii_lowercase();
        let close = lower.contains("\r\nconnection: close")
            || lower.contains("\r\ncontent-length:")
            || lower.contains("\r\ntransfer-encoding:");
        let body = format!("hello from {path}\n");
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" },
        );
        if conn.write_all(response.as_bytes()).await.is_err() || close {
            return;
        }
    }
}
