//! Cross-crate integration tests live in `it/`. This library holds what they share with the
//! examples:
//!
//! - [`webrtc`]: two Rust WebRTC peers (str0m) that find each other through our signaling and
//!   exchange data over a data channel, on host candidates or relay-only through TURN;
//! - [`turn`]: a coturn launcher and a minimal TURN client.

pub mod turn;
pub mod webrtc;
