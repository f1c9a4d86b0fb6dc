//! `RTCache`: coalescing, errors, lock age and timeout, stale reads and background refresh.
//! Most tests run on tokio's paused clock: lookups "take" virtual seconds, nothing sleeps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use pingora_error::{ErrorTrait, ErrorType};
use pingora_memory_cache::{CacheStatus, Lookup, MultiLookup, RTCache};
use tokio::time::{advance, Instant};

const SECOND: Duration = Duration::from_secs(1);

/// What a lookup does, handed to it as `extra`; it counts the calls.
#[derive(Clone, Default)]
struct Backend {
    calls: Arc<AtomicUsize>,
    delay: Duration,
    fail: bool,
    ttl: Option<Duration>,
}

impl Backend {
    fn slow(delay: Duration) -> Self {
        Backend {
            delay,
            ..Backend::default()
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// The value of key `k` is `k * 10 + the number of the call`.
struct Source;

#[async_trait]
impl Lookup<u64, u64, Backend> for Source {
    async fn lookup(
        key: &u64,
        extra: Option<&Backend>,
    ) -> Result<(u64, Option<Duration>), Box<dyn ErrorTrait + Send + Sync>> {
        let backend = extra.expect("tests pass a backend");
        let call = backend.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(backend.delay).await;
        if backend.fail {
            return Err("backend down".into());
        }
        Ok((key * 10 + call as u64, backend.ttl))
    }
}

#[async_trait]
impl MultiLookup<u64, u64, Backend> for Source {
    async fn multi_lookup(
        keys: &[&u64],
        extra: Option<&Backend>,
    ) -> Result<Vec<(u64, Option<Duration>)>, Box<dyn ErrorTrait + Send + Sync>> {
        let backend = extra.expect("tests pass a backend");
        backend.calls.fetch_add(1, Ordering::SeqCst);
        if backend.fail {
            return Err("backend down".into());
        }
        // `ttl` set means "answer one value short", to test the length check.
        let short = usize::from(backend.ttl.is_some());
        Ok(keys[short..].iter().map(|k| (**k * 100, None)).collect())
    }
}

type Cache = RTCache<u64, u64, Source, Backend>;

#[tokio::test(start_paused = true)]
async fn miss_then_hit() {
    let cache = Cache::new(10, None, None);
    let backend = Backend::default();
    let (value, status) = cache.get(&1, None, Some(&backend)).await;
    assert_eq!((value.unwrap(), status), (11, CacheStatus::Miss));
    let (value, status) = cache.get(&1, None, Some(&backend)).await;
    assert_eq!((value.unwrap(), status), (11, CacheStatus::Hit));
    assert_eq!(backend.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn two_hundred_concurrent_gets_share_one_lookup() {
    let cache = Cache::new(10, None, None);
    let backend = Backend::slow(SECOND);
    let results = join_all((0..200).map(|_| cache.get(&7, None, Some(&backend)))).await;
    assert_eq!(backend.calls(), 1);
    let misses = results
        .iter()
        .filter(|(_, s)| *s == CacheStatus::Miss)
        .count();
    let lock_hits = results
        .iter()
        .filter(|(_, s)| *s == CacheStatus::LockHit)
        .count();
    assert_eq!((misses, lock_hits), (1, 199));
    assert!(results.iter().all(|(v, _)| *v.as_ref().unwrap() == 71));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_holds_across_threads() {
    let cache = Arc::new(Cache::new(10, None, None));
    // Real time here: the lookup takes long enough for every task to start meanwhile.
    let backend = Backend::slow(Duration::from_millis(200));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (cache, backend) = (cache.clone(), backend.clone());
            tokio::spawn(async move { cache.get(&3, None, Some(&backend)).await.0.unwrap() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 31);
    }
    assert_eq!(backend.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_error_reaches_every_waiter_and_nothing_is_stored() {
    let cache = Cache::new(10, None, None);
    let failing = Backend {
        fail: true,
        ..Backend::slow(SECOND)
    };
    let results = join_all((0..50).map(|_| cache.get(&1, None, Some(&failing)))).await;
    assert_eq!(failing.calls(), 1, "one lookup for all");
    for (result, status) in results {
        let error = result.unwrap_err();
        assert_eq!(error.etype, ErrorType::Custom("RTCache: lookup error"));
        assert_eq!(error.cause.as_ref().unwrap().to_string(), "backend down");
        assert_eq!(status, CacheStatus::Miss);
    }
    // Nothing was stored: the next get looks up again, and succeeds now.
    let working = Backend::default();
    let (value, status) = cache.get(&1, None, Some(&working)).await;
    assert_eq!((value.unwrap(), status), (11, CacheStatus::Miss));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_times_out_looks_up_alone() {
    let cache = Cache::new(10, None, Some(SECOND));
    let backend = Backend::slow(10 * SECOND);
    let start = Instant::now();
    let leader = cache.get(&2, None, Some(&backend));
    let waiter = async {
        let result = cache.get(&2, None, Some(&backend)).await;
        (result, start.elapsed())
    };
    let ((lead, lead_status), ((wait, wait_status), waited)) = tokio::join!(leader, waiter);
    assert_eq!((lead.unwrap(), lead_status), (21, CacheStatus::Miss));
    // The waiter gave up after 1 s and did its own 10 s lookup (the second call).
    assert_eq!((wait.unwrap(), wait_status), (22, CacheStatus::Miss));
    assert_eq!(waited, 11 * SECOND);
    assert_eq!(backend.calls(), 2);
    // The leader's value is the one stored.
    assert_eq!(cache.get(&2, None, None).await.0.unwrap(), 21);
}

#[tokio::test(start_paused = true)]
async fn a_lookup_older_than_lock_age_collects_no_more_waiters() {
    let cache = Cache::new(10, Some(SECOND), None);
    let backend = Backend::slow(10 * SECOND);
    let first = cache.get(&4, None, Some(&backend));
    let second = async {
        // Two seconds in, the first lookup is too old to wait for: this one leads anew.
        tokio::time::sleep(2 * SECOND).await;
        cache.get(&4, None, Some(&backend)).await
    };
    let third = async {
        // Half a second later, the second lookup is young: wait for it.
        tokio::time::sleep(2 * SECOND + SECOND / 2).await;
        cache.get(&4, None, Some(&backend)).await
    };
    let ((a, a_status), (b, b_status), (c, c_status)) = tokio::join!(first, second, third);
    assert_eq!((a.unwrap(), a_status), (41, CacheStatus::Miss));
    assert_eq!((b.unwrap(), b_status), (42, CacheStatus::Miss));
    assert_eq!((c.unwrap(), c_status), (42, CacheStatus::LockHit));
    assert_eq!(backend.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn waiters_of_an_abandoned_lookup_look_up_themselves() {
    let cache = Cache::new(10, None, None);
    let backend = Backend::slow(10 * SECOND);
    // The leader's caller gives up after 1 s, dropping its lookup.
    let leader = tokio::time::timeout(SECOND, cache.get(&5, None, Some(&backend)));
    let waiter = cache.get(&5, None, Some(&backend));
    let (abandoned, (value, status)) = tokio::join!(leader, waiter);
    assert!(abandoned.is_err());
    assert_eq!((value.unwrap(), status), (52, CacheStatus::Miss));
    assert_eq!(backend.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn ttl_from_the_lookup_wins_over_the_default() {
    let cache = Cache::new(10, None, None);
    let backend = Backend {
        ttl: Some(SECOND),
        ..Backend::default()
    };
    assert_eq!(
        cache
            .get(&1, Some(100 * SECOND), Some(&backend))
            .await
            .0
            .unwrap(),
        11
    );
    advance(SECOND).await;
    let (value, status) = cache.get(&1, Some(100 * SECOND), Some(&backend)).await;
    assert_eq!((value.unwrap(), status), (12, CacheStatus::Expired));
    // Without a TTL from the lookup, the one given to `get` applies.
    let plain = Backend::default();
    assert_eq!(
        cache.get(&2, Some(SECOND), Some(&plain)).await.0.unwrap(),
        21
    );
    advance(SECOND).await;
    assert_eq!(
        cache.get(&2, None, Some(&plain)).await.1,
        CacheStatus::Expired
    );
}

#[tokio::test(start_paused = true)]
async fn get_stale_serves_within_the_stale_ttl_only() {
    let cache = Cache::new(10, None, None);
    let backend = Backend::default();
    assert_eq!(
        cache.get(&1, Some(SECOND), Some(&backend)).await.0.unwrap(),
        11
    );
    advance(3 * SECOND).await;
    let (value, status) = cache.get_stale(&1, None, Some(&backend), 5 * SECOND).await;
    assert_eq!(
        (value.unwrap(), status),
        (11, CacheStatus::Stale(2 * SECOND))
    );
    assert_eq!(backend.calls(), 1);
    // Stale for longer than allowed: looked up again.
    let (value, status) = cache.get_stale(&1, None, Some(&backend), SECOND).await;
    assert_eq!((value.unwrap(), status), (12, CacheStatus::Expired));
    // Fresh values and misses behave as with `get`.
    let (value, status) = cache.get_stale(&1, None, Some(&backend), SECOND).await;
    assert_eq!((value.unwrap(), status), (12, CacheStatus::Hit));
    let (value, status) = cache.get_stale(&9, None, Some(&backend), SECOND).await;
    assert_eq!((value.unwrap(), status), (93, CacheStatus::Miss));
}

#[tokio::test(start_paused = true)]
async fn stale_while_update_refreshes_exactly_once() {
    let cache: &'static Cache = Box::leak(Box::new(Cache::new(10, None, None)));
    let backend = Backend {
        ttl: Some(SECOND),
        ..Backend::slow(SECOND)
    };
    assert_eq!(cache.get(&1, None, Some(&backend)).await.0.unwrap(), 11);
    advance(2 * SECOND).await;
    let start = Instant::now();
    // Fifty stale reads: all answered at once from the stale value.
    let reads = join_all(
        (0..50).map(|_| cache.get_stale_while_update(&1, None, Some(&backend), 10 * SECOND)),
    )
    .await;
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "nobody waited for the refresh"
    );
    for (value, status) in reads {
        assert_eq!((value.unwrap(), status.stale().is_some()), (11, true));
    }
    // The background refresh takes a second; reads meanwhile still get the stale value and
    // start no second refresh.
    advance(SECOND / 2).await;
    let (value, _) = cache
        .get_stale_while_update(&1, None, Some(&backend), 10 * SECOND)
        .await;
    assert_eq!(value.unwrap(), 11);
    // Once the refresh is done (or, at worst, by waiting for it), reads get the new value.
    advance(SECOND).await;
    let (value, status) = cache.get(&1, None, Some(&backend)).await;
    assert_eq!(value.unwrap(), 12);
    assert!(matches!(status, CacheStatus::Hit | CacheStatus::LockHit));
    assert_eq!(backend.calls(), 2, "the first lookup and one refresh");
}

#[tokio::test(start_paused = true)]
async fn multi_get_looks_up_the_misses_in_one_call() {
    let cache = Cache::new(10, None, None);
    let backend = Backend::default();
    // 2 -> 21, cached.
    assert_eq!(cache.get(&2, None, Some(&backend)).await.0.unwrap(), 21);
    let keys = [1, 2, 3];
    let values = cache
        .multi_get(keys.iter(), None, Some(&backend))
        .await
        .unwrap();
    assert_eq!(
        values,
        [
            (100, CacheStatus::Miss),
            (21, CacheStatus::Hit),
            (300, CacheStatus::Miss)
        ]
    );
    assert_eq!(backend.calls(), 2);
    // The looked-up values were stored.
    let values = cache
        .multi_get(keys.iter(), None, Some(&backend))
        .await
        .unwrap();
    assert!(values.iter().all(|(_, s)| *s == CacheStatus::Hit));
    assert_eq!(backend.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn multi_get_errors() {
    let cache = Cache::new(10, None, None);
    let failing = Backend {
        fail: true,
        ..Backend::default()
    };
    let keys = [1, 2];
    let error = cache
        .multi_get(keys.iter(), None, Some(&failing))
        .await
        .unwrap_err();
    assert_eq!(error.cause.as_ref().unwrap().to_string(), "backend down");
    // A lookup that answers too few values is an error, not a panic.
    let short = Backend {
        ttl: Some(SECOND),
        ..Backend::default()
    };
    let error = cache
        .multi_get(keys.iter(), None, Some(&short))
        .await
        .unwrap_err();
    assert_eq!(
        error.cause.as_ref().unwrap().to_string(),
        "multi_lookup returned 1 values for 2 keys"
    );
}

#[test]
fn futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let cache = Cache::new(10, None, None);
    send(&cache.get(&1, None, None));
    send(&cache.get_stale(&1, None, None, SECOND));
    send(&cache.multi_get([1u64].iter(), None, None));
}
