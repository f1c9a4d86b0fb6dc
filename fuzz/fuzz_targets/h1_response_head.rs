//! Fuzz target `h1_response_head`: the checks are `pingora_fuzz::h1_response_head::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::h1_response_head::check(data));
