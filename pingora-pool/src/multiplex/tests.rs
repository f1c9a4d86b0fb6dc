use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

#[derive(Default)]
struct Conn {
    id: usize,
    streams: AtomicUsize,
    closed: AtomicBool,
    keep: bool,
}

impl Conn {
    fn new(id: usize) -> Arc<Self> {
        Arc::new(Conn {
            id,
            ..Conn::default()
        })
    }
}

impl Multiplexed for Arc<Conn> {
    fn in_use(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
    fn keep_closed(&self) -> bool {
        self.keep
    }
}

/// Takes a stream on a connection with fewer than `max` streams; returns its id.
fn take(pool: &MultiplexPool<Arc<Conn>>, key: GroupKey, max: usize) -> Option<usize> {
    pool.find(
        key,
        |_| {},
        |conn| {
            (conn.in_use() < max).then(|| {
                conn.streams.fetch_add(1, Ordering::SeqCst);
                conn.id
            })
        },
    )
}

#[test]
fn busy_connections_are_filled_first() {
    let pool = MultiplexPool::new(4);
    let idle = Conn::new(1);
    let busy = Conn::new(2);
    busy.streams.store(1, Ordering::SeqCst);
    pool.add(7, Arc::clone(&idle));
    pool.add(7, Arc::clone(&busy));
    assert_eq!(take(&pool, 7, 3), Some(2));
    assert_eq!(take(&pool, 7, 3), Some(2));
    assert_eq!(take(&pool, 7, 3), Some(1), "the busy one is full");
    assert_eq!(take(&pool, 8, 3), None, "another group");
    assert_eq!(pool.connections(7), 2);
}

#[test]
fn closed_connections_are_seen_then_dropped() {
    let pool = MultiplexPool::new(4);
    let closed = Conn::new(1);
    pool.add(7, Arc::clone(&closed));
    pool.add(7, Conn::new(2));
    closed.close();
    let mut seen = Vec::new();
    let found = pool.find(7, |c| seen.push(c.id), |c| Some(c.id));
    assert_eq!(found, Some(2));
    assert_eq!(seen, vec![1, 2]);
    assert_eq!(Arc::strong_count(&closed), 1, "dropped from the pool");
    assert_eq!(pool.connections(7), 1);
}

#[test]
fn adding_sweeps_closed_connections_of_every_group_but_those_kept() {
    let pool = MultiplexPool::new(4);
    let gone = Conn::new(1);
    let kept = Arc::new(Conn {
        id: 2,
        keep: true,
        ..Conn::default()
    });
    pool.add(1, Arc::clone(&gone));
    pool.add(2, Arc::clone(&kept));
    gone.close();
    kept.close();
    pool.add(3, Conn::new(3));
    assert_eq!(Arc::strong_count(&gone), 1);
    assert_eq!(Arc::strong_count(&kept), 2, "kept for what it tells");
    let mut seen = Vec::new();
    assert_eq!(pool.find(2, |c| seen.push(c.id), |c| Some(c.id)), None);
    assert_eq!(seen, vec![2]);
    assert_eq!(Arc::strong_count(&kept), 1, "dropped once seen");
}

#[test]
fn release_closes_idle_connections_beyond_the_limit() {
    let pool = MultiplexPool::new(1);
    let a = Conn::new(1);
    let b = Conn::new(2);
    pool.add(7, Arc::clone(&a));
    pool.add(7, Arc::clone(&b));
    b.streams.store(1, Ordering::SeqCst);
    pool.release(7, &b);
    assert!(!b.is_closed(), "still busy");
    b.streams.store(0, Ordering::SeqCst);
    pool.release(7, &b);
    assert!(b.is_closed(), "a second idle connection");
    pool.release(7, &a);
    assert!(!a.is_closed(), "the only idle one left");
    assert_eq!(pool.connections(7), 1);
}

#[tokio::test]
async fn connect_gate_lets_one_connect_and_the_others_wait() {
    let gate = Arc::new(ConnectGate::default());
    let Joined::First(guard) = gate.join(1).await else {
        panic!("the first caller connects");
    };
    assert!(
        matches!(gate.join(2).await, Joined::First(_)),
        "other groups are free"
    );
    let waiter = tokio::spawn({
        let gate = Arc::clone(&gate);
        async move { matches!(gate.join(1).await, Joined::Waited) }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished(), "waits while the attempt runs");
    drop(guard); // also what a cancelled first caller does
    let waited = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .unwrap();
    assert!(waited);
    assert!(matches!(gate.join(1).await, Joined::First(_)), "free again");
}
