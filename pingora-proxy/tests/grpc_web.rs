//! The gRPC-web bridge end to end: tonic-web's client calls a tonic server through a proxy
//! whose `GrpcWeb` module turns gRPC-web (HTTP/1) into gRPC (h2c) and back, in binary mode and in
//! text (base64) mode. The gRPC messages are made and read by tonic on both ends; the messages
//! and the service are hand-written here (what `protoc` and tonic's codegen would produce).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Body as HttpBody;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use pingora_core::modules::http::grpc_web::{GrpcWeb, GrpcWebBridge};
use pingora_core::modules::http::HttpModules;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};
use pingora_test_support::proxy::ProxyUnderTest;
use pingora_test_support::{within, TestService};
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};
use tonic_prost::ProstCodec;
use tower_layer::Layer;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

// === the messages and the service ===

/// `message SayRequest { string text = 1; uint32 repeat = 2; int32 fail_with = 3; }`
#[derive(Clone, PartialEq, prost::Message)]
struct SayRequest {
    #[prost(string, tag = "1")]
    text: String,
    /// How many times the reply repeats `text`.
    #[prost(uint32, tag = "2")]
    repeat: u32,
    /// When not 0: fail with this status code, with `text` as the message.
    #[prost(int32, tag = "3")]
    fail_with: i32,
}

/// `message SayReply { string text = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
struct SayReply {
    #[prost(string, tag = "1")]
    text: String,
}

/// `service Echo { rpc Say(SayRequest) returns (SayReply); }` in package `test`.
const SAY: &str = "/test.Echo/Say";

/// The one unary method of the service.
struct Say;

impl tonic::server::UnaryService<SayRequest> for Say {
    type Response = SayReply;
    type Future = BoxFuture<Result<tonic::Response<SayReply>, Status>>;

    fn call(&mut self, request: tonic::Request<SayRequest>) -> Self::Future {
        let request = request.into_inner();
        Box::pin(async move {
            if request.fail_with != 0 {
                return Err(Status::new(Code::from(request.fail_with), request.text));
            }
            let text = request.text.repeat(request.repeat as usize);
            Ok(tonic::Response::new(SayReply { text }))
        })
    }
}

/// What the origin saw of a request.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    path: String,
    content_type: Option<String>,
    te: Option<String>,
}

/// The origin: the `Echo` service (as tonic's codegen would route it), and, for any other path,
/// a plain HTTP answer with the length of the request body.
#[derive(Clone, Default)]
struct Origin {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Service<Request<tonic::body::Body>> for Origin {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        let header = |name| {
            req.headers()
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
        };
        self.seen.lock().unwrap().push(Seen {
            path: req.uri().path().to_owned(),
            content_type: header(CONTENT_TYPE),
            te: header(http::header::TE),
        });
        Box::pin(async move {
            if req.uri().path() == SAY {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                return Ok(grpc.unary(Say, req).await);
            }
            let len = req.into_body().collect().await.unwrap().to_bytes().len();
            let body = Full::new(Bytes::from(format!("{len} bytes")));
            Ok(Response::builder()
                .header(CONTENT_TYPE, "text/plain")
                .body(tonic::body::Body::new(body))
                .unwrap())
        })
    }
}

/// Starts the origin, tonic's h2c server on `127.0.0.1:0`.
fn start_origin() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let origin = Origin::default();
    let seen = Arc::clone(&origin.seen);
    tokio::spawn(tonic::transport::Server::builder().serve_with_incoming(origin, incoming));
    (addr, seen)
}

// === the proxy ===

/// Bridges every request (as the `grpc_web_module` example does) to the h2c origin.
struct Bridge {
    origin: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bridge {
    type CTX = ();
    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(Box::new(GrpcWeb));
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        _: &mut (),
    ) -> pingora_core::Result<()> {
        let grpc = session
            .downstream_modules_ctx
            .get_mut::<GrpcWebBridge>()
            .expect("GrpcWeb is added");
        grpc.init();
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _: &mut Session,
        _: &mut (),
    ) -> pingora_core::Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.origin, false, String::new());
        peer.options.set_http_version(2, 2);
        Ok(Box::new(peer))
    }
}

/// The origin and the proxy in front of it.
async fn start() -> (TestService, Arc<Mutex<Vec<Seen>>>) {
    let (origin, seen) = start_origin();
    let proxy = ProxyUnderTest::new(Bridge { origin }).serve().await;
    (proxy, seen)
}

// === the client ===

/// The body encoding the client uses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Binary,
    Text,
}

