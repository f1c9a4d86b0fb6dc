//! Ketama consistent hashing, compatible with nginx's `hash $key consistent`.
//!
//! A [`Continuum`] is a ring of 32-bit points. Every server ([`Bucket`]) owns
//! `weight × 160` points, and a key belongs to the server owning the first point at or after the
//! key's CRC32, wrapping around to the start of the ring. Adding or removing one server of `N`
//! moves only about `1/N` of the keys, and only keys of that server.
//!
//! ```
//! use pingora_ketama::{Bucket, Continuum};
//!
//! let ring = Continuum::new(&[
//!     Bucket::new("127.0.0.1:7777".parse().unwrap(), 1),
//!     Bucket::new("127.0.0.1:7778".parse().unwrap(), 1),
//! ]);
//! // The same answers as nginx 1.22 with `hash $request_uri consistent` over these servers.
//! assert_eq!(ring.node(b"/some/path"), Some("127.0.0.1:7778".parse().unwrap()));
//! assert_eq!(ring.node(b"/g"), Some("127.0.0.1:7777".parse().unwrap()));
//!
//! // Failover: walk the ring clockwise from the key's point.
//! let mut candidates = ring.node_iter(b"/some/path");
//! assert_eq!(candidates.next(), Some(&"127.0.0.1:7778".parse().unwrap()));
//! ```
//!
//! # Compatibility with nginx
//!
//! The points are placed exactly as `ngx_http_upstream_init_chash` places them: each server's
//! base is the CRC32 state after `HOST`, one NUL byte and the decimal `PORT`; point `k` is the
//! CRC32 of the base followed by the four little-endian bytes of point `k - 1` (zero for the
//! first point). Equal points are merged, keeping one. A key is looked up with the CRC32 of its
//! bytes and a search for the first point `>=` that hash.
//!
//! `HOST` is the IP address as [`std::net::IpAddr`] prints it, which is what nginx hashes for
//! IPv4 servers written as `a.b.c.d:port`. For IPv6 servers nginx hashes the text of the
//! `server` line, brackets included (`[::1]`), while this crate (like Pingora) hashes `::1`:
//! IPv6 rings therefore agree with Pingora, not with nginx.
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::fmt;
use std::net::SocketAddr;

use crc32fast::Hasher;

/// Points per unit of weight, the constant nginx uses.
pub const DEFAULT_POINT_MULTIPLE: u32 = 160;

/// How a [`Continuum`] is built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Version {
    /// nginx's ring: [`DEFAULT_POINT_MULTIPLE`] points per unit of weight. When two servers
    /// produce the same point, the one listed first keeps it.
    #[default]
    V1,
    /// The same placement with a configurable number of points per unit of weight. When two
    /// servers produce the same point, the one with the smaller address keeps it, so the ring
    /// does not depend on the order of the buckets. With `point_multiple` equal to
    /// [`DEFAULT_POINT_MULTIPLE`] it differs from [`Version::V1`] only on such collisions.
    V2 {
        /// Points per unit of weight. Zero gives an empty ring.
        point_multiple: u32,
    },
}

/// A server on the ring and its weight.
///
/// A server's share of the keys is proportional to its weight.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket {
    node: SocketAddr,
    weight: u32,
}

// === impl Bucket ===

impl Bucket {
    /// A bucket for `node` with the given `weight`.
    ///
    /// # Panics
    ///
    /// Panics if `weight` is zero, as Pingora does: a server with no points cannot be on the
    /// ring. Filter such servers out before building buckets.
    pub fn new(node: SocketAddr, weight: u32) -> Self {
        assert!(
            weight != 0,
            "a ketama bucket needs a weight of at least one"
        );
        Bucket { node, weight }
    }

    /// The server's address.
    pub fn node(&self) -> SocketAddr {
        self.node
    }

    /// The server's weight.
    pub fn weight(&self) -> u32 {
        self.weight
    }
}

