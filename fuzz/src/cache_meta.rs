//! `CacheMeta::deserialize` on untrusted stored bytes (`pingora_cache::meta`): it returns an
//! error or metadata, and metadata it accepts serializes back to bytes that decode to the
//! same thing.
//!
//! Input: a mode byte, the length of the internal part (byte), the internal part, then the
//! header part. With mode bit 0 set, the header part is an HTTP/1 head that the check first
//! compresses into a zstd frame (as `pingora-header-serde` stores it without a dictionary),
//! so that the head parser sees the input; otherwise the bytes are used as they are.

use pingora_cache::CacheMeta;

use crate::Input;

/// The fuzz check.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let internal = input.slice8();
    let rest = input.rest();
    let compressed;
    let header = if mode & 1 == 1 {
        compressed = zstd::bulk::compress(rest, 3).expect("zstd compresses any input");
        &compressed[..]
    } else {
        rest
    };
    let Ok(meta) = CacheMeta::deserialize(internal, header) else {
        return;
    };
    let (internal2, header2) = meta.serialize().expect("serializing cannot fail");
    // The internal part has one encoding for each value.
    assert_eq!(internal2, internal);
    let again = CacheMeta::deserialize(&internal2, &header2).expect("own output decodes");
    assert_eq!(again.fresh_until(), meta.fresh_until());
    assert_eq!(again.created(), meta.created());
    assert_eq!(again.updated(), meta.updated());
    assert_eq!(again.epoch_override(), meta.epoch_override());
    assert_eq!(again.variance(), meta.variance());
    assert_eq!(again.stale_if_error_sec(), meta.stale_if_error_sec());
    assert_eq!(
        again.stale_while_revalidate_sec(),
        meta.stale_while_revalidate_sec()
    );
    let header = meta.response_header();
    let header_again = again.response_header();
    assert_eq!(header_again.status, header.status);
    assert_eq!(header_again.version, header.version);
    assert_eq!(header_again.reason_phrase(), header.reason_phrase());
    assert_eq!(header_again.headers, header.headers);
    let mut wire = Vec::new();
    let mut wire_again = Vec::new();
    header.header_to_h1_wire(&mut wire);
    header_again.header_to_h1_wire(&mut wire_again);
    assert_eq!(wire_again, wire, "field-name spellings survive");
}
