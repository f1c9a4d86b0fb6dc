//! Fuzz target `cache_control`: the checks are `pingora_fuzz::cache_control::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::cache_control::check(data));
