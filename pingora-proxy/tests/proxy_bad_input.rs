//! Hostile and broken input through a real proxy: request smuggling attempts, malformed heads,
//! header injection from filters, and broken bodies. The origin records every request it
//! receives, so a smuggled request would show.

mod e2e;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use e2e::*;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{ProxyHttp, Session};
use pingora_test_support::leaks::Baseline;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// What the origin saw: "METHOD target body-length" per request.
type Seen = Arc<Mutex<Vec<String>>>;

/// Proxies to one origin. With `inject`, the filters try to smuggle CR/LF into headers:
/// `upstream_request_filter` fails the request if the header API rejects the value, and
/// `response_filter` records the API's verdicts and carries on.
struct Proxy {
    origin: SocketAddr,
    inject: bool,
    verdicts: Log,
    /// The peer's `allow_h1_response_invalid_content_length`.
    allow_invalid_length: bool,
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.origin, false, String::new());
        peer.options.allow_h1_response_invalid_content_length = self.allow_invalid_length;
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        _: &mut (),
    ) -> Result<()> {
        if self.inject && session.req_header().uri.path() == "/inject-request" {
            let result = req.insert_header("x-note", "a\r\nX-Evil: 1");
            record(
                &self.verdicts,
                format!("request value ok={}", result.is_ok()),
            );
            result?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _: &mut Session,
        resp: &mut ResponseHeader,
        _: &mut (),
    ) -> Result<()> {
        if self.inject {
            let value = resp.insert_header("x-note", "v\r\nSet-Cookie: stolen=1");
            let name = resp.append_header("x-a\r\nSet-Cookie", "stolen=2");
            let lone_lf = resp.insert_header("x-lf", "v\nSet-Cookie: stolen=3");
            record(
                &self.verdicts,
                format!(
                    "response value ok={} name ok={} lf ok={}",
                    value.is_ok(),
                    name.is_ok(),
                    lone_lf.is_ok()
                ),
            );
        }
        Ok(())
    }
}

/// A recording origin (answers "ok" to everything) with a proxy in front.
fn setup(rt: &tokio::runtime::Runtime, inject: bool) -> (TestServer, SocketAddr, Seen, Log) {
    let seen = Seen::default();
    let into = seen.clone();
    let origin = raw_origin(rt, move |conn, _| serve_ok(conn, into.clone()));
    let verdicts = Log::default();
    let (proxy, addr) = start_proxy(Proxy {
        origin: origin.addr,
        inject,
        verdicts: verdicts.clone(),
        allow_invalid_length: false,
    });
    (proxy, addr, seen, verdicts)
}

/// A request the attacks try to slip past the proxy.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";

/// Sends `attack` followed by [`SMUGGLED`] in one write; expects exactly one response of
/// `status`, then the connection closed, and the origin to have seen nothing.
async fn rejected(addr: SocketAddr, seen: &Seen, name: &str, attack: &str, status: u16) {
    let mut client = RawConn::connect(addr).await;
    client.send(format!("{attack}{SMUGGLED}")).await;
    let resp = client.read_response("POST").await;
    assert_eq!(resp.head.status(), status, "{name}");
    assert_eq!(resp.head.get("connection"), Some("close"), "{name}");
    assert!(client.is_closed().await, "{name}: connection left open");
    assert!(
        seen.lock().expect("seen").is_empty(),
        "{name}: the origin saw {:?}",
        seen.lock().expect("seen")
    );
}

