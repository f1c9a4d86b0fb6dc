//! Where the expected answers come from:
//!
//! * `test-data/nginx-trace.csv` was recorded from real nginx 1.22.1 (`hash $request_uri
//!   consistent`) by `test-data/nginx-trace.sh`, over the server sets in [`trace_set`].
//! * The one- and two-point rings below are worked by hand: the point values are CRC32s of the
//!   bytes written next to them (checked with Python's `zlib.crc32`), and the answers follow from
//!   "first point `>=` crc32(key), else wrap to the first point".
//! * [`reference_node`] is a deliberately naive second implementation (string formatting, a
//!   full sort, a linear scan) used to check the fast paths on large random rings.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test addresses are valid")
}

fn ring<S: AsRef<str>>(servers: &[(S, u32)]) -> Continuum {
    let buckets: Vec<_> = servers
        .iter()
        .map(|(a, w)| Bucket::new(addr(a.as_ref()), *w))
        .collect();
    Continuum::new(&buckets)
}

/// A small deterministic generator (splitmix64), so the tests need no `rand`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn keys(n: usize) -> impl Iterator<Item = String> {
    (0..n).map(|i| format!("/object/{i}"))
}

/// nginx's algorithm written out plainly, with the host text chosen by the caller.
type Described = (String, u16, u32, SocketAddr);

/// nginx's ring as `(point, server position, address)`, sorted and without repeated points.
fn reference_ring(servers: &[Described]) -> Vec<(u32, usize, SocketAddr)> {
    let mut points = Vec::new();
    for (order, (host, port, weight, addr)) in servers.iter().enumerate() {
        let mut prefix = format!("{host}\0{port}").into_bytes();
        let base_len = prefix.len();
        let mut prev = [0u8; 4];
        for _ in 0..weight * 160 {
            prefix.truncate(base_len);
            prefix.extend_from_slice(&prev);
            let hash = crc32fast::hash(&prefix);
            points.push((hash, order, *addr));
            prev = hash.to_le_bytes();
        }
    }
    points.sort();
    points.dedup_by_key(|p| p.0);
    points
}

/// The owner of the first point at or after crc32(`key`), found by a linear scan.
fn reference_node(points: &[(u32, usize, SocketAddr)], key: &[u8]) -> Option<SocketAddr> {
    let hash = crc32fast::hash(key);
    let found = points.iter().find(|p| p.0 >= hash).or(points.first());
    found.map(|p| p.2)
}

/// The server sets of `test-data/nginx-trace.sh`.
fn trace_set(name: &str) -> Vec<(String, u32)> {
    let set: &[(&str, u32)] = match name {
        "pair" => &[("127.0.0.1:7777", 1), ("127.0.0.1:7778", 1)],
        "weighted" => &[
            ("127.0.0.2:8001", 1),
            ("127.0.0.3:8002", 2),
            ("127.0.0.4:8003", 3),
        ],
        "nine" => {
            return (11..=19)
                .map(|i| (format!("127.0.0.{i}:9000"), 1))
                .collect()
        }
        "ipv6" => &[("[::1]:7781", 1), ("[::1]:7782", 1), ("[::1]:7783", 1)],
        other => panic!("unknown trace set {other}"),
    };
    set.iter().map(|(a, w)| (a.to_string(), *w)).collect()
}

/// `(set, key, upstream)` rows recorded from nginx.
fn nginx_trace() -> Vec<(&'static str, &'static str, SocketAddr)> {
    include_str!("../test-data/nginx-trace.csv")
        .lines()
        .map(|line| {
            let mut cols = line.split(',');
            let set = cols.next().expect("set column");
            let key = cols.next().expect("key column");
            let upstream = addr(cols.next().expect("upstream column"));
            (set, key, upstream)
        })
        .collect()
}

// === Exact placement ===

