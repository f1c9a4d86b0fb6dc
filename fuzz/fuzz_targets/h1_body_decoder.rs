//! Fuzz target `h1_body_decoder`: the checks are `pingora_fuzz::h1_body_decoder::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::h1_body_decoder::check(data));
