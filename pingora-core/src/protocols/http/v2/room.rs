//! Room for response body on a server stream: the client's flow-control window, the
//! stream's send buffer, and the connection's budget of queued response bytes
//! ([`H2Limits::max_queued_response_bytes`](super::guard::H2Limits::max_queued_response_bytes)).
//!
//! The budget is a semaphore of bytes. A stream takes permits before it reads the next piece
//! of its upstream's body and hands them to the piece ([`budgeted`]): they go back when the
//! last byte of the piece leaves the `h2` send queue, written to the socket or dropped with a
//! reset stream, so that no path can leak them.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::SendStream;
use pingora_error::{Error, ErrorType, OrErr, Result};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::guard::Guard;
use crate::protocols::http::v1::io::with_timeout;

/// Waits until `writer` can take more response body and the connection's budget allows
/// it, and returns how much (the budget taken is left in `reserved`). Bounded by `timeout`,
/// and the wait for window by the connection's stall timeout (which a wait that ends it
/// reports).
pub(super) async fn wait_for_room(
    writer: Option<&mut SendStream<Bytes>>,
    reserved: &mut Option<OwnedSemaphorePermit>,
    want: usize,
    timeout: Option<Duration>,
    guard: Option<&Guard>,
) -> Result<usize> {
    let Some(writer) = writer else {
        return Error::e_explain(ErrorType::InternalError, "response room before its head");
    };
    let stall = guard.and_then(Guard::send_stall_timeout);
    let budget = guard.and_then(Guard::response_budget);
    let want = want.max(1);
    let wait = async {
        loop {
            writer.reserve_capacity(want);
            let capacity = writer.capacity().min(want);
            if capacity > 0 {
                if let Some(room) = take_budget(reserved, budget, capacity) {
                    return Ok(room);
                }
                // The connection's queue is full: wait for the client to take some of it.
                let budget = budget.expect("only a bounded budget runs out");
                let permit = Arc::clone(budget)
                    .acquire_many_owned(permits(capacity))
                    .await
                    .or_err(ErrorType::InternalError, "the response budget closed")?;
                let room = permit.num_permits();
                *reserved = Some(permit);
                return Ok(room);
            }
            let wait = async { Ok(poll_fn(|cx| writer.poll_capacity(cx)).await) };
            match with_timeout(stall, ErrorType::WriteTimedout, wait).await? {
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    return Err(Error::because(
                        ErrorType::WriteError,
                        "waiting for HTTP/2 flow-control window",
                        e,
                    ))
                }
                None => return Error::e_explain(ErrorType::WriteError, "the HTTP/2 stream closed"),
            }
        }
    };
    let waited = with_timeout(timeout, ErrorType::WriteTimedout, wait).await;
    if let (Err(e), Some(guard)) = (&waited, guard) {
        if e.etype() == &ErrorType::WriteTimedout {
            guard.window_stalled();
        }
    }
    waited.map_err(|e| e.into_down())
}

/// The room for response body given `capacity` (the stream's, within what is wanted), within
/// the connection's `budget` when bounded: what `reserved` holds already, or else what can be
/// taken from the budget now (left in `reserved`). `None` when the budget has too little
/// left.
pub(super) fn take_budget(
    reserved: &mut Option<OwnedSemaphorePermit>,
    budget: Option<&Arc<Semaphore>>,
    capacity: usize,
) -> Option<usize> {
    let Some(budget) = budget.filter(|_| capacity > 0) else {
        return Some(capacity);
    };
    if let Some(permit) = reserved {
        return Some(capacity.min(permit.num_permits()));
    }
    let permit = Arc::clone(budget)
        .try_acquire_many_owned(permits(capacity))
        .ok()?;
    let room = permit.num_permits();
    *reserved = Some(permit);
    Some(room)
}