#[test]
fn one_point_per_server_by_hand() {
    // crc32("127.0.0.1\07777" ‖ 00 00 00 00) = 0x323bd7a0
    // crc32("127.0.0.1\07778" ‖ 00 00 00 00) = 0xb06b4071
    let c = Continuum::new_with_version(
        &[
            Bucket::new(addr("127.0.0.1:7777"), 1),
            Bucket::new(addr("127.0.0.1:7778"), 1),
        ],
        Version::V2 { point_multiple: 1 },
    );
    assert_eq!(&*c.hashes, &[0x323b_d7a0, 0xb06b_4071]);

    let (a, b) = (addr("127.0.0.1:7777"), addr("127.0.0.1:7778"));
    // key, crc32(key), expected owner
    let table: [(&[u8], u32, SocketAddr); 6] = [
        (b"", 0x0000_0000, a),           // below the first point
        (b"hello", 0x3610_a686, b),      // between the points
        (b"/some/path", 0x46e0_2226, b), // between the points
        (b"b", 0x71be_eff9, b),          // between the points
        (b"/g", 0x8013_de69, b),         // between the points
        (b"a", 0xe8b7_be43, a),          // past the last point: wraps
    ];
    for (key, crc, owner) in table {
        assert_eq!(crc32fast::hash(key), crc, "crc32 of {key:?}");
        assert_eq!(c.node(key), Some(owner), "key {key:?}");
    }
}

#[test]
fn chained_points_by_hand() {
    // Point 2 hashes the base followed by point 1's little-endian bytes:
    // crc32("127.0.0.1\07777" ‖ a0 d7 3b 32) = 0x03f353a8
    // crc32("127.0.0.1\07778" ‖ 71 40 6b b0) = 0x5e1a0ba8
    let c = Continuum::new_with_version(
        &[
            Bucket::new(addr("127.0.0.1:7777"), 1),
            Bucket::new(addr("127.0.0.1:7778"), 1),
        ],
        Version::V2 { point_multiple: 2 },
    );
    assert_eq!(
        &*c.hashes,
        &[0x03f3_53a8, 0x323b_d7a0, 0x5e1a_0ba8, 0xb06b_4071]
    );
    let owners: Vec<_> = c.nodes.iter().map(|n| c.addrs[*n as usize]).collect();
    let (a, b) = (addr("127.0.0.1:7777"), addr("127.0.0.1:7778"));
    assert_eq!(owners, [a, a, b, b]);
    assert_eq!(c.node(b"hello"), Some(b)); // 0x3610a686 -> 0x5e1a0ba8
    assert_eq!(c.node(b"a"), Some(a)); // 0xe8b7be43 -> wraps to 0x03f353a8
}

#[test]
fn matches_nginx_trace() {
    let trace = nginx_trace();
    let mut checked = HashMap::new();
    for set in ["pair", "weighted", "nine"] {
        let c = ring(&trace_set(set));
        for (_, key, upstream) in trace.iter().filter(|row| row.0 == set) {
            assert_eq!(c.node(key.as_bytes()), Some(*upstream), "{set}: {key}");
            *checked.entry(set).or_insert(0) += 1;
        }
    }
    // The trace covers 208 keys per set; make sure none was silently skipped.
    assert_eq!(checked.len(), 3);
    assert!(checked.values().all(|n| *n == 208), "{checked:?}");
}

#[test]
fn ipv6_hosts_are_hashed_without_brackets() {
    let servers = trace_set("ipv6");
    let c = ring(&servers);
    let described = |bracketed: bool| -> Vec<_> {
        servers
            .iter()
            .map(|(s, w)| {
                let a = addr(s);
                let host = if bracketed {
                    format!("[{}]", a.ip())
                } else {
                    a.ip().to_string()
                };
                (host, a.port(), *w, a)
            })
            .collect()
    };
    let (pingora_style, nginx_style) = (
        reference_ring(&described(false)),
        reference_ring(&described(true)),
    );

    let mut differs = 0;
    for (_, key, upstream) in nginx_trace().into_iter().filter(|row| row.0 == "ipv6") {
        // nginx hashes the bracketed text of its `server` line...
        assert_eq!(reference_node(&nginx_style, key.as_bytes()), Some(upstream));
        // ...while this crate, like Pingora, hashes the bare address.
        let ours = c.node(key.as_bytes());
        assert_eq!(ours, reference_node(&pingora_style, key.as_bytes()));
        differs += usize::from(ours != Some(upstream));
    }
    assert!(differs > 0, "the two layouts are expected to disagree");
}

