//! HTTP/2 in cleartext (h2c) on either side of the code under test: from the `h2` crate, an
//! origin driven by a handler per stream ([`H2Origin`]) and a client ([`h2_client`],
//! [`exchange`]); and hand-built frames on a raw connection ([`frames`]) for what those
//! would refuse to send.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, Method, Request, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};

use crate::within;

pub mod frames;

// === the origin ===

/// What an [`H2Origin`] runs for each stream.
pub type Handler = Arc<dyn Fn(Request<RecvStream>, SendResponse<Bytes>) -> Handled + Send + Sync>;
/// The future a [`Handler`] returns.
pub type Handled = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An h2c origin (the `h2` crate's server) that counts the connections it accepts.
#[derive(Debug)]
pub struct H2Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub accepts: Arc<AtomicUsize>,
    /// Set to `true` to make every connection send GOAWAY (a graceful shutdown).
    pub goaway: watch::Sender<bool>,
    /// One message per connection that ended.
    pub closed: mpsc::UnboundedReceiver<()>,
}

impl H2Origin {
    /// Starts an origin on the current runtime, running `handler` for each stream.
    pub async fn start(handler: Handler) -> H2Origin {
        Self::start_with(handler, h2::server::Builder::new()).await
    }

    /// [`H2Origin::start`] with the server settings of `builder`.
    ///
    /// # Panics
    ///
    /// If it cannot bind.
    pub async fn start_with(handler: Handler, builder: h2::server::Builder) -> H2Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let accepts = Arc::new(AtomicUsize::new(0));
        let (goaway, goaway_rx) = watch::channel(false);
        let (closed_tx, closed) = mpsc::unbounded_channel();
        let counter = Arc::clone(&accepts);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let conn = serve_connection(
                    tcp,
                    builder.clone(),
                    Arc::clone(&handler),
                    goaway_rx.clone(),
                );
                let closed = closed_tx.clone();
                tokio::spawn(async move {
                    conn.await;
                    let _ = closed.send(());
                });
            }
        });
        H2Origin {
            addr,
            accepts,
            goaway,
            closed,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

/// Serves one connection until it ends, sending GOAWAY when `goaway` turns `true`.
async fn serve_connection(
    tcp: TcpStream,
    builder: h2::server::Builder,
    handler: Handler,
    mut goaway: watch::Receiver<bool>,
) {
    let Ok(mut conn) = builder.handshake(tcp).await else {
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
}

/// [`H2Origin::start`] on `rt`, for synchronous tests.
pub fn h2_origin(rt: &Runtime, handler: Handler) -> H2Origin {
    rt.block_on(H2Origin::start(handler))
}

// === the client ===

/// Opens an h2c connection to `addr`, its driver running as a task.
///
/// # Panics
///
/// If the connection or the handshake fails or takes longer than
/// [`TIMEOUT`](crate::TIMEOUT).
pub async fn h2_client(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let (send, conn) = within("h2 handshake", h2::client::handshake(tcp))
        .await
        .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// A whole response.
#[derive(Debug)]
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
///
/// # Panics
///
/// If any step fails or the whole takes longer than [`TIMEOUT`](crate::TIMEOUT).
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
            send_all(&mut stream, Bytes::from(body), trailers.is_none()).await;
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

/// Sends `data` on `stream` as flow control allows, ending the stream with it if `end`.
///
/// # Panics
///
/// If the stream fails.
pub async fn send_all(stream: &mut SendStream<Bytes>, mut data: Bytes, end: bool) {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx))
            .await
            .expect("stream open")
            .expect("capacity");
        let piece = data.split_to(granted.min(data.len()));
        stream
            .send_data(piece, end && data.is_empty())
            .expect("send data");
    }
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
///
/// # Panics
///
/// If a piece of the body fails.
pub async fn read_body(body: &mut RecvStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(piece) = body.data().await {
        let piece = piece.expect("body piece");
        let _ = body.flow_control().release_capacity(piece.len());
        out.extend_from_slice(&piece);
    }
    out
}
