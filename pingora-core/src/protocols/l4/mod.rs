//! Layer 4: TCP and Unix-domain sockets.

pub mod connect;
pub mod ext;
pub mod listener;
pub mod socket;
pub mod stream;
