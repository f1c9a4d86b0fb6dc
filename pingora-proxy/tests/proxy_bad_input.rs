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

/// What the origin saw: "METHOD target body-length" per request.
type Seen = Arc<Mutex<Vec<String>>>;

/// Proxies to one origin. With `inject`, the filters try to smuggle CR/LF into headers:
/// `upstream_request_filter` fails the request if the header API rejects the value, and
/// `response_filter` records the API's verdicts and carries on.
struct Proxy {
    origin: SocketAddr,
    inject: bool,
    verdicts: Log,
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
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
    let cases: [(&str, &str, u16); 12] = [
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
        (
            "TE list with identity",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            501,
        ),
        (
            "TE xchunked",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            501,
        ),
        (
            "two TE fields",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
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
    });
}

#[test]
fn oversized_heads_are_rejected() {
    let rt = runtime();
    let (_proxy, addr, seen, _) = setup(&rt, false);
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
    });
}

#[test]
fn malformed_chunked_body_stops_at_the_proxy() {
    let rt = runtime();
    let (_proxy, addr, seen, _) = setup(&rt, false);
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
    });
}

#[test]
fn filters_cannot_inject_header_lines() {
    let rt = runtime();
    let (_proxy, addr, seen, verdicts) = setup(&rt, true);
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
    });
}
