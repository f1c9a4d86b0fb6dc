//! [`ScriptedOrigin`]: an HTTP/1.1 origin on `127.0.0.1:0` that answers each request target
//! as the test tells it ([`Reply`]), counts the requests per target and records each one
//! (method, fields, body).
//!
//! A reply sets the status, the fields and the body, how the body is framed
//! (`Content-Length`, chunked, or ended by the close), delays before the head or between
//! pieces of the body, a pause in the middle of the body until the test opens a [`Gate`], a
//! cut (close or reset) after some bytes of the body, and a `304 Not Modified` instead when
//! the request's `If-None-Match` matches a given entity tag. A target can also answer a
//! sequence of replies (one per request, the last repeated) or a reply computed from the
//! request.
//!
//! ```ignore
//! let origin = ScriptedOrigin::start().await;
//! origin.set("/a", Reply::ok("hello").header("Cache-Control", "max-age=60"));
//! // ... requests through the code under test ...
//! assert_eq!(origin.count("/a"), 1);
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::origin::Origin;
use crate::raw::{Head, RawConn};
use crate::within;

// === Gate ===

/// A one-way gate: replies wait at it until the test opens it. Clones share the gate.
#[derive(Debug, Clone)]
pub struct Gate {
    open: Arc<watch::Sender<bool>>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        Gate {
            open: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Opens the gate: every waiter goes on, and later waits return at once.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Whether the gate is open.
    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Waits until the gate is open (unbounded: the test opens it).
    pub async fn wait(&self) {
        let mut rx = self.open.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

// === Reply ===

/// How the body of a [`Reply`] is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`.
    Length,
    /// `Transfer-Encoding: chunked`, one chunk per piece (see [`Reply::pieces`]).
    Chunked,
    /// Neither: the body ends when the origin closes the connection.
    Close,
}

/// How a cut body ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// A clean close (FIN).
    Close,
    /// A reset (RST).
    Reset,
}

/// One response of a [`ScriptedOrigin`], built from [`Reply::new`] and chained setters.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    framing: Framing,
    piece: usize,
    head_delay: Duration,
    head_gate: Option<Gate>,
    piece_delay: Duration,
    pause: Option<(usize, Gate)>,
    cut: Option<(usize, Cut)>,
    not_modified_etag: Option<String>,
}

