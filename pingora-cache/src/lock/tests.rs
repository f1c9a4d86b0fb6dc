use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn key(name: &str) -> CacheKey {
    CacheKey::new("ns", name, "user")
}

fn write(locked: Locked) -> WritePermit {
    match locked {
        Locked::Write(permit) => permit,
        Locked::Read(_) => panic!("expected the write permit"),
    }
}

fn read(locked: Locked) -> ReadLock {
    match locked {
        Locked::Read(lock) => lock,
        Locked::Write(_) => panic!("expected a read lock"),
    }
}

#[test]
fn first_request_writes_others_read_and_release_frees_the_key() {
    let lock = CacheLock::new(Duration::from_secs(10));
    let permit = write(lock.lock(&key("a"), false));
    assert!(!lock.lock(&key("a"), false).is_write());
    // Another key, and another variant of the same key, have locks of their own.
    assert!(lock.lock(&key("b"), false).is_write());
    let mut variant = key("a");
    variant.set_variance_key([7; 16]);
    assert!(lock.lock(&variant, false).is_write());

    lock.release(&key("a"), permit, LockStatus::Done);
    let again = lock.lock(&key("a"), true);
    assert!(again.is_write());
    if let Locked::Write(permit) = again {
        assert!(permit.stale_writer());
        lock.release(&key("a"), permit, LockStatus::Done);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_and_200_readers_all_see_done() {
    let lock: &'static CacheLock = Box::leak(CacheLock::new_boxed(Duration::from_secs(30)));
    let permit = write(lock.lock(&key("herd"), false));
    let readers: Vec<_> = (0..200)
        .map(|_| {
            let reader = read(lock.lock(&key("herd"), false));
            assert_eq!(reader.lock_status(), LockStatus::Waiting);
            tokio::spawn(async move { reader.wait().await })
        })
        .collect();
    tokio::task::yield_now().await;
    lock.release(&key("herd"), permit, LockStatus::Done);
    for reader in readers {
        assert_eq!(reader.await.unwrap(), LockStatus::Done);
    }
    assert!(lock.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_error_lets_readers_compete_again() {
    let lock: &'static CacheLock = Box::leak(CacheLock::new_boxed(Duration::from_secs(30)));
    let permit = write(lock.lock(&key("t"), false));
    let writers = &*Box::leak(Box::new(AtomicUsize::new(0)));
    let readers: Vec<_> = (0..20)
        .map(|_| {
            let reader = read(lock.lock(&key("t"), false));
            tokio::spawn(async move {
                assert_eq!(reader.wait().await, LockStatus::TransientError);
                // Recompete: exactly one becomes the new writer, the rest wait on it.
                match lock.lock(&key("t"), false) {
                    Locked::Write(permit) => {
                        writers.fetch_add(1, Ordering::SeqCst);
                        Some(permit)
                    }
                    Locked::Read(_) => None,
                }
            })
        })
        .collect();
    lock.release(&key("t"), permit, LockStatus::TransientError);
    let mut permits = Vec::new();
    for reader in readers {
        permits.extend(reader.await.unwrap());
    }
    assert_eq!(writers.load(Ordering::SeqCst), 1);
    assert_eq!(lock.len(), 1);
    for permit in permits {
        lock.release(&key("t"), permit, LockStatus::Done);
    }
    assert!(lock.is_empty());
}

#[tokio::test(start_paused = true)]
async fn writer_past_age_timeout_is_replaced() {
    let lock = CacheLock::new(Duration::from_secs(2));
    let old = write(lock.lock(&key("age"), false));
    let reader = read(lock.lock(&key("age"), false));
    let started = Instant::now();
    assert_eq!(reader.wait().await, LockStatus::AgeTimeout);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert!(reader.expired());
    assert_eq!(reader.lock_status(), LockStatus::AgeTimeout);

    // The next request takes over; the late writer's release leaves its successor alone.
    let new = write(lock.lock(&key("age"), false));
    lock.release(&key("age"), old, LockStatus::Done);
    assert_eq!(lock.len(), 1);
    let waiting = read(lock.lock(&key("age"), false));
    assert_eq!(waiting.lock_status(), LockStatus::Waiting);
    lock.release(&key("age"), new, LockStatus::Done);
    assert_eq!(waiting.wait().await, LockStatus::Done);
    assert!(lock.is_empty());
}

#[tokio::test(start_paused = true)]
async fn reader_gives_up_after_its_wait_timeout() {
    let lock = CacheLock::new(Duration::from_secs(10));
    let permit = write(lock.lock(&key("w"), false));
    let reader = read(lock.lock(&key("w"), false));
    let started = Instant::now();
    let wait = Some(Duration::from_secs(1));
    assert_eq!(
        reader.wait_with_timeout(wait).await,
        LockStatus::WaitTimeout
    );
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    // The timeout concerns that reader only: the lock is still held.
    assert_eq!(reader.lock_status(), LockStatus::Waiting);
    assert!(!lock.lock(&key("w"), false).is_write());

    // A wait timeout longer than the age timeout ends with the age timeout.
    let overrides = CacheOptionOverrides {
        wait_timeout: Some(Duration::from_secs(60)),
    };
    assert_eq!(
        reader.wait_with_timeout(overrides.wait_timeout).await,
        LockStatus::AgeTimeout
    );
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    drop(permit);
}

#[tokio::test]
async fn dropped_permit_is_dangling_and_leaves_no_entry() {
    let lock = CacheLock::new(Duration::from_secs(10));
    let permit = write(lock.lock(&key("d"), false));
    let reader = read(lock.lock(&key("d"), false));
    drop(permit);
    assert_eq!(reader.wait().await, LockStatus::Dangling);
    assert_eq!(reader.lock_status(), LockStatus::Dangling);
    assert!(lock.is_empty());
    assert!(lock.lock(&key("d"), false).is_write());
}

#[tokio::test]
async fn released_status_is_seen_without_waiting() {
    let lock = CacheLock::new(Duration::from_secs(10));
    let permit = write(lock.lock(&key("g"), false));
    let reader = read(lock.lock(&key("g"), false));
    assert!(reader.locked());
    lock.release(&key("g"), permit, LockStatus::GiveUp);
    assert!(!reader.locked());
    assert_eq!(reader.wait().await, LockStatus::GiveUp);
    // WaitTimeout is a reader's outcome, never a lock's: a writer using it gives up.
    let mut permit = write(lock.lock(&key("g"), false));
    let reader = read(lock.lock(&key("g"), false));
    permit.unlock(LockStatus::WaitTimeout);
    assert_eq!(reader.lock_status(), LockStatus::GiveUp);
    drop(permit);
    assert_eq!(reader.lock_status(), LockStatus::GiveUp);
}

#[test]
fn many_keys_leave_no_entries_after_release() {
    let lock = CacheLock::new(Duration::from_secs(10));
    let keys: Vec<_> = (0..1000).map(|n| key(&n.to_string())).collect();
    let permits: Vec<_> = keys.iter().map(|k| write(lock.lock(k, false))).collect();
    assert_eq!(lock.len(), 1000);
    for (k, permit) in keys.iter().zip(permits) {
        lock.release(k, permit, LockStatus::Done);
    }
    assert!(lock.is_empty());
}

#[test]
fn permit_from_elsewhere_is_released_by_key() {
    let (permit, stub) = WritePermit::new(Duration::from_secs(1), false, Extensions::new());
    let reader = stub.read_lock();
    let lock = CacheLock::new(Duration::from_secs(10));
    lock.release(&key("x"), permit, LockStatus::Done);
    assert_eq!(reader.lock_status(), LockStatus::Done);
}

#[test]
fn status_numbers_round_trip() {
    for status in [
        LockStatus::Waiting,
        LockStatus::Done,
        LockStatus::TransientError,
        LockStatus::GiveUp,
        LockStatus::Dangling,
        LockStatus::WaitTimeout,
        LockStatus::AgeTimeout,
    ] {
        assert_eq!(LockStatus::from(u8::from(status)), status);
        assert_eq!(status.to_string(), status.as_str());
    }
    assert_eq!(LockStatus::from(200), LockStatus::GiveUp);
    assert_eq!(
        CacheLock::new(Duration::ZERO).custom_lock_status("x"),
        LockStatus::GiveUp
    );
}

#[test]
fn lock_types_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CacheLock>();
    send_sync::<ReadLock>();
    send_sync::<WritePermit>();
    send_sync::<Locked>();
    let shared: &'static CacheKeyLockImpl = Box::leak(CacheLock::new_boxed(Duration::ZERO));
    // A zero age timeout: every lock is expired at once, so every request writes.
    let first = shared.lock(&key("z"), false);
    assert!(shared.lock(&key("z"), false).is_write());
    drop(first);
    let overrides = CacheOptionOverrides::default();
    assert_eq!(overrides.wait_timeout, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_one_writer_per_key_under_contention() {
    const KEYS: usize = 8;
    let lock: &'static CacheLock = Box::leak(CacheLock::new_boxed(Duration::from_secs(30)));
    let writing: &'static [AtomicUsize; KEYS] =
        Box::leak(Box::new(std::array::from_fn(|_| AtomicUsize::new(0))));
    let tasks: Vec<_> = (0..400)
        .map(|n| {
            tokio::spawn(async move {
                let k = key(&(n % KEYS).to_string());
                let mut rounds = 0;
                loop {
                    rounds += 1;
                    match lock.lock(&k, false) {
                        Locked::Write(permit) => {
                            let active = &writing[n % KEYS];
                            assert_eq!(active.fetch_add(1, Ordering::SeqCst), 0);
                            tokio::task::yield_now().await;
                            active.fetch_sub(1, Ordering::SeqCst);
                            // Every third writer fails, and its readers try again.
                            let status = if n % 3 == 0 {
                                LockStatus::TransientError
                            } else {
                                LockStatus::Done
                            };
                            lock.release(&k, permit, status);
                            return rounds;
                        }
                        Locked::Read(reader) => match reader.wait().await {
                            LockStatus::Done => return rounds,
                            LockStatus::TransientError => continue,
                            other => panic!("unexpected {other:?}"),
                        },
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap() >= 1);
    }
    assert!(lock.is_empty());
}
