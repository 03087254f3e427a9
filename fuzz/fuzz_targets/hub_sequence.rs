//! Feeds sequences of opens, closes, frames and time steps to a hub and checks it against the
//! reference model of `kvs_signaling_core::testing::model`.
#![no_main]

use kvs_signaling_core::testing::model::{Transition, run};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let transitions = Transition::decode_all(data);
    assert_eq!(
        run(&transitions),
        run(&transitions),
        "the same sequence ran differently"
    );
});
