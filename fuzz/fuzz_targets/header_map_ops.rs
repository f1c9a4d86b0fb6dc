//! Fuzz target `header_map_ops`: the checks are `pingora_fuzz::header_map_ops::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::header_map_ops::check(data));
