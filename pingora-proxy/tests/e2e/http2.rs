//! HTTP/2 on either side of the proxy: an h2c client ([`h2_client`], [`exchange_with_trailers`])
//! and an h2c origin driven by a handler per stream ([`h2_origin`]), both from the `h2` crate;
//! and hand-made gRPC message framing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, Method, Request, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use super::within;

// === the client ===

/// Opens an h2c connection to `addr`, its driver running as a task.
pub async fn h2_client(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (send, conn) = within("h2 handshake", h2::client::handshake(tcp))
        .await
        .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// A whole response.
pub struct Got {
    /// The status.
    pub status: StatusCode,
    /// The head's fields.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
    /// The trailers, if any.
    pub trailers: Option<HeaderMap>,
}

/// Sends `req` with `body` and reads the whole response.
pub async fn exchange(send: &SendRequest<Bytes>, req: Request<()>, body: Option<Vec<u8>>) -> Got {
    exchange_with_trailers(send, req, body, None).await
}

/// Sends `req` with `body` then `trailers`, and reads the whole response.
pub async fn exchange_with_trailers(
    send: &SendRequest<Bytes>,
    req: Request<()>,
    body: Option<Vec<u8>>,
    trailers: Option<HeaderMap>,
) -> Got {
    let run = async {
        let mut send = send.clone().ready().await.expect("connection ready");
        let ends_with_head = body.is_none() && trailers.is_none();
        let (resp, mut stream) = send
            .send_request(req, ends_with_head)
            .expect("send request");
        if let Some(body) = body {
            let mut data = Bytes::from(body);
            let last = trailers.is_none();
            while !data.is_empty() {
                stream.reserve_capacity(data.len());
                let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx))
                    .await
                    .expect("stream open")
                    .expect("capacity");
                let piece = data.split_to(granted.min(data.len()));
                stream
                    .send_data(piece, last && data.is_empty())
                    .expect("send data");
            }
        }
        if let Some(trailers) = trailers {
            stream.send_trailers(trailers).expect("send trailers");
        }
        let (parts, mut recv) = resp.await.expect("response").into_parts();
        let body = read_body(&mut recv).await;
        let trailers = recv.trailers().await.expect("trailers");
        Got {
            status: parts.status,
            headers: parts.headers,
            body,
            trailers,
        }
    };
    within("h2 exchange", run).await
}

/// A request of `method` for `path` on `example.test`.
pub fn request(method: Method, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("http://example.test{path}"))
        .body(())
        .expect("a valid request")
}

/// Reads a whole body, giving its bytes back to the flow-control window.
pub async fn read_body(body: &mut RecvStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(piece) = body.data().await {
        let piece = piece.expect("body piece");
        let _ = body.flow_control().release_capacity(piece.len());
        out.extend_from_slice(&piece);
    }
    out
}

// === the origin ===

/// What an h2c origin runs for each stream.
pub type Handler = Arc<dyn Fn(Request<RecvStream>, SendResponse<Bytes>) -> Handled + Send + Sync>;
/// The future a [`Handler`] returns.
pub type Handled = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// An h2c origin (the `h2` crate's server).
pub struct H2Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub accepts: Arc<AtomicUsize>,
    /// Set to `true` to make every connection send GOAWAY.
    pub goaway: watch::Sender<bool>,
}

/// Starts an h2c origin running `handler` for each stream.
pub fn h2_origin(rt: &Runtime, handler: Handler) -> H2Origin {
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let accepts = Arc::new(AtomicUsize::new(0));
    let (goaway, goaway_rx) = watch::channel(false);
    let counter = accepts.clone();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            let mut goaway = goaway_rx.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                let mut shutting_down = false;
                loop {
                    tokio::select! {
                        next = conn.accept() => match next {
                            Some(Ok((req, respond))) => {
                                tokio::spawn(handler(req, respond));
                            }
                            _ => break,
                        },
                        changed = goaway.changed(), if !shutting_down => {
                            if changed.is_ok() && *goaway.borrow() {
                                shutting_down = true;
                                conn.graceful_shutdown();
                            }
                        }
                    }
                }
            });
        }
    });
    H2Origin {
        addr,
        accepts,
        goaway,
    }
}

// === gRPC framing ===

/// One gRPC message: uncompressed flag, 4-byte length, payload.
pub fn grpc_frame(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(payload.len()).unwrap());
    out.put_slice(payload);
    out.freeze()
}

/// Splits whole gRPC messages off the front of `buf`.
pub fn grpc_messages(buf: &mut BytesMut) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while buf.len() >= 5 {
        let len = (&buf[1..5]).get_u32() as usize;
        if buf.len() < 5 + len {
            break;
        }
        let frame = buf.split_to(5 + len);
        out.push(frame[5..].to_vec());
    }
    out
}