/// `bytes` as a number of budget permits.
fn permits(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// `data`, holding `permit` (the connection's response budget taken for it) until the last
/// piece of it is written to the client or dropped with a reset stream.
///
/// The whole permit stays with the data even when the data is shorter: the data was read
/// into a buffer of the permit's size, which lives as long as the data does.
pub(super) fn budgeted(data: Bytes, permit: OwnedSemaphorePermit) -> Bytes {
    struct Budgeted {
        data: Bytes,
        _permit: OwnedSemaphorePermit,
    }
    impl AsRef<[u8]> for Budgeted {
        fn as_ref(&self) -> &[u8] {
            &self.data
        }
    }
    Bytes::from_owner(Budgeted {
        data,
        _permit: permit,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use h2::Reason;
    use pingora_http::ResponseHeader;
    use tokio::sync::{oneshot, Semaphore};

    use super::*;
    use crate::protocols::digest::Digest;
    use crate::protocols::http::v2::guard::{FrameGuard, H2Limits};
    use crate::protocols::http::v2::server::{handshake, HttpSession};
    use crate::protocols::http::ClientEvent;

    #[test]
    fn a_piece_holds_its_budget_until_its_last_slice_is_gone() {
        let budget = Arc::new(Semaphore::new(100));
        let permit = Arc::clone(&budget).try_acquire_many_owned(60).unwrap();
        let mut piece = budgeted(Bytes::from_static(&[7; 40]), permit);
        // The whole permit stays with the piece: its buffer was sized for all of it.
        assert_eq!(budget.available_permits(), 40);
        let head = piece.split_to(10);
        assert_eq!((&head[..], piece.len()), (&[7u8; 10][..], 30));
        drop(head);
        assert_eq!(budget.available_permits(), 40);
        drop(piece);
        assert_eq!(budget.available_permits(), 100);
    }

    #[test]
    fn room_is_what_both_the_stream_and_the_budget_allow() {
        let budget = Arc::new(Semaphore::new(100));
        let mut reserved = None;
        assert_eq!(take_budget(&mut reserved, None, 70), Some(70));
        assert!(reserved.is_none(), "no budget, nothing taken");
        assert_eq!(take_budget(&mut reserved, Some(&budget), 0), Some(0));
        assert_eq!(take_budget(&mut reserved, Some(&budget), 70), Some(70));
        assert_eq!(budget.available_permits(), 30);
        // What is reserved already answers, within the stream's capacity.
        assert_eq!(take_budget(&mut reserved, Some(&budget), 50), Some(50));
        assert_eq!(budget.available_permits(), 30);
        let mut other = None;
        assert_eq!(take_budget(&mut other, Some(&budget), 50), None);
        assert!(other.is_none());
        drop(reserved);
        assert_eq!(take_budget(&mut other, Some(&budget), 50), Some(50));
    }

    /// An HTTP/2 stream of a server connection whose budget is `budget` bytes, over a pipe
    /// that holds 4 KiB, and the client's connection: its reads stop when `pause` fires.
    async fn stream(budget: usize) -> (HttpSession, Arc<Guard>, oneshot::Sender<()>) {
        let (client_io, server_io) = tokio::io::duplex(4096);
        let limits = H2Limits {
            max_queued_response_bytes: Some(budget),
            ..H2Limits::default()
        };
        let (server_io, guard) = FrameGuard::wrap(Box::new(server_io), limits);
        let (pause, paused) = oneshot::channel::<()>();
        let client = tokio::spawn(async move {
            let (mut send, conn) = h2::client::Builder::new()
                .initial_window_size(1 << 24)
                .initial_connection_window_size(1 << 24)
                .handshake::<_, Bytes>(client_io)
                .await
                .unwrap();
            let mut conn = Box::pin(conn);
            tokio::spawn(async move {
                tokio::select! {
                    _ = &mut conn => {}
                    _ = paused => std::future::pending::<()>().await,
                }
            });
            let request = http::Request::get("http://example.com/").body(()).unwrap();
            let (response, _) = send.send_request(request, true).unwrap();
            // Reading the body is the connection's job: its frames are taken from the pipe
            // as long as the connection runs.
            let body = response.await.unwrap().into_body();
            std::future::pending::<()>().await;
            drop(body);
        });
        let mut conn = handshake(server_io, None).await.unwrap();
        let digest = Arc::new(Digest::default());
        let mut session = HttpSession::from_h2_conn(&mut conn, digest)
            .await
            .unwrap()
            .unwrap();
        tokio::spawn(async move {
            while conn.accept().await.is_some() {}
            drop(client);
        });
        session.set_guard(Arc::clone(&guard));
        let head = ResponseHeader::build(200, None).unwrap();
        session
            .write_response_header(Box::new(head), false)
            .await
            .unwrap();
        (session, guard, pause)
    }

    /// Writes pieces of up to `piece` bytes while the stream has room; returns the bytes
    /// written.
    async fn fill(session: &mut HttpSession, piece: usize) -> usize {
        let mut written = 0;
        while let Some(room) = session.response_room(piece).filter(|&n| n > 0) {
            session
                .write_body(Bytes::from(vec![b'x'; room]), false)
                .await
                .unwrap();
            written += room;
        }
        written
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_holds_no_more_than_the_budget() {
        const BUDGET: usize = 32 << 10;
        let (mut session, guard, pause) = stream(BUDGET).await;
        pause.send(()).unwrap();
        let written = fill(&mut session, 16 << 10).await;
        // The budget, plus what the pipe and the `h2` write buffer took: far below the
        // stream's 400 KiB send buffer, which alone would have let it queue more.
        assert!(
            (BUDGET..=BUDGET + (24 << 10)).contains(&written),
            "wrote {written}"
        );
        let waited = tokio::time::timeout(
            Duration::from_millis(100),
            session.read_body_or_room(true, Some(16 << 10)),
        )
        .await;
        assert!(waited.is_err(), "no room while the client reads nothing");

        // A stream reset with its pieces queued gives their budget back at once, all but the
        // frame the connection is writing (it goes when the pipe takes it).
        let budget = guard.response_budget().unwrap();
        assert!(budget.available_permits() < 16 << 10);
        session.reset(Reason::CANCEL);
        drop(session);
        assert!(budget.available_permits() >= BUDGET - (16 << 10));
    }

    #[tokio::test]
    async fn room_comes_back_as_the_client_reads() {
        let (mut session, guard, _pause) = stream(32 << 10).await;
        let mut written = 0;
        // The client reads all along: far more than the budget goes through.
        while written < 1 << 20 {
            written += fill(&mut session, 16 << 10).await;
            match session.read_body_or_room(true, Some(16 << 10)).await {
                Ok(ClientEvent::ResponseRoom(n)) => assert!(n > 0),
                other => panic!("expected room, got {other:?}"),
            }
        }
        session.finish().await.unwrap();
        drop(session);
        let budget = guard.response_budget().unwrap();
        let full = 32 << 10;
        tokio::time::timeout(Duration::from_secs(5), async {
            while budget.available_permits() != full {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("every piece written gives its budget back");
    }
}
