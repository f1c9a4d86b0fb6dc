//! The `sentry` feature: panics in requests (HTTP/1 and HTTP/2) and in services reach a Sentry
//! endpoint as one envelope each, naming the request's method and path but none of its header
//! values or query, while the server keeps serving.
//!
//! The DSN points at a recording HTTP endpoint of the test on `127.0.0.1:0`. One test drives
//! every case in turn: the Sentry client is global to the process.

#![cfg(all(feature = "sentry", feature = "proxy"))]

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::prelude::*;
use pingora::proxy::{ProxyServiceBuilder, Session};
use pingora::sentry::ClientOptions;
use pingora::server::configuration::ServerConf;
use pingora::server::{ShutdownSignal, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora_test_support::h2::{exchange, h2_client, request};
use pingora_test_support::origin::{hello_origin, Origin};
use pingora_test_support::raw::{get, ok_response};
use pingora_test_support::{runtime, within, RawConn, TestServer};
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};

/// Secrets the clients send, in header values and queries: no report may hold any.
const SECRETS: [&str; 4] = ["hdr-secret", "cookie-secret", "qs-secret", "other-secret"];

/// A proxy to the origin whose requests for `/panic...` park until released, then panic.
struct PanickyProxy {
    origin: SocketAddr,
    parked: mpsc::UnboundedSender<String>,
    release: Arc<Semaphore>,
}

#[async_trait]
impl ProxyHttp for PanickyProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        let path = session.req_header().uri.path().to_string();
        if path.starts_with("/panic") {
            self.parked.send(path.clone()).unwrap();
            self.release.acquire().await.unwrap().forget();
            panic!("boom at {path}");
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }
}

/// A background service that panics once released.
struct PanickyTask(Arc<Semaphore>);

#[async_trait]
impl BackgroundService for PanickyTask {
    async fn start(&self, _shutdown: ShutdownWatch) {
        self.0.acquire().await.unwrap().forget();
        panic!("background boom");
    }
}

/// One request the Sentry endpoint received.
#[derive(Debug)]
struct Received {
    target: String,
    auth: String,
    body: String,
}

impl Received {
    /// The event the envelope carries.
    fn event(&self) -> Value {
        let mut lines = self.body.lines();
        while let Some(line) = lines.next() {
            let header: Value = serde_json::from_str(line).expect("a JSON line");
            if header["type"] == "event" {
                return serde_json::from_str(lines.next().expect("an event")).expect("JSON");
            }
        }
        panic!("no event in the envelope: {}", self.body);
    }
}

/// A Sentry endpoint recording every request it gets.
async fn sentry_endpoint() -> (Origin, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let origin = Origin::start(move |mut conn: RawConn, _| {
        let tx = tx.clone();
        async move {
            while let Some(req) = conn.read_request().await {
                let received = Received {
                    target: req.head.target().to_string(),
                    auth: req.header("x-sentry-auth").unwrap_or_default().to_string(),
                    body: req.text(),
                };
                tx.send(received).unwrap();
                conn.send(ok_response(b"{}")).await;
            }
        }
    })
    .await;
    (origin, rx)
}

/// Checks the report of a request's panic, with no secret of any client in it.
fn check_request_report(received: &Received, path: &str, version: &str) -> Value {
    assert_eq!(received.target, "/api/42/envelope/");
    assert!(
        received.auth.contains("sentry_key=public"),
        "{}",
        received.auth
    );
    for secret in SECRETS {
        assert!(
            !received.body.contains(secret),
            "{secret} reported: {}",
            received.body
        );
    }
    let event = received.event();
    let exception = &event["exception"]["values"][0];
    assert_eq!(exception["type"], "panic");
    assert_eq!(exception["value"], format!("boom at {path}"));
    assert_eq!(exception["mechanism"]["type"], "panic");
    assert_eq!(exception["mechanism"]["handled"], false);
    assert!(exception["stacktrace"]["frames"]
        .as_array()
        .is_some_and(|f| !f.is_empty()));
    let request = &event["contexts"]["request"];
    assert_eq!(request["method"], "GET", "{request}");
    assert_eq!(request["path"], path, "{request}");
    assert_eq!(request["version"], version, "{request}");
    assert_eq!(event["tags"]["service"], "sentry test proxy");
    event
}

/// `GET /hello` on a new connection: the proxy still serves.
async fn hello(addr: SocketAddr) {
    let mut conn = RawConn::connect(addr).await;
    let resp = within("hello", conn.roundtrip(get("/hello", ""))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text(), "hello");
}