#[test]
fn matches_reference_on_random_rings() {
    let mut rng = Rng(7);
    for servers in [1usize, 3, 40, 300] {
        let set: Vec<_> = (0..servers)
            .map(|_| {
                let r = rng.next();
                let ip: IpAddr = if r & 1 == 0 {
                    Ipv4Addr::from((r >> 8) as u32).into()
                } else {
                    Ipv6Addr::from((u128::from(r) << 64) | u128::from(rng.next())).into()
                };
                let a = SocketAddr::new(ip, (r >> 40) as u16);
                (a.ip().to_string(), a.port(), 1 + (r >> 60) as u32 % 4, a)
            })
            .collect();
        let buckets: Vec<_> = set.iter().map(|s| Bucket::new(s.3, s.2)).collect();
        let c = Continuum::new(&buckets);
        let reference = reference_ring(&set);
        for key in keys(300) {
            assert_eq!(
                c.node(key.as_bytes()),
                reference_node(&reference, key.as_bytes()),
                "{servers} servers, key {key}"
            );
        }
    }
}

#[test]
fn prefix_index_finds_the_first_point_at_or_after() {
    let mut rng = Rng(11);
    for len in [0usize, 1, 2, 15, 16, 17, 1000, 40_000] {
        let mut hashes: Vec<u32> = (0..len).map(|_| rng.next() as u32).collect();
        hashes.sort_unstable();
        hashes.dedup();
        let index = PrefixIndex::new(&hashes);
        let mut probes = vec![0, 1, u32::MAX, u32::MAX - 1, 1 << 31];
        probes.extend(
            hashes
                .iter()
                .flat_map(|h| [*h, h.wrapping_sub(1), h.wrapping_add(1)]),
        );
        probes.extend((0..1000).map(|_| rng.next() as u32));
        for probe in probes {
            let want = hashes.partition_point(|&h| h < probe);
            assert_eq!(
                index.search(&hashes, probe),
                want,
                "len {len}, probe {probe:#x}"
            );
        }
    }
}

// === Collisions and determinism ===

#[test]
fn colliding_servers_follow_the_version_rule() {
    // Both servers' first point is 0x572b1d23. The CRC32 state after a server's base is then the
    // same for both (appending four zero bytes is invertible), so every later point collides
    // too: one server owns the other's whole share, in nginx as well.
    let (low, high) = (addr("10.0.12.1:18"), addr("10.0.70.1:44802"));
    let owners = |c: &Continuum| -> std::collections::HashSet<SocketAddr> {
        c.nodes.iter().map(|n| c.addrs[*n as usize]).collect()
    };

    // V1: the server listed first keeps the points.
    let v1 = Continuum::new(&[Bucket::new(high, 1), Bucket::new(low, 1)]);
    assert_eq!(v1.hashes.len(), 160);
    assert!(v1.hashes.binary_search(&0x572b_1d23).is_ok());
    assert_eq!(owners(&v1), [high].into());

    // V2: the smaller address keeps them, whatever the order of the buckets.
    for order in [[high, low], [low, high]] {
        let buckets = order.map(|a| Bucket::new(a, 1));
        let v2 = Continuum::new_with_version(&buckets, Version::V2 { point_multiple: 3 });
        assert_eq!(v2.hashes.len(), 3);
        assert_eq!(owners(&v2), [low].into());
        assert_eq!(v2.node(b"any key"), Some(low));
    }
}

