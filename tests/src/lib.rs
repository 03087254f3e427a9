//! Cross-crate integration tests live in `it/`. This library holds what they share with the
//! examples:
//!
//! - [`webrtc`]: two Rust WebRTC peers (str0m) that find each other through our signaling and
//!   exchange data over a data channel.

pub mod webrtc;
