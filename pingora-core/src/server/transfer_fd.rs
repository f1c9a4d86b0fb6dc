//! The table of listening sockets, keyed by listen address, that a graceful upgrade hands from
//! the old server process to the new one.
//!
//! Sending and receiving the table over the upgrade socket is not implemented yet; for now the
//! table only records the sockets the services bind.

use std::collections::HashMap;
use std::os::unix::io::RawFd;

/// Listening sockets by listen address (such as `0.0.0.0:80` or a Unix socket path).
///
/// The table does not own the file descriptors: the listeners that bound them do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fds {
    map: HashMap<String, RawFd>,
}

// === impl Fds ===

impl Fds {
    /// An empty table.
    pub fn new() -> Self {
        Fds::default()
    }

    /// Records that `fd` listens on `bind`, replacing any earlier entry for `bind`.
    pub fn add(&mut self, bind: String, fd: RawFd) {
        self.map.insert(bind, fd);
    }

    /// The socket listening on `bind`, if there is one.
    pub fn get(&self, bind: &str) -> Option<&RawFd> {
        self.map.get(bind)
    }

    /// How many sockets the table holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The table as two lists of the same length: the addresses and their sockets.
    pub fn serialize(&self) -> (Vec<String>, Vec<RawFd>) {
        self.map.iter().map(|(k, v)| (k.clone(), *v)).unzip()
    }

    /// Adds the entries of two lists made by [`Fds::serialize`]. Extra items of the longer list
    /// are ignored.
    pub fn deserialize(&mut self, binds: Vec<String>, fds: Vec<RawFd>) {
        self.map.extend(binds.into_iter().zip(fds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trip() {
        let mut fds = Fds::new();
        assert!(fds.is_empty());
        fds.add("127.0.0.1:80".into(), 5);
        fds.add("/tmp/x.sock".into(), 6);
        fds.add("127.0.0.1:80".into(), 7);
        assert_eq!(fds.len(), 2);
        assert_eq!(fds.get("127.0.0.1:80"), Some(&7));
        assert_eq!(fds.get("nope"), None);

        let (binds, raw) = fds.serialize();
        let mut copy = Fds::new();
        copy.deserialize(binds, raw);
        assert_eq!(copy, fds);

        let mut short = Fds::new();
        short.deserialize(vec!["a".into(), "b".into()], vec![1]);
        assert_eq!(short.len(), 1);
        assert_eq!(short.get("a"), Some(&1));
    }
}
