//! WebSocket messages: the client envelope a client sends and the event the service sends.
//!
//! The wire names both share live here ([`Action`], [`MessageType`]); `client.rs` holds
//! [`ClientMessage`] and its decoding, `server.rs` holds [`ServerEvent`] and
//! [`StatusResponse`], `raw.rs` the first read of a frame's members that both decoders share,
//! and `fast.rs` the one-pass decoder of flat envelopes.

use std::fmt;

use crate::error::Violation;

mod client;
mod delivery;
mod fast;
mod raw;
mod server;

pub use client::{ClientMessage, ClientMessageError, DecodeOptions};
pub use delivery::{DeliveryState, DeliveryStatus};
pub(crate) use raw::CowStr;
pub use server::{ServerEvent, StatusResponse};

/// What a client asks the service to do with a message (`action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[expect(
    clippy::exhaustive_enums,
    reason = "the service accepts exactly these actions"
)]
pub enum Action {
    /// `SDP_OFFER`.
    SdpOffer,
    /// `SDP_ANSWER`.
    SdpAnswer,
    /// `ICE_CANDIDATE`.
    IceCandidate,
}

impl Action {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SdpOffer => "SDP_OFFER",
            Self::SdpAnswer => "SDP_ANSWER",
            Self::IceCandidate => "ICE_CANDIDATE",
        }
    }

    /// The action with this wire name, which is case-sensitive.
    pub fn from_wire(name: &str) -> Result<Self, Violation> {
        match name {
            "SDP_OFFER" => Ok(Self::SdpOffer),
            "SDP_ANSWER" => Ok(Self::SdpAnswer),
            "ICE_CANDIDATE" => Ok(Self::IceCandidate),
            other => Err(Violation::unknown_value(
                other,
                "SDP_OFFER, SDP_ANSWER, ICE_CANDIDATE",
            )),
        }
    }

    /// The type of the event that delivers a message sent with this action.
    pub const fn message_type(self) -> MessageType {
        match self {
            Self::SdpOffer => MessageType::SdpOffer,
            Self::SdpAnswer => MessageType::SdpAnswer,
            Self::IceCandidate => MessageType::IceCandidate,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of an event the service sends (`messageType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MessageType {
    /// `SDP_OFFER`: an offer relayed from a peer.
    SdpOffer,
    /// `SDP_ANSWER`: an answer relayed from a peer.
    SdpAnswer,
    /// `ICE_CANDIDATE`: a candidate relayed from a peer.
    IceCandidate,
    /// `STATUS_RESPONSE`: the failure of a message that carried a correlation id.
    StatusResponse,
    /// `GO_AWAY`: the service will close the connection soon; reconnect.
    GoAway,
    /// `RECONNECT_ICE_SERVER`: fetch a fresh ICE server configuration.
    ReconnectIceServer,
    /// `DELIVERY_STATUS`: what became of a message that carried a correlation id. An
    /// extension of this project, sent only to connections that ask for it
    /// ([`DELIVERY_STATUS_PARAM`](crate::DELIVERY_STATUS_PARAM)); the service never sends it.
    DeliveryStatus,
}

impl MessageType {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SdpOffer => "SDP_OFFER",
            Self::SdpAnswer => "SDP_ANSWER",
            Self::IceCandidate => "ICE_CANDIDATE",
            Self::StatusResponse => "STATUS_RESPONSE",
            Self::GoAway => "GO_AWAY",
            Self::ReconnectIceServer => "RECONNECT_ICE_SERVER",
            Self::DeliveryStatus => "DELIVERY_STATUS",
        }
    }

    /// The message type with this wire name, which is case-sensitive.
    pub fn from_wire(name: &str) -> Result<Self, Violation> {
        match name {
            "SDP_OFFER" => Ok(Self::SdpOffer),
            "SDP_ANSWER" => Ok(Self::SdpAnswer),
            "ICE_CANDIDATE" => Ok(Self::IceCandidate),
            "STATUS_RESPONSE" => Ok(Self::StatusResponse),
            "GO_AWAY" => Ok(Self::GoAway),
            "RECONNECT_ICE_SERVER" => Ok(Self::ReconnectIceServer),
            "DELIVERY_STATUS" => Ok(Self::DeliveryStatus),
            other => Err(Violation::unknown_value(
                other,
                "SDP_OFFER, SDP_ANSWER, ICE_CANDIDATE, STATUS_RESPONSE, GO_AWAY, \
                 RECONNECT_ICE_SERVER, DELIVERY_STATUS",
            )),
        }
    }

    /// Whether events of this type relay a peer's payload.
    pub const fn is_relay(self) -> bool {
        matches!(self, Self::SdpOffer | Self::SdpAnswer | Self::IceCandidate)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Appends `,"key":"value"` for a value that needs no JSON escaping: validated ids, base64
/// and wire names hold only `[A-Za-z0-9+/=_.-]`.
fn push_member(out: &mut String, key: &str, value: &str) {
    debug_assert!(!value.contains(['"', '\\']) && !value.contains(char::is_control));
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":\"");
    out.push_str(value);
    out.push('"');
}

#[cfg(test)]
mod tests;
