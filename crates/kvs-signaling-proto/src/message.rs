//! WebSocket messages: the client envelope a client sends and the event the service sends.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::{Error, ErrorType, Field, JsonType, Violation};
use crate::ids::{CorrelationId, PeerId};
use crate::limits;
use crate::payload::MessagePayload;

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
            other => Err(Violation::unknown_value(
                other,
                "SDP_OFFER, SDP_ANSWER, ICE_CANDIDATE, STATUS_RESPONSE, GO_AWAY, RECONNECT_ICE_SERVER",
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

const CLIENT_KEYS: [&str; 4] = [
    "action",
    "recipientClientId",
    "messagePayload",
    "correlationId",
];

const EVENT_KEYS: [&str; 4] = [
    "senderClientId",
    "messageType",
    "messagePayload",
    "statusResponse",
];

/// An event the service sends over the WebSocket:
/// `{"senderClientId", "messageType", "messagePayload", "statusResponse"}`.
///
/// Encoding writes what every official client parses, as the service writes it: compact JSON
/// with keys sorted by name, `messageType` always, camelCase keys, absent fields omitted
/// (never `null`), and the payload in standard padded base64.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerEvent<'a> {
    /// Who sent the relayed message: the viewer's client id on deliveries to the master, absent
    /// on deliveries from the master (as the service sends them).
    pub sender_client_id: Option<Cow<'a, PeerId>>,
    /// The event's type.
    pub message_type: MessageType,
    /// The relayed payload.
    pub message_payload: Option<MessagePayload<'a>>,
    /// The failure a STATUS_RESPONSE reports.
    pub status_response: Option<StatusResponse>,
}

impl<'a> ServerEvent<'a> {
    /// An event relaying `payload` from `sender`.
    pub fn relay(
        message_type: MessageType,
        sender: Option<&'a PeerId>,
        payload: MessagePayload<'a>,
    ) -> Self {
        Self {
            sender_client_id: sender.map(Cow::Borrowed),
            message_type,
            message_payload: Some(payload),
            status_response: None,
        }
    }

    /// `{"messageType":"GO_AWAY"}`.
    pub fn go_away() -> Self {
        Self::bare(MessageType::GoAway)
    }

    /// `{"messageType":"RECONNECT_ICE_SERVER"}`.
    pub fn reconnect_ice_server() -> Self {
        Self::bare(MessageType::ReconnectIceServer)
    }

    /// A STATUS_RESPONSE reporting `status`.
    pub fn status_response(status: StatusResponse) -> Self {
        Self {
            sender_client_id: None,
            message_type: MessageType::StatusResponse,
            message_payload: None,
            status_response: Some(status),
        }
    }

    fn bare(message_type: MessageType) -> Self {
        Self {
            sender_client_id: None,
            message_type,
            message_payload: None,
            status_response: None,
        }
    }

    /// Encodes the event. A relayed payload that is not standard base64 is normalized; one
    /// that is goes out byte for byte. Keys come in the order the service writes them, sorted
    /// by name: some clients read a key only after another one.
    pub fn encode(&self) -> String {
        let payload_len = self.message_payload.as_ref().map_or(0, |p| p.len() + 2);
        let mut out = String::with_capacity(64 + payload_len);
        out.push('{');
        if let Some(payload) = &self.message_payload {
            out.push_str("\"messagePayload\":\"");
            out.push_str(&payload.normalized());
            out.push_str("\",");
        }
        out.push_str("\"messageType\":\"");
        out.push_str(self.message_type.as_str());
        out.push('"');
        if let Some(sender) = &self.sender_client_id {
            push_member(&mut out, "senderClientId", sender.as_str());
        }
        if let Some(status) = &self.status_response {
            out.push_str(",\"statusResponse\":");
            status.write_json(&mut out);
        }
        out.push('}');
        out
    }

    /// Decodes an event, as a client does: keys in any letter case, unknown keys ignored,
    /// payloads of at most the default cap.
    pub fn decode(text: &'a str) -> Result<Self, Error> {
        Self::decode_with_max_payload(text, limits::MAX_MESSAGE_PAYLOAD_LEN)
    }

    /// Decodes an event, accepting payloads of at most `max_payload_len` characters.
    pub fn decode_with_max_payload(text: &'a str, max_payload_len: usize) -> Result<Self, Error> {
        let mut raw = RawObject::parse(text, &EVENT_KEYS)?;
        if let Some(index) = (0..EVENT_KEYS.len()).find(|&i| raw.is_duplicate(i)) {
            return Err(Error::Duplicate {
                field: Field::new(EVENT_KEYS.get(index).copied().unwrap_or_default()),
            });
        }
        let [sender, message_type, payload, status] = &mut raw.values;
        let message_type = required_str(message_type.take(), "messageType")?;
        let message_type = MessageType::from_wire(&message_type)
            .map_err(|violation| Error::invalid(Field::new("messageType"), violation))?;
        let sender_client_id =
            optional_id(sender.take(), "senderClientId", PeerId::new)?.map(Cow::Owned);
        let message_payload = match optional_str(payload.take(), "messagePayload")? {
            Some(text) => Some(
                MessagePayload::with_max_len(text, max_payload_len)
                    .map_err(|err| err.with_field(Field::new("messagePayload")))?,
            ),
            None => None,
        };
        let status_response = match status.take() {
            None | Some(Raw::Null) => None,
            Some(Raw::Str(_)) => {
                return Err(Error::WrongType {
                    field: Field::new("statusResponse"),
                    expected: JsonType::Object,
                    found: JsonType::String,
                });
            }
            Some(Raw::Other(value)) => Some(StatusResponse::from_value(value)?),
        };
        Ok(Self {
            sender_client_id,
            message_type,
            message_payload,
            status_response,
        })
    }

    /// The event with its own copies of borrowed parts.
    pub fn into_owned(self) -> ServerEvent<'static> {
        ServerEvent {
            sender_client_id: self.sender_client_id.map(|s| Cow::Owned(s.into_owned())),
            message_type: self.message_type,
            message_payload: self.message_payload.map(MessagePayload::into_owned),
            status_response: self.status_response,
        }
    }
}

