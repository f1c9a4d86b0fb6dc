use std::sync::atomic::AtomicU8;
use std::sync::Mutex;

use super::*;

/// Bound on waiting for something that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(5);

/// A connection whose idle state the test sets, and which records its drop and its checks.
struct Conn {
    shared: Arc<ConnState>,
}

#[derive(Default)]
struct ConnState {
    /// 0 clean, 1 closed, 2 data, 3 failed.
    state: AtomicU8,
    dropped: AtomicBool,
    /// The `thorough` argument of every check, in order.
    checks: Mutex<Vec<bool>>,
}

impl Conn {
    fn new() -> (Self, Arc<ConnState>) {
        let shared = Arc::new(ConnState::default());
        (
            Conn {
                shared: Arc::clone(&shared),
            },
            shared,
        )
    }
}

impl ConnState {
    fn set(&self, state: IdleState) {
        let code = match state {
            IdleState::Clean => 0,
            IdleState::Closed => 1,
            IdleState::Data => 2,
            IdleState::Failed => 3,
        };
        self.state.store(code, Ordering::SeqCst);
    }

    fn dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }

    fn checks(&self) -> Vec<bool> {
        self.checks.lock().unwrap().clone()
    }
}

impl IdleCheck for Conn {
    fn check_idle(&mut self, thorough: bool) -> IdleState {
        self.shared.checks.lock().unwrap().push(thorough);
        match self.shared.state.load(Ordering::SeqCst) {
            0 => IdleState::Clean,
            1 => IdleState::Closed,
            2 => IdleState::Data,
            _ => IdleState::Failed,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.dropped.store(true, Ordering::SeqCst);
    }
}

fn meta(key: GroupKey, id: i32) -> ConnectionMeta {
    ConnectionMeta::new(key, id)
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PROMPTLY, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn released_connections_come_back_checked() {
    let pool = Arc::new(ConnectionPool::new(8));
    let (conn, state) = Conn::new();
    pool.release(&meta(1, 1), conn, None);
    assert_eq!(pool.idle_count(), 1);
    assert!(pool.get_checked(&2).is_none(), "other group");
    let conn = pool.get_checked(&1).expect("the released connection");
    assert_eq!(
        state.checks(),
        vec![false, false],
        "checked at release and at reuse"
    );
    assert!(pool.get_checked(&1).is_none());
    assert_eq!(pool.idle_count(), 0);
    drop(conn);
    assert!(state.dropped());
}

#[test]
fn bad_connections_are_not_pooled() {
    let pool = Arc::new(ConnectionPool::new(8));
    for (i, bad) in [IdleState::Closed, IdleState::Data, IdleState::Failed]
        .into_iter()
        .enumerate()
    {
        let (conn, state) = Conn::new();
        state.set(bad);
        pool.release(&meta(1, i as i32), conn, None);
        assert!(state.dropped(), "{bad:?} connection dropped at release");
    }
    assert_eq!(pool.idle_count(), 0);
    assert_eq!(pool.unexpected_data_count(), 1);

    let (conn, state) = Conn::new();
    pool.release(&meta(1, 9), conn, Some(Duration::ZERO));
    assert!(state.dropped(), "zero idle timeout: not kept");
    assert!(state.checks().is_empty(), "not even checked");
}

#[test]
fn connections_gone_bad_while_idle_are_skipped() {
    let pool = Arc::new(ConnectionPool::new(8));
    let (first, first_state) = Conn::new();
    let (second, second_state) = Conn::new();
    pool.release(&meta(1, 1), first, None);
    pool.release(&meta(1, 2), second, None);
    first_state.set(IdleState::Data);
    let conn = pool.get_checked(&1).expect("the clean one");
    assert!(
        first_state.dropped(),
        "the readable one is closed on the way"
    );
    assert!(!second_state.dropped());
    assert_eq!(pool.unexpected_data_count(), 1);
    drop(conn);
}

#[test]
fn long_idle_connections_get_a_thorough_check() {
    let pool = Arc::new(ConnectionPool::new(8));
    let (conn, state) = Conn::new();
    pool.release(&meta(1, 1), conn, None);
    std::thread::sleep(THOROUGH_CHECK_AFTER + Duration::from_millis(10));
    let _conn = pool.get_checked(&1).expect("still clean");
    assert_eq!(state.checks(), vec![false, true]);
}

#[test]
fn expired_connections_are_never_handed_out() {
    let pool = Arc::new(ConnectionPool::new(8));
    let (conn, state) = Conn::new();
    pool.release(&meta(1, 1), conn, Some(Duration::from_millis(20)));
    std::thread::sleep(Duration::from_millis(30));
    assert!(pool.get_checked(&1).is_none());
    assert!(state.dropped());
    assert_eq!(state.checks(), vec![false], "not checked once expired");
}

#[test]
fn eviction_drops_the_least_recently_released() {
    let pool = Arc::new(ConnectionPool::new(2));
    let states: Vec<_> = (0..3)
        .map(|i| {
            let (conn, state) = Conn::new();
            pool.release(&meta(i % 2, i as i32), conn, None);
            state
        })
        .collect();
    assert!(states[0].dropped(), "the oldest is evicted");
    assert!(!states[1].dropped() && !states[2].dropped());
    assert_eq!(pool.idle_count(), 2);
    assert!(pool.get_checked(&0).is_some());
    assert!(pool.get_checked(&1).is_some());
}

/// Without a runtime there is no sweeper; `sweep` does its work on demand.
#[test]
fn sweep_closes_what_timed_out_or_went_bad_and_keeps_the_rest() {
    let pool = Arc::new(ConnectionPool::new(8));
    let (short, short_state) = Conn::new();
    let (bad, bad_state) = Conn::new();
    let (kept, kept_state) = Conn::new();
    pool.release(&meta(1, 1), short, Some(Duration::from_millis(10)));
    pool.release(&meta(2, 2), bad, None);
    pool.release(&meta(3, 3), kept, Some(Duration::from_secs(60)));
    let (evicted, _watch_use) = pool.put(&meta(4, 4), Conn::new().0);
    bad_state.set(IdleState::Closed);
    std::thread::sleep(Duration::from_millis(20));

    let earliest = pool.sweep().expect("the kept connection's deadline");
    assert!(earliest > Instant::now() + Duration::from_secs(50));
    assert!(short_state.dropped() && bad_state.dropped());
    assert!(!kept_state.dropped());
    assert_eq!(
        pool.idle_count(),
        2,
        "the swept-mode survivor and the watched one"
    );
    assert!(
        pool.get(&4).is_some(),
        "connections with a watcher are left to it"
    );
    drop(evicted);
}

#[tokio::test]
async fn the_sweeper_closes_connections_at_their_deadline() {
    let pool = Arc::new(ConnectionPool::new(8));
    let (long, long_state) = Conn::new();
    pool.release(&meta(1, 1), long, Some(Duration::from_secs(60)));
    // A shorter deadline arriving later wakes the sleeping sweeper early.
    tokio::task::yield_now().await;
    let (short, short_state) = Conn::new();
    let start = Instant::now();
    pool.release(&meta(1, 2), short, Some(Duration::from_millis(100)));
    eventually("closing at the deadline", || short_state.dropped()).await;
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(100), "not before: {took:?}");
    assert!(
        took < SWEEP_INTERVAL,
        "at the deadline, not the next round: {took:?}"
    );
    assert!(!long_state.dropped());
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn the_sweeper_closes_connections_the_peer_closed() {
    let pool = Arc::new(ConnectionPool::new(8));
    let (conn, state) = Conn::new();
    pool.release(&meta(1, 1), conn, None);
    state.set(IdleState::Closed);
    eventually("the sweeper closing it", || state.dropped()).await;
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn dropping_the_pool_closes_its_connections_at_once() {
    let pool = Arc::new(ConnectionPool::new(8));
    let (conn, state) = Conn::new();
    pool.release(&meta(1, 1), conn, None);
    tokio::task::yield_now().await; // the sweeper is asleep now
    drop(pool);
    assert!(
        state.dropped(),
        "the sweeper does not hold the pool while asleep"
    );
}

/// The sweeper runs on the runtime of the first release; when that runtime goes, the next
/// release on another one starts a new sweeper.
#[test]
fn a_new_sweeper_starts_when_its_runtime_is_gone() {
    let pool = Arc::new(ConnectionPool::new(8));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        pool.release(&meta(1, 1), Conn::new().0, None);
        tokio::task::yield_now().await;
    });
    assert!(pool.sweeper.shared.running.load(Ordering::SeqCst));
    drop(runtime);
    assert!(!pool.sweeper.shared.running.load(Ordering::SeqCst));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (conn, state) = Conn::new();
        pool.release(&meta(2, 2), conn, None);
        state.set(IdleState::Failed);
        eventually("the new sweeper closing it", || state.dropped()).await;
    });
}

