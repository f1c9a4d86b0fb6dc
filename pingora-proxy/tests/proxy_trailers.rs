//! Request trailers through a real proxy, in every combination of HTTP versions: an HTTP/1
//! client's chunked trailer section and an HTTP/2 client's trailing `HEADERS` reach an HTTP/1
//! origin (as the trailer section of a chunked body) and an h2c origin (as trailing `HEADERS`),
//! without the fields that must not be trailers; a gRPC client-streaming call ends with its
//! trailers; a `Content-Length` body keeps its length (its trailers are dropped).

mod e2e;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use e2e::*;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::ServerConf;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};

// === the proxy ===

/// Proxies everything to one origin, over the given HTTP version.
struct ToOrigin {
    addr: SocketAddr,
    version: u8,
}

#[async_trait]
impl ProxyHttp for ToOrigin {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.addr, false, String::new());
        peer.options.set_http_version(self.version, self.version);
        Ok(Box::new(peer))
    }
}

/// A proxy serving HTTP/1 and h2c, to `addr` over HTTP/`version`.
fn start(addr: SocketAddr, version: u8) -> (TestServer, SocketAddr) {
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    start_proxy_with(
        ToOrigin { addr, version },
        ServerConf::default(),
        Some(options),
    )
}

// === origins that record what they received ===

/// A request as an origin received it.
#[derive(Debug, Clone, Default)]
struct Seen {
    transfer_encoding: Option<String>,
    content_length: Option<String>,
    body: Vec<u8>,
    /// Trailer fields in order, names lowercased.
    trailers: Vec<(String, String)>,
}

type Record = Arc<Mutex<Vec<Seen>>>;

fn last(record: &Record) -> Seen {
    record
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("a request reached the origin")
}

/// An HTTP/1 origin recording each request with its trailers, answering `200` "ok".
fn h1_origin(rt: &tokio::runtime::Runtime) -> (Origin, Record) {
    let record = Record::default();
    let seen = record.clone();
    let origin = raw_origin(rt, move |mut conn, _| {
        let seen = seen.clone();
        async move {
            while let Some(req) = conn.read_request().await {
                seen.lock().unwrap().push(Seen {
                    transfer_encoding: req.head.get("transfer-encoding").map(str::to_owned),
                    content_length: req.head.get("content-length").map(str::to_owned),
                    body: req.body,
                    trailers: req
                        .trailers
                        .into_iter()
                        .map(|(n, v)| (n.to_ascii_lowercase(), v))
                        .collect(),
                });
                conn.send(ok_response(b"ok")).await;
            }
        }
    });
    (origin, record)
}

/// An h2c origin recording each request with its trailers, answering `200` "ok".
fn h2c_origin(rt: &tokio::runtime::Runtime) -> (H2Origin, Record) {
    let record = Record::default();
    let seen = record.clone();
    let handler: Handler = Arc::new(move |req, mut respond| {
        let seen = seen.clone();
        Box::pin(async move {
            let (parts, mut body) = req.into_parts();
            let data = read_body(&mut body).await;
            let trailers = body.trailers().await.expect("request trailers");
            let field = |name| {
                parts
                    .headers
                    .get(name)
                    .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
            };
            seen.lock().unwrap().push(Seen {
                transfer_encoding: field("transfer-encoding"),
                content_length: field("content-length"),
                body: data,
                trailers: trailers
                    .iter()
                    .flatten()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                    .collect(),
            });
            let resp = Response::builder().status(200).body(()).unwrap();
            if let Ok(mut send) = respond.send_response(resp, false) {
                let _ = send.send_data(Bytes::from_static(b"ok"), true);
            }
        })
    });
    (h2_origin(rt, handler), record)
}

/// An HTTP/1 or an h2c origin recording requests, and a proxy to it over that version.
fn origin_and_proxy(rt: &tokio::runtime::Runtime, version: u8) -> (Record, TestServer, SocketAddr) {
    let (addr, record) = match version {
        1 => {
            let (origin, record) = h1_origin(rt);
            (origin.addr, record)
        }
        _ => {
            let (origin, record) = h2c_origin(rt);
            (origin.addr, record)
        }
    };
    let (proxy, proxy_addr) = start(addr, version);
    (record, proxy, proxy_addr)
}

fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn header_map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

// === HTTP/1 clients ===

/// A chunked request with trailers from a raw HTTP/1 client, then a second request on the
/// same connection (the trailer section was consumed exactly).
fn h1_client_trailers_reach(version: u8) {
    let rt = runtime();
    let (record, _proxy, addr) = origin_and_proxy(&rt, version);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = within(
            "request with trailers",
            client.roundtrip(
                "POST /up HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\
                 Trailer: x-sum\r\n\r\n\
                 5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: abc\r\nx-count: 2\r\n\r\n",
            ),
        )
        .await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.text(), "ok");
        let seen = last(&record);
        assert_eq!(seen.body, b"hello world");
        assert_eq!(seen.trailers, fields(&[("x-sum", "abc"), ("x-count", "2")]));
        if version == 1 {
            assert_eq!(seen.transfer_encoding.as_deref(), Some("chunked"));
        }

        let resp = within("next request", client.roundtrip(post("/2", b"plain"))).await;
        assert_eq!(resp.head.status(), 200);
        let seen = last(&record);
        assert_eq!(seen.body, b"plain");
        assert!(seen.trailers.is_empty());
    });
}

#[test]
fn h1_to_h1_request_trailers_are_forwarded() {
    h1_client_trailers_reach(1);
}

#[test]
fn h1_to_h2_request_trailers_are_forwarded() {
    h1_client_trailers_reach(2);
}

#[test]
fn forbidden_trailer_fields_are_dropped() {
    for version in [1, 2] {
        let rt = runtime();
        let (record, _proxy, addr) = origin_and_proxy(&rt, version);
        rt.block_on(async {
            let mut client = RawConn::connect(addr).await;
            let resp = within(
                "request with forbidden trailers",
                client.roundtrip(
                    "POST /up HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
                     4\r\nbody\r\n0\r\nContent-Length: 999\r\nTransfer-Encoding: gzip\r\n\
                     Host: evil.test\r\nConnection: x-hop\r\nx-hop: 1\r\nKeep-Alive: 5\r\n\
                     TE: trailers\r\nTrailer: x-kept\r\nAuthorization: secret\r\n\
                     x-kept: yes\r\n\r\n",
                ),
            )
            .await;
            assert_eq!(resp.head.status(), 200, "HTTP/{version} origin");
            let seen = last(&record);
            assert_eq!(seen.body, b"body");
            assert_eq!(
                seen.trailers,
                fields(&[("x-kept", "yes")]),
                "HTTP/{version} origin"
            );

            // Only forbidden fields: the body ends as if there were no trailers.
            let resp = within(
                "only forbidden trailers",
                client.roundtrip(
                    "POST /up HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
                     2\r\nhi\r\n0\r\nContent-Length: 2\r\n\r\n",
                ),
            )
            .await;
            assert_eq!(resp.head.status(), 200);
            let seen = last(&record);
            assert_eq!(seen.body, b"hi");
            assert!(seen.trailers.is_empty(), "{:?}", seen.trailers);
        });
    }
}

// === HTTP/2 clients ===

/// An h2 request with a body (no length) and trailers.
fn h2_client_trailers_reach(version: u8) {
    let rt = runtime();
    let (record, _proxy, addr) = origin_and_proxy(&rt, version);
    rt.block_on(async {
        let send = h2_client(addr).await;
        let trailers = header_map(&[("x-sum", "abc"), ("x-count", "1"), ("x-count", "2")]);
        let got = exchange_with_trailers(
            &send,
            request(Method::POST, "/up"),
            Some(b"streamed body".to_vec()),
            Some(trailers),
        )
        .await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, b"ok");
        let seen = last(&record);
        assert_eq!(seen.body, b"streamed body");
        assert_eq!(
            seen.trailers,
            fields(&[("x-sum", "abc"), ("x-count", "1"), ("x-count", "2")])
        );
        if version == 1 {
            assert_eq!(
                seen.transfer_encoding.as_deref(),
                Some("chunked"),
                "a body without length goes chunked, so that trailers can follow"
            );
        }

        // Trailers and no body at all.
        let got = exchange_with_trailers(
            &send,
            request(Method::POST, "/only-trailers"),
            None,
            Some(header_map(&[("x-only", "1")])),
        )
        .await;
        assert_eq!(got.status, StatusCode::OK);
        let seen = last(&record);
        assert!(seen.body.is_empty());
        assert_eq!(seen.trailers, fields(&[("x-only", "1")]));
    });
}