/// The failure a STATUS_RESPONSE reports:
/// `{"correlationId", "errorType", "statusCode", "description", "success": false}`.
///
/// `statusCode` is a string on the wire (`"400"`), as the service sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusResponse {
    /// The correlation id of the failed message.
    pub correlation_id: Option<CorrelationId>,
    /// The error's name, such as `InvalidArgumentException`. Kept as text: the service may
    /// report a type this crate does not know.
    pub error_type: String,
    /// The HTTP-style status code, such as 400.
    pub status_code: u16,
    /// What went wrong, at most 1024 characters.
    pub description: Option<String>,
    /// Always false on the failures the service reports; absent in some captures.
    pub success: Option<bool>,
}

impl StatusResponse {
    /// The failure of the message `correlation_id` with `error_type`; the description is cut
    /// to 1024 characters.
    pub fn new(
        correlation_id: CorrelationId,
        error_type: ErrorType,
        description: impl Into<String>,
    ) -> Self {
        let description = description.into();
        let description = if description.chars().count() > limits::MAX_STATUS_DESCRIPTION_LEN {
            description
                .chars()
                .take(limits::MAX_STATUS_DESCRIPTION_LEN)
                .collect()
        } else {
            description
        };
        Self {
            correlation_id: Some(correlation_id),
            error_type: error_type.name().to_owned(),
            status_code: error_type.http_status(),
            description: Some(description),
            success: Some(false),
        }
    }

    /// The error type, when it is one this crate knows.
    pub fn known_error_type(&self) -> Option<ErrorType> {
        ErrorType::from_name(&self.error_type)
    }

    fn write_json(&self, out: &mut String) {
        out.push('{');
        let mut first = true;
        let mut key = |out: &mut String, name: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
        };
        if let Some(id) = &self.correlation_id {
            key(out, "correlationId");
            push_json_string(out, id.as_str());
        }
        if let Some(description) = &self.description {
            key(out, "description");
            push_json_string(out, description);
        }
        key(out, "errorType");
        push_json_string(out, &self.error_type);
        key(out, "statusCode");
        let _ = write!(out, "\"{}\"", self.status_code);
        if let Some(success) = self.success {
            key(out, "success");
            out.push_str(if success { "true" } else { "false" });
        }
        out.push('}');
    }

    fn from_value(value: Value) -> Result<Self, Error> {
        use crate::json::Obj;
        let field = Field::new("statusResponse");
        let mut obj = Obj::new(value, &field)?;
        let correlation_id = obj.optional::<CorrelationId>("correlationId")?;
        let error_type: String = obj.required("errorType")?;
        let status_field = field.member("statusCode");
        let status_code = match obj.required::<StatusCode>("statusCode")? {
            StatusCode(Some(code)) => code,
            StatusCode(None) => {
                return Err(Error::invalid(
                    status_field,
                    Violation::Range {
                        min: 100,
                        max: 999,
                        found: "a value that is not a status code".to_owned(),
                    },
                ));
            }
        };
        Ok(Self {
            correlation_id,
            error_type,
            status_code,
            description: obj.optional("description")?,
            success: obj.optional("success")?,
        })
    }
}

/// A status code written as a string (`"400"`, as the service does) or a number.
struct StatusCode(Option<u16>);

impl crate::json::FromJson for StatusCode {
    fn from_json(value: Value, field: &Field) -> Result<Self, Error> {
        match value {
            Value::String(text) => Ok(Self(text.trim().parse().ok())),
            Value::Number(n) => Ok(Self(n.as_u64().and_then(|n| u16::try_from(n).ok()))),
            other => Err(crate::json::wrong_type(field, JsonType::String, &other)),
        }
    }
}

