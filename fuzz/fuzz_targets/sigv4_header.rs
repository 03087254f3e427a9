//! Fuzzes `kvs_signaling_auth::internal::fuzz_sigv4_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kvs_signaling_auth::internal::fuzz_sigv4_header(data));