/// The consistent-hashing ring.
///
/// Building it costs `O(P log P)` for `P = Σ weight × 160` points; it then takes `8 × P` bytes
/// plus a small prefix index. Lookups are lock-free reads, so one ring can be shared by many
/// threads (for example behind an `Arc`), and rebuilt and swapped when the servers change.
#[derive(Clone)]
pub struct Continuum {
    /// Point hashes, sorted ascending and unique.
    hashes: Box<[u32]>,
    /// `nodes[i]` is the index in `addrs` of the server owning `hashes[i]`.
    nodes: Box<[u32]>,
    addrs: Box<[SocketAddr]>,
    index: PrefixIndex,
}

// === impl Continuum ===

impl Continuum {
    /// Builds nginx's ring ([`Version::V1`]) over `buckets`. An empty slice gives an empty ring,
    /// on which every lookup returns `None`.
    pub fn new(buckets: &[Bucket]) -> Self {
        Self::new_with_version(buckets, Version::V1)
    }

    /// Builds a ring over `buckets` as `version` says.
    pub fn new_with_version(buckets: &[Bucket], version: Version) -> Self {
        let (multiple, addrs) = match version {
            Version::V1 => (DEFAULT_POINT_MULTIPLE, buckets.to_vec()),
            Version::V2 { point_multiple } => {
                // Ordering the servers by address makes the node index, which breaks ties
                // between equal points below, follow the address.
                let mut sorted = buckets.to_vec();
                sorted.sort_by_key(|b| b.node);
                (point_multiple, sorted)
            }
        };

        let total: u64 = addrs
            .iter()
            .map(|b| u64::from(b.weight) * u64::from(multiple))
            .sum();
        // Each point is packed as `hash << 32 | node`, so one integer sort orders the points by
        // hash and breaks ties by node index.
        let mut packed: Vec<u64> = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for (node, bucket) in addrs.iter().enumerate() {
            let node = u64::try_from(node).expect("a slice has fewer than 2^64 elements");
            let base = base_hasher(&bucket.node);
            let mut prev: u32 = 0;
            for _ in 0..u64::from(bucket.weight) * u64::from(multiple) {
                let mut hasher = base.clone();
                hasher.update(&prev.to_le_bytes());
                prev = hasher.finalize();
                packed.push((u64::from(prev) << 32) | node);
            }
        }
        packed.sort_unstable();
        // Keep the first (smallest node index) of equal hashes, as nginx keeps one point.
        packed.dedup_by_key(|p| *p >> 32);

        let hashes: Box<[u32]> = packed.iter().map(|p| (*p >> 32) as u32).collect();
        let nodes: Box<[u32]> = packed.iter().map(|p| *p as u32).collect();
        let index = PrefixIndex::new(&hashes);
        Continuum {
            hashes,
            nodes,
            addrs: addrs.into_iter().map(|b| b.node).collect(),
            index,
        }
    }

    /// The ring position of `key`: the index of the first point at or after the key's CRC32,
    /// wrapping to 0 past the last point. Always 0 on an empty ring.
    ///
    /// Pass the result to [`Continuum::get_addr`] to read the server and move along the ring.
    pub fn node_idx(&self, key: &[u8]) -> usize {
        let idx = self.index.search(&self.hashes, crc32fast::hash(key));
        if idx == self.hashes.len() {
            0
        } else {
            idx
        }
    }

    /// The server `key` maps to, or `None` on an empty ring.
    pub fn node(&self, key: &[u8]) -> Option<SocketAddr> {
        let node = *self.nodes.get(self.node_idx(key))?;
        self.addrs.get(node as usize).copied()
    }

