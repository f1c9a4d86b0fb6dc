//! [`RTCache`]: a read-through cache whose misses are filled by a [`Lookup`], one lookup per
//! key at a time.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_error::{BError, Error, ErrorTrait};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{CacheStatus, MemoryCache};

/// The error every failed lookup is reported as; its cause is the lookup's own error.
const LOOKUP_ERROR: &str = "RTCache: lookup error";

/// Fetches the value of a key on a cache miss, for [`RTCache`].
///
/// `extra` is whatever the caller passed to [`RTCache::get`]: request details the lookup
/// needs, or a handle to the backend. The returned TTL, if any, overrides the one given to
/// `get`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use async_trait::async_trait;
/// use pingora_error::ErrorTrait;
/// use pingora_memory_cache::Lookup;
///
/// struct Doubler;
///
/// #[async_trait]
/// impl Lookup<u64, u64, ()> for Doubler {
///     async fn lookup(
///         key: &u64,
///         _extra: Option<&()>,
///     ) -> Result<(u64, Option<Duration>), Box<dyn ErrorTrait + Send + Sync>> {
///         Ok((key * 2, Some(Duration::from_secs(10))))
///     }
/// }
/// ```
#[async_trait]
pub trait Lookup<K, T, S> {
    /// The value of `key` and how long it stays fresh (`None`: the TTL given to
    /// [`RTCache::get`]).
    async fn lookup(
        key: &K,
        extra: Option<&S>,
    ) -> Result<(T, Option<Duration>), Box<dyn ErrorTrait + Send + Sync>>
    where
        K: 'async_trait,
        S: 'async_trait;
}

/// Fetches the values of many keys in one call, for [`RTCache::multi_get`]: implement it
/// when the backend answers batches.
#[async_trait]
pub trait MultiLookup<K, T, S> {
    /// A value and TTL for each of `keys`, in the same order and as many.
    async fn multi_lookup(
        keys: &[&K],
        extra: Option<&S>,
    ) -> Result<Vec<(T, Option<Duration>)>, Box<dyn ErrorTrait + Send + Sync>>
    where
        K: 'async_trait,
        S: 'async_trait;
}

/// A lookup's error, shared by every caller that waited for it.
#[derive(Clone)]
struct SharedError(Arc<dyn ErrorTrait + Send + Sync>);

impl fmt::Debug for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl ErrorTrait for SharedError {
    fn source(&self) -> Option<&(dyn ErrorTrait + 'static)> {
        self.0.source()
    }
}

/// The error returned for a failed lookup, caused by `cause`.
fn lookup_error(cause: impl Into<Box<dyn ErrorTrait + Send + Sync>>) -> BError {
    let mut error = Error::new_str(LOOKUP_ERROR);
    error.set_cause(cause);
    error
}

/// What a finished lookup produced.
type Outcome<T> = Result<T, SharedError>;

/// A lookup in progress. Waiters watch `done`; when the lookup ends without publishing (its
/// caller was cancelled), the sender is dropped and the waiters look up for themselves.
struct Flight<T> {
    started: Instant,
    done: watch::Sender<Option<Outcome<T>>>,
}

/// The caller's part in a miss.
enum Role<'a, T> {
    /// Do the lookup; others may wait for it.
    Lead(Leading<'a, T>),
    /// Wait for someone else's lookup.
    Wait(watch::Receiver<Option<Outcome<T>>>),
}

/// Held by the caller doing a lookup. Dropping it (after publishing, or when the caller's
/// future is cancelled) takes the lookup out of the table unless a newer one replaced it.
struct Leading<'a, T> {
    flights: &'a Mutex<HashMap<u64, Arc<Flight<T>>>>,
    key: u64,
    flight: Arc<Flight<T>>,
}

impl<T> Leading<'_, T> {
    fn publish(&self, outcome: Outcome<T>) {
        self.flight.done.send_replace(Some(outcome));
    }
}