/// A gRPC-web response as it arrived from the proxy.
#[derive(Debug)]
struct Received {
    status: StatusCode,
    content_type: Option<String>,
    /// `grpc-status` in the head (a trailers-only response).
    grpc_status: Option<String>,
    /// The body as sent (base64 in text mode).
    body: Bytes,
    /// Whether HTTP trailers came too (they should be in the body instead).
    trailers: bool,
}

/// The transport under tonic-web's client layer: one HTTP/1 connection to the proxy. It records
/// each response and hands on its whole body (unary calls only).
///
/// tonic-web's client speaks binary mode only. In text mode this layer does what a text-mode
/// client adds: the `application/grpc-web-text` content type and `Accept`, each request frame
/// in base64 (padded per frame, which the protocol allows), the response body decoded.
struct Wire {
    send: SendRequest<UnsyncBoxBody<Bytes, BoxError>>,
    mode: Mode,
    host: HeaderValue,
    received: Arc<Mutex<Vec<Received>>>,
}

impl<B> Service<Request<B>> for Wire
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.send.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        parts.headers.insert(HOST, self.host.clone());
        let body = match self.mode {
            Mode::Binary => body.map_err(Into::into).boxed_unsync(),
            Mode::Text => {
                let text = HeaderValue::from_static("application/grpc-web-text+proto");
                parts.headers.insert(CONTENT_TYPE, text.clone());
                parts.headers.insert(ACCEPT, text);
                body.map_frame(|frame| frame.map_data(|data| Bytes::from(STANDARD.encode(data))))
                    .map_err(Into::into)
                    .boxed_unsync()
            }
        };
        let response = self.send.send_request(Request::from_parts(parts, body));
        let (mode, received) = (self.mode, Arc::clone(&self.received));
        Box::pin(async move {
            let (parts, body) = response.await?.into_parts();
            let body = body.collect().await?;
            let trailers = body.trailers().is_some();
            let body = body.to_bytes();
            let header = |name| {
                parts
                    .headers
                    .get(name)
                    .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
            };
            received.lock().unwrap().push(Received {
                status: parts.status,
                content_type: header(CONTENT_TYPE.as_str()),
                grpc_status: header("grpc-status"),
                body: body.clone(),
                trailers,
            });
            let body = match mode {
                Mode::Binary => body,
                Mode::Text => STANDARD.decode(&body)?.into(),
            };
            Ok(Response::from_parts(parts, Full::new(body)))
        })
    }
}

/// A new HTTP/1 connection to `addr`.
async fn connect(addr: SocketAddr) -> SendRequest<UnsyncBoxBody<Bytes, BoxError>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// Calls `Say` through the proxy at `addr` with tonic's client over tonic-web's layer.
async fn say(
    addr: SocketAddr,
    mode: Mode,
    request: SayRequest,
) -> (Result<SayReply, Status>, Received) {
    let received = Arc::default();
    let wire = Wire {
        send: connect(addr).await,
        mode,
        host: HeaderValue::from_str(&addr.to_string()).unwrap(),
        received: Arc::clone(&received),
    };
    let mut client = tonic::client::Grpc::new(tonic_web::GrpcWebClientLayer::new().layer(wire));
    within("client ready", client.ready()).await.unwrap();
    let reply = within(
        "the call",
        client.unary(
            tonic::Request::new(request),
            PathAndQuery::from_static(SAY),
            ProstCodec::default(),
        ),
    )
    .await;
    let received = received.lock().unwrap().pop().expect("a response");
    (reply.map(tonic::Response::into_inner), received)
}

/// The gRPC-web frames of a binary body: (flag, payload).
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        assert!(body.len() >= 5, "a frame head: {body:?}");
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        frames.push((body[0], body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    frames
}

/// `n` characters of a pattern in which a misplaced byte shows.
fn pattern(n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..n)
        .map(|i| ALPHABET[(i * 7 + i / 62) % 62] as char)
        .collect()
}

