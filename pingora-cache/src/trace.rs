//! Tracing hooks of the cache.
//!
//! Pingora threads a `cf-rustracing` span handle through every storage call so that a
//! storage backend can record child spans. This crate does not depend on a tracing library:
//! [`SpanHandle`] and [`Span`] are empty stand-ins that keep the storage signatures in
//! Pingora's shape. A backend receives a `&SpanHandle` and may ignore it; a future tracing
//! integration will give these types content without changing any signature.

/// A handle to the tracing span of the current cache operation, passed to every
/// [`Storage`](crate::storage::Storage) call.
///
/// It carries nothing yet: it is the hook where tracing will attach. Build one with
/// [`SpanHandle::default`] or from a [`Span`].
#[derive(Debug, Clone, Default)]
pub struct SpanHandle {
    _private: (),
}

/// A tracing span of the cache. Inactive: it records nothing (see the module docs).
#[derive(Debug, Default)]
pub struct Span {
    _private: (),
}

// === impl Span ===

impl Span {
    /// A span that records nothing.
    pub fn inactive() -> Self {
        Span::default()
    }

    /// A handle to this span, to pass to storage calls.
    pub fn handle(&self) -> SpanHandle {
        SpanHandle::default()
    }
}
