use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex as StdMutex;
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use std::time::Duration;

use tokio::io::AsyncRead;
use tokio::sync::watch;

use super::*;

/// Bound on waiting for something that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(5);

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// Polls `future` once.
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let waker = Waker::from(Arc::new(NoopWake));
    pin!(future).poll(&mut Context::from_waker(&waker))
}

/// Whether `notify` holds a permit, i.e. the connection was evicted. Leaves the permit.
fn fired(notify: &Notify) -> bool {
    let fired = poll_once(notify.notified()).is_ready();
    if fired {
        notify.notify_one();
    }
    fired
}

/// What became of a connection, seen through the receiver `put` returned.
fn pick_up_state(rx: &mut oneshot::Receiver<bool>) -> Option<bool> {
    match rx.try_recv() {
        Ok(picked_up) => Some(picked_up),
        Err(oneshot::error::TryRecvError::Empty) => None,
        // The pool dropped the connection without handing it out.
        Err(oneshot::error::TryRecvError::Closed) => Some(false),
    }
}

/// A pooled value that records its drop.
#[derive(Debug)]
struct Tracked {
    id: usize,
    drops: Arc<[AtomicU8]>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops[self.id].fetch_add(1, Ordering::SeqCst);
    }
}

fn tracked(n: usize) -> (Vec<Tracked>, Arc<[AtomicU8]>) {
    let drops: Arc<[AtomicU8]> = (0..n).map(|_| AtomicU8::new(0)).collect();
    let values = (0..n)
        .map(|id| Tracked {
            id,
            drops: Arc::clone(&drops),
        })
        .collect();
    (values, drops)
}

fn meta(key: GroupKey, id: i32) -> ConnectionMeta {
    ConnectionMeta::new(key, id)
}

// --- get / put ---

#[test]
fn get_returns_connections_of_the_right_group() {
    let pool = ConnectionPool::new(10);
    pool.put(&meta(101, 1), "a1");
    pool.put(&meta(102, 2), "b2");
    pool.put(&meta(101, 3), "a3");
    assert_eq!(pool.get(&102), Some("b2"));
    assert_eq!(pool.get(&102), None);
    let mut got = [pool.get(&101), pool.get(&101)];
    got.sort();
    assert_eq!(got, [Some("a1"), Some("a3")]);
    assert_eq!(pool.get(&101), None);
    assert_eq!(pool.get(&999), None, "unknown group");
    assert_eq!(pool.idle_count(), 0);
}

