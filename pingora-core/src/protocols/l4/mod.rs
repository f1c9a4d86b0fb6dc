//! Layer 4: TCP and Unix-domain sockets, and virtual sockets that stand in for them.

pub mod connect;
pub mod ext;
pub mod listener;
pub mod socket;
pub mod stream;
pub mod virt;
