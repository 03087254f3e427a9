//! Typed views of decoded payloads: session descriptions and ICE candidates, as the official
//! SDKs encode them inside `messagePayload`.
//!
//! The service itself never needs these: it relays payloads opaquely. Clients and tests do.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Field, Violation};
use crate::payload::MessagePayload;

/// The `type` of a session description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SdpType {
    /// `offer`.
    Offer,
    /// `answer`.
    Answer,
    /// `pranswer`.
    Pranswer,
    /// `rollback`.
    Rollback,
}

/// An SDP offer or answer: `{"type": "offer", "sdp": "v=0\r\n…"}`, the JSON of a browser's
/// `RTCSessionDescription`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionDescription {
    /// Offer or answer.
    #[serde(rename = "type")]
    pub sdp_type: SdpType,
    /// The SDP text.
    pub sdp: String,
}

impl SessionDescription {
    /// A session description.
    pub fn new(sdp_type: SdpType, sdp: impl Into<String>) -> Self {
        Self {
            sdp_type,
            sdp: sdp.into(),
        }
    }
}

/// An ICE candidate: `{"candidate": "candidate:…", "sdpMid": "0", "sdpMLineIndex": 0}`, the
/// JSON of a browser's `RTCIceCandidate`; browsers may add `usernameFragment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct IceCandidate {
    /// The candidate line, `candidate:…`; empty for the end-of-candidates marker.
    pub candidate: String,
    /// The media stream id the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The index of the media description the candidate belongs to.
    #[serde(
        rename = "sdpMLineIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

impl IceCandidate {
    /// A candidate for media line `sdp_m_line_index` with id `sdp_mid`.
    pub fn new(candidate: impl Into<String>, sdp_mid: impl Into<String>, index: u16) -> Self {
        Self {
            candidate: candidate.into(),
            sdp_mid: Some(sdp_mid.into()),
            sdp_m_line_index: Some(index),
            username_fragment: None,
        }
    }
}

/// A value carried as JSON inside a base64 payload.
pub trait PayloadJson: Serialize + for<'de> Deserialize<'de> {
    /// Reads the value from a payload.
    fn from_payload(payload: &MessagePayload<'_>) -> Result<Self, Error> {
        let bytes = payload.decode()?;
        serde_json::from_slice(&bytes).map_err(|err| {
            Error::invalid(
                Field::new("messagePayload"),
                Violation::Payload {
                    reason: err.to_string(),
                },
            )
        })
    }

    /// Writes the value as a payload: compact JSON in standard padded base64.
    fn to_payload(&self) -> Result<MessagePayload<'static>, Error> {
        let json = serde_json::to_vec(self).map_err(|err| {
            Error::invalid(
                Field::new("messagePayload"),
                Violation::Payload {
                    reason: err.to_string(),
                },
            )
        })?;
        MessagePayload::new(MessagePayload::encode(&json).as_str().to_owned())
    }
}

impl PayloadJson for SessionDescription {}
impl PayloadJson for IceCandidate {}

#[cfg(test)]
mod tests;
