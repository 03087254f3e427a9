//! Fuzzes `kvs_signaling_proto::internal::fuzz_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kvs_signaling_proto::internal::fuzz_request(data));
