//! What the bodies of both planes share: the enumerations of the API model, the data plane's
//! strings, timestamps, the checks some members add to their type's own rules, and the
//! structures nested in several bodies.

use serde::Serialize;
use serde_json::Value;

use super::JsonBody;
use crate::connect::Role;
use crate::error::{Error, Field, JsonType, Violation};
use crate::ids::{ChannelArn, ChannelName, Version};
use crate::json::{FromJson, wrong_type};
use crate::limits;
use crate::number::{IceServerTtl, MessageTtlSeconds};
use crate::payload::MessagePayload;
use crate::tags::{Tag, TagKey, check_tag_count};
use crate::text::{check_length, string_newtype, wire_enum};

// Enumerations of the API model.

wire_enum! {
    /// A channel's type. Only `SINGLE_MASTER` is supported by the service.
    #[non_exhaustive]
    ChannelType, field = "ChannelType", allowed = "SINGLE_MASTER, FULL_MESH" {
        /// One master, up to ten viewers.
        SingleMaster = "SINGLE_MASTER",
        /// Listed by the model, not supported by the service.
        FullMesh = "FULL_MESH",
    }
}

wire_enum! {
    /// A channel's status. The official C SDK treats any other text as `DELETING`.
    #[non_exhaustive]
    ChannelStatus, field = "ChannelStatus", allowed = "CREATING, ACTIVE, UPDATING, DELETING" {
        /// Being created.
        Creating = "CREATING",
        /// Ready.
        Active = "ACTIVE",
        /// Being updated.
        Updating = "UPDATING",
        /// Being deleted.
        Deleting = "DELETING",
    }
}

wire_enum! {
    /// A protocol of a channel endpoint.
    #[non_exhaustive]
    ChannelProtocol, field = "Protocols", allowed = "WSS, HTTPS, WEBRTC" {
        /// The WebSocket endpoint.
        Wss = "WSS",
        /// The HTTPS data plane endpoint.
        Https = "HTTPS",
        /// The WebRTC ingestion endpoint of channels with media storage.
        Webrtc = "WEBRTC",
    }
}

wire_enum! {
    /// The comparison of a ListSignalingChannels name condition.
    #[non_exhaustive]
    ComparisonOperator, field = "ComparisonOperator", allowed = "BEGINS_WITH" {
        /// Names that start with the comparison value.
        BeginsWith = "BEGINS_WITH",
    }
}

wire_enum! {
    /// The service GetIceServerConfig asks for.
    #[non_exhaustive]
    IceService, field = "Service", allowed = "TURN" {
        /// TURN relays.
        Turn = "TURN",
    }
}

wire_enum! {
    /// Whether a channel ingests media into a stream.
    #[non_exhaustive]
    MediaStorageStatus, field = "Status", allowed = "ENABLED, DISABLED" {
        /// Media goes to the stream.
        Enabled = "ENABLED",
        /// Plain peer-to-peer signaling.
        Disabled = "DISABLED",
    }
}

// Strings of the data plane with only a length rule.

string_newtype! {
    /// An ICE server URI, such as `turn:host:443?transport=udp`: 1 to 256 characters.
    IceUri, field = "Uris", validate = validate_ice_field
}

string_newtype! {
    /// An ICE server username or password, or GetIceServerConfig's `Username`: 1 to 256
    /// characters. The model's `[a-zA-Z0-9_.-]+` pattern is not applied: the service's own
    /// credentials contain `:`, `+`, `/` and `=`.
    IceCredential, field = "Username", validate = validate_ice_field
}

fn validate_ice_field(value: &str) -> Result<(), Violation> {
    check_length(value, 1, limits::MAX_ICE_SERVER_FIELD_LEN).map(|_| ())
}

/// A point in time, carried as epoch seconds with a fraction (`1657142193.914`), kept to the
/// millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    millis: i64,
}

impl Timestamp {
    /// The time `millis` milliseconds after the Unix epoch.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self { millis }
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.millis
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.millis % 1000 == 0 {
            serializer.serialize_i64(self.millis / 1000)
        } else {
            #[expect(
                clippy::cast_precision_loss,
                reason = "epoch milliseconds stay far below 2^53"
            )]
            serializer.serialize_f64(self.millis as f64 / 1000.0)
        }
    }
}

impl FromJson for Timestamp {
    fn from_json(value: Value, field: &Field) -> Result<Self, Error> {
        let seconds = match &value {
            Value::Number(n) => n.as_f64(),
            _ => None,
        };
        match seconds {
            Some(s) if s.is_finite() && s.abs() < 1e15 => Ok(Self {
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "the range was checked just above"
                )]
                millis: (s * 1000.0).round() as i64,
            }),
            Some(_) => Err(Error::invalid(
                field.clone(),
                Violation::Range {
                    min: 0,
                    max: 999_999_999_999_999,
                    found: value.to_string(),
                },
            )),
            None => Err(wrong_type(field, JsonType::Number, &value)),
        }
    }
}

