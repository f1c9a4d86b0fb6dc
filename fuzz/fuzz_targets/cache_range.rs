//! Fuzz target `cache_range`: the checks are `pingora_fuzz::cache_range::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::cache_range::check(data));
