//! Cross-crate integration tests, one binary.

mod client;
mod coturn;
mod webrtc;
