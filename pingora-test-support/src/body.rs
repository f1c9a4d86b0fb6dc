//! Deterministic bodies: pseudo-random bytes, and a periodic pattern that a body of any size
//! can be produced from and checked against piece by piece.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};

use crate::origin::Body;
use crate::within;

/// `len` deterministic pseudo-random bytes (xorshift from `seed`), so that large bodies are
/// not all one value and bodies of different seeds differ.
pub fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

// === the pattern ===

/// The period of the pattern: a prime, so that it never lines up with buffer sizes.
const PERIOD: usize = 65521;

/// Two periods of the pattern, so that any window of up to one period starting in the first
/// is contiguous.
static PATTERN: LazyLock<Bytes> = LazyLock::new(|| {
    let period = pseudo_random(PERIOD, 0x9E37_79B9_7F4A_7C15);
    let mut two = period.clone();
    two.extend_from_slice(&period);
    Bytes::from(two)
});

/// `len` bytes of the pattern starting at stream offset `offset`.
///
/// # Panics
///
/// If `len` is more than one period (65521 bytes).
pub fn pattern_slice(offset: u64, len: usize) -> Bytes {
    assert!(len <= PERIOD);
    let start = usize::try_from(offset % PERIOD as u64).expect("below the period");
    PATTERN.slice(start..start + len)
}

/// `len` bytes of the pattern from offset 0, as one buffer.
pub fn pattern_vec(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let n = (len - out.len()).min(PERIOD);
        out.extend_from_slice(&pattern_slice(out.len() as u64, n));
    }
    out
}

/// Checks a stream of bytes against the pattern, counting them.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Bytes seen.
    pub count: u64,
    /// Every byte matched the pattern.
    pub ok: bool,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier { count: 0, ok: true }
    }
}

impl Verifier {
    /// Checks the next bytes of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = data.len().min(PERIOD);
            if data[..n] != pattern_slice(self.count, n)[..] {
                self.ok = false;
            }
            self.count += n as u64;
            data = &data[n..];
        }
    }
}

/// Reads a hyper `body` to its end, checking it against the pattern.
///
/// # Panics
///
/// If a frame fails or does not come within [`TIMEOUT`](crate::TIMEOUT).
pub async fn verify_body(mut body: Incoming) -> Verifier {
    let mut check = Verifier::default();
    while let Some(frame) = within("response body", body.frame()).await {
        let frame = frame.expect("body frame");
        if let Some(data) = frame.data_ref() {
            check.feed(data);
        }
    }
    check
}

/// A hyper body of `len` pattern bytes produced in 60000-byte frames, announcing its length
/// or not.
#[derive(Debug)]
pub struct PatternBody {
    sent: u64,
    len: u64,
    exact: bool,
    /// Bytes produced so far, shared with the test.
    pub produced: Arc<AtomicU64>,
}

impl PatternBody {
    /// A body of `len` bytes; `exact` announces the length (Content-Length), else chunked.
    pub fn new(len: u64, exact: bool) -> Self {
        PatternBody {
            sent: 0,
            len,
            exact,
            produced: Arc::new(AtomicU64::new(0)),
        }
    }

    /// As the body type of [`hyper_origin`](crate::origin::hyper_origin) responses.
    pub fn boxed_hyper(self) -> Body {
        self.map_err(|never: Infallible| match never {}).boxed()
    }
}

impl hyper::body::Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let left = self.len - self.sent;
        if left == 0 {
            return Poll::Ready(None);
        }
        let n = usize::try_from(left.min(60_000)).expect("a frame size");
        let data = pattern_slice(self.sent, n);
        self.sent += n as u64;
        self.produced.store(self.sent, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.len
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.len - self.sent)
        } else {
            SizeHint::default()
        }
    }
}
