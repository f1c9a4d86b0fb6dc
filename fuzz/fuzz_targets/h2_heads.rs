//! Fuzz target `h2_heads`: the checks are `pingora_fuzz::h2_heads::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::h2_heads::check(data));
