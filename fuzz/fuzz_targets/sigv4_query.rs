//! Fuzzes `kvs_ice_rest::internal::fuzz_sigv4_query`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kvs_ice_rest::internal::fuzz_sigv4_query(data));
