//! Fuzz target `cache_vary`: the checks are `pingora_fuzz::cache_vary::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::cache_vary::check(data));