#[test]
fn lookups_are_deterministic() {
    let servers: Vec<_> = (1..=20)
        .map(|i| Bucket::new(addr(&format!("10.1.0.{i}:80")), i % 3 + 1))
        .collect();
    let (a, b) = (Continuum::new(&servers), Continuum::new(&servers));
    assert_eq!(a.hashes, b.hashes);
    assert_eq!(a.nodes, b.nodes);
    for key in keys(1000) {
        let first = a.node(key.as_bytes());
        assert!(first.is_some());
        assert_eq!(first, a.node(key.as_bytes()));
        assert_eq!(first, b.node(key.as_bytes()));
    }

    // V2 does not depend on the order of the buckets.
    let v2 = Version::V2 {
        point_multiple: DEFAULT_POINT_MULTIPLE,
    };
    let mut reversed = servers.clone();
    reversed.reverse();
    let (c, d) = (
        Continuum::new_with_version(&servers, v2),
        Continuum::new_with_version(&reversed, v2),
    );
    for key in keys(1000) {
        assert_eq!(c.node(key.as_bytes()), d.node(key.as_bytes()));
    }
}

#[test]
fn v2_with_the_default_multiple_agrees_with_v1() {
    let servers: Vec<_> = (1..=50)
        .map(|i| Bucket::new(addr(&format!("10.2.{i}.1:443")), 1 + i % 4))
        .collect();
    let v1 = Continuum::new(&servers);
    let v2 = Continuum::new_with_version(
        &servers,
        Version::V2 {
            point_multiple: DEFAULT_POINT_MULTIPLE,
        },
    );
    assert_eq!(v1.hashes, v2.hashes);
    let differ = keys(20_000)
        .filter(|k| v1.node(k.as_bytes()) != v2.node(k.as_bytes()))
        .count();
    assert!(differ <= 20, "{differ} of 20000 keys differ");
}

// === Distribution ===

#[test]
fn shares_follow_weights() {
    let weights = [1u32, 2, 3, 4];
    let servers: Vec<_> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| Bucket::new(addr(&format!("192.168.7.{}:8080", i + 1)), *w))
        .collect();
    let c = Continuum::new(&servers);
    let mut counts: HashMap<SocketAddr, usize> = HashMap::new();
    let total = 100_000;
    for key in keys(total) {
        *counts.entry(c.node(key.as_bytes()).unwrap()).or_default() += 1;
    }
    let weight_sum: u32 = weights.iter().sum();
    for bucket in &servers {
        let expected = total as f64 * f64::from(bucket.weight()) / f64::from(weight_sum);
        let got = counts[&bucket.node()] as f64;
        assert!(
            (got - expected).abs() <= expected * 0.10,
            "{}: {got} keys, expected about {expected}",
            bucket.node()
        );
    }
}

#[test]
fn removing_a_server_moves_only_its_keys() {
    let n = 10;
    let servers: Vec<_> = (1..=n)
        .map(|i| Bucket::new(addr(&format!("10.3.0.{i}:6443")), 1))
        .collect();
    let removed = servers[3].node();
    let before = Continuum::new(&servers);
    let after = Continuum::new(&[&servers[..3], &servers[4..]].concat());

    let total = 100_000;
    let mut moved = 0;
    for key in keys(total) {
        let (old, new) = (before.node(key.as_bytes()), after.node(key.as_bytes()));
        if old == Some(removed) {
            assert_ne!(new, Some(removed));
            moved += 1;
        } else {
            assert_eq!(old, new, "{key} moved although its server stayed");
        }
    }
    let share = moved as f64 / total as f64;
    let ideal = 1.0 / n as f64;
    assert!((share - ideal).abs() <= ideal * 0.25, "moved share {share}");
}