impl Reply {
    /// A reply with `status`, no fields, an empty body and a `Content-Length`.
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            framing: Framing::Length,
            piece: usize::MAX,
            head_delay: Duration::ZERO,
            head_gate: None,
            piece_delay: Duration::ZERO,
            pause: None,
            cut: None,
            not_modified_etag: None,
        }
    }

    /// A `200` with `body`.
    pub fn ok(body: impl AsRef<[u8]>) -> Reply {
        Reply::new(200).body(body)
    }

    /// Adds the field `name: value` (names keep their case; repeated names are separate
    /// lines).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The body.
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Reply {
        self.body = body.as_ref().to_vec();
        self
    }

    /// Frames the body with `Transfer-Encoding: chunked`.
    pub fn chunked(mut self) -> Reply {
        self.framing = Framing::Chunked;
        self
    }

    /// Frames the body by closing the connection after it (no length, not chunked).
    pub fn close_delimited(mut self) -> Reply {
        self.framing = Framing::Close;
        self
    }

    /// Writes the body in pieces of `size` bytes (a chunk each when chunked).
    pub fn pieces(mut self, size: usize) -> Reply {
        self.piece = size.max(1);
        self
    }

    /// Waits `delay` before sending the head.
    pub fn head_delay(mut self, delay: Duration) -> Reply {
        self.head_delay = delay;
        self
    }

    /// Waits for `gate` to open before sending the head.
    pub fn head_gate(mut self, gate: &Gate) -> Reply {
        self.head_gate = Some(gate.clone());
        self
    }

    /// Waits `delay` between pieces of the body.
    pub fn piece_delay(mut self, delay: Duration) -> Reply {
        self.piece_delay = delay;
        self
    }

    /// After `bytes` bytes of the body (a piece boundary is made there), waits for `gate`
    /// to open before sending the rest.
    pub fn pause_after(mut self, bytes: usize, gate: &Gate) -> Reply {
        self.pause = Some((bytes, gate.clone()));
        self
    }

    /// Sends only `bytes` bytes of the body (after a pause, if any), then ends the
    /// connection as `how` says: a truncated response.
    pub fn cut_after(mut self, bytes: usize, how: Cut) -> Reply {
        self.cut = Some((bytes, how));
        self
    }

    /// Answers `304 Not Modified` (this reply's fields but the framing ones, no body)
    /// when the request's `If-None-Match` lists `etag` (weak comparison) or is `*`.
    pub fn not_modified_if_none_match(mut self, etag: &str) -> Reply {
        self.not_modified_etag = Some(etag.to_string());
        self
    }

    /// The head line and fields, with the framing field the body needs.
    fn head(&self, status: u16, with_framing: bool) -> Vec<u8> {
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Whatever");
        let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
        for (name, value) in &self.headers {
            let framing_field = name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding");
            if with_framing || !framing_field {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        if with_framing {
            let explicit = |field: &str| {
                self.headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case(field))
            };
            match self.framing {
                Framing::Length if !explicit("content-length") && !matches!(status, 204 | 304) => {
                    head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
                }
                Framing::Chunked if !explicit("transfer-encoding") => {
                    head.push_str("Transfer-Encoding: chunked\r\n");
                }
                _ => {}
            }
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    /// Whether the request's `If-None-Match` selects the 304.
    fn answers_not_modified(&self, request: &Seen) -> bool {
        let Some(etag) = &self.not_modified_etag else {
            return false;
        };
        let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
        request.all("if-none-match").iter().any(|value| {
            value
                .split(',')
                .any(|tag| tag.trim() == "*" || opaque(tag) == opaque(etag))
        })
    }

    /// Sends the reply to `request` on `conn`; whether the connection may serve another
    /// request.
    async fn send(&self, conn: &mut RawConn, request: &Seen) -> bool {
        if !self.head_delay.is_zero() {
            tokio::time::sleep(self.head_delay).await;
        }
        if let Some(gate) = &self.head_gate {
            gate.wait().await;
        }
        if self.answers_not_modified(request) {
            return conn.try_send(self.head(304, false)).await.is_ok();
        }
        let bodiless = request.method == "HEAD" || matches!(self.status, 204 | 304);
        if conn.try_send(self.head(self.status, true)).await.is_err() {
            return false;
        }
        if bodiless {
            return self.framing != Framing::Close;
        }
        let limit = self
            .cut
            .map_or(self.body.len(), |(n, _)| n.min(self.body.len()));
        let mut sent = 0;
        let mut first = true;
        while sent < limit {
            if !first && !self.piece_delay.is_zero() {
                tokio::time::sleep(self.piece_delay).await;
            }
            first = false;
            let mut end = limit.min(sent.saturating_add(self.piece));
            if let Some((at, gate)) = &self.pause {
                if sent == *at {
                    gate.wait().await;
                } else if sent < *at && end > *at {
                    end = *at;
                }
            }
            if conn
                .try_send(self.frame(&self.body[sent..end]))
                .await
                .is_err()
            {
                return false;
            }
            sent = end;
        }
        if let Some((at, gate)) = &self.pause {
            if *at >= limit {
                gate.wait().await;
            }
        }
        if let Some((_, how)) = self.cut {
            if how == Cut::Reset {
                let _ = conn.stream.set_zero_linger();
            }
            return false;
        }
        if self.framing == Framing::Chunked && conn.try_send("0\r\n\r\n").await.is_err() {
            return false;
        }
        self.framing != Framing::Close
    }

    /// A piece of the body as framed on the wire.
    fn frame(&self, piece: &[u8]) -> Vec<u8> {
        if self.framing != Framing::Chunked {
            return piece.to_vec();
        }
        let mut out = format!("{:x}\r\n", piece.len()).into_bytes();
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
        out
    }
}

// === Seen ===

/// A request as the origin received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// The fields, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The index of the connection it came on, counting from 0.
    pub connection: usize,
}

impl Seen {
    fn new(head: &Head, body: Vec<u8>, connection: usize) -> Seen {
        Seen {
            method: head.method().to_string(),
            target: head.target().to_string(),
            headers: head.headers.clone(),
            body,
            connection,
        }
    }

    /// The first value of field `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of field `name` (any case), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

// === ScriptedOrigin ===

/// What a target answers.
#[derive(Clone)]
enum Script {
    /// One reply per request, the last one repeated.
    Sequence(Vec<Reply>),
    /// A reply computed from the request and its index for the target (from 0).
    Computed(Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>),
}

#[derive(Default)]
struct State {
    scripts: HashMap<String, Script>,
    seen: Vec<Seen>,
}

/// An HTTP/1.1 origin answering each request target as scripted; see the [module](self).
///
/// A target is looked up whole (path and query) first, then by its path alone. Targets
/// without a script get `404` with an empty body. Requests are counted per whole target.
#[derive(Clone)]
pub struct ScriptedOrigin {
    origin: Origin,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for ScriptedOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedOrigin")
            .field("addr", &self.origin.addr)
            .finish_non_exhaustive()
    }
}

impl ScriptedOrigin {
    /// Starts an origin on the current runtime.
    pub async fn start() -> ScriptedOrigin {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let origin =
            Origin::start(move |conn, index| serve(conn, index, Arc::clone(&shared))).await;
        ScriptedOrigin { origin, state }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.origin.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.origin.connection_count()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("origin state lock")
    }

    /// Answers every request for `target` with `reply`.
    pub fn set(&self, target: &str, reply: Reply) {
        self.set_sequence(target, vec![reply]);
    }

    /// Answers the requests for `target` with `replies` in turn, the last one repeated.
    ///
    /// # Panics
    ///
    /// If `replies` is empty.
    pub fn set_sequence(&self, target: &str, replies: Vec<Reply>) {
        assert!(!replies.is_empty(), "a sequence of no reply");
        self.state()
            .scripts
            .insert(target.to_string(), Script::Sequence(replies));
    }

    /// Answers the requests for `target` with what `f` makes of each request and its index
    /// for the target (from 0).
    pub fn set_fn<F>(&self, target: &str, f: F)
    where
        F: Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
    {
        self.state()
            .scripts
            .insert(target.to_string(), Script::Computed(Arc::new(f)));
    }

    /// The requests received for `target` (its head read) so far.
    pub fn count(&self, target: &str) -> usize {
        self.state()
            .seen
            .iter()
            .filter(|s| s.target == target)
            .count()
    }

    /// All requests received so far.
    pub fn total(&self) -> usize {
        self.state().seen.len()
    }

    /// The requests received for `target`, in order.
    pub fn requests(&self, target: &str) -> Vec<Seen> {
        let state = self.state();
        state
            .seen
            .iter()
            .filter(|s| s.target == target)
            .cloned()
            .collect()
    }

    /// The last request received for `target`.
    ///
    /// # Panics
    ///
    /// If there is none.
    pub fn last(&self, target: &str) -> Seen {
        self.requests(target)
            .pop()
            .unwrap_or_else(|| panic!("the origin got no request for {target}"))
    }

    /// Waits until `target` got at least `n` requests.
    ///
    /// # Panics
    ///
    /// If it does not happen within [`TIMEOUT`](crate::TIMEOUT).
    pub async fn wait_count(&self, target: &str, n: usize) {
        within(&format!("{n} requests for {target} at the origin"), async {
            while self.count(target) < n {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }
}

/// Serves one connection.
async fn serve(mut conn: RawConn, index: usize, state: Arc<Mutex<State>>) {
    loop {
        // An idle connection (kept by a pool) may wait for its next request for as long as
        // the test runs: wait for bytes without the bounded read.
        if conn.leftover().is_empty() && conn.stream.readable().await.is_err() {
            return;
        }
        let Some(head) = conn.read_head().await else {
            return;
        };
        let Some(body) = conn.read_body(&head).await else {
            return;
        };
        let seen = Seen::new(&head, body, index);
        let reply = {
            let mut state = state.lock().expect("origin state lock");
            let target = seen.target.clone();
            let nth = state.seen.iter().filter(|s| s.target == target).count();
            state.seen.push(seen.clone());
            let path = target.split('?').next().unwrap_or_default();
            let script = state
                .scripts
                .get(&target)
                .or_else(|| state.scripts.get(path))
                .cloned();
            match script {
                Some(Script::Sequence(replies)) => replies[nth.min(replies.len() - 1)].clone(),
                Some(Script::Computed(f)) => f(&seen, nth),
                None => Reply::new(404),
            }
        };
        if !reply.send(&mut conn, &seen).await {
            return;
        }
    }
}
