//! Support for the end-to-end proxy tests: the shared helpers of `pingora-test-support` (proxy
//! launcher, origins, raw HTTP/1 and h2c connections, body pattern), plus what only these tests
//! use: the recording proxy app, an event log, gRPC framing and memory sampling. Every wait is
//! bounded by [`STEP`].

#![allow(dead_code, unreachable_pub, unused_imports)]

use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};

mod memory;
mod recorder;

pub use memory::*;
pub use pingora_test_support::body::*;
pub use pingora_test_support::curl;
pub use pingora_test_support::h2::*;
pub use pingora_test_support::origin::*;
pub use pingora_test_support::proxy::*;
pub use pingora_test_support::raw::*;
pub use pingora_test_support::{dead_addr, runtime, within, TestServer, TIMEOUT as STEP};
pub use recorder::*;

/// A shared, ordered record of events.
pub type Log = Arc<Mutex<Vec<String>>>;

/// Appends `event` to `log`.
pub fn record(log: &Log, event: impl Into<String>) {
    log.lock().expect("log lock").push(event.into());
}

/// A copy of the events in `log`.
pub fn events(log: &Log) -> Vec<String> {
    log.lock().expect("log lock").clone()
}

// === gRPC framing ===

/// One gRPC message: uncompressed flag, 4-byte length, payload.
pub fn grpc_frame(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(payload.len()).unwrap());
    out.put_slice(payload);
    out.freeze()
}

/// Splits whole gRPC messages off the front of `buf`.
pub fn grpc_messages(buf: &mut BytesMut) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while buf.len() >= 5 {
        let len = (&buf[1..5]).get_u32() as usize;
        if buf.len() < 5 + len {
            break;
        }
        let frame = buf.split_to(5 + len);
        out.push(frame[5..].to_vec());
    }
    out
}