#[test]
fn adding_a_server_only_takes_keys() {
    let servers: Vec<_> = (1..=10)
        .map(|u| Bucket::new(addr(&format!("127.0.0.{u}:6443")), 1))
        .collect();
    let added = addr("127.0.0.11:6443");
    let before = Continuum::new(&servers);
    let after = Continuum::new(&[servers.clone(), vec![Bucket::new(added, 1)]].concat());
    for key in keys(10_000) {
        let new = after.node(key.as_bytes());
        if new != Some(added) {
            assert_eq!(before.node(key.as_bytes()), new);
        }
    }
}

// === Walking the ring ===

#[test]
fn node_iter_starts_at_the_node_and_meets_every_server() {
    let servers: Vec<_> = (0..7)
        .map(|i| Bucket::new(addr(&format!("[2001:db8::{i}]:443")), 1 + i % 2))
        .collect();
    let c = Continuum::new(&servers);
    for key in keys(50) {
        let mut iter = c.node_iter(key.as_bytes());
        assert_eq!(iter.next().copied(), c.node(key.as_bytes()));
        let seen: std::collections::HashSet<_> = c
            .node_iter(key.as_bytes())
            .take(c.hashes.len())
            .copied()
            .collect();
        assert_eq!(seen.len(), servers.len());
    }
}

#[test]
fn get_addr_walks_clockwise_and_wraps() {
    let c = ring(&trace_set("pair"));
    let len = c.hashes.len();
    let mut idx = len - 1;
    assert_eq!(
        c.get_addr(&mut idx).copied(),
        Some(c.addrs[c.nodes[len - 1] as usize])
    );
    assert_eq!(idx, 0);
    assert_eq!(
        c.get_addr(&mut idx).copied(),
        Some(c.addrs[c.nodes[0] as usize])
    );
    assert_eq!(idx, 1);

    let start = c.node_idx(b"doghash");
    let mut idx = start;
    for _ in 0..len {
        assert!(c.get_addr(&mut idx).is_some());
    }
    assert_eq!(idx, start, "a full turn comes back to the start");

    let mut past_end = len;
    assert_eq!(c.get_addr(&mut past_end), None);
    assert_eq!(past_end, len);
}

#[test]
fn node_idx_wraps_past_the_last_point() {
    let c = Continuum::new_with_version(
        &[Bucket::new(addr("127.0.0.1:7777"), 1)],
        Version::V2 { point_multiple: 1 },
    );
    // The only point is 0x323bd7a0; "a" hashes above it.
    assert_eq!(c.node_idx(b"a"), 0);
    assert_eq!(c.node(b"a"), Some(addr("127.0.0.1:7777")));
}

// === Edge cases ===

#[test]
fn empty_rings_answer_none() {
    let empty = [
        Continuum::new(&[]),
        Continuum::new_with_version(
            &[],
            Version::V2 {
                point_multiple: 160,
            },
        ),
        Continuum::new_with_version(
            &[Bucket::new(addr("127.0.0.1:1"), 3)],
            Version::V2 { point_multiple: 0 },
        ),
    ];
    for c in &empty {
        assert_eq!(c.node(b"doghash"), None);
        assert_eq!(c.node_idx(b"doghash"), 0);
        assert_eq!(c.node_iter(b"doghash").next(), None);
        let mut idx = 0;
        assert_eq!(c.get_addr(&mut idx), None);
        assert_eq!(idx, 0);
    }
}

#[test]
#[should_panic(expected = "weight of at least one")]
fn zero_weight_is_rejected() {
    let _ = Bucket::new(addr("127.0.0.1:80"), 0);
}

#[test]
fn bucket_accessors_and_debug() {
    let b = Bucket::new(addr("127.0.0.1:80"), 5);
    assert_eq!((b.node(), b.weight()), (addr("127.0.0.1:80"), 5));
    let c = Continuum::new(&[b]);
    let shown = format!("{c:?}");
    assert!(shown.contains("points: 800"), "{shown}");
    assert!(shown.contains("127.0.0.1:80"), "{shown}");
}
