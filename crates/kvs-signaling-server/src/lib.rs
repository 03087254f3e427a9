//! A self-hostable KVS WebRTC signaling server.
//!
//! This crate will be the composition root: configuration, the command line, one listener for
//! the control plane, the HTTPS data plane and the WebSocket connect, persistence, TLS, metrics
//! and graceful shutdown. It ships the `kvs-signaling` binary.
//!
//! Nothing is implemented yet; see the workspace's `ARCHITECTURE.md`.
