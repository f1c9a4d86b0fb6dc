//! What a test leaves behind: live heap bytes, open file descriptors and runtime tasks, and a
//! [`Baseline`] that waits for all three to come back to where they were.
//!
//! Heap bytes are counted only in a test binary that installs [`CountingAlloc`] as its global
//! allocator:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: pingora_test_support::leaks::CountingAlloc =
//!     pingora_test_support::leaks::CountingAlloc;
//! ```
//!
//! Without it, [`Baseline`] checks descriptors and tasks only. The counts are process-wide:
//! tests that compare them must not run concurrently with others in the same binary (take a
//! [`serial`] guard first).
//!
//! Resident set size is not used anywhere: the system allocator keeps freed pages, so it
//! cannot tell a leak from a cache.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use crate::TIMEOUT;

/// How far above its baseline the live heap may settle: allocations that stay for the life
/// of the process (a runtime's timer levels, lazily built statics, a thread's buffers) are
/// not leaks of the code under test.
pub const HEAP_SLACK: usize = 64 * 1024;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A global allocator that forwards to the system's and counts live heap bytes and their
/// peak. Install it with `#[global_allocator]` in a test binary.
#[derive(Debug)]
pub struct CountingAlloc;

// SAFETY: every call is passed to `System` unchanged; only counters are added.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees for `layout` are those `System` needs.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            INSTALLED.store(true, Ordering::Relaxed);
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: `p` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

/// Live heap bytes, or `None` when [`CountingAlloc`] is not the global allocator.
pub fn live_heap() -> Option<usize> {
    INSTALLED
        .load(Ordering::Relaxed)
        .then(|| LIVE.load(Ordering::Relaxed))
}

/// Starts a new peak measurement at the current live heap; returns that starting point
/// (`0` without [`CountingAlloc`]).
pub fn reset_peak() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// The highest live heap since the last [`reset_peak`].
pub fn peak_heap() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// File descriptors this process has open (entries of `/proc/self/fd`, less the one reading
/// it).
pub fn open_fds() -> usize {
    let entries = std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd is readable");
    // The directory handle being read is itself one of the entries.
    entries.count().saturating_sub(1)
}

/// Tasks alive on the runtime of `handle` (spawned and not yet finished).
pub fn alive_tasks(handle: &Handle) -> usize {
    handle.metrics().num_alive_tasks()
}

/// Panics in this process since the first call, on any thread (a task of a runtime included:
/// the runtime catches those, so they would go unnoticed otherwise). The first call installs
/// a panic hook that counts them and then runs the hook that was there before.
pub fn panic_count() -> usize {
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
    PANICS.load(Ordering::SeqCst)
}

/// Serializes the tests of a binary that compare process-wide counts: hold the guard for the
/// whole test.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// Sockets of this process bound to local port `port`: a listener on `port` and the
/// connections it accepted (not the clients' ends, whose local ports are others), from
/// `/proc/net/tcp{,6}`. Unlike [`open_fds`] this is not disturbed by other tests running in
/// the same process.
pub fn server_sockets(port: u16) -> usize {
    let mut ours = std::collections::HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd is readable") {
        let Ok(link) = entry.and_then(|e| std::fs::read_link(e.path())) else {
            continue; // closed while listed
        };
        let link = link.to_string_lossy();
        if let Some(inode) = link
            .strip_prefix("socket:[")
            .and_then(|l| l.strip_suffix(']'))
        {
            ours.insert(inode.to_string());
        }
    }
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue; // no IPv6 here
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (fields.get(1), fields.get(9)) else {
                continue;
            };
            let port_of = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port_of(local) == Some(port) && ours.contains(*inode) {
                count += 1;
            }
        }
    }
    count
}

/// The counts at one moment, to return to.
///
/// [`take`](Self::take) notes the process-wide counts (descriptors and, with
/// [`CountingAlloc`], live heap), which only mean something while no other test of the binary
/// runs (see [`serial`]); [`local`](Self::local) notes counts that concurrent tests do not
/// disturb: the sockets on one port and the tasks of one runtime.
#[derive(Debug)]
pub struct Baseline {
    fds: Option<usize>,
    heap: Option<usize>,
    ports: Vec<(u16, usize)>,
    tasks: Vec<(Handle, usize)>,
}

type Now = (Option<usize>, Option<usize>, Vec<usize>, Vec<usize>);

impl Baseline {
    /// Notes the open descriptors and (with [`CountingAlloc`]) the live heap bytes of the
    /// process now.
    pub fn take() -> Self {
        Baseline {
            fds: Some(open_fds()),
            heap: live_heap(),
            ports: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// Notes nothing process-wide: add [`with_port`](Self::with_port) and
    /// [`with_tasks`](Self::with_tasks).
    pub fn local() -> Self {
        Baseline {
            fds: None,
            heap: None,
            ports: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// Also notes the server sockets on `port` now (see [`server_sockets`]).
    pub fn with_port(mut self, port: u16) -> Self {
        self.ports.push((port, server_sockets(port)));
        self
    }

    /// Also notes the tasks alive on the runtime of `handle` now.
    pub fn with_tasks(mut self, handle: &Handle) -> Self {
        self.tasks.push((handle.clone(), alive_tasks(handle)));
        self
    }

    /// Waits (polling, at most [`TIMEOUT`]) until every count noted is back to at most its
    /// baseline, the live heap to at most [`HEAP_SLACK`] above it.
    ///
    /// # Panics
    ///
    /// When they do not come back in time; the message names `what` and gives every count.
    pub async fn settle(&self, what: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let now = self.now();
            if self.within(&now) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: resources did not return to their baseline: {}",
                self.report(&now)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// [`settle`](Self::settle) for synchronous tests.
    pub fn settle_blocking(&self, what: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let now = self.now();
            if self.within(&now) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: resources did not return to their baseline: {}",
                self.report(&now)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn now(&self) -> Now {
        (
            self.fds.map(|_| open_fds()),
            self.heap.and(live_heap()),
            self.ports.iter().map(|(p, _)| server_sockets(*p)).collect(),
            self.tasks.iter().map(|(h, _)| alive_tasks(h)).collect(),
        )
    }

    fn within(&self, (fds, heap, ports, tasks): &Now) -> bool {
        let under = |base: Option<usize>, now: Option<usize>, slack: usize| match (base, now) {
            (Some(base), Some(now)) => now <= base + slack,
            _ => true,
        };
        under(self.fds, *fds, 0)
            && under(self.heap, *heap, HEAP_SLACK)
            && self
                .ports
                .iter()
                .zip(ports)
                .all(|((_, base), now)| now <= base)
            && self
                .tasks
                .iter()
                .zip(tasks)
                .all(|((_, base), now)| now <= base)
    }

    fn report(&self, (fds, heap, ports, tasks): &Now) -> String {
        let mut parts = Vec::new();
        if let (Some(base), Some(now)) = (self.fds, fds) {
            parts.push(format!("fds {now} (baseline {base})"));
        }
        if let (Some(base), Some(now)) = (self.heap, heap) {
            parts.push(format!(
                "live heap {now} B (baseline {base} B + {HEAP_SLACK} B slack)"
            ));
        }
        for ((port, base), now) in self.ports.iter().zip(ports) {
            parts.push(format!("sockets on port {port}: {now} (baseline {base})"));
        }
        for ((_, base), now) in self.tasks.iter().zip(tasks) {
            parts.push(format!("tasks {now} (baseline {base})"));
        }
        parts.join(", ")
    }
}