#[test]
fn stress_release_get_and_sweep_account_for_every_connection() {
    let pool = Arc::new(ConnectionPool::new(16));
    let states = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let pool = Arc::clone(&pool);
            let states = &states;
            scope.spawn(move || {
                for i in 0..2_000u64 {
                    let key = (t + i) % 5;
                    let conn = pool.get_checked(&key).unwrap_or_else(|| {
                        let (conn, state) = Conn::new();
                        if i % 7 == 0 {
                            state.set(IdleState::Closed);
                        }
                        states.lock().unwrap().push(state);
                        conn
                    });
                    pool.release(&meta(key, i as i32), conn, None);
                    if i % 100 == 0 {
                        pool.sweep();
                    }
                }
            });
        }
    });
    let idle = pool.idle_count();
    assert!(idle <= 16);
    let mut held = Vec::new();
    for key in 0..5 {
        while let Some(conn) = pool.get_checked(&key) {
            held.push(conn);
        }
    }
    assert_eq!(held.len(), idle, "every idle connection is reachable");
    let states = states.into_inner().unwrap();
    let alive = states.iter().filter(|s| !s.dropped()).count();
    assert_eq!(alive, held.len(), "every other connection was dropped");
    drop(held);
    assert!(states.iter().all(|s| s.dropped()));
}
