//! Serving one HTTP/2 connection: a task per stream, bounded, with GOAWAY on shutdown.

use std::future::poll_fn;
use std::sync::Arc;

use log::debug;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::HttpServerApp;
use crate::protocols::http::v2::guard::{Alarm, FrameGuard, Guard};
use crate::protocols::http::v2::server::{self as h2_server, HttpSession as H2Session};
use crate::protocols::http::ServerSession;
use crate::protocols::Stream;
use crate::shutdown::ShutdownWatch;

/// Serves `stream` as an HTTP/2 connection: each stream is its own task running
/// `process_new_http`. On graceful shutdown the connection announces GOAWAY and ends once the
/// streams already accepted are done.
///
/// Work per connection is bounded against floods of streams the client opens and resets at
/// once (CVE-2023-44487, "rapid reset"): at most as many stream tasks run as the connection
/// allows concurrent streams (more wait, and the `h2` crate ends the connection with
/// `ENHANCE_YOUR_CALM` once too many of them are reset while waiting), a stream already reset
/// when accepted gets no task, and a connection whose streams are mostly reset before they are
/// served is ended with `GOAWAY(ENHANCE_YOUR_CALM)`.
///
/// The server's [`H2Limits`](crate::protocols::http::v2::server::H2Limits) are enforced
/// here too: a flood of frames that carry no request, or a response left waiting for window,
/// ends the connection with `GOAWAY(ENHANCE_YOUR_CALM)`; a socket that takes no bytes for the
/// stall timeout is closed.
pub(super) async fn serve_h2<T>(
    app: &Arc<T>,
    stream: Stream,
    shutdown: &ShutdownWatch,
) -> Option<Stream>
where
    T: HttpServerApp + Send + Sync + 'static,
{
    let digest = Arc::new(crate::protocols::http::v2::connection_digest(&stream));
    let limits = app
        .server_options()
        .map(|o| o.h2_limits.clone())
        .unwrap_or_default();
    let (stream, guard) = FrameGuard::wrap(stream, limits);
    let mut conn = match h2_server::handshake(stream, app.h2_options()).await {
        Ok(conn) => conn,
        Err(e) => {
            debug!("HTTP/2 handshake failed: {e}");
            return None;
        }
    };
    let task_limit = conn
        .max_concurrent_recv_streams()
        .clamp(1, MAX_STREAM_TASKS_PER_CONNECTION);
    let tasks = Arc::new(Semaphore::new(task_limit));
    let mut resets = EarlyResets::default();
    let allow_connect = app
        .server_options()
        .is_some_and(|o| o.allow_connect_method_proxying);
    let mut watch = shutdown.clone();
    let mut stopping = false;
    let mut calmed = false;
    let alarm = guard.alarm();
    tokio::pin!(alarm);
    loop {
        if !stopping && *watch.borrow() {
            stopping = true;
            conn.graceful_shutdown();
        }
        // Wait for a free task slot, driving the connection (the running streams' frames)
        // meanwhile, then for the next stream.
        let permit = tokio::select! {
            biased;
            raised = &mut alarm => {
                alarm.set(guard.alarm());
                if !answer_alarm(&mut conn, raised, &mut calmed) {
                    return None;
                }
                continue;
            }
            permit = tasks.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            closed = poll_fn(|cx| conn.poll_closed(cx)) => {
                if let Err(e) = closed {
                    debug!("HTTP/2 connection ended: {e}");
                }
                return None;
            }
            _ = watch.wait_for(|stopping| *stopping), if !stopping => {
                // Announced now, not once a task ends (a server gone counts as stopping).
                debug!("graceful shutdown: sending GOAWAY on an HTTP/2 connection");
                stopping = true;
                conn.graceful_shutdown();
                continue;
            }
        };
        let next = tokio::select! {
            biased;
            raised = &mut alarm => {
                alarm.set(guard.alarm());
                if !answer_alarm(&mut conn, raised, &mut calmed) {
                    return None;
                }
                continue;
            }
            next = H2Session::from_h2_conn(&mut conn, digest.clone()) => next,
            _ = watch.wait_for(|stopping| *stopping), if !stopping => {
                    debug!("graceful shutdown: sending GOAWAY on an HTTP/2 connection");
                stopping = true;
                conn.graceful_shutdown();
                continue;
            }
        };
        match next {
            Ok(Some(session)) => {
                let accepted = Accepted {
                    session,
                    permit,
                    allow_connect,
                    guard: &guard,
                };
                accepted.start(app, &mut conn, &mut resets, shutdown).await;
            }
            Ok(None) => return None,
            Err(e) => {
                debug!("HTTP/2 connection ended: {e}");
                return None;
            }
        }
    }
}

