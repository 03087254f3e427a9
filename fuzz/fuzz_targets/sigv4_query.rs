//! Fuzzes `kvs_signaling_auth::internal::fuzz_sigv4_query`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kvs_signaling_auth::internal::fuzz_sigv4_query(data));
