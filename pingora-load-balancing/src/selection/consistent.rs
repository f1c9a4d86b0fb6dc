//! Consistent hashing with ketama, compatible with nginx's `hash $key consistent`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_ketama::{Bucket, Continuum, Version};

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

/// How [`KetamaHashing`] builds its ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KetamaConfig {
    /// Points on the ring per unit of weight. `None`: nginx's ring ([`Version::V1`], 160
    /// points per unit); `Some(n)`: [`Version::V2`] with `n` points per unit.
    pub point_multiple: Option<u32>,
}

impl BackendSelection for KetamaHashing {
    type Iter = OwnedNodeIterator;
    type Config = KetamaConfig;

    fn build(backends: &BTreeSet<Backend>) -> Self {
        Self::build_with_config(backends, &KetamaConfig::default())
    }

    fn build_with_config(backends: &BTreeSet<Backend>, config: &KetamaConfig) -> Self {
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
        let version = match config.point_multiple {
            Some(point_multiple) => Version::V2 { point_multiple },
            None => Version::V1,
        };
        KetamaHashing {
            ring: Continuum::new_with_version(&buckets, version),
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
