//! Sans-IO state machines for KVS WebRTC signaling.
//!
//! This crate will hold the routing brain of the service as pure state machines that take the
//! current time as an argument and queue their outputs: `Hub` (live routing for a set of
//! channels: roles, master replacement, offline buffering with the channel's message TTL,
//! throttling, STATUS_RESPONSE, GO_AWAY), `Registry` (control-plane semantics: create, describe,
//! list, update, delete and tag channels) and `ClientSession` (the client side: connect,
//! reconnect with backoff, ICE configuration refresh). It depends only on
//! `kvs-signaling-proto` and never reads a clock, the OS random source or a socket.
//!
//! Nothing is implemented yet; see the workspace's `ARCHITECTURE.md`.
