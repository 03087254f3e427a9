//! [`ClientMessage`], the envelope a client sends, and its decoding.

use super::raw::{RawObject, optional_id, required_str};
use super::server::{ServerEvent, StatusResponse};
use super::{Action, fast, push_member};
use crate::error::{Error, Field};
use crate::ids::{CorrelationId, PeerId};
use crate::limits;
use crate::payload::MessagePayload;

/// How [`ClientMessage::decode_with`] decodes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeOptions {
    /// The longest `messagePayload`, in characters: 10,240 by default.
    pub max_payload_len: usize,
    /// Whether to ignore `recipientClientId` altogether (not even validate it), as the service
    /// does on messages from viewers, which always go to the master. Off by default.
    pub ignore_recipient: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_payload_len: limits::MAX_MESSAGE_PAYLOAD_LEN,
            ignore_recipient: false,
        }
    }
}

impl DecodeOptions {
    /// Sets [`DecodeOptions::max_payload_len`].
    #[must_use]
    pub fn max_payload_len(mut self, max: usize) -> Self {
        self.max_payload_len = max;
        self
    }

    /// Sets [`DecodeOptions::ignore_recipient`].
    #[must_use]
    pub fn ignore_recipient(mut self, ignore: bool) -> Self {
        self.ignore_recipient = ignore;
        self
    }
}

/// A message a client sends over the WebSocket:
/// `{"action", "recipientClientId", "messagePayload", "correlationId"}`.
///
/// Decoding accepts what official clients really send: keys in any letter case (the C SDK
/// writes `RecipientClientId`, `MessagePayload`, `CorrelationId`), unknown keys (the C SDK's
/// `IceServerList`, Android's `senderClientId`), an empty or `null` optional field as absent
/// (Android's `"recipientClientId": ""`) and both base64 alphabets. It borrows the payload
/// from the frame where it can.
///
/// Which recipients a sender may name is a routing rule, decided by the hub, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientMessage<'a> {
    /// What to do with the message.
    pub action: Action,
    /// Whom the message is for; a viewer's is ignored.
    pub recipient_client_id: Option<PeerId>,
    /// The base64 payload, as received.
    pub message_payload: MessagePayload<'a>,
    /// The id that asks for a STATUS_RESPONSE on failure.
    pub correlation_id: Option<CorrelationId>,
}

/// A client message that could not be decoded, with what was learnt before the failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
#[non_exhaustive]
pub struct ClientMessageError {
    /// What was wrong.
    #[source]
    pub error: Error,
    /// The message's correlation id, when it had a valid one: the service answers the failure
    /// with a STATUS_RESPONSE to this id, and drops it silently without one.
    pub correlation_id: Option<CorrelationId>,
    /// The message's action, when it had a valid one.
    pub action: Option<Action>,
}

impl ClientMessageError {
    /// The STATUS_RESPONSE event that answers this failure, when the message had a
    /// correlation id.
    pub fn status_response(&self) -> Option<ServerEvent<'static>> {
        let correlation_id = self.correlation_id.clone()?;
        Some(ServerEvent::status_response(StatusResponse::new(
            correlation_id,
            self.error.error_type(),
            self.error.to_string(),
        )))
    }
}

impl<'a> ClientMessage<'a> {
    /// A message to send.
    pub fn new(action: Action, message_payload: MessagePayload<'a>) -> Self {
        Self {
            action,
            recipient_client_id: None,
            message_payload,
            correlation_id: None,
        }
    }

    /// Decodes a text frame with the default payload cap.
    pub fn decode(text: &'a str) -> Result<Self, ClientMessageError> {
        Self::decode_with_max_payload(text, limits::MAX_MESSAGE_PAYLOAD_LEN)
    }

    /// Decodes a text frame, accepting payloads of at most `max_payload_len` characters.
    pub fn decode_with_max_payload(
        text: &'a str,
        max_payload_len: usize,
    ) -> Result<Self, ClientMessageError> {
        Self::decode_with(
            text,
            &DecodeOptions::default().max_payload_len(max_payload_len),
        )
    }

    /// Decodes a text frame with `options`.
    pub fn decode_with(text: &'a str, options: &DecodeOptions) -> Result<Self, ClientMessageError> {
        match Self::decode_fast(text, options) {
            Some(message) => Ok(message),
            None => Self::decode_general(text, options),
        }
    }

    /// The fast path of decoding: flat, valid envelopes only (see [`fast`]).
    pub(crate) fn decode_fast(text: &'a str, options: &DecodeOptions) -> Option<Self> {
        fast::decode(text, options)
    }

    /// The general path of decoding, which handles every frame and names every error.
    pub(crate) fn decode_general(
        text: &'a str,
        options: &DecodeOptions,
    ) -> Result<Self, ClientMessageError> {
        let max_payload_len = options.max_payload_len;
        let fail = |error| ClientMessageError {
            error,
            correlation_id: None,
            action: None,
        };
        let mut raw = RawObject::parse(text, &CLIENT_KEYS).map_err(fail)?;
        let [action, recipient, payload, correlation] = &mut raw.values;

        // The correlation id first: every later failure is answered to it.
        let correlation_id =
            optional_id(correlation.take(), "correlationId", CorrelationId::new).map_err(fail)?;
        let fail = |error| ClientMessageError {
            error,
            correlation_id: correlation_id.clone(),
            action: None,
        };
        let ignored = |index: usize| options.ignore_recipient && index == 1;
        let duplicates = raw.duplicates;
        if let Some(index) = (0..CLIENT_KEYS.len())
            .find(|&i| duplicates.get(i).copied().unwrap_or(false) && !ignored(i))
        {
            return Err(fail(Error::Duplicate {
                field: Field::new(CLIENT_KEYS.get(index).copied().unwrap_or_default()),
            }));
        }
        let action = required_str(action.take(), "action").map_err(fail)?;
        let action = Action::from_wire(&action)
            .map_err(|violation| fail(Error::invalid(Field::new("action"), violation)))?;
        let fail = |error| ClientMessageError {
            error,
            correlation_id: correlation_id.clone(),
            action: Some(action),
        };
        let recipient_client_id = if options.ignore_recipient {
            None
        } else {
            optional_id(recipient.take(), "recipientClientId", PeerId::new).map_err(fail)?
        };
        let payload = required_str(payload.take(), "messagePayload").map_err(fail)?;
        let message_payload =
            MessagePayload::with_max_len(payload, max_payload_len).map_err(fail)?;
        Ok(Self {
            action,
            recipient_client_id,
            message_payload,
            correlation_id,
        })
    }

    /// Encodes the message as the official JavaScript SDK does: camelCase keys, absent fields
    /// omitted.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(96 + self.message_payload.len());
        out.push_str("{\"action\":\"");
        out.push_str(self.action.as_str());
        out.push('"');
        if let Some(recipient) = &self.recipient_client_id {
            push_member(&mut out, "recipientClientId", recipient.as_str());
        }
        push_member(&mut out, "messagePayload", self.message_payload.as_str());
        if let Some(correlation_id) = &self.correlation_id {
            push_member(&mut out, "correlationId", correlation_id.as_str());
        }
        out.push('}');
        out
    }

    /// The message with its own copy of the payload.
    pub fn into_owned(self) -> ClientMessage<'static> {
        ClientMessage {
            action: self.action,
            recipient_client_id: self.recipient_client_id,
            message_payload: self.message_payload.into_owned(),
            correlation_id: self.correlation_id,
        }
    }
}

pub(super) const CLIENT_KEYS: [&str; 4] = [
    "action",
    "recipientClientId",
    "messagePayload",
    "correlationId",
];
