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
    AlexaOffer, AlexaRequestId, ChannelView, CloseReason, ConnId, ConnectionStanding,
    ConnectionView, Counters, Frame, HeldChange, HeldMessage, HeldView, Hub, HubConfig,
    HubConfigError, Observation, OpenConnection, Output, Receipt, Refused,
};
pub use registry::{
    Change, ChannelRecord, Registry, RegistryConfig, RegistryConfigError, RegistryError,
    RegistrySnapshot, RestoreError,
};
pub use rng::{Rng, SplitMix64};
pub use session::{
    BackoffJitter, ClientSession, ClientSessionConfig, Endpoints, FailureReason, RequestError,
    RequestKind, SessionConfigError, SessionEvent, SessionOutput, SessionRequestId, SessionState,
};
pub use throttle::Rate;

/// The simulation harness and reference model of the tests and the fuzz target. It reads the
/// clock once, for a simulation's origin, so it exists only in test and fuzzing builds.
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod testing;
