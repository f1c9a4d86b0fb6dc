//! Origins that are not pingora, on `127.0.0.1:0`: a scripted raw TCP origin, a few ready-made
//! scripts, and a hyper HTTP/1 origin with standard routes; plus a hyper HTTP/1 client.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

use crate::body::{PatternBody, Verifier};
use crate::raw::{ok_response, RawConn};
use crate::within;

// === the raw origin ===

/// An origin listening on a loopback port.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
}

impl Origin {
    /// Starts, on the current runtime, an origin that runs `script(connection, index)` for
    /// each connection it accepts, `index` counting from 0.
    ///
    /// # Panics
    ///
    /// If it cannot bind.
    pub async fn start<F, Fut>(script: F) -> Origin
    where
        F: Fn(RawConn, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let index = counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(script(RawConn::new(stream), index));
            }
        });
        Origin { addr, connections }
    }

    /// Connections accepted so far.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// [`Origin::start`] on `rt`, for synchronous tests.
pub fn raw_origin<F, Fut>(rt: &Runtime, script: F) -> Origin
where
    F: Fn(RawConn, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    rt.block_on(Origin::start(script))
}

/// What a recording origin saw: one line per request.
pub type Requests = Arc<Mutex<Vec<String>>>;

/// Serves every request on `conn` with `200` and the body "ok", recording each request in
/// `seen` as "METHOD target body-length".
pub async fn serve_ok(mut conn: RawConn, seen: Requests) {
    while let Some(req) = conn.read_request().await {
        seen.lock().expect("seen lock").push(format!(
            "{} {} {}",
            req.head.method(),
            req.head.target(),
            req.body.len()
        ));
        conn.send(ok_response(b"ok")).await;
    }
}

/// An origin answering every request with "hello" (Content-Length, one write), keeping the
/// connection, recording each request as "METHOD target body".
pub fn hello_origin(rt: &Runtime) -> (Origin, Requests) {
    let seen = Requests::default();
    let record_into = Arc::clone(&seen);
    let origin = raw_origin(rt, move |mut conn, _| {
        let seen = Arc::clone(&record_into);
        async move {
            while let Some(req) = conn.read_request().await {
                seen.lock().expect("seen").push(format!(
                    "{} {} {}",
                    req.head.method(),
                    req.head.target(),
                    String::from_utf8_lossy(&req.body)
                ));
                conn.send(ok_response(b"hello")).await;
            }
        }
    });
    (origin, seen)
}

/// An origin answering each request with its own body ("empty" when none), recording
/// "connection-index METHOD body" (bodies over 64 bytes as `<N bytes>`).
///
/// `close_after_each` closes each connection after one response (while idle, without
/// `Connection: close`); `drop_second_on_first` closes the first connection when its second
/// request arrives, unanswered: the race of a keepalive timeout.
pub fn echo_origin(
    rt: &Runtime,
    close_after_each: bool,
    drop_second_on_first: bool,
) -> (Origin, Requests) {
    let seen = Requests::default();
    let record_into = Arc::clone(&seen);
    let origin = raw_origin(rt, move |mut conn, index| {
        let seen = Arc::clone(&record_into);
        async move {
            let mut served = 0;
            while let Some(req) = conn.read_request().await {
                seen.lock().expect("seen").push(format!(
                    "{index} {} {}",
                    req.head.method(),
                    if req.body.len() > 64 {
                        format!("<{} bytes>", req.body.len())
                    } else {
                        String::from_utf8_lossy(&req.body).into_owned()
                    }
                ));
                if drop_second_on_first && index == 0 && served == 1 {
                    return;
                }
                let body = if req.body.is_empty() {
                    b"empty".to_vec()
                } else {
                    req.body
                };
                conn.send(ok_response(&body)).await;
                served += 1;
                if close_after_each {
                    return;
                }
            }
        }
    });
    (origin, seen)
}

// === the hyper origin ===

/// The body type of the hyper origin's responses.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A whole body.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// Starts a hyper HTTP/1 origin answering with `handler`.
pub fn hyper_origin<F, Fut>(rt: &Runtime, handler: F) -> Origin
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    raw_origin(rt, move |conn, _| {
        let handler = Arc::clone(&handler);
        async move {
            let service = hyper::service::service_fn(move |req| {
                let handler = Arc::clone(&handler);
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(conn.stream), service)
                .await;
        }
    })
}

fn reply(status: u16, body: Body) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(body)
        .expect("a valid response")
}

/// The routes of the standard hyper origin:
/// * `/hello`: "hello";
/// * `/headers`: the request fields, one `name: value` line each, in order;
/// * `/echo`: the request body streamed back as it arrives;
/// * `/upload`: reads the body, checks it against the [pattern](crate::body), answers
///   "COUNT OK|BAD", and `x-saw-expect` with the request's `Expect`;
/// * `/download/N` (Content-Length) and `/download-chunked/N`: N bytes of the pattern;
/// * `/status/CODE`: an empty response with that status.
pub async fn standard_routes(req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/hello" => return reply(200, full("hello")),
        "/headers" => {
            let mut text = String::new();
            for (name, value) in req.headers() {
                text.push_str(&format!("{}: {}\n", name, value.to_str().unwrap_or("?")));
            }
            return reply(200, full(text));
        }
        "/echo" => return reply(200, req.into_body().boxed()),
        "/upload" => return upload(req).await,
        _ => {}
    }
    if let Some(n) = path.strip_prefix("/download/") {
        let n: u64 = n.parse().expect("a length");
        let mut resp = reply(200, PatternBody::new(n, true).boxed_hyper());
        resp.headers_mut().insert("content-length", n.into());
        return resp;
    }
    if let Some(n) = path.strip_prefix("/download-chunked/") {
        let n: u64 = n.parse().expect("a length");
        return reply(200, PatternBody::new(n, false).boxed_hyper());
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return reply(code.parse().expect("a status"), full(Bytes::new()));
    }
    reply(404, full("not found"))
}

/// The `/upload` route.
async fn upload(req: Request<Incoming>) -> Response<Body> {
    let expect = req
        .headers()
        .get("expect")
        .map(|v| v.to_str().unwrap_or("?").to_string())
        .unwrap_or_else(|| "none".to_string());
    let mut body = req.into_body();
    let mut check = Verifier::default();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    check.feed(data);
                }
            }
            Err(_) => return reply(400, full("broken body")),
        }
    }
    let verdict = if check.ok { "OK" } else { "BAD" };
    let mut resp = reply(200, full(format!("{} {verdict}", check.count)));
    resp.headers_mut()
        .insert("x-saw-expect", expect.parse().expect("a header value"));
    resp
}

// === a hyper client ===

/// Sends `req` to `addr` on a new HTTP/1 connection; returns the response head and its body
/// stream.
///
/// # Panics
///
/// If the connection, the handshake or the response head fails or does not come within
/// [`TIMEOUT`](crate::TIMEOUT).
pub async fn hyper_request<B>(addr: SocketAddr, req: Request<B>) -> Response<Incoming>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    within("response head", sender.send_request(req))
        .await
        .expect("response")
}