impl<T> Drop for Leading<'_, T> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock();
        if flights
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            flights.remove(&self.key);
        }
    }
}

/// A read-through cache: [`RTCache::get`] returns the cached value or calls `CB`'s
/// [`Lookup::lookup`] to fetch it, then caches it.
///
/// Concurrent misses for one key are coalesced: the first caller looks up, the others wait
/// for its result and get the value with [`CacheStatus::LockHit`], or its error. A failed
/// lookup stores nothing, so the next miss tries again. Waiting is bounded twice over:
///
/// * `lock_age`: a lookup older than this no longer collects waiters; the next caller starts
///   a new lookup, which later callers wait for instead;
/// * `lock_timeout`: a waiter waits at most this long, then does its own lookup (and
///   returns its value without storing it, leaving that to the first lookup).
///
/// A waiter whose leader's future is dropped before the lookup finished also does its own
/// lookup.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use async_trait::async_trait;
/// use pingora_error::ErrorTrait;
/// use pingora_memory_cache::{CacheStatus, Lookup, RTCache};
///
/// struct Squares;
///
/// #[async_trait]
/// impl Lookup<u64, u64, ()> for Squares {
///     async fn lookup(
///         key: &u64,
///         _extra: Option<&()>,
///     ) -> Result<(u64, Option<Duration>), Box<dyn ErrorTrait + Send + Sync>> {
///         Ok((key * key, None))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let cache: RTCache<u64, u64, Squares, ()> =
///     RTCache::new(100, Some(Duration::from_secs(2)), Some(Duration::from_secs(1)));
/// let (value, status) = cache.get(&7, Some(Duration::from_secs(60)), None).await;
/// assert_eq!((value.unwrap(), status), (49, CacheStatus::Miss));
/// let (value, status) = cache.get(&7, None, None).await;
/// assert_eq!((value.unwrap(), status), (49, CacheStatus::Hit));
/// # });
/// ```
pub struct RTCache<K, T, CB, S>
where
    K: Hash + Send,
    T: Clone + Send,
{
    inner: MemoryCache<K, T>,
    flights: Mutex<HashMap<u64, Arc<Flight<T>>>>,
    lock_age: Option<Duration>,
    lock_timeout: Option<Duration>,
    _lookup: PhantomData<fn() -> (CB, S)>,
}

// === impl RTCache ===

impl<K, T, CB, S> RTCache<K, T, CB, S>
where
    K: Hash + Send,
    T: Clone + Send + Sync + 'static,
{
    /// A cache of up to `size` values. `lock_age` and `lock_timeout` bound how long callers
    /// wait for another's lookup (see [`RTCache`]); `None` means no bound.
    pub fn new(size: usize, lock_age: Option<Duration>, lock_timeout: Option<Duration>) -> Self {
        RTCache {
            inner: MemoryCache::new(size),
            flights: Mutex::new(HashMap::new()),
            lock_age,
            lock_timeout,
            _lookup: PhantomData,
        }
    }

    /// Joins the lookup in progress for `key`, or starts one.
    fn join_or_lead(&self, key: u64) -> Role<'_, T> {
        let mut flights = self.flights.lock();
        if let Some(flight) = flights.get(&key) {
            let too_old = self
                .lock_age
                .is_some_and(|age| flight.started.elapsed() > age);
            if !too_old {
                return Role::Wait(flight.done.subscribe());
            }
        }
        let flight = Arc::new(Flight {
            started: Instant::now(),
            done: watch::Sender::new(None),
        });
        flights.insert(key, flight.clone());
        Role::Lead(Leading {
            flights: &self.flights,
            key,
            flight,
        })
    }

    /// Waits for a lookup's outcome; `None` if the wait timed out or the lookup was dropped.
    async fn wait(&self, mut done: watch::Receiver<Option<Outcome<T>>>) -> Option<Outcome<T>> {
        let outcome = async {
            let outcome = done.wait_for(Option::is_some).await.ok()?;
            outcome.clone()
        };
        match self.lock_timeout {
            Some(limit) => tokio::time::timeout(limit, outcome).await.ok().flatten(),
            None => outcome.await,
        }
    }
}