#[test]
fn panics_are_reported_once_with_their_request_and_serving_goes_on() {
    let rt = runtime();
    let (origin, _) = hello_origin(&rt);
    let (endpoint, mut envelopes) = rt.block_on(sentry_endpoint());
    let dsn = format!("http://public@{}/42", endpoint.addr);
    let (parked_tx, mut parked) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let release_background = Arc::new(Semaphore::new(0));

    // One worker thread: requests in flight at once share it, and with it its thread's hub.
    let conf = ServerConf {
        threads: 1,
        ..TestServer::test_conf()
    };
    let app = PanickyProxy {
        origin: origin.addr,
        parked: parked_tx,
        release: release.clone(),
    };
    let background = background_service("panicky", PanickyTask(release_background.clone()));
    let (server, addrs) = TestServer::start_with_conf(conf, |server| {
        server.set_sentry_config(ClientOptions {
            dsn: Some(dsn.parse().expect("a DSN")),
            ..Default::default()
        });
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        let mut proxy = ProxyServiceBuilder::new(&server.configuration, app)
            .name("sentry test proxy")
            .server_options(options)
            .build();
        proxy.add_tcp("127.0.0.1:0");
        let addrs = proxy.local_addrs();
        server.add_service(proxy);
        server.add_service(background);
        vec![addrs]
    });
    let addr = addrs[0];

    rt.block_on(async {
        // HTTP/1: a request panics while another is served on the same thread.
        let mut panicking = RawConn::connect(addr).await;
        panicking
            .send(get(
                "/panic?token=qs-secret",
                "Authorization: Bearer hdr-secret\r\nCookie: c=cookie-secret\r\n",
            ))
            .await;
        assert_eq!(within("parked", parked.recv()).await.unwrap(), "/panic");
        let mut other = RawConn::connect(addr).await;
        let resp = other
            .roundtrip(get("/hello", "Authorization: Bearer other-secret\r\n"))
            .await;
        assert_eq!(resp.status(), 200);
        release.add_permits(1);
        // The panicking request's client sees its connection closed, without a byte.
        let (rest, _closed) = within("closed", panicking.read_to_close()).await;
        assert_eq!(String::from_utf8_lossy(&rest), "");
        let received = within("a report", envelopes.recv()).await.unwrap();
        let event = check_request_report(&received, "/panic", "HTTP/1.1");
        assert_eq!(event["level"], "fatal");
        hello(addr).await;

        // HTTP/2: a stream panics while another of the same connection is served; the stream
        // is reset and the connection goes on.
        let h2 = h2_client(addr).await;
        let stream = {
            let h2 = h2.clone();
            tokio::spawn(async move {
                let mut req = request(http::Method::GET, "/panic-h2?token=qs-secret");
                let secret = http::HeaderValue::from_static("Bearer hdr-secret");
                req.headers_mut()
                    .insert(http::header::AUTHORIZATION, secret);
                let (resp, _) = h2.ready().await.unwrap().send_request(req, true).unwrap();
                resp.await.map(|resp| resp.status())
            })
        };
        assert_eq!(within("parked", parked.recv()).await.unwrap(), "/panic-h2");
        let other = exchange(
            &h2,
            request(http::Method::GET, "/hello?x=other-secret"),
            None,
        )
        .await;
        assert_eq!(other.status, 200);
        release.add_permits(1);
        let reset = within("reset", stream).await.unwrap().unwrap_err();
        assert!(reset.is_reset(), "{reset}");
        let received = within("a report", envelopes.recv()).await.unwrap();
        check_request_report(&received, "/panic-h2", "HTTP/2.0");
        let again = exchange(&h2, request(http::Method::GET, "/hello"), None).await;
        assert_eq!(again.status, 200);

        // A service's panic names the service, and no request.
        release_background.add_permits(1);
        let received = within("a report", envelopes.recv()).await.unwrap();
        let event = received.event();
        assert_eq!(event["exception"]["values"][0]["value"], "background boom");
        assert_eq!(event["tags"]["service"], "BG panicky");
        assert!(
            event["contexts"].get("request").is_none(),
            "{}",
            event["contexts"]
        );
        hello(addr).await;
    });

    // Stopping flushes the client: every report was received by now, and there was one per
    // panic.
    server.signal(ShutdownSignal::FastShutdown);
    server.join();
    let extra: Vec<Received> = std::iter::from_fn(|| envelopes.try_recv().ok()).collect();
    assert!(extra.is_empty(), "unexpected reports: {extra:?}");
}