fn push_json_string(out: &mut String, text: &str) {
    match serde_json::to_string(text) {
        Ok(json) => out.push_str(&json),
        // Serializing a string to JSON cannot fail; keep the output valid regardless.
        Err(_) => out.push_str("\"\""),
    }
}

/// A string that borrows from the input when it has no escapes.
pub(crate) struct CowStr<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A member's value as first read: a string (borrowed where possible), `null`, or anything
/// else kept for a later type error (or, for `statusResponse`, for reading).
enum Raw<'a> {
    Str(Cow<'a, str>),
    Null,
    Other(Value),
}

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Raw::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Raw::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Raw::Str(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Raw::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Raw::Other(Value::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Raw::Other(Value::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Raw::Other(Value::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Raw::Other(Value::from(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Raw::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Raw::Other)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The members of a JSON object that match `N` known keys in any letter case; other members
/// are skipped without being stored.
struct RawObject<'a, const N: usize> {
    values: [Option<Raw<'a>>; N],
    /// Which known keys were seen more than once.
    duplicates: [bool; N],
}

/// The top level of a frame: an object, or the kind of value it was instead.
enum TopLevel<'a, const N: usize> {
    Object(RawObject<'a, N>),
    Other(JsonType),
}

impl<'a, const N: usize> RawObject<'a, N> {
    fn is_duplicate(&self, index: usize) -> bool {
        self.duplicates.get(index).copied().unwrap_or(false)
    }

    fn parse(text: &'a str, keys: &'static [&'static str; N]) -> Result<Self, Error> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let top = ObjectSeed { keys }
            .deserialize(&mut deserializer)
            .and_then(|top| deserializer.end().map(|()| top))
            .map_err(|err| Error::syntax(&err))?;
        match top {
            TopLevel::Object(object) => Ok(object),
            TopLevel::Other(found) => Err(Error::WrongType {
                field: Field::new("message"),
                expected: JsonType::Object,
                found,
            }),
        }
    }
}

struct ObjectSeed<const N: usize> {
    keys: &'static [&'static str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for ObjectSeed<N> {
    type Value = TopLevel<'de, N>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for ObjectSeed<N> {
    type Value = TopLevel<'de, N>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = RawObject {
            values: std::array::from_fn(|_| None),
            duplicates: [false; N],
        };
        while let Some(key) = map.next_key_seed(KeySeed { keys: self.keys })? {
            let Some(index) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value = map.next_value::<Raw<'de>>()?;
            match object.values.get_mut(index) {
                Some(slot @ None) => *slot = Some(value),
                Some(Some(_)) => {
                    if let Some(flag) = object.duplicates.get_mut(index) {
                        *flag = true;
                    }
                }
                None => {}
            }
        }
        Ok(TopLevel::Object(object))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(TopLevel::Other(JsonType::Bool))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other(JsonType::Number))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other(JsonType::Number))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other(JsonType::Number))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(TopLevel::Other(JsonType::String))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(TopLevel::Other(JsonType::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Other(JsonType::Array))
    }
}

/// Matches a member name against the known keys in any letter case, without allocating.
struct KeySeed<const N: usize> {
    keys: &'static [&'static str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for KeySeed<N> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for KeySeed<N> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.keys.iter().position(|key| key.eq_ignore_ascii_case(v)))
    }
}

fn wrong_type(field: &'static str, found: &Value) -> Error {
    Error::WrongType {
        field: Field::new(field),
        expected: JsonType::String,
        found: JsonType::of(found),
    }
}

/// A required string member: absent, `null` and `""` are missing.
fn required_str<'a>(raw: Option<Raw<'a>>, field: &'static str) -> Result<Cow<'a, str>, Error> {
    optional_str(raw, field)?.ok_or(Error::Missing {
        field: Field::new(field),
    })
}

/// An optional string member: absent, `null` and `""` are absent.
fn optional_str<'a>(
    raw: Option<Raw<'a>>,
    field: &'static str,
) -> Result<Option<Cow<'a, str>>, Error> {
    match raw {
        None | Some(Raw::Null) => Ok(None),
        Some(Raw::Str(text)) if text.is_empty() => Ok(None),
        Some(Raw::Str(text)) => Ok(Some(text)),
        Some(Raw::Other(value)) => Err(wrong_type(field, &value)),
    }
}

/// An optional validated id member.
fn optional_id<T>(
    raw: Option<Raw<'_>>,
    field: &'static str,
    new: fn(String) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    match optional_str(raw, field)? {
        Some(text) => new(text.into_owned())
            .map(Some)
            .map_err(|err| err.with_field(Field::new(field))),
        None => Ok(None),
    }
}

mod fast;
#[cfg(test)]
mod tests;
