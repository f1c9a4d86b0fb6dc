//! Service discovery: where the set of backends comes from.

use std::collections::{BTreeSet, HashMap};
use std::net::ToSocketAddrs;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_error::Result;
use std::sync::Arc;

use crate::Backend;

/// Finds the current backends.
#[async_trait]
pub trait ServiceDiscovery {
    /// The backends, and which of them are enabled (by [`Backend::hash_key`]; a backend absent
    /// from the map is enabled).
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)>;
}

/// A fixed set of backends, changeable by hand.
#[derive(Debug, Default)]
pub struct Static {
    backends: ArcSwap<BTreeSet<Backend>>,
}

impl Static {
    /// Discovery that always returns `backends`.
    pub fn new(backends: BTreeSet<Backend>) -> Box<Self> {
        Box::new(Static {
            backends: ArcSwap::new(Arc::new(backends)),
        })
    }

    /// Discovery of the addresses `iter` names (`"ip:port"` or `"name:port"`; a name may
    /// resolve to several backends), each with weight 1.
    ///
    /// # Errors
    /// The I/O error of an address that does not parse or resolve (as in Pingora, a
    /// `std::io::Result`).
    pub fn try_from_iter<A, T>(iter: T) -> std::io::Result<Box<Self>>
    where
        A: ToSocketAddrs,
        T: IntoIterator<Item = A>,
    {
        let mut backends = BTreeSet::new();
        for addr in iter {
            backends.extend(addr.to_socket_addrs()?.map(|a| Backend::from_inet(a, 1)));
        }
        Ok(Self::new(backends))
    }

    /// The current backends.
    pub fn get(&self) -> BTreeSet<Backend> {
        BTreeSet::clone(&self.backends.load())
    }

    /// Adds a backend.
    pub fn add(&self, backend: Backend) {
        self.backends.rcu(|set| {
            let mut set = BTreeSet::clone(set);
            set.insert(backend.clone());
            set
        });
    }

    /// Removes a backend.
    pub fn remove(&self, backend: &Backend) {
        self.backends.rcu(|set| {
            let mut set = BTreeSet::clone(set);
            set.remove(backend);
            set
        });
    }

    /// Replaces all the backends.
    pub fn set(&self, backends: BTreeSet<Backend>) {
        self.backends.store(Arc::new(backends));
    }
}

#[async_trait]
impl ServiceDiscovery for Static {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        Ok((self.get(), HashMap::new()))
    }
}
