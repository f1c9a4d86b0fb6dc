//! `CacheMeta::deserialize` on untrusted stored bytes (`pingora_cache::meta`): it returns an
//! error or metadata, and metadata it accepts serializes back to bytes that decode to the
//! same thing.
//!
//! Input: the length of the internal part (byte), the internal part, then the header part.

use pingora_cache::CacheMeta;

use crate::Input;

/// The fuzz check.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let internal = input.slice8();
    let header = input.rest();
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
    assert_eq!(
        again.serialize().expect("serializing cannot fail").1,
        header2
    );
}
