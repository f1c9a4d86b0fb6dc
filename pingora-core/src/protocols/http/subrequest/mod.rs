//! Subrequests: an HTTP server session with no client socket behind it.
//!
//! A subrequest runs the server side of an exchange (for example a whole proxy pipeline) on a
//! copy of a client's request. Its request body arrives, and its response leaves, as
//! [`HttpTask`](super::HttpTask)s over bounded channels whose other ends the caller holds in a
//! [`SubrequestHandle`](server::SubrequestHandle). The proxy uses it to refresh a stale cached
//! response in the background while the client is served the stale copy.
//!
//! A subrequest serves exactly one request: there is no connection to keep alive.

mod body;
pub mod server;

#[cfg(test)]
mod tests;
