//! Fuzz target `cache_meta`: the checks are `pingora_fuzz::cache_meta::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::cache_meta::check(data));