#[test]
fn hot_queue_serves_in_release_order() {
    let pool = ConnectionPool::new(100);
    for id in 0..10 {
        pool.put(&meta(7, id), id);
    }
    let got: Vec<_> = std::iter::from_fn(|| pool.get(&7)).collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[test]
fn overflow_serves_newest_first_after_the_hot_queue() {
    let pool = ConnectionPool::new(100);
    for id in 0..24 {
        pool.put(&meta(7, id), id);
    }
    assert_eq!(pool.idle_count(), 24);
    let got: Vec<_> = std::iter::from_fn(|| pool.get(&7)).collect();
    let mut expected: Vec<_> = (0..16).collect();
    expected.extend((16..24).rev());
    assert_eq!(got, expected);
    assert_eq!(pool.idle_count(), 0);
}

#[test]
fn get_tells_the_watcher() {
    let pool = ConnectionPool::new(4);
    let (evicted, mut picked_up) = pool.put(&meta(1, 1), "conn");
    assert_eq!(pick_up_state(&mut picked_up), None, "still idle");
    assert_eq!(pool.get(&1), Some("conn"));
    assert_eq!(pick_up_state(&mut picked_up), Some(true));
    assert!(!fired(&evicted));
}

// --- eviction ---

#[test]
fn evicts_least_recently_released_across_groups() {
    let (mut values, drops) = tracked(4);
    let pool = ConnectionPool::new(3);
    let mut signals = Vec::new();
    for (i, key) in [1, 2, 1, 3].into_iter().enumerate() {
        let value = values.remove(0);
        signals.push(pool.put(&meta(key, i as i32), value));
        let evicted_now: Vec<_> = (0..=i)
            .filter(|&j| drops[j].load(Ordering::SeqCst) == 1)
            .collect();
        let expected: Vec<usize> = if i == 3 { vec![0] } else { vec![] };
        assert_eq!(evicted_now, expected, "after put {i}");
    }
    for (i, (evicted, picked_up)) in signals.iter_mut().enumerate() {
        assert_eq!(fired(evicted), i == 0, "eviction signal of {i}");
        let expected = if i == 0 { Some(false) } else { None };
        assert_eq!(pick_up_state(picked_up), expected, "pick-up signal of {i}");
    }
    assert_eq!(pool.idle_count(), 3);
    assert_eq!(pool.get(&1).map(|t| t.id), Some(2));
    assert!(pool.get(&1).is_none());
}

#[test]
fn eviction_skips_connections_already_picked_up() {
    let pool = ConnectionPool::new(2);
    let (a, _) = pool.put(&meta(1, 1), "a");
    let (b, _) = pool.put(&meta(2, 2), "b");
    assert_eq!(pool.get(&1), Some("a"));
    let (c, _) = pool.put(&meta(3, 3), "c");
    assert!(!fired(&b), "two idle: b and c");
    let (d, _) = pool.put(&meta(4, 4), "d");
    assert!(fired(&b), "b is now the least recently released");
    assert!(!fired(&a) && !fired(&c) && !fired(&d));
    assert_eq!(pool.get(&2), None);
    assert_eq!(pool.idle_count(), 2);
}

#[test]
fn eviction_from_the_hot_queue_and_from_the_overflow() {
    let pool = ConnectionPool::new(20);
    // Group 5: 0..16 in the hot queue, 16..20 in the overflow.
    let signals: Vec<_> = (0..20).map(|id| pool.put(&meta(5, id), id)).collect();
    let got: Vec<_> = (0..14).filter_map(|_| pool.get(&5)).collect();
    assert_eq!(got, (0..14).collect::<Vec<_>>());
    // Left idle, oldest first: 14, 15 (hot queue), 16..20 (overflow). Fill up with group 6.
    for id in 100..114 {
        pool.put(&meta(6, id), id);
    }
    assert_eq!(pool.idle_count(), 20);
    assert!(signals.iter().all(|(evicted, _)| !fired(evicted)));
    for id in 114..117 {
        pool.put(&meta(6, id), id);
    }
    let evicted: Vec<_> = (0..20).filter(|&i| fired(&signals[i].0)).collect();
    assert_eq!(evicted, vec![14, 15, 16]);
    assert_eq!(pool.idle_count(), 20);
    let left: Vec<_> = std::iter::from_fn(|| pool.get(&5)).collect();
    assert_eq!(left, vec![19, 18, 17], "overflow: newest first");
}

#[test]
fn size_zero_keeps_nothing() {
    let (mut values, drops) = tracked(1);
    let pool = ConnectionPool::new(0);
    let (evicted, mut picked_up) = pool.put(&meta(1, 1), values.remove(0));
    assert_eq!(drops[0].load(Ordering::SeqCst), 1, "dropped at once");
    assert!(fired(&evicted));
    assert_eq!(pick_up_state(&mut picked_up), Some(false));
    assert!(pool.get(&1).is_none());
    assert_eq!(pool.idle_count(), 0);
}

#[test]
fn pop_closed_removes_by_id() {
    let (values, drops) = tracked(3);
    let pool = ConnectionPool::new(10);
    for value in values {
        let id = value.id as i32;
        pool.put(&meta(1, id), value);
    }
    pool.pop_closed(&meta(1, 1));
    assert_eq!(drops[1].load(Ordering::SeqCst), 1);
    pool.pop_closed(&meta(1, 1));
    pool.pop_closed(&meta(2, 0));
    assert_eq!(pool.idle_count(), 2);
    let mut left: Vec<_> = std::iter::from_fn(|| pool.get(&1).map(|t| t.id)).collect();
    left.sort();
    assert_eq!(left, vec![0, 2]);
}

#[test]
fn a_stale_watcher_never_closes_a_newer_connection_with_the_same_id() {
    let pool = ConnectionPool::new(10);
    let (old_evicted, _) = pool.put(&meta(1, 5), "old");
    assert_eq!(pool.get(&1), Some("old"));
    // The fd is closed and reused by a new connection, released under the same meta.
    let (new_evicted, _) = pool.put(&meta(1, 5), "new");
    pool.close_slot(1, &old_evicted);
    assert_eq!(pool.idle_count(), 1);
    pool.close_slot(1, &new_evicted);
    assert_eq!(pool.idle_count(), 0);
    assert_eq!(pool.get(&1), None);
}

#[test]
fn empty_groups_are_swept() {
    let pool = ConnectionPool::new(10);
    for key in 0..10_000u64 {
        pool.put(&meta(key, 1), key);
        assert_eq!(pool.get(&key), Some(key));
    }
    let groups: usize = pool.shards.iter().map(|s| s.read().groups.len()).sum();
    assert!(groups <= SHARDS * MIN_SWEEP, "{groups} groups kept");
    assert_eq!(pool.idle_count(), 0);
}

// --- idle watchers ---

/// A connected client/server TCP pair on 127.0.0.1.
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), server.unwrap().0)
}

