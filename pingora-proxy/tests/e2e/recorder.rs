//! The recording proxy app of the end-to-end tests, and the origins its tests use.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use tokio::sync::mpsc;

use super::{events, record, within, Log};

/// Only the required callbacks: its other callbacks are the trait's defaults, which the
/// recorder calls to keep the default behaviour while recording.
struct Defaults;

#[async_trait]
impl ProxyHttp for Defaults {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Error::e_explain(ErrorType::InternalError, "unused")
    }
}

/// Records every callback (with its key arguments) and behaves by request path:
/// * `/deny`: `request_filter` answers 403 "denied" itself;
/// * `/refuse`: `proxy_upstream_filter` says no without answering;
/// * `/refuse-written`: `proxy_upstream_filter` answers 451 and says no;
/// * `/status-error`: `request_filter` fails with `HTTPStatus(429)`;
/// * `/unset-error`, `/internal-error`: `request_filter` fails with an error of source Unset,
///   Internal;
/// * anything else goes to `peers[attempt]` (the last one repeated).
pub struct Recorder {
    log: Log,
    logged: mpsc::UnboundedSender<()>,
    peers: Vec<SocketAddr>,
    /// `fail_to_connect` marks connection failures retryable.
    pub retry_connect: bool,
    /// The peers' read timeout.
    pub read_timeout: Option<Duration>,
    peer_calls: Arc<AtomicUsize>,
    /// Record empty non-final request body pieces too (normally skipped: they carry nothing).
    pub raw_body_events: bool,
}

/// What a test keeps of its recorder.
pub struct Probe {
    /// The events recorded.
    pub log: Log,
    logged: mpsc::UnboundedReceiver<()>,
    /// Calls of `upstream_peer`.
    pub peer_calls: Arc<AtomicUsize>,
}

impl Probe {
    /// Waits until `logging` ran `n` more times.
    pub async fn logged(&mut self, n: usize) {
        for _ in 0..n {
            within("logging", self.logged.recv())
                .await
                .expect("recorder alive");
        }
    }

    /// The events recorded so far.
    pub fn events(&self) -> Vec<String> {
        events(&self.log)
    }

    /// Forgets the events recorded so far.
    pub fn clear(&self) {
        self.log.lock().expect("log lock").clear();
    }
}

/// A recorder proxying to `peers`, and the probe to watch it with.
pub fn recorder(peers: Vec<SocketAddr>) -> (Recorder, Probe) {
    let log = Log::default();
    let (tx, rx) = mpsc::unbounded_channel();
    let peer_calls = Arc::new(AtomicUsize::new(0));
    (
        Recorder {
            log: log.clone(),
            logged: tx,
            peers,
            retry_connect: false,
            read_timeout: None,
            peer_calls: peer_calls.clone(),
            raw_body_events: false,
        },
        Probe {
            log,
            logged: rx,
            peer_calls,
        },
    )
}

fn body_desc(body: &Option<Bytes>) -> String {
    match body {
        None => "none".to_string(),
        Some(b) => format!("len={}", b.len()),
    }
}

impl Recorder {
    fn rec(&self, event: impl Into<String>) {
        record(&self.log, event);
    }
}

#[async_trait]
impl ProxyHttp for Recorder {
    type CTX = usize;

    fn new_ctx(&self) -> usize {
        0
    }

    async fn early_request_filter(&self, _: &mut Session, _: &mut usize) -> Result<()> {
        self.rec("early_request_filter");
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, _: &mut usize) -> Result<bool> {
        self.rec("request_filter");
        match session.req_header().uri.path() {
            "/deny" => {
                session
                    .respond_error_with_body(403, Bytes::from_static(b"denied"))
                    .await?;
                Ok(true)
            }
            "/status-error" => Error::e_explain(ErrorType::HTTPStatus(429), "slow down"),
            "/unset-error" => Err(Error::new_str("a filter failed")),
            "/internal-error" => Err(Error::new_in(ErrorType::InternalError)),
            _ => Ok(false),
        }
    }

