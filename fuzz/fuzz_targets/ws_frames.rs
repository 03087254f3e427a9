//! Fuzzes `kvs_transport_tokio::internal::fuzz_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kvs_transport_tokio::internal::fuzz_frames(data));