type Shared<T> = Arc<Mutex<T>>;

/// Releases `stream` to `pool` and spawns its `idle_poll` watcher.
fn release<T>(
    pool: &Arc<ConnectionPool<Shared<T>>>,
    meta: ConnectionMeta,
    stream: T,
    timeout: Option<Duration>,
) -> JoinHandle<()>
where
    T: AsyncRead + Unpin + Send + 'static,
{
    let stream = Arc::new(Mutex::new(stream));
    let lock = Arc::clone(&stream).try_lock_owned().unwrap();
    let (evicted, picked_up) = pool.put(&meta, stream);
    let pool = Arc::clone(pool);
    tokio::spawn(async move {
        pool.idle_poll(lock, &meta, timeout, evicted, picked_up)
            .await
    })
}

async fn finishes(watcher: JoinHandle<()>) {
    tokio::time::timeout(PROMPTLY, watcher)
        .await
        .expect("watcher must finish")
        .expect("watcher must not panic");
}

/// Asserts the peer of a pooled stream sees it closed: the pool really dropped it.
async fn assert_closed_by_pool(mut server: TcpStream) {
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(PROMPTLY, server.read(&mut buf))
        .await
        .expect("client side must close");
    // A close with unread data in the client's buffer is a reset.
    match read {
        Ok(n) => assert_eq!(n, 0),
        Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
    }
}

