//! The error returned when a timeout expires.

use std::error::Error;
use std::fmt;
use std::io;

/// The error returned by a [`Timeout`](crate::Timeout) whose deadline passed before its future
/// completed.
///
/// It carries no data: the caller knows which operation it put a deadline on. It converts into
/// an [`io::Error`] of kind [`TimedOut`](io::ErrorKind::TimedOut) for code that reports I/O
/// errors.
///
/// ```
/// use pingora_timeout::Elapsed;
///
/// assert_eq!(Elapsed.to_string(), "Timeout Elapsed");
/// let io: std::io::Error = Elapsed.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Elapsed;

// === impl Elapsed ===

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Timeout Elapsed")
    }
}

impl Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(elapsed: Elapsed) -> Self {
        io::Error::new(io::ErrorKind::TimedOut, elapsed)
    }
}