/// A stream just accepted, with the task slot it will run in.
struct Accepted<'a> {
    session: H2Session,
    permit: OwnedSemaphorePermit,
    allow_connect: bool,
    guard: &'a Arc<Guard>,
}

impl Accepted<'_> {
    /// Spawns the stream's task, unless it needs none: a stream the client already reset (a
    /// flood of these ends the connection), or a `CONNECT` the application did not allow
    /// (answered 405 here, as for HTTP/1).
    async fn start<T>(
        self,
        app: &Arc<T>,
        conn: &mut h2_server::H2Connection<Stream>,
        resets: &mut EarlyResets,
        shutdown: &ShutdownWatch,
    ) where
        T: HttpServerApp + Send + Sync + 'static,
    {
        let Accepted {
            mut session,
            permit,
            allow_connect,
            guard,
        } = self;
        if session.was_reset().await {
            if resets.count_reset() {
                debug!("HTTP/2 client resets most streams at once; closing the connection");
                conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
            }
            return;
        }
        resets.count_served();
        if session.req_header().method == http::Method::CONNECT && !allow_connect {
            let refusal = ServerSession::generate_error(405);
            let _ = session.write_response_header(Box::new(refusal), true).await;
            return;
        }
        session.set_guard(guard.clone());
        let app = app.clone();
        let shutdown = shutdown.clone();
        let active = crate::metrics::h2_stream(crate::metrics::Side::Downstream);
        let task = async move {
            let _active = active;
            let session = ServerSession::new_http2(session);
            // An HTTP/2 stream never hands a connection back.
            let _ = super::in_request_span(app.process_new_http(session, &shutdown)).await;
            drop(permit);
        };
        // Each stream reports its own request when Sentry reporting is on.
        #[cfg(feature = "sentry")]
        let task = crate::reporting::isolated(task);
        tokio::spawn(task);
    }
}

/// Acts on an alarm of the connection's guard: a flood or a stalled stream ends the connection
/// with `GOAWAY(ENHANCE_YOUR_CALM)` (once; `calmed` remembers it), after which the loop keeps
/// driving the connection until it closes. Returns `false` when the connection must be dropped
/// at once (its socket takes no bytes, not even a GOAWAY).
fn answer_alarm(
    conn: &mut h2_server::H2Connection<Stream>,
    alarm: Alarm,
    calmed: &mut bool,
) -> bool {
    match alarm {
        Alarm::WriteStall => {
            debug!("HTTP/2 client reads nothing; dropping the connection");
            false
        }
        Alarm::Flood | Alarm::WindowStall => {
            if !*calmed {
                debug!("HTTP/2 connection ended for {alarm:?}");
                *calmed = true;
                conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
            }
            true
        }
    }
}

/// The most stream tasks one HTTP/2 connection runs at once, whatever it allows.
const MAX_STREAM_TASKS_PER_CONNECTION: usize = 1024;

/// Counts the streams of a connection that the client reset before they were served.
#[derive(Debug, Default)]
struct EarlyResets {
    reset: usize,
    served: usize,
}

impl EarlyResets {
    /// Resets tolerated before their share of all streams is looked at: clients do cancel
    /// requests (a page navigated away from), rarely by the hundred.
    const FREE: usize = 100;

    /// Counts a stream served.
    fn count_served(&mut self) {
        self.served += 1;
    }

    /// Counts a stream reset before it was served; returns whether the connection has reset
    /// too many (more than [`Self::FREE`], and more than it had served).
    fn count_reset(&mut self) -> bool {
        self.reset += 1;
        self.reset > Self::FREE && self.reset > self.served
    }
}

#[cfg(test)]
mod tests {
    use super::EarlyResets;

    #[test]
    fn early_resets_tolerate_some_then_a_majority_ends_the_connection() {
        let mut resets = EarlyResets::default();
        for _ in 0..EarlyResets::FREE {
            assert!(!resets.count_reset());
        }
        assert!(
            resets.count_reset(),
            "one more than the free ones, none served"
        );

        let mut busy = EarlyResets::default();
        for _ in 0..300 {
            busy.count_served();
        }
        for _ in 0..300 {
            assert!(!busy.count_reset(), "no more resets than streams served");
        }
        assert!(busy.count_reset());
    }
}