    async fn proxy_upstream_filter(&self, session: &mut Session, _: &mut usize) -> Result<bool> {
        self.rec("proxy_upstream_filter");
        match session.req_header().uri.path() {
            "/refuse" => Ok(false),
            "/refuse-written" => {
                session.respond_error(451).await?;
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    async fn upstream_peer(&self, _: &mut Session, attempt: &mut usize) -> Result<Box<HttpPeer>> {
        self.rec("upstream_peer");
        self.peer_calls.fetch_add(1, Ordering::SeqCst);
        let addr = self.peers[(*attempt).min(self.peers.len() - 1)];
        *attempt += 1;
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.read_timeout = self.read_timeout;
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _: &mut Session,
        _: &HttpPeer,
        _: &mut usize,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.rec("fail_to_connect");
        if self.retry_connect {
            e.set_retry(true);
        }
        e
    }

    async fn connected_to_upstream(
        &self,
        _: &mut Session,
        reused: bool,
        _: &HttpPeer,
        _: std::os::unix::io::RawFd,
        _: Option<&pingora_core::protocols::Digest>,
        _: &mut usize,
    ) -> Result<()> {
        self.rec(format!("connected_to_upstream reused={reused}"));
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        _: &mut Session,
        _: &mut RequestHeader,
        _: &mut usize,
    ) -> Result<()> {
        self.rec("upstream_request_filter");
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _: &mut Session,
        body: &mut Option<Bytes>,
        eos: bool,
        _: &mut usize,
    ) -> Result<()> {
        let empty = body.as_ref().is_none_or(Bytes::is_empty);
        if self.raw_body_events {
            self.rec(format!("request_body_filter {} eos={eos}", body_desc(body)));
        } else if !empty || eos {
            // Empty pieces before the end carry nothing: see request_body_filter_gets_no_empty_pieces.
            let len = body.as_ref().map_or(0, Bytes::len);
            self.rec(format!("request_body_filter len={len} eos={eos}"));
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _: &mut Session,
        resp: &mut ResponseHeader,
        _: &mut usize,
    ) -> Result<()> {
        self.rec(format!("upstream_response_filter {}", resp.status.as_u16()));
        Ok(())
    }

    async fn response_filter(
        &self,
        _: &mut Session,
        resp: &mut ResponseHeader,
        _: &mut usize,
    ) -> Result<()> {
        self.rec(format!("response_filter {}", resp.status.as_u16()));
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _: &mut Session,
        body: &mut Option<Bytes>,
        eos: bool,
        _: &mut usize,
    ) -> Result<Option<Duration>> {
        self.rec(format!(
            "upstream_response_body_filter {} eos={eos}",
            body_desc(body)
        ));
        Ok(None)
    }

    fn response_body_filter(
        &self,
        _: &mut Session,
        body: &mut Option<Bytes>,
        eos: bool,
        _: &mut usize,
    ) -> Result<Option<Duration>> {
        self.rec(format!(
            "response_body_filter {} eos={eos}",
            body_desc(body)
        ));
        Ok(None)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        _: &mut usize,
        client_reused: bool,
    ) -> Box<Error> {
        let e = Defaults.error_while_proxy(peer, session, e, &mut (), client_reused);
        self.rec(format!(
            "error_while_proxy reused={client_reused} retry={}",
            e.retry()
        ));
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _: &mut usize) -> FailToProxy {
        let out = Defaults.fail_to_proxy(session, e, &mut ()).await;
        self.rec(format!("fail_to_proxy {}", out.error_code));
        out
    }

    async fn logging(&self, _: &mut Session, e: Option<&Error>, _: &mut usize) {
        self.rec(match e {
            None => "logging ok".to_string(),
            Some(_) => "logging error".to_string(),
        });
        let _ = self.logged.send(());
    }
}

/// The callbacks of a request that reaches the upstream, up to its response head.
pub fn upstream_prefix(reused: bool) -> Vec<String> {
    [
        "early_request_filter",
        "request_filter",
        "proxy_upstream_filter",
        "upstream_peer",
        &format!("connected_to_upstream reused={reused}"),
        "upstream_request_filter",
    ]
    .map(String::from)
    .to_vec()
}

/// Owned copies of `items`.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