impl<K, T, CB, S> RTCache<K, T, CB, S>
where
    K: Hash + Send,
    T: Clone + Send + Sync + 'static,
    CB: Lookup<K, T, S>,
{
    /// The value of `key`: from the cache if fresh, otherwise from a lookup (this caller's,
    /// or one in progress), stored for the lookup's TTL or else `ttl`.
    ///
    /// The status is [`Hit`](CacheStatus::Hit) from the cache, [`LockHit`](CacheStatus::LockHit)
    /// from another caller's lookup, and [`Miss`](CacheStatus::Miss) or
    /// [`Expired`](CacheStatus::Expired) (what the cache held) when this caller looked up.
    ///
    /// # Errors
    ///
    /// A failed lookup is returned (as a `Custom("RTCache: lookup error")` error caused by the
    /// lookup's own) to its caller and to every caller that waited for it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future of the caller doing a lookup abandons the lookup; its waiters then
    /// look up for themselves.
    pub async fn get(
        &self,
        key: &K,
        ttl: Option<Duration>,
        extra: Option<&S>,
    ) -> (Result<T, BError>, CacheStatus) {
        let (cached, status) = self.inner.get(key);
        if let Some(value) = cached {
            return (Ok(value), status);
        }
        let leading = match self.join_or_lead(self.inner.hash(key)) {
            Role::Lead(leading) => leading,
            Role::Wait(done) => {
                return match self.wait(done).await {
                    Some(Ok(value)) => (Ok(value), CacheStatus::LockHit),
                    Some(Err(error)) => (Err(lookup_error(error)), status),
                    // Timed out, or the lookup was abandoned: look up alone, store nothing.
                    None => match CB::lookup(key, extra).await {
                        Ok((value, _)) => (Ok(value), status),
                        Err(error) => (Err(lookup_error(error)), status),
                    },
                };
            }
        };
        self.lead(leading, key, ttl, extra, status).await
    }

    /// Does the lookup this caller leads, stores and publishes its outcome.
    async fn lead(
        &self,
        leading: Leading<'_, T>,
        key: &K,
        ttl: Option<Duration>,
        extra: Option<&S>,
        status: CacheStatus,
    ) -> (Result<T, BError>, CacheStatus) {
        // A lookup may have finished between the caller's miss and taking the lead.
        if let (Some(value), _) = self.inner.get(key) {
            leading.publish(Ok(value.clone()));
            return (Ok(value), CacheStatus::LockHit);
        }
        match CB::lookup(key, extra).await {
            Ok((value, value_ttl)) => {
                // Stored before the waiters wake, and admitted even if unpopular: they want it.
                self.inner.force_put(key, value.clone(), value_ttl.or(ttl));
                leading.publish(Ok(value.clone()));
                (Ok(value), status)
            }
            Err(error) => {
                let shared = SharedError(Arc::from(error));
                leading.publish(Err(shared.clone()));
                (Err(lookup_error(shared)), status)
            }
        }
    }

    /// Like [`RTCache::get`], but a value that expired at most `stale_ttl` ago is returned
    /// as it is, with [`Stale`](CacheStatus::Stale)`(how long ago)`; an older one is looked
    /// up again.
    ///
    /// # Errors
    ///
    /// As [`RTCache::get`], when a lookup is needed.
    pub async fn get_stale(
        &self,
        key: &K,
        ttl: Option<Duration>,
        extra: Option<&S>,
        stale_ttl: Duration,
    ) -> (Result<T, BError>, CacheStatus) {
        if let (Some(value), status) = self.inner.get_stale(key) {
            if status.stale().is_none_or(|age| age <= stale_ttl) {
                return (Ok(value), status);
            }
        }
        self.get(key, ttl, extra).await
    }
}