fn request(text: impl Into<String>, repeat: u32) -> SayRequest {
    SayRequest {
        text: text.into(),
        repeat,
        fail_with: 0,
    }
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_call_binary_mode() {
    let (proxy, seen) = start().await;
    let (reply, received) = say(proxy.addr, Mode::Binary, request("hello ", 3)).await;
    assert_eq!(reply.unwrap().text, "hello hello hello ");

    assert_eq!(received.status, 200);
    assert_eq!(
        received.content_type.as_deref(),
        Some("application/grpc-web")
    );
    assert!(!received.trailers, "the trailers travel in the body");
    let frames = frames(&received.body);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0].0, 0, "a message");
    let (flag, trailers) = &frames[1];
    assert_eq!(*flag, 0x80, "the trailer frame ends the body");
    let trailers = String::from_utf8(trailers.clone()).unwrap();
    assert!(trailers.starts_with("grpc-status: 0\r\n"), "{trailers:?}");
    assert!(trailers.ends_with("\r\n"), "{trailers:?}");

    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[..],
        [Seen {
            path: SAY.into(),
            content_type: Some("application/grpc".into()),
            te: Some("trailers".into()),
        }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_call_text_mode() {
    let (proxy, seen) = start().await;
    let (reply, received) = say(proxy.addr, Mode::Text, request("hi! ", 2)).await;
    assert_eq!(reply.unwrap().text, "hi! hi! ");

    assert_eq!(received.status, 200);
    assert_eq!(
        received.content_type.as_deref(),
        Some("application/grpc-web-text"),
        "the text form of the origin's `application/grpc`"
    );
    assert!(!received.trailers);
    // One base64 stream, padded only at its end; the trailer frame inside it.
    let binary = STANDARD.decode(&received.body).unwrap();
    let frames = frames(&binary);
    assert_eq!(frames.last().unwrap().0, 0x80, "{frames:?}");

    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].content_type.as_deref(),
        Some("application/grpc+proto")
    );
    assert_eq!(seen[0].te.as_deref(), Some("trailers"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_in_both_modes() {
    // Bodies of hundreds of KiB cross many reads and HTTP/2 DATA frames (16 KiB, not a multiple
    // of 3 or 4), so base64 groups are split between pieces in both directions.
    let (proxy, _seen) = start().await;
    for mode in [Mode::Binary, Mode::Text] {
        let text = pattern(100_003);
        let (reply, received) = say(proxy.addr, mode, request(text.clone(), 3)).await;
        let reply = reply.unwrap_or_else(|e| panic!("{mode:?}: {e:?}"));
        assert!(reply.text == text.repeat(3), "{mode:?}: the reply differs");
        assert!(!received.trailers);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_status_reaches_the_client() {
    let (proxy, _seen) = start().await;
    for mode in [Mode::Binary, Mode::Text] {
        let failing = SayRequest {
            text: "no greeting for you".into(),
            repeat: 1,
            fail_with: Code::NotFound as i32,
        };
        let (reply, received) = say(proxy.addr, mode, failing).await;
        let status = reply.expect_err("the call fails");
        assert_eq!(status.code(), Code::NotFound, "{mode:?}: {status:?}");
        assert_eq!(status.message(), "no greeting for you", "{mode:?}");

        // tonic answers an error with a trailers-only response: the status stays in the head,
        // where gRPC-web clients read it, and the body is empty.
        assert_eq!(received.status, 200);
        assert_eq!(received.grpc_status.as_deref(), Some("5"), "{mode:?}");
        let expected = match mode {
            Mode::Binary => "application/grpc-web",
            Mode::Text => "application/grpc-web-text",
        };
        assert_eq!(received.content_type.as_deref(), Some(expected));
        assert!(received.body.is_empty(), "{mode:?}: {:?}", received.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_base64_is_a_400() {
    let (proxy, _seen) = start().await;
    let mut send = connect(proxy.addr).await;
    let body = Full::new(Bytes::from_static(b"AAAAAAJo!!!!"))
        .map_err(Into::into)
        .boxed_unsync();
    let req = Request::post(SAY)
        .header(HOST, proxy.addr.to_string())
        .header(CONTENT_TYPE, "application/grpc-web-text")
        .body(body)
        .unwrap();
    let resp = within("response", send.send_request(req)).await.unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_requests_pass_untouched() {
    let (proxy, seen) = start().await;
    let mut send = connect(proxy.addr).await;
    let body = Full::new(Bytes::from_static(b"{\"a\":1}"))
        .map_err(Into::into)
        .boxed_unsync();
    let req = Request::post("/plain")
        .header(HOST, proxy.addr.to_string())
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap();
    let resp = within("response", send.send_request(req)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[CONTENT_TYPE], "text/plain");
    let body = within("body", resp.into_body().collect()).await.unwrap();
    assert_eq!(body.to_bytes(), "7 bytes");
    assert_eq!(
        seen.lock().unwrap()[..],
        [Seen {
            path: "/plain".into(),
            content_type: Some("application/json".into()),
            te: None,
        }]
    );
}