    /// An endless iterator over the servers met walking the ring clockwise from `key`'s point,
    /// one item per point (so a server usually repeats before the next one shows up). The first
    /// item is [`Continuum::node`]`(key)`; the rest are failover candidates in nginx's order.
    /// It yields nothing on an empty ring.
    pub fn node_iter(&self, key: &[u8]) -> NodeIterator<'_> {
        NodeIterator {
            idx: self.node_idx(key),
            continuum: self,
        }
    }

    /// The server owning the point at `*idx`, advancing `*idx` to the next point (wrapping at
    /// the end of the ring). Returns `None`, leaving `*idx` alone, when `*idx` is past the end,
    /// which on an empty ring is always the case.
    pub fn get_addr(&self, idx: &mut usize) -> Option<&SocketAddr> {
        let node = *self.nodes.get(*idx)?;
        *idx = if *idx + 1 == self.nodes.len() {
            0
        } else {
            *idx + 1
        };
        self.addrs.get(node as usize)
    }
}

impl fmt::Debug for Continuum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Continuum")
            .field("points", &self.hashes.len())
            .field("addrs", &self.addrs)
            .finish()
    }
}

/// The CRC32 state after `HOST \0 PORT`, the prefix nginx and memcached clients hash for every
/// point of a server.
fn base_hasher(addr: &SocketAddr) -> Hasher {
    struct Feed<'a>(&'a mut Hasher);

    impl fmt::Write for Feed<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.update(s.as_bytes());
            Ok(())
        }
    }

    let mut hasher = Hasher::new();
    fmt::write(
        &mut Feed(&mut hasher),
        format_args!("{}\0{}", addr.ip(), addr.port()),
    )
    .expect("feeding a hasher cannot fail");
    hasher
}

/// Where each run of points sharing their top `bits` bits starts, so a lookup searches one short
/// run (about eight points) instead of the whole ring.
#[derive(Clone, Debug)]
struct PrefixIndex {
    /// `32 - bits`, or 32 when there is no index.
    shift: u32,
    /// `2^bits + 1` entries: `starts[p]` is the first point whose prefix is `>= p`.
    starts: Box<[u32]>,
}

// === impl PrefixIndex ===

impl PrefixIndex {
    /// Runs of about `2^RUN_BITS` points: a run fits in a cache line or two.
    const RUN_BITS: u32 = 3;
    const MAX_BITS: u32 = 20;

    fn new(hashes: &[u32]) -> Self {
        let bits = hashes
            .len()
            .checked_ilog2()
            .unwrap_or(0)
            .saturating_sub(Self::RUN_BITS)
            .min(Self::MAX_BITS);
        if bits == 0 {
            return PrefixIndex {
                shift: 32,
                starts: Box::new([]),
            };
        }
        let shift = 32 - bits;
        let mut starts = Vec::with_capacity((1 << bits) + 1);
        let mut at = 0usize;
        for prefix in 0..=(1u64 << bits) {
            while at < hashes.len() && u64::from(hashes[at] >> shift) < prefix {
                at += 1;
            }
            starts.push(u32::try_from(at).unwrap_or(u32::MAX));
        }
        PrefixIndex {
            shift,
            starts: starts.into_boxed_slice(),
        }
    }

    /// The index of the first element of the sorted `hashes` that is `>= hash`, or
    /// `hashes.len()` when there is none.
    #[inline]
    fn search(&self, hashes: &[u32], hash: u32) -> usize {
        let (lo, hi) = match hash.checked_shr(self.shift) {
            Some(prefix) if !self.starts.is_empty() => {
                let p = prefix as usize;
                (self.starts[p] as usize, self.starts[p + 1] as usize)
            }
            _ => (0, hashes.len()),
        };
        lo + hashes[lo..hi].partition_point(|&h| h < hash)
    }
}

/// The servers met walking a [`Continuum`] clockwise from a key, made by
/// [`Continuum::node_iter`]. It never ends, except on an empty ring.
#[derive(Debug)]
pub struct NodeIterator<'a> {
    idx: usize,
    continuum: &'a Continuum,
}

impl<'a> Iterator for NodeIterator<'a> {
    type Item = &'a SocketAddr;

    fn next(&mut self) -> Option<Self::Item> {
        self.continuum.get_addr(&mut self.idx)
    }
}

#[cfg(test)]
mod tests;
