//! Fuzz target `tls_client_hello`: the checks are `pingora_fuzz::tls_client_hello::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::tls_client_hello::check(data));
