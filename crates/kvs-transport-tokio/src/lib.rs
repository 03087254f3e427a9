//! Tokio and WebSocket IO for KVS WebRTC signaling.
//!
//! This crate will hold the IO that carries out the decisions of `kvs-signaling-core`: on the
//! server side, a reader and a writer task per upgraded WebSocket connection feeding a shard's
//! `Hub` through bounded queues (a peer that cannot keep up is closed, never buffered); on the
//! client side, `SignalingClient`, which presigns the connect URL with SigV4 as the official SDKs
//! do and drives `ClientSession`. It makes no routing decisions of its own.
//!
//! Nothing is implemented yet; see the workspace's `ARCHITECTURE.md`.