#[test]
fn smuggling_attempts_are_rejected_before_the_origin() {
    let rt = runtime();
    let (_proxy, addr, seen, _) = setup(&rt, false);
    let baseline = Baseline::local().with_port(addr.port());
    let cases = [
        (
            "CL.TE",
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
            400,
        ),
        (
            "TE.CL",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
            400,
        ),
        // The final coding is not chunked: 400 (RFC 9112 section 6.3 rule 4).
        (
            "TE list with identity",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "TE xchunked",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "two TE fields",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "TE gzip alone",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
            400,
        ),
        // chunked applied twice: 400 (section 6.1).
        (
            "TE chunked twice",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "TE chunked in two fields",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        // A coding we do not decode before the final chunked: 501 (section 6.1).
        (
            "TE gzip then chunked",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            501,
        ),
        (
            "space before the colon",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "conflicting Content-Length fields",
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            400,
        ),
        (
            "conflicting Content-Length list",
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!",
            400,
        ),
        (
            "signed Content-Length",
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello",
            400,
        ),
        (
            "chunked HTTP/1.0",
            "POST / HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "obs-fold",
            "POST / HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
            400,
        ),
        (
            "two Host fields",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
        ),
        ("no Host on 1.1", "GET / HTTP/1.1\r\n\r\n", 400),
        ("empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
        ("Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        ("Host with a control", "GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n", 400),
        ("Host with userinfo", "GET / HTTP/1.1\r\nHost: evil@t\r\n\r\n", 400),
        ("Host with a path", "GET / HTTP/1.1\r\nHost: t/x\r\n\r\n", 400),
        ("Host with a query", "GET / HTTP/1.1\r\nHost: t?x\r\n\r\n", 400),
        ("Host with a fragment", "GET / HTTP/1.1\r\nHost: t#x\r\n\r\n", 400),
        ("Host unbracketed IPv6", "GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", 400),
        ("Host non-digit port", "GET / HTTP/1.1\r\nHost: t:8x\r\n\r\n", 400),
        ("Host list", "GET / HTTP/1.1\r\nHost: t,u\r\n\r\n", 400),
        (
            "absolute-form without Host on 1.1",
            "GET http://t/ HTTP/1.1\r\n\r\n",
            400,
        ),
        (
            "absolute-form with userinfo",
            "GET http://user@t/ HTTP/1.1\r\nHost: t\r\n\r\n",
            400,
        ),
        ("version HTTP/1.10", "GET / HTTP/1.10\r\nHost: t\r\n\r\n", 400),
        ("version HTTP/01.1", "GET / HTTP/01.1\r\nHost: t\r\n\r\n", 400),
        ("version http/1.1", "GET / http/1.1\r\nHost: t\r\n\r\n", 400),
        ("version HTTP/2.0", "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        ("version HTTP/3.1", "GET / HTTP/3.1\r\nHost: t\r\n\r\n", 505),
    ];
    rt.block_on(async {
        for (name, attack, status) in cases {
            rejected(addr, &seen, name, attack, status).await;
        }
        // The proxy still serves honest requests afterwards.
        let resp = RawConn::connect(addr)
            .await
            .roundtrip(post("/fine", b"12345"))
            .await;
        assert_eq!(resp.text(), "ok");
        assert_eq!(*seen.lock().expect("seen"), ["POST /fine 5"]);
        baseline
            .settle("smuggling_attempts_are_rejected_before_the_origin")
            .await;
    });
}

/// A proxy in front of an origin that records, per request, "METHOD target host=.. cl=..
/// te=.. body-length" (the values of each field, `|`-separated) and answers "ok".
fn setup_normalizing(rt: &tokio::runtime::Runtime) -> (TestServer, SocketAddr, Seen) {
    let seen = Seen::default();
    let into = seen.clone();
    let origin = raw_origin(rt, move |mut conn, _| {
        let seen = into.clone();
        async move {
            while let Some(req) = conn.read_request().await {
                let values = |name: &str| {
                    req.head
                        .headers
                        .iter()
                        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_str())
                        .collect::<Vec<_>>()
                        .join("|")
                };
                seen.lock().expect("seen").push(format!(
                    "{} {} host={} cl={} te={} {}",
                    req.head.line,
                    req.head.target(),
                    values("host"),
                    values("content-length"),
                    values("transfer-encoding"),
                    req.body.len()
                ));
                conn.send(ok_response(b"ok")).await;
            }
        }
    });
    let (proxy, addr) = start_proxy(Proxy {
        origin: origin.addr,
        inject: false,
        verdicts: Log::default(),
        allow_invalid_length: false,
    });
    (proxy, addr, seen)
}

#[test]
fn accepted_oddities_reach_the_origin_normalized() {
    let rt = runtime();
    let (_proxy, addr, seen) = setup_normalizing(&rt);
    let baseline = Baseline::local().with_port(addr.port());
    // (name, request, what the origin must see)
    let cases = [
        (
            "identical Content-Length fields",
            "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            "POST /a HTTP/1.1 /a host=t cl=5 te= 5",
        ),
        (
            "identical Content-Length list",
            "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello",
            "POST /b HTTP/1.1 /b host=t cl=5 te= 5",
        ),
        (
            "absolute-form: its authority wins, origin-form upstream",
            "GET http://auth.example:81/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
            "GET /p?q=1 HTTP/1.1 /p?q=1 host=auth.example:81 cl= te= 0",
        ),
        (
            "absolute-form without a path",
            "GET http://auth.example HTTP/1.1\r\nHost: auth.example\r\n\r\n",
            "GET / HTTP/1.1 / host=auth.example cl= te= 0",
        ),
        (
            "absolute-form on HTTP/1.0 without Host",
            "GET http://[::1]:82/x HTTP/1.0\r\n\r\n",
            "GET /x HTTP/1.1 /x host=[::1]:82 cl= te= 0",
        ),
        (
            "HTTP/1.2 is read as HTTP/1.1",
            "GET /v12 HTTP/1.2\r\nHost: t\r\n\r\n",
            "GET /v12 HTTP/1.1 /v12 host=t cl= te= 0",
        ),
    ];
    rt.block_on(async {
        for (name, request, expected) in cases {
            seen.lock().expect("seen").clear();
            let mut client = RawConn::connect(addr).await;
            let resp = client.roundtrip(request).await;
            assert_eq!(resp.head.line, "HTTP/1.1 200 OK", "{name}");
            assert_eq!(resp.text(), "ok", "{name}");
            assert_eq!(*seen.lock().expect("seen"), [expected], "{name}");
        }
        baseline
            .settle("accepted_oddities_reach_the_origin_normalized")
            .await;
    });
}

/// An origin answering each request with the raw response named by its path (below). Unless
/// the response is well framed it then closes the connection when the request carries
/// `X-Close` (a lenient peer reads the body until then), or else records whether the proxy
/// closed the connection by itself.
fn scripted_origin(rt: &tokio::runtime::Runtime, verdicts: UnboundedSender<String>) -> SocketAddr {
    let origin = raw_origin(rt, move |mut conn, _| {
        let verdicts = verdicts.clone();
        async move {
            while let Some(req) = conn.read_request().await {
                let target = req.head.target().to_string();
                let response: &[u8] = match target.as_str() {
                    "/te-and-cl" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                    "/bad-cl" => b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\nhello",
                    "/two-cl" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                    "/cl-list" => b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
                    "/signed-cl" => b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
                    _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                };
                conn.send(response).await;
                if target == "/te-and-cl" {
                    continue;
                }
                if req.head.get("x-close").is_some() {
                    conn.stream.shutdown().await.ok();
                } else {
                    let closed = conn.is_closed().await;
                    let _ = verdicts.send(format!("{target} closed by the proxy={closed}"));
                }
                return;
            }
        }
    });
    origin.addr
}

#[test]
fn upstream_response_framing_rules() {
    let rt = runtime();
    let (verdicts, mut verdict) = unbounded_channel();
    let origin = scripted_origin(&rt, verdicts);
    let proxy = |allow_invalid_length| {
        start_proxy(Proxy {
            origin,
            inject: false,
            verdicts: Log::default(),
            allow_invalid_length,
        })
    };
    let (_strict, strict_addr) = proxy(false);
    let (_lenient, lenient_addr) = proxy(true);
    let baseline = Baseline::local()
        .with_port(strict_addr.port())
        .with_port(lenient_addr.port());
    // (path, the peer allows an invalid Content-Length, status, body)
    let cases = [
        // Both headers: framed by Transfer-Encoding, Content-Length removed (section 6.3).
        ("/te-and-cl", false, 200, "hello"),
        ("/te-and-cl", true, 200, "hello"),
        // An invalid Content-Length: 502, and the proxy closes the upstream connection
        // (section 6.3 rule 5).
        ("/bad-cl", false, 502, ""),
        ("/two-cl", false, 502, ""),
        ("/cl-list", false, 502, ""),
        ("/signed-cl", false, 502, ""),
        // Unless the peer allows it: the body is then read until the upstream closes.
        ("/bad-cl", true, 200, "hello"),
        ("/two-cl", true, 200, "hello!"),
        ("/cl-list", true, 200, "hello!"),
    ];
    rt.block_on(async {
        for (path, lenient, status, body) in cases {
            let name = format!("{path} lenient={lenient}");
            let (addr, extra) = if lenient {
                (lenient_addr, "X-Close: 1\r\n")
            } else {
                (strict_addr, "")
            };
            let mut client = RawConn::connect(addr).await;
            let resp = client.roundtrip(get(path, extra)).await;
            assert_eq!(resp.head.status(), status, "{name}");
            if status == 200 {
                assert_eq!(resp.text(), body, "{name}");
                assert_eq!(resp.head.get("content-length"), None, "{name}");
                // The client's connection is kept for another request.
                let again = client.roundtrip(get(path, extra)).await;
                assert_eq!(again.head.status(), status, "{name}: second request");
                assert_eq!(again.text(), body, "{name}: second request");
            } else {
                // The proxy closed its end without waiting for the upstream to close.
                let seen = within("the origin's verdict", verdict.recv()).await;
                assert_eq!(
                    seen,
                    Some(format!("{path} closed by the proxy=true")),
                    "{name}"
                );
            }
        }
        baseline.settle("upstream_response_framing_rules").await;
    });
}

#[test]
fn oversized_heads_are_rejected() {
    let rt = runtime();
    let (_proxy, addr, seen, _) = setup(&rt, false);
    let baseline = Baseline::local().with_port(addr.port());
    rt.block_on(async {
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(70_000));
        rejected(addr, &seen, "long request line", &long_target, 414).await;
        let big_field = format!(
            "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "b".repeat(70_000)
        );
        rejected(addr, &seen, "big field", &big_field, 431).await;
        let many = format!(
            "GET / HTTP/1.1\r\nHost: t\r\n{}\r\n",
            (0..300)
                .map(|i| format!("X-{i}: v\r\n"))
                .collect::<String>()
        );
        rejected(addr, &seen, "too many fields", &many, 431).await;
        baseline.settle("oversized_heads_are_rejected").await;
    });
}

#[test]
fn malformed_chunked_body_stops_at_the_proxy() {
    let rt = runtime();
    let (_proxy, addr, seen, _) = setup(&rt, false);
    let baseline = Baseline::local().with_port(addr.port());
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        // A valid chunk, then a size line that is not hex, then a request hidden in the body.
        client
            .send(format!(
                "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5\r\nhello\r\nZZZ\r\n{SMUGGLED}"
            ))
            .await;
        let resp = client.read_response("POST").await;
        assert_eq!(resp.head.status(), 400);
        assert!(client.is_closed().await);
        // The origin may have started reading the POST, but never got a complete request,
        // let alone the hidden one.
        assert!(seen.lock().expect("seen").is_empty(), "{:?}", seen.lock());
        drop(client);
        baseline
            .settle("malformed_chunked_body_stops_at_the_proxy")
            .await;
    });
}

#[test]
fn filters_cannot_inject_header_lines() {
    let rt = runtime();
    let (_proxy, addr, seen, verdicts) = setup(&rt, true);
    let baseline = Baseline::local().with_port(addr.port());
    rt.block_on(async {
        // The response filter's attempts are refused by the header API; the response goes
        // out without them.
        let mut client = RawConn::connect(addr).await;
        let resp = client.roundtrip(get("/plain", "")).await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.text(), "ok");
        assert_eq!(resp.head.get("set-cookie"), None);
        assert_eq!(resp.head.get("x-note"), None);
        assert_eq!(resp.head.get("x-lf"), None);

        // The request filter's failed attempt fails the request instead of sending it.
        let resp = client.roundtrip(get("/inject-request", "")).await;
        assert_eq!(resp.head.status(), 500);
        assert_eq!(*seen.lock().expect("seen"), ["GET /plain 0"]);
        assert_eq!(
            events(&verdicts),
            [
                "response value ok=false name ok=false lf ok=false",
                "request value ok=false"
            ]
        );
        drop(client);
        baseline.settle("filters_cannot_inject_header_lines").await;
    });
}