#[tokio::test]
async fn idle_poll_closes_on_peer_eof() {
    let pool = Arc::new(ConnectionPool::new(10));
    let (client, server) = tcp_pair().await;
    let watcher = release(&pool, meta(1, 1), client, None);
    drop(server);
    finishes(watcher).await;
    assert!(pool.get(&1).is_none());
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn idle_poll_closes_on_unexpected_data() {
    let pool = Arc::new(ConnectionPool::new(10));
    let (client, mut server) = tcp_pair().await;
    let watcher = release(&pool, meta(1, 1), client, None);
    server.write_all(b"unsolicited").await.unwrap();
    finishes(watcher).await;
    assert!(pool.get(&1).is_none());
    assert_eq!(pool.idle_count(), 0);
    assert_closed_by_pool(server).await;
}

#[tokio::test(start_paused = true)]
async fn idle_poll_closes_after_the_idle_timeout() {
    let pool = Arc::new(ConnectionPool::new(10));
    let (client, _peer) = tokio::io::duplex(64);
    let start = tokio::time::Instant::now();
    let watcher = release::<DuplexStream>(&pool, meta(1, 1), client, Some(Duration::from_secs(60)));
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(pool.idle_count(), 1, "still idle before the timeout");
    finishes(watcher).await;
    assert!(start.elapsed() >= Duration::from_secs(60));
    assert!(pool.get(&1).is_none());
}

#[tokio::test]
async fn pick_up_ends_the_watcher_and_leaves_the_connection_usable() {
    let pool = Arc::new(ConnectionPool::new(10));
    let (client, mut server) = tcp_pair().await;
    let watcher = release(&pool, meta(1, 1), client, None);
    let stream = pool.get(&1).expect("idle connection");
    finishes(watcher).await;
    // The watcher released the lock; nothing was read from or done to the connection.
    let mut client = stream.lock().await;
    server.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn eviction_ends_the_watcher_and_closes_the_connection() {
    let pool = Arc::new(ConnectionPool::new(1));
    let (old_client, old_server) = tcp_pair().await;
    let (new_client, _new_server) = tcp_pair().await;
    let old_watcher = release(&pool, meta(1, 1), old_client, None);
    let _new_watcher = release(&pool, meta(2, 2), new_client, None);
    finishes(old_watcher).await;
    assert_closed_by_pool(old_server).await;
    assert!(pool.get(&1).is_none());
    assert!(pool.get(&2).is_some());
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_after_the_timeout() {
    let pool = Arc::new(ConnectionPool::new(10));
    let (_closed_tx, closed) = watch::channel(false);
    let m = meta(1, 1);
    let (evicted, picked_up) = pool.put(&m, "h2");
    let start = tokio::time::Instant::now();
    pool.idle_timeout(&m, Duration::from_secs(30), evicted, closed, picked_up)
        .await;
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert_eq!(pool.get(&1), None);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_when_the_connection_closes() {
    let pool = Arc::new(ConnectionPool::new(10));
    let (closed_tx, closed) = watch::channel(false);
    let m = meta(1, 1);
    let (evicted, picked_up) = pool.put(&m, "h2");
    let watcher = tokio::spawn({
        let pool = Arc::clone(&pool);
        let m = m.clone();
        async move {
            pool.idle_timeout(&m, Duration::from_secs(30), evicted, closed, picked_up)
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pool.idle_count(), 1);
    closed_tx.send(true).unwrap();
    finishes(watcher).await;
    assert_eq!(pool.get(&1), None);

    // Already closed when the watcher starts: closed at once.
    let (_tx, closed) = watch::channel(true);
    let (evicted, picked_up) = pool.put(&m, "h2-dead");
    let start = tokio::time::Instant::now();
    pool.idle_timeout(&m, Duration::from_secs(30), evicted, closed, picked_up)
        .await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(pool.get(&1), None);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_leaves_picked_up_and_evicted_connections_alone() {
    let pool = Arc::new(ConnectionPool::new(1));
    let (_closed_tx, closed) = watch::channel(false);
    let m = meta(1, 1);
    let (evicted, picked_up) = pool.put(&m, "first");
    assert_eq!(pool.get(&1), Some("first"));
    pool.idle_timeout(
        &m,
        Duration::from_secs(30),
        evicted,
        closed.clone(),
        picked_up,
    )
    .await;

    let (evicted, picked_up) = pool.put(&m, "second");
    pool.put(&meta(2, 2), "third"); // evicts "second"
    let start = tokio::time::Instant::now();
    pool.idle_timeout(&m, Duration::from_secs(30), evicted, closed, picked_up)
        .await;
    assert_eq!(start.elapsed(), Duration::ZERO, "returns at once");
    assert_eq!(pool.get(&2), Some("third"), "the survivor is untouched");
}

// --- concurrency ---

/// Many threads put and get across a few groups of a small pool. Every connection must end
/// up exactly once either with a getter or evicted, with matching signals.
#[test]
fn stress_put_get_accounts_for_every_connection() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 5_000;
    const N: usize = THREADS * PER_THREAD;
    let pool = Arc::new(ConnectionPool::<Tracked>::new(24));
    let (values, drops) = tracked(N);
    let values = StdMutex::new(values.into_iter().map(Some).collect::<Vec<_>>());
    let got: Arc<[AtomicBool]> = (0..N).map(|_| AtomicBool::new(false)).collect();

    let signals: Vec<Vec<_>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (pool, got, values) = (&pool, &got, &values);
                s.spawn(move || {
                    let mut signals = Vec::with_capacity(PER_THREAD);
                    for i in 0..PER_THREAD {
                        let id = t * PER_THREAD + i;
                        let value = values.lock().unwrap()[id].take().unwrap();
                        let key = (id % 5) as GroupKey;
                        signals.push((id, pool.put(&meta(key, id as i32), value)));
                        let wanted = ((id * 7) % 5) as GroupKey;
                        if let Some(conn) = pool.get(&wanted) {
                            assert!(!got[conn.id].swap(true, Ordering::SeqCst), "got twice");
                        }
                    }
                    signals
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    assert!(pool.idle_count() <= 24, "{} idle", pool.idle_count());
    let idle_before_drain = pool.idle_count();
    let mut drained = 0;
    for key in 0..5 {
        while let Some(conn) = pool.get(&key) {
            assert!(!got[conn.id].swap(true, Ordering::SeqCst), "got twice");
            drained += 1;
        }
    }
    assert_eq!(
        drained, idle_before_drain,
        "idle count matches the pool's content"
    );
    assert_eq!(pool.idle_count(), 0);

    for (id, (evicted, mut picked_up)) in signals.into_iter().flatten() {
        let was_got = got[id].load(Ordering::SeqCst);
        assert_eq!(
            fired(&evicted),
            !was_got,
            "connection {id}: got xor evicted"
        );
        assert_eq!(
            pick_up_state(&mut picked_up),
            Some(was_got),
            "connection {id}"
        );
        assert_eq!(
            drops[id].load(Ordering::SeqCst),
            1,
            "connection {id} dropped once"
        );
    }
}

/// Getters race idle watchers that close connections on timeout and the LRU evicting them:
/// no connection is both handed out and closed, and none leaks.
#[test]
fn stress_get_races_idle_close_and_eviction() {
    const N: usize = 4_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let pool = Arc::new(ConnectionPool::<Tracked>::new(64));
    let (values, drops) = tracked(N);
    let got: Arc<[AtomicBool]> = (0..N).map(|_| AtomicBool::new(false)).collect();
    let closed_or_evicted = Arc::new(AtomicUsize::new(0));

    rt.block_on(async {
        let (never_closed_tx, never_closed) = watch::channel(false);
        let mut watchers = Vec::with_capacity(N);
        let mut getters = Vec::with_capacity(N / 2);
        for value in values {
            let id = value.id;
            let m = meta((id % 3) as GroupKey, id as i32);
            let (evicted, picked_up) = pool.put(&m, value);
            let (pool2, closed) = (Arc::clone(&pool), never_closed.clone());
            watchers.push(tokio::spawn(async move {
                let timeout = Duration::from_micros((id % 50) as u64 * 20);
                pool2
                    .idle_timeout(&m, timeout, evicted, closed, picked_up)
                    .await;
            }));
            if id % 2 == 0 {
                let (pool2, got2) = (Arc::clone(&pool), Arc::clone(&got));
                getters.push(tokio::spawn(async move {
                    if let Some(conn) = pool2.get(&((id % 3) as GroupKey)) {
                        assert!(!got2[conn.id].swap(true, Ordering::SeqCst), "got twice");
                        // Still alive: the pool did not drop what it handed out.
                        assert_eq!(conn.drops[conn.id].load(Ordering::SeqCst), 0);
                    }
                }));
            }
        }
        for task in watchers.into_iter().chain(getters) {
            task.await.unwrap();
        }
        drop(never_closed_tx);
    });

    // Every watcher has returned: nothing is idle any more.
    assert_eq!(pool.idle_count(), 0);
    for id in 0..N {
        assert_eq!(
            drops[id].load(Ordering::SeqCst),
            1,
            "connection {id} dropped once"
        );
        if !got[id].load(Ordering::SeqCst) {
            closed_or_evicted.fetch_add(1, Ordering::Relaxed);
        }
    }
    assert!(closed_or_evicted.load(Ordering::Relaxed) > 0);
}
