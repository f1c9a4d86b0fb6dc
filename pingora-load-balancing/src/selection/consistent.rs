//! Consistent hashing with ketama, compatible with nginx's `hash $key consistent`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_ketama::{Bucket, Continuum};

use super::{BackendIter, BackendSelection};
use crate::Backend;

/// A ketama ring over the backends (Internet addresses only: Unix-domain backends are left
/// out, as nginx has no way to place them).
pub struct KetamaHashing {
    ring: Continuum,
    backends: HashMap<std::net::SocketAddr, Backend>,
}

impl std::fmt::Debug for KetamaHashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KetamaHashing")
            .field("backends", &self.backends.len())
            .finish_non_exhaustive()
    }
}

impl BackendSelection for KetamaHashing {
    type Iter = OwnedNodeIterator;
    type Config = ();

    fn build_with_config(backends: &BTreeSet<Backend>, _config: Option<&()>) -> Self {
        let mut by_addr = HashMap::with_capacity(backends.len());
        let mut buckets = Vec::with_capacity(backends.len());
        for backend in backends {
            if let SocketAddr::Inet(addr) = &backend.addr {
                if backend.weight == 0 {
                    continue;
                }
                buckets.push(Bucket::new(*addr, backend.weight as u32));
                by_addr.insert(*addr, backend.clone());
            }
        }
        KetamaHashing {
            ring: Continuum::new(&buckets),
            backends: by_addr,
        }
    }

    fn iter(self: &Arc<Self>, key: &[u8]) -> OwnedNodeIterator {
        OwnedNodeIterator {
            idx: self.ring.node_idx(key),
            selector: Arc::clone(self),
        }
    }
}

/// Walks the ring clockwise from a key's point.
#[derive(Debug)]
pub struct OwnedNodeIterator {
    idx: usize,
    selector: Arc<KetamaHashing>,
}

impl BackendIter for OwnedNodeIterator {
    fn next(&mut self) -> Option<&Backend> {
        let addr = self.selector.ring.get_addr(&mut self.idx)?;
        self.selector.backends.get(addr)
    }
}
