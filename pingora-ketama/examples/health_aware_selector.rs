//! Picking a healthy server without rebuilding the ring: walk clockwise from the key's point
//! and take the first server that is up, as nginx does when a server is down.
//!
//! Run: `cargo run -p pingora-ketama --example health_aware_selector`

use std::collections::HashSet;
use std::net::SocketAddr;

use pingora_ketama::{Bucket, Continuum};

/// The first healthy server for `key`, looking at no more than `max_tries` points.
fn pick(
    ring: &Continuum,
    key: &[u8],
    down: &HashSet<SocketAddr>,
    max_tries: usize,
) -> Option<SocketAddr> {
    ring.node_iter(key)
        .take(max_tries)
        .find(|addr| !down.contains(addr))
        .copied()
}

fn main() {
    let servers: Vec<SocketAddr> = (1..=4)
        .map(|i| SocketAddr::from(([127, 0, 0, i], 8080)))
        .collect();
    let buckets: Vec<_> = servers.iter().map(|a| Bucket::new(*a, 1)).collect();
    let ring = Continuum::new(&buckets);

    let keys = [
        "/users/1",
        "/users/2",
        "/cart",
        "/search?q=rust",
        "/a",
        "/b",
        "/c",
        "/d",
    ];
    let mut down = HashSet::new();
    for key in keys {
        println!("{key:>16} -> {:?}", ring.node(key.as_bytes()));
    }

    // Take the first key's server down: only the keys it owned move.
    let failed = ring
        .node(keys[0].as_bytes())
        .expect("the ring is not empty");
    down.insert(failed);
    println!("{failed} is down");
    for key in keys {
        println!(
            "{key:>16} -> {:?}",
            pick(&ring, key.as_bytes(), &down, 1000)
        );
    }
}
