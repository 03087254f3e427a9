//! The HTTPS data plane of KVS WebRTC signaling.
//!
//! This crate will hold the services behind `POST /v1/get-ice-server-config` and
//! `POST /v1/send-alexa-offer-to-master`, TURN credentials in the TURN REST API scheme that a
//! stock coturn accepts, and verification of SigV4-signed requests (header and presigned query
//! forms), all as functions that take the time as an argument.
//!
//! Nothing is implemented yet; see the workspace's `ARCHITECTURE.md`.