// Checks that some members add to their type's own rules.

pub(super) fn check_create_tags(field: &Field, tags: &[Tag]) -> Result<(), Error> {
    check_tag_count(field, tags.len(), 0)
}

pub(super) fn check_tags(field: &Field, tags: &[Tag]) -> Result<(), Error> {
    check_tag_count(field, tags.len(), 1)
}

pub(super) fn check_tag_keys(field: &Field, keys: &[TagKey]) -> Result<(), Error> {
    check_count(field, keys.len(), 1, limits::MAX_TAGS_PER_RESOURCE)
}

pub(super) fn check_protocols(field: &Field, protocols: &[ChannelProtocol]) -> Result<(), Error> {
    check_count(field, protocols.len(), 1, limits::MAX_ENDPOINT_PROTOCOLS)
}

fn check_count(field: &Field, found: usize, min: usize, max: usize) -> Result<(), Error> {
    if found < min || found > max {
        return Err(Error::invalid(
            field.clone(),
            Violation::Count { min, max, found },
        ));
    }
    Ok(())
}

pub(super) fn check_alexa_payload(
    field: &Field,
    payload: &MessagePayload<'static>,
) -> Result<(), Error> {
    if payload.len() > limits::MAX_ALEXA_PAYLOAD_LEN {
        return Err(Error::invalid(
            field.clone(),
            Violation::Length {
                min: 1,
                max: limits::MAX_ALEXA_PAYLOAD_LEN,
                found: payload.len(),
            },
        ));
    }
    Ok(())
}

pub(super) fn check_answer(field: &Field, answer: &str) -> Result<(), Error> {
    check_length(answer, 1, limits::MAX_ALEXA_PAYLOAD_LEN)
        .map(|_| ())
        .map_err(|violation| Error::invalid(field.clone(), violation))
}

impl FromJson for MessagePayload<'static> {
    fn from_json(value: Value, field: &Field) -> Result<Self, Error> {
        let text = crate::json::string(value, field)?;
        Self::new(text).map_err(|err| err.with_field(field.clone()))
    }
}

// Shared structures.

json_object! {
    /// `{"MessageTtlSeconds": 60}`.
    pub struct SingleMasterConfiguration {
        required {}
        optional {
            /// How long undelivered messages are kept.
            message_ttl_seconds: MessageTtlSeconds = "MessageTtlSeconds",
        }
    }
}

json_object! {
    /// A channel's description. Members are declared in the order the service writes them,
    /// sorted by name.
    pub struct ChannelInfo {
        required {}
        optional {
            /// The ARN.
            channel_arn: ChannelArn = "ChannelARN",
            /// The name.
            channel_name: ChannelName = "ChannelName",
            /// The status.
            channel_status: ChannelStatus = "ChannelStatus",
            /// The type.
            channel_type: ChannelType = "ChannelType",
            /// When it was created.
            creation_time: Timestamp = "CreationTime",
            /// Its message TTL.
            single_master_configuration: SingleMasterConfiguration = "SingleMasterConfiguration",
            /// Its version.
            version: Version = "Version",
        }
    }
}

json_object! {
    /// A ListSignalingChannels filter on names.
    pub struct ChannelNameCondition {
        required {}
        optional {
            /// How names are compared.
            comparison_operator: ComparisonOperator = "ComparisonOperator",
            /// The value compared with.
            comparison_value: ChannelName = "ComparisonValue",
        }
    }
}

json_object! {
    /// Which endpoints GetSignalingChannelEndpoint returns, and for which role.
    pub struct SingleMasterChannelEndpointConfiguration {
        required {}
        optional {
            /// 1 to 5 protocols.
            protocols: Vec<ChannelProtocol> = "Protocols" => check_protocols,
            /// The role the caller will connect as.
            role: Role = "Role",
        }
    }
}

json_object! {
    /// One endpoint of a channel.
    pub struct ResourceEndpointListItem {
        required {}
        optional {
            /// Its protocol.
            protocol: ChannelProtocol = "Protocol",
            /// Its URL, such as `wss://…` or `https://…` (no trailing slash).
            resource_endpoint: String = "ResourceEndpoint",
        }
    }
}

json_object! {
    /// One ICE server with its credentials.
    pub struct IceServer {
        required {}
        optional {
            /// Its URIs; the official C SDK takes at most four.
            uris: Vec<IceUri> = "Uris",
            /// The username, `<expiry>:<id>` for TURN.
            username: IceCredential = "Username",
            /// The password.
            password: IceCredential = "Password",
            /// How long the credentials stay valid.
            ttl: IceServerTtl = "Ttl",
        }
    }
}

json_object! {
    /// Whether a channel ingests media into a stream.
    pub struct MediaStorageConfiguration {
        required {
            /// Enabled or disabled.
            status: MediaStorageStatus = "Status",
        }
        optional {
            /// The stream media goes to.
            stream_arn: ChannelArn = "StreamARN",
        }
    }
}
