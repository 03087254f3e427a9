//! [`ServerEvent`], the event the service sends, and [`StatusResponse`], the failure a
//! STATUS_RESPONSE reports.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value;

use super::raw::{Raw, RawObject, optional_id, optional_str, required_str};
use super::{DeliveryStatus, MessageType, push_member};
use crate::error::{Error, ErrorType, Field, JsonType, Violation};
use crate::ids::{CorrelationId, PeerId};
use crate::limits;
use crate::payload::MessagePayload;

const EVENT_KEYS: [&str; 5] = [
    "senderClientId",
    "messageType",
    "messagePayload",
    "statusResponse",
    "deliveryStatus",
];

/// An event the service sends over the WebSocket:
/// `{"senderClientId", "messageType", "messagePayload", "statusResponse"}`, and this
/// project's `deliveryStatus` ([`DeliveryStatus`]).
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
    /// What became of a message, on a DELIVERY_STATUS event (an extension of this project).
    pub delivery_status: Option<DeliveryStatus>,
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
            delivery_status: None,
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
            delivery_status: None,
        }
    }

    /// A DELIVERY_STATUS event reporting `status` (an extension of this project).
    pub fn delivery_status(status: DeliveryStatus) -> Self {
        Self {
            sender_client_id: None,
            message_type: MessageType::DeliveryStatus,
            message_payload: None,
            status_response: None,
            delivery_status: Some(status),
        }
    }

    fn bare(message_type: MessageType) -> Self {
        Self {
            sender_client_id: None,
            message_type,
            message_payload: None,
            status_response: None,
            delivery_status: None,
        }
    }

    /// Encodes the event. A relayed payload that is not standard base64 is normalized; one
    /// that is goes out byte for byte. Keys come in the order the service writes them, sorted
    /// by name: some clients read a key only after another one.
    pub fn encode(&self) -> String {
        let payload_len = self.message_payload.as_ref().map_or(0, |p| p.len() + 2);
        let mut out = String::with_capacity(64 + payload_len);
        out.push('{');
        if let Some(status) = &self.delivery_status {
            out.push_str("\"deliveryStatus\":");
            status.write_json(&mut out);
            out.push(',');
        }
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
        let [sender, message_type, payload, status, delivery] = &mut raw.values;
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
        let delivery_status = match delivery.take() {
            None | Some(Raw::Null) => None,
            Some(Raw::Str(_)) => {
                return Err(Error::WrongType {
                    field: Field::new("deliveryStatus"),
                    expected: JsonType::Object,
                    found: JsonType::String,
                });
            }
            Some(Raw::Other(value)) => Some(DeliveryStatus::from_value(value)?),
        };
        Ok(Self {
            sender_client_id,
            message_type,
            message_payload,
            status_response,
            delivery_status,
        })
    }

    /// The event with its own copies of borrowed parts.
    pub fn into_owned(self) -> ServerEvent<'static> {
        ServerEvent {
            sender_client_id: self.sender_client_id.map(|s| Cow::Owned(s.into_owned())),
            message_type: self.message_type,
            message_payload: self.message_payload.map(MessagePayload::into_owned),
            status_response: self.status_response,
            delivery_status: self.delivery_status,
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