impl<K, T, CB, S> RTCache<K, T, CB, S>
where
    K: Hash + Clone + Send + Sync,
    T: Clone + Send + Sync + 'static,
    S: Clone + Send + Sync,
    CB: Lookup<K, T, S> + Sync + Send,
{
    /// Like [`RTCache::get_stale`], and when it returns a stale value it also refreshes it in
    /// the background: one lookup, whatever the number of stale reads meanwhile.
    ///
    /// The background task needs a cache that lives forever: keep it in a `static` (for
    /// example in a `std::sync::LazyLock`) or leak it. It must be called within a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// As [`RTCache::get`], when a lookup is needed; the background refresh's errors are
    /// dropped (the stale value stays, and a later read tries again).
    pub async fn get_stale_while_update(
        &'static self,
        key: &K,
        ttl: Option<Duration>,
        extra: Option<&S>,
        stale_ttl: Duration,
    ) -> (Result<T, BError>, CacheStatus) {
        let (result, status) = self.get_stale(key, ttl, extra, stale_ttl).await;
        if status.stale().is_some() {
            // Take the lead now, so that stale reads until the refresh ends start no other.
            // When a lookup is running already, it refreshes the value.
            if let Role::Lead(leading) = self.join_or_lead(self.inner.hash(key)) {
                let key = key.clone();
                let extra = extra.cloned();
                tokio::spawn(async move {
                    // Its error is dropped: the stale value stays, a later read retries.
                    let _ = self
                        .lead(leading, &key, ttl, extra.as_ref(), CacheStatus::Expired)
                        .await;
                });
            }
        }
        (result, status)
    }
}

impl<K, T, CB, S> RTCache<K, T, CB, S>
where
    K: Hash + Send,
    T: Clone + Send + Sync + 'static,
    CB: MultiLookup<K, T, S>,
{
    /// The values of `keys`, in order: those the cache has fresh, and the others from one
    /// [`MultiLookup::multi_lookup`] call, which are then stored (for their TTL or else
    /// `ttl`) and returned with [`CacheStatus::Miss`].
    ///
    /// Concurrent `multi_get`s are not coalesced: two calls that miss the same key both look
    /// it up (coalescing batches key by key could deadlock two calls waiting on each other).
    ///
    /// # Errors
    ///
    /// The lookup's error (the values found in the cache are then not returned either), or
    /// an error when the lookup returned a different number of values than keys asked for.
    pub async fn multi_get<'a, I>(
        &self,
        keys: I,
        ttl: Option<Duration>,
        extra: Option<&S>,
    ) -> Result<Vec<(T, CacheStatus)>, BError>
    where
        I: Iterator<Item = &'a K>,
        K: 'a,
    {
        let (cached, missed) = self.inner.multi_get_with_miss(keys);
        let mut found = if missed.is_empty() {
            Vec::new()
        } else {
            let found = CB::multi_lookup(&missed, extra)
                .await
                .map_err(lookup_error)?;
            if found.len() != missed.len() {
                return Err(lookup_error(format!(
                    "multi_lookup returned {} values for {} keys",
                    found.len(),
                    missed.len()
                )));
            }
            for (key, (value, value_ttl)) in missed.iter().zip(&found) {
                self.inner.force_put(*key, value.clone(), value_ttl.or(ttl));
            }
            found
        }
        .into_iter();
        let mut values = Vec::with_capacity(cached.len());
        for (value, status) in cached {
            let entry = match value {
                Some(value) => (value, status),
                None => {
                    let (value, _) = found
                        .next()
                        .expect("one looked-up value per miss, checked above");
                    (value, CacheStatus::Miss)
                }
            };
            values.push(entry);
        }
        Ok(values)
    }
}

impl<K, T, CB, S> fmt::Debug for RTCache<K, T, CB, S>
where
    K: Hash + Send,
    T: Clone + Send,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RTCache")
            .field("lock_age", &self.lock_age)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}
