//! Fuzz target `h1_framing`: the checks are `pingora_fuzz::h1_framing::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::h1_framing::check(data));
