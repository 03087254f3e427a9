//! Sans-IO state machines for KVS WebRTC signaling.
//!
//! - [`Hub`]: live routing for a set of channels: roles, master replacement, offline buffering
//!   with the channel's message TTL, throttling, STATUS_RESPONSE, GO_AWAY, RECONNECT_ICE_SERVER,
//!   SendAlexaOfferToMaster.
//! - [`Registry`]: control-plane semantics: create, describe, list, update, delete and tag
//!   channels.
//! - [`ClientSession`]: the client side: endpoints, ICE configuration, connect, reconnect with
//!   backoff.
//!
//! Every state machine takes the current time as an argument and queues its outputs; none reads
//! a clock, the OS random source or a socket, so the same code runs under tokio, another
//! runtime or a simulation, and every test is deterministic. Randomness comes from an injected
//! [`Rng`].

#![warn(clippy::indexing_slicing)]

mod hub;
mod registry;
mod rng;
mod session;
mod throttle;

pub use hub::{
    AlexaOffer, CloseReason, ConfigError as HubConfigError, ConnId, Counters, Frame, Hub,
    HubConfig, OpenConnection, Output, Refused, RequestId,
};
pub use registry::*;
pub use rng::{Rng, SplitMix64};
pub use session::*;
pub use throttle::Rate;

#[doc(hidden)]
pub mod testing;