#[test]
fn h2_to_h1_request_trailers_are_forwarded() {
    h2_client_trailers_reach(1);
}

#[test]
fn h2_to_h2_request_trailers_are_forwarded() {
    h2_client_trailers_reach(2);
}

#[test]
fn length_body_with_trailers_to_h1_is_delivered_whole() {
    let rt = runtime();
    let (record, _proxy, addr) = origin_and_proxy(&rt, 1);
    rt.block_on(async {
        let send = h2_client(addr).await;
        let body = vec![b'x'; 100_000];
        let req = Request::builder()
            .method(Method::POST)
            .uri("http://example.test/len")
            .header("content-length", body.len().to_string())
            .body(())
            .unwrap();
        let got = exchange_with_trailers(
            &send,
            req,
            Some(body.clone()),
            Some(header_map(&[("x-sum", "abc")])),
        )
        .await;
        assert_eq!(got.status, StatusCode::OK);
        let seen = last(&record);
        assert_eq!(seen.content_length.as_deref(), Some("100000"));
        assert_eq!(seen.transfer_encoding, None);
        assert!(seen.body == body, "the body arrived intact");
        assert!(seen.trailers.is_empty(), "a length body has no trailers");

        // The upstream connection was left in order: the next request goes through.
        let got = exchange(&send, request(Method::POST, "/next"), Some(b"n".to_vec())).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(last(&record).body, b"n");
    });
}

// === gRPC ===

/// A gRPC client-streaming service: reads every request message, then the request trailers,
/// and answers with one message counting them and the client's `x-client-sum` trailer in its
/// own trailers.
fn grpc_collector() -> Handler {
    Arc::new(|req, mut respond| {
        Box::pin(async move {
            let (parts, mut body) = req.into_parts();
            assert_eq!(parts.headers["content-type"], "application/grpc");
            let mut buf = BytesMut::new();
            let mut messages = Vec::new();
            while let Some(piece) = body.data().await {
                let piece = piece.unwrap();
                let _ = body.flow_control().release_capacity(piece.len());
                buf.extend_from_slice(&piece);
                messages.extend(grpc_messages(&mut buf));
            }
            let client_trailers = body.trailers().await.unwrap().unwrap_or_default();
            let resp = Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let mut send = respond.send_response(resp, false).unwrap();
            let summary = format!("{} messages: {}", messages.len(), messages.concat().len());
            send.send_data(grpc_frame(summary.as_bytes()), false)
                .unwrap();
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            if let Some(sum) = client_trailers.get("x-client-sum") {
                trailers.insert("x-echo-sum", sum.clone());
            }
            send.send_trailers(trailers).unwrap();
        })
    })
}

#[test]
fn grpc_client_streaming_call_with_request_trailers() {
    let rt = runtime();
    let origin = h2_origin(&rt, grpc_collector());
    let (_proxy, addr) = start(origin.addr, 2);
    rt.block_on(async {
        let client = h2_client(addr).await;
        let mut client = within("ready", client.ready()).await.unwrap();
        let req = Request::builder()
            .method("POST")
            .uri(format!("http://{addr}/collect.Collector/Collect"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (resp, mut send) = client.send_request(req, false).unwrap();
        for word in ["one", "two", "three"] {
            send.send_data(grpc_frame(word.as_bytes()), false).unwrap();
        }
        send.send_trailers(header_map(&[("x-client-sum", "11")]))
            .unwrap();
        let resp = within("response", resp).await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut buf = BytesMut::from(&within("body", read_body(&mut body)).await[..]);
        assert_eq!(grpc_messages(&mut buf), [b"3 messages: 11".to_vec()]);
        let trailers = within("trailers", body.trailers()).await.unwrap().unwrap();
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(
            trailers["x-echo-sum"], "11",
            "the client's trailers reached the origin"
        );
    });
}
