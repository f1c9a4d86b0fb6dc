//! The fault cases: kill -9 under load, a full disk, files removed behind the store's back.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::support::{
    fetch, object_files, settle, temp_files, wait_until, Outcome, ProxyProcess, SlowOrigin,
};

/// The tests, by name.
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "kill_9_under_load_never_serves_a_cut_object",
        kill_9_under_load,
    ),
    ("disk_full_keeps_responses_whole", disk_full),
    (
        "a_graceful_upgrade_hands_the_warm_cache_over",
        upgrade_hands_over,
    ),
    (
        "files_removed_behind_the_store_are_refetched",
        files_removed,
    ),
];

/// The kill cycles of a run: `CYCLES` from the environment, 3 by default.
const DEFAULT_CYCLES: u32 = 3;
/// New objects requested in each cycle's load.
const NEW_PER_CYCLE: u32 = 12;
/// Client threads of the load.
const LOAD_THREADS: usize = 8;
/// Client threads checking objects after a start.
const CHECK_THREADS: usize = 4;

// === Tally ===

/// What the clients saw.
#[derive(Debug, Default)]
struct Tally {
    /// Whole responses compared with their object.
    checked: usize,
    hits: usize,
    /// Requests without a whole response (cut by a kill).
    broken: usize,
    /// Whole responses that were not their object.
    corrupt: Vec<String>,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Whole { hit } => {
                self.checked += 1;
                self.hits += usize::from(hit);
            }
            Outcome::Refused | Outcome::Broken(_) => self.broken += 1,
            Outcome::Corrupt(what) => {
                self.checked += 1;
                self.corrupt.push(what);
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.checked += other.checked;
        self.hits += other.hits;
        self.broken += other.broken;
        self.corrupt.extend(other.corrupt);
    }
}

/// Fetches each of `ids` (on a few threads): every response must be whole and exact, and a
/// hit when its id is in `hits`. Returns the tally and the ids served as hits.
fn check_all(proxy: SocketAddr, ids: &[u32], hits: &BTreeSet<u32>) -> (Tally, BTreeSet<u32>) {
    let failures = Mutex::new(Vec::new());
    let tally = Mutex::new(Tally::default());
    let served_hits = Mutex::new(BTreeSet::new());
    let (failures_ref, tally_ref, hits_ref) = (&failures, &tally, &served_hits);
    thread::scope(|s| {
        for part in ids.chunks(ids.len().div_ceil(CHECK_THREADS).max(1)) {
            let (failures, tally, served_hits) = (failures_ref, tally_ref, hits_ref);
            s.spawn(move || {
                for &id in part {
                    let outcome = fetch(proxy, id);
                    match &outcome {
                        Outcome::Whole { hit: true } => {
                            served_hits.lock().unwrap().insert(id);
                        }
                        Outcome::Whole { hit: false } if hits.contains(&id) => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("object {id}: a miss"));
                        }
                        Outcome::Whole { .. } | Outcome::Corrupt(_) => {}
                        Outcome::Broken(e) => {
                            failures.lock().unwrap().push(format!("object {id}: {e}"));
                        }
                        Outcome::Refused => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("object {id}: refused"));
                        }
                    }
                    tally.lock().unwrap().add(outcome);
                }
            });
        }
    });
    let tally = tally.into_inner().unwrap();
    let failures = failures.into_inner().unwrap();
    assert!(tally.corrupt.is_empty(), "corrupt: {:?}", tally.corrupt);
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    (tally, served_hits.into_inner().unwrap())
}

// === kill -9 ===

/// Client threads requesting objects in a loop until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<Tally>>,
}

