//! A body buffer that stops growing at a fixed size.

use bytes::{Bytes, BytesMut};

/// Keeps the first `capacity` bytes written to it and notes whether more were offered.
///
/// The proxy keeps a request body in one of these so that a failed request can be retried with
/// the same body, as long as the body was small enough to keep whole.
#[derive(Debug)]
pub struct FixedBuffer {
    buffer: BytesMut,
    capacity: usize,
    truncated: bool,
}

impl FixedBuffer {
    /// A buffer keeping at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        FixedBuffer {
            buffer: BytesMut::new(),
            capacity,
            truncated: false,
        }
    }

    /// Appends `data`, or marks the buffer truncated if it does not fit.
    pub fn write_to_buffer(&mut self, data: &Bytes) {
        if self.truncated {
            return;
        }
        if self.buffer.len() + data.len() > self.capacity {
            self.truncated = true;
            self.buffer = BytesMut::new();
            return;
        }
        self.buffer.extend_from_slice(data);
    }

    /// Empties the buffer.
    pub fn clear(&mut self) {
        self.truncated = false;
        self.buffer.clear();
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty() && !self.truncated
    }

    /// Whether some data did not fit.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// The buffered bytes, if there are any and nothing was lost.
    pub fn get_buffer(&self) -> Option<Bytes> {
        if self.truncated || self.buffer.is_empty() {
            None
        } else {
            Some(Bytes::copy_from_slice(&self.buffer))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_until_full() {
        let mut b = FixedBuffer::new(5);
        assert!(b.is_empty());
        b.write_to_buffer(&Bytes::from_static(b"abc"));
        b.write_to_buffer(&Bytes::from_static(b"de"));
        assert_eq!(b.get_buffer().unwrap(), "abcde");
        b.write_to_buffer(&Bytes::from_static(b"f"));
        assert!(b.is_truncated());
        assert!(b.get_buffer().is_none());
        b.clear();
        assert!(b.is_empty());
    }
}