impl Load {
    /// Each thread goes through `new` from its own starting point, with one of `old` after
    /// every two, round and round.
    fn start(proxy: SocketAddr, new: &[u32], old: &[u32]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..LOAD_THREADS)
            .map(|t| {
                let mut ids = Vec::new();
                for (i, id) in new.iter().cycle().skip(t * 2).take(new.len()).enumerate() {
                    ids.push(*id);
                    if i % 2 == 1 && !old.is_empty() {
                        ids.push(old[(t + i) % old.len()]);
                    }
                }
                let stop = Arc::clone(&stop);
                thread::spawn(move || {
                    let mut tally = Tally::default();
                    for id in ids.iter().cycle() {
                        match fetch(proxy, *id) {
                            // Killed: nothing more to ask.
                            Outcome::Refused => break,
                            outcome => tally.add(outcome),
                        }
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                    }
                    tally
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn stop(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut tally = Tally::default();
        for thread in self.threads {
            tally.merge(thread.join().expect("a load thread panicked"));
        }
        tally
    }
}

/// Cycles of: start the proxy on the same directory (every other time with a memory tier in
/// front), check every object requested so far (whole and exact; hits if they were complete
/// on disk before the last kill), let it settle, then load it with new objects from a slow
/// origin and kill it with SIGKILL while writes are in progress.
fn kill_9_under_load() {
    let cycles = std::env::var("CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(DEFAULT_CYCLES);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("cache");
    let origin = SlowOrigin::start();
    let mut known: Vec<u32> = Vec::new();
    let mut durable = BTreeSet::new();
    let mut tally = Tally::default();
    let mut temp_at_kill = None;
    for cycle in 0..=cycles {
        let proxy = ProxyProcess::start(&dir, origin.addr, cycle % 2 == 1);
        let rebuilt = proxy.rebuilt();
        assert_eq!(
            rebuilt.discarded, 0,
            "files failed their checks: {rebuilt:?}"
        );
        if let Some(temp) = temp_at_kill {
            assert_eq!(rebuilt.temp_removed, temp, "interrupted writes removed");
        }
        assert!(
            rebuilt.kept >= durable.len(),
            "{rebuilt:?}, {}",
            durable.len()
        );
        let (checked, hits) = check_all(proxy.addr, &known, &durable);
        assert!(
            hits.is_superset(&durable),
            "objects complete before the kill"
        );
        tally.merge(checked);
        if cycle == cycles {
            break;
        }
        // Every object requested so far is now complete on disk.
        settle(&dir, known.len());
        durable = known.iter().copied().collect();

        let new: Vec<u32> = (cycle * NEW_PER_CYCLE..(cycle + 1) * NEW_PER_CYCLE).collect();
        let old: Vec<u32> = durable.iter().copied().collect();
        let finished = origin.stats.finished.load(Ordering::SeqCst);
        let load = Load::start(proxy.addr, &new, &old);
        wait_until("writes finished and writes past their half", || {
            origin.stats.midway.load(Ordering::SeqCst) >= 2
                && origin.stats.finished.load(Ordering::SeqCst) >= finished + 4
        });
        proxy.kill9();
        let temp = temp_files(&dir);
        assert!(temp > 0, "killed with no write in progress");
        temp_at_kill = Some(temp);
        let seen = load.stop();
        println!(
            "cycle {cycle} ({}): started with {} objects; {} complete before the kill, {temp} \
             writes cut by it; {} whole responses under load, {} cut",
            if cycle % 2 == 1 { "tiered" } else { "disk" },
            rebuilt.kept,
            durable.len(),
            seen.checked,
            seen.broken
        );
        assert!(
            seen.corrupt.is_empty(),
            "corrupt under load: {:?}",
            seen.corrupt
        );
        tally.merge(seen);
        known.extend(new);
    }
    println!(
        "cycles {cycles}, objects checked {}, corrupt {} ({} hits, {} requests cut by the \
         kills)",
        tally.checked,
        tally.corrupt.len(),
        tally.hits,
        tally.broken
    );
    assert!(tally.corrupt.is_empty());
}

// === disk full ===

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) on `path`; `None` when the
    /// environment says to skip tests that need one and it cannot be mounted.
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs {
                path: path.to_path_buf(),
            }),
            failed => {
                let why = match failed {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                if std::env::var_os(SKIP_TMPFS_ENV).is_some() {
                    println!(
                        "skipped: cannot mount a tmpfs ({}) and {SKIP_TMPFS_ENV} is set",
                        why.trim()
                    );
                    return None;
                }
                panic!(
                    "cannot mount a tmpfs on {} ({}): this test needs root (or CAP_SYS_ADMIN); \
                     set {SKIP_TMPFS_ENV}=1 to skip it",
                    path.display(),
                    why.trim()
                );
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Set to skip the disk-full test where no tmpfs can be mounted.
const SKIP_TMPFS_ENV: &str = "PINGORA_TEST_SKIP_TMPFS";

/// A store on a 1 MiB tmpfs: once it is full, responses still come whole and exact (they are
/// not stored), no temporary file is left; once files are removed, objects are stored again.
fn disk_full() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let Some(mount) = Tmpfs::mount(&tmp.path().join("mnt"), "1m") else {
        return;
    };
    let dir = mount.path.join("cache");
    let origin = SlowOrigin::start();
    let proxy = ProxyProcess::start(&dir, origin.addr, false);
    let ids: Vec<u32> = (0..12).collect();

    // One at a time, then all at once: each whole, however full the disk.
    let (mut tally, _) = check_all(proxy.addr, &ids[..1], &BTreeSet::new());
    for &id in &ids[1..8] {
        tally.merge(check_all(proxy.addr, &[id], &BTreeSet::new()).0);
    }
    tally.merge(check_all(proxy.addr, &ids, &BTreeSet::new()).0);
    wait_until("no write in progress", || temp_files(&dir) == 0);
    let stored = object_files(&dir).len();
    assert!(
        stored > 0 && stored < ids.len(),
        "{stored} of {} objects stored on a 1 MiB disk",
        ids.len()
    );
    // The stored ones are hits, the others are fetched again, whole (one that fits now, with
    // no other write beside it, may be stored this time).
    let (_, hits) = check_all(proxy.addr, &ids, &BTreeSet::new());
    assert_eq!(hits.len(), stored, "hits: {hits:?}");
    let unstored: Vec<u32> = ids
        .iter()
        .copied()
        .filter(|id| !hits.contains(id))
        .collect();
    assert!(unstored.iter().all(|&id| origin.stats.fetches(id) >= 2));
    println!(
        "disk full: {stored} of {} objects stored, {} whole responses",
        ids.len(),
        tally.checked + ids.len()
    );

    // Make room: objects are stored again.
    for file in object_files(&dir) {
        std::fs::remove_file(file).expect("remove an object file");
    }
    let again = &unstored[..unstored.len().min(3)];
    check_all(proxy.addr, again, &BTreeSet::new());
    settle(&dir, again.len());
    let now_hits: BTreeSet<u32> = again.iter().copied().collect();
    check_all(proxy.addr, again, &now_hits);
    drop(proxy);
    drop(mount);
}

// === files removed ===

/// Objects whose files are deleted while the proxy runs are misses, fetched and stored again;
/// the others stay hits.
fn files_removed() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("cache");
    let origin = SlowOrigin::start();
    let proxy = ProxyProcess::start(&dir, origin.addr, false);
    let ids: Vec<u32> = (100..108).collect();
    let mut files = Vec::new();
    for (n, &id) in ids.iter().enumerate() {
        let before = object_files(&dir);
        check_all(proxy.addr, &[id], &BTreeSet::new());
        settle(&dir, n + 1);
        let after = object_files(&dir);
        let new = after.iter().find(|f| !before.contains(f)).cloned();
        files.push(new.expect("the new object's file"));
    }
    let all: BTreeSet<u32> = ids.iter().copied().collect();
    check_all(proxy.addr, &ids, &all);

    let (gone, kept) = ids.split_at(ids.len() / 2);
    for file in &files[..gone.len()] {
        std::fs::remove_file(file).expect("remove an object file");
    }
    let kept_hits: BTreeSet<u32> = kept.iter().copied().collect();
    let (_, hits) = check_all(proxy.addr, &ids, &kept_hits);
    assert_eq!(hits, kept_hits, "the removed objects are misses");
    for &id in gone {
        assert_eq!(origin.stats.fetches(id), 2, "object {id} fetched again");
    }
    settle(&dir, ids.len());
    check_all(proxy.addr, &ids, &all);
    assert!(
        proxy.output().lines().all(|l| !l.contains("panicked")),
        "{}",
        proxy.output()
    );
}

// === graceful upgrade ===

/// At a graceful upgrade the old process hands its disk cache over: the new one takes the
/// directory once the old one stops serving, and the objects are hits there without going to
/// the origin again.
fn upgrade_hands_over() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("cache");
    let origin = SlowOrigin::start();
    let old = ProxyProcess::start(&dir, origin.addr, false);
    let ids: Vec<u32> = (200..206).collect();
    let all: BTreeSet<u32> = ids.iter().copied().collect();
    check_all(old.addr, &ids, &BTreeSet::new());
    settle(&dir, ids.len());
    check_all(old.addr, &ids, &all);

    let mut new = ProxyProcess::spawn(&dir, origin.addr, false, &["-u"]);
    old.quit();
    new.wait_listening();
    assert_eq!(new.addr, old.addr, "the listening socket was handed over");
    new.wait_line("disk cache taken over");
    assert!(old.output().contains("disk cache handed over (read only)"));
    let rebuilt = new.rebuilt();
    assert_eq!(rebuilt.kept, ids.len(), "{}", new.output());
    let restored = new.wait_line("eviction order restored: ");
    assert_eq!(
        restored,
        format!("eviction order restored: {} objects", ids.len()),
        "the old process saved its eviction order"
    );
    let (_, hits) = check_all(new.addr, &ids, &all);
    assert_eq!(hits, all, "every object is a hit in the new process");
    for &id in &ids {
        assert_eq!(
            origin.stats.fetches(id),
            1,
            "object {id} fetched once in all"
        );
    }
    assert!(old.wait_exit(), "the old process exits cleanly");
}
