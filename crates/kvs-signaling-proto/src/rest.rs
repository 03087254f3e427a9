//! Request and response bodies of the control plane and the HTTPS data plane, and the error
//! body, with the member names of the API model (`ChannelARN`, `MessageTtlSeconds`, …).
//!
//! Decoding reads member by member so that an error names the member's path and its rule;
//! unknown members are ignored and `null` reads as absent, as the service does. Encoding omits
//! absent members.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::connect::Role;
use crate::error::{Error, ErrorType, Field, JsonType, Violation};
use crate::ids::{ChannelArn, ChannelName, NextToken, PeerId, Version};
use crate::json::{FromJson, wrong_type};
use crate::limits;
use crate::number::{IceServerTtl, MaxResults, MessageTtlSeconds};
use crate::payload::MessagePayload;
use crate::tags::{Tag, TagKey, TagValue, check_tag_count};
use crate::text::{check_length, string_newtype, wire_enum};

/// A JSON body: decoded with errors that name the member and the rule, encoded compactly.
pub trait JsonBody: Sized + Serialize {
    /// Decodes a body; an empty body reads as `{}`.
    fn decode(bytes: &[u8]) -> Result<Self, Error>;

    /// Encodes the body as compact JSON.
    fn encode(&self) -> Vec<u8> {
        // Every body is plain data with string keys, which serde_json always serializes.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// Declares a body: its struct (required members first, then optional ones), a constructor
/// taking the required members, and decoding that checks each member in order, running the
/// member's extra check when one follows `=>`.
macro_rules! json_object {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            required {
                $( $(#[$rmeta:meta])* $rfield:ident : $rty:ty = $rjson:literal $(=> $rcheck:path)? ),* $(,)?
            }
            optional {
                $( $(#[$ometa:meta])* $ofield:ident : $oty:ty = $ojson:literal $(=> $ocheck:path)? ),* $(,)?
            }
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[non_exhaustive]
        pub struct $name {
            $( $(#[$rmeta])* #[serde(rename = $rjson)] pub $rfield: $rty, )*
            $(
                $(#[$ometa])*
                #[serde(rename = $ojson, skip_serializing_if = "Option::is_none")]
                pub $ofield: Option<$oty>,
            )*
        }

        impl $name {
            /// A body with the required members given and the optional ones absent.
            #[allow(clippy::new_without_default, reason = "some bodies have required members")]
            pub fn new($($rfield: $rty),*) -> Self {
                Self { $($rfield,)* $($ofield: None,)* }
            }
        }

        impl FromJson for $name {
            fn from_json(value: Value, field: &Field) -> Result<Self, Error> {
                #[allow(unused_mut, unused_variables, reason = "bodies without members take none")]
                let mut obj = crate::json::Obj::new(value, field)?;
                $(
                    let $rfield: $rty = obj.required($rjson)?;
                    $( $rcheck(&field.member($rjson), &$rfield)?; )?
                )*
                $(
                    let $ofield: Option<$oty> = obj.optional($ojson)?;
                    $( if let Some(value) = &$ofield { $ocheck(&field.member($ojson), value)?; } )?
                )*
                Ok(Self { $($rfield,)* $($ofield,)* })
            }
        }

        impl JsonBody for $name {
            fn decode(bytes: &[u8]) -> Result<Self, Error> {
                crate::json::decode_body(bytes)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = Value::deserialize(deserializer)?;
                Self::from_json(value, &Field::new(""))
                    .map_err(<D::Error as serde::de::Error>::custom)
            }
        }
    };
}

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

fn check_create_tags(field: &Field, tags: &[Tag]) -> Result<(), Error> {
    check_tag_count(field, tags.len(), 0)
}

fn check_tags(field: &Field, tags: &[Tag]) -> Result<(), Error> {
    check_tag_count(field, tags.len(), 1)
}

fn check_tag_keys(field: &Field, keys: &[TagKey]) -> Result<(), Error> {
    check_count(field, keys.len(), 1, limits::MAX_TAGS_PER_RESOURCE)
}

fn check_protocols(field: &Field, protocols: &[ChannelProtocol]) -> Result<(), Error> {
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

fn check_alexa_payload(field: &Field, payload: &MessagePayload<'static>) -> Result<(), Error> {
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

fn check_answer(field: &Field, answer: &str) -> Result<(), Error> {
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

// Control plane.

json_object! {
    /// `POST /createSignalingChannel`.
    pub struct CreateSignalingChannelRequest {
        required {
            /// The new channel's name.
            channel_name: ChannelName = "ChannelName",
        }
        optional {
            /// Its type; `SINGLE_MASTER` when absent.
            channel_type: ChannelType = "ChannelType",
            /// Its message TTL; 60 seconds when absent.
            single_master_configuration: SingleMasterConfiguration = "SingleMasterConfiguration",
            /// 0 to 50 tags.
            tags: Vec<Tag> = "Tags" => check_create_tags,
        }
    }
}

json_object! {
    /// The answer to CreateSignalingChannel.
    pub struct CreateSignalingChannelResponse {
        required {}
        optional {
            /// The new channel's ARN.
            channel_arn: ChannelArn = "ChannelARN",
        }
    }
}

json_object! {
    /// `POST /describeSignalingChannel`: by name or by ARN.
    pub struct DescribeSignalingChannelRequest {
        required {}
        optional {
            /// The channel's name.
            channel_name: ChannelName = "ChannelName",
            /// The channel's ARN.
            channel_arn: ChannelArn = "ChannelARN",
        }
    }
}

json_object! {
    /// The answer to DescribeSignalingChannel.
    pub struct DescribeSignalingChannelResponse {
        required {}
        optional {
            /// The channel.
            channel_info: ChannelInfo = "ChannelInfo",
        }
    }
}

json_object! {
    /// `POST /listSignalingChannels`.
    pub struct ListSignalingChannelsRequest {
        required {}
        optional {
            /// The page size, 1 to 10000; 500 when absent.
            max_results: MaxResults = "MaxResults",
            /// Where the previous page ended.
            next_token: NextToken = "NextToken",
            /// A filter on names.
            channel_name_condition: ChannelNameCondition = "ChannelNameCondition",
        }
    }
}

json_object! {
    /// The answer to ListSignalingChannels.
    pub struct ListSignalingChannelsResponse {
        required {}
        optional {
            /// The channels of this page.
            channel_info_list: Vec<ChannelInfo> = "ChannelInfoList",
            /// Present when more pages follow.
            next_token: NextToken = "NextToken",
        }
    }
}

json_object! {
    /// `POST /updateSignalingChannel`.
    pub struct UpdateSignalingChannelRequest {
        required {
            /// The channel.
            channel_arn: ChannelArn = "ChannelARN",
            /// The version the caller read.
            current_version: Version = "CurrentVersion",
        }
        optional {
            /// The new message TTL.
            single_master_configuration: SingleMasterConfiguration = "SingleMasterConfiguration",
        }
    }
}

json_object! {
    /// `POST /deleteSignalingChannel`.
    pub struct DeleteSignalingChannelRequest {
        required {
            /// The channel.
            channel_arn: ChannelArn = "ChannelARN",
        }
        optional {
            /// The version the caller read; when absent, the latest is deleted.
            current_version: Version = "CurrentVersion",
        }
    }
}

json_object! {
    /// `POST /getSignalingChannelEndpoint`.
    pub struct GetSignalingChannelEndpointRequest {
        required {
            /// The channel.
            channel_arn: ChannelArn = "ChannelARN",
        }
        optional {
            /// Which endpoints, for which role.
            single_master_channel_endpoint_configuration:
                SingleMasterChannelEndpointConfiguration = "SingleMasterChannelEndpointConfiguration",
        }
    }
}

json_object! {
    /// The answer to GetSignalingChannelEndpoint.
    pub struct GetSignalingChannelEndpointResponse {
        required {}
        optional {
            /// One endpoint per protocol asked for.
            resource_endpoint_list: Vec<ResourceEndpointListItem> = "ResourceEndpointList",
        }
    }
}

json_object! {
    /// `POST /TagResource`.
    pub struct TagResourceRequest {
        required {
            /// The channel.
            resource_arn: ChannelArn = "ResourceARN",
            /// 1 to 50 tags; existing keys are overwritten.
            tags: Vec<Tag> = "Tags" => check_tags,
        }
        optional {}
    }
}

json_object! {
    /// `POST /UntagResource`.
    pub struct UntagResourceRequest {
        required {
            /// The channel.
            resource_arn: ChannelArn = "ResourceARN",
            /// 1 to 50 keys; unknown keys are ignored.
            tag_key_list: Vec<TagKey> = "TagKeyList" => check_tag_keys,
        }
        optional {}
    }
}

json_object! {
    /// `POST /ListTagsForResource`.
    pub struct ListTagsForResourceRequest {
        required {
            /// The channel.
            resource_arn: ChannelArn = "ResourceARN",
        }
        optional {
            /// Where the previous page ended.
            next_token: NextToken = "NextToken",
        }
    }
}

json_object! {
    /// The answer to ListTagsForResource: the tags as a map, not a list.
    pub struct ListTagsForResourceResponse {
        required {}
        optional {
            /// Present when more pages follow.
            next_token: NextToken = "NextToken",
            /// Key to value.
            tags: BTreeMap<TagKey, TagValue> = "Tags",
        }
    }
}

json_object! {
    /// `POST /describeMediaStorageConfiguration`.
    pub struct DescribeMediaStorageConfigurationRequest {
        required {}
        optional {
            /// The channel's name.
            channel_name: ChannelName = "ChannelName",
            /// The channel's ARN.
            channel_arn: ChannelArn = "ChannelARN",
        }
    }
}

json_object! {
    /// The answer to DescribeMediaStorageConfiguration.
    pub struct DescribeMediaStorageConfigurationResponse {
        required {}
        optional {
            /// The channel's media storage.
            media_storage_configuration: MediaStorageConfiguration = "MediaStorageConfiguration",
        }
    }
}

json_object! {
    /// The empty answer of UpdateSignalingChannel, DeleteSignalingChannel, TagResource and
    /// UntagResource: `{}`.
    pub struct EmptyResponse {
        required {}
        optional {}
    }
}

// HTTPS data plane.

json_object! {
    /// `POST /v1/get-ice-server-config`.
    pub struct GetIceServerConfigRequest {
        required {
            /// The channel.
            channel_arn: ChannelArn = "ChannelARN",
        }
        optional {
            /// The caller's client id.
            client_id: PeerId = "ClientId",
            /// `TURN`.
            service: IceService = "Service",
            /// A username for the credentials.
            username: IceCredential = "Username",
        }
    }
}

json_object! {
    /// The answer to GetIceServerConfig.
    pub struct GetIceServerConfigResponse {
        required {}
        optional {
            /// The ICE servers; the official C SDK needs at least one.
            ice_server_list: Vec<IceServer> = "IceServerList",
        }
    }
}

json_object! {
    /// `POST /v1/send-alexa-offer-to-master`.
    pub struct SendAlexaOfferToMasterRequest {
        required {
            /// The channel.
            channel_arn: ChannelArn = "ChannelARN",
            /// The sender's id, which the master answers to.
            sender_client_id: PeerId = "SenderClientId",
            /// The base64 SDP offer, at most 10000 characters.
            message_payload: MessagePayload<'static> = "MessagePayload" => check_alexa_payload,
        }
        optional {}
    }
}

json_object! {
    /// The answer to SendAlexaOfferToMaster.
    pub struct SendAlexaOfferToMasterResponse {
        required {}
        optional {
            /// The master's base64 SDP answer.
            answer: String = "Answer" => check_answer,
        }
    }
}

/// An operation of the control plane or the HTTPS data plane, with its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Operation {
    /// `POST /createSignalingChannel`.
    CreateSignalingChannel,
    /// `POST /describeSignalingChannel`.
    DescribeSignalingChannel,
    /// `POST /listSignalingChannels`.
    ListSignalingChannels,
    /// `POST /updateSignalingChannel`.
    UpdateSignalingChannel,
    /// `POST /deleteSignalingChannel`.
    DeleteSignalingChannel,
    /// `POST /getSignalingChannelEndpoint`.
    GetSignalingChannelEndpoint,
    /// `POST /TagResource`.
    TagResource,
    /// `POST /UntagResource`.
    UntagResource,
    /// `POST /ListTagsForResource`.
    ListTagsForResource,
    /// `POST /describeMediaStorageConfiguration`.
    DescribeMediaStorageConfiguration,
    /// `POST /v1/get-ice-server-config`.
    GetIceServerConfig,
    /// `POST /v1/send-alexa-offer-to-master`.
    SendAlexaOfferToMaster,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Self; 12] = [
        Self::CreateSignalingChannel,
        Self::DescribeSignalingChannel,
        Self::ListSignalingChannels,
        Self::UpdateSignalingChannel,
        Self::DeleteSignalingChannel,
        Self::GetSignalingChannelEndpoint,
        Self::TagResource,
        Self::UntagResource,
        Self::ListTagsForResource,
        Self::DescribeMediaStorageConfiguration,
        Self::GetIceServerConfig,
        Self::SendAlexaOfferToMaster,
    ];

    /// The request path; paths are case-sensitive.
    pub const fn path(self) -> &'static str {
        match self {
            Self::CreateSignalingChannel => "/createSignalingChannel",
            Self::DescribeSignalingChannel => "/describeSignalingChannel",
            Self::ListSignalingChannels => "/listSignalingChannels",
            Self::UpdateSignalingChannel => "/updateSignalingChannel",
            Self::DeleteSignalingChannel => "/deleteSignalingChannel",
            Self::GetSignalingChannelEndpoint => "/getSignalingChannelEndpoint",
            Self::TagResource => "/TagResource",
            Self::UntagResource => "/UntagResource",
            Self::ListTagsForResource => "/ListTagsForResource",
            Self::DescribeMediaStorageConfiguration => "/describeMediaStorageConfiguration",
            Self::GetIceServerConfig => "/v1/get-ice-server-config",
            Self::SendAlexaOfferToMaster => "/v1/send-alexa-offer-to-master",
        }
    }

    /// The operation served at `path`.
    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.path() == path)
    }

    /// Whether the operation belongs to the HTTPS data plane (a channel's own endpoint)
    /// rather than the control plane.
    pub const fn is_data_plane(self) -> bool {
        matches!(
            self,
            Self::GetIceServerConfig | Self::SendAlexaOfferToMaster
        )
    }
}

/// The body of an error answer: `{"__type": "ResourceNotFoundException", "Message": "…"}`.
///
/// The real service sends `Message` (lowercase `message` for the two errors whose model
/// spells it so) and names the type in the `x-amzn-ErrorType` header; `__type` in the body
/// is added for clients that read the type from there. Decoding accepts `__type` or `code`,
/// `Message` or `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorBody {
    /// The error's name, when the body has one.
    pub error_type: Option<String>,
    /// The message.
    pub message: Option<String>,
}

impl ErrorBody {
    /// The body of an answer with `error_type` and `message`.
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        Self {
            error_type: Some(error_type.name().to_owned()),
            message: Some(message.into()),
        }
    }

    /// The error type, when the body names one this crate knows. A `__type` of the form
    /// `namespace#Name` or `Name:url` is reduced to `Name`.
    pub fn known_error_type(&self) -> Option<ErrorType> {
        let name = self.error_type.as_deref()?;
        let name = name.rsplit_once('#').map_or(name, |(_, name)| name);
        ErrorType::from_header_value(name)
    }

    /// Encodes the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut map = serde_json::Map::new();
        if let Some(error_type) = &self.error_type {
            map.insert("__type".to_owned(), Value::String(error_type.clone()));
        }
        if let Some(message) = &self.message {
            let key = match self.known_error_type() {
                Some(t) if t.lowercase_message() => "message",
                _ => "Message",
            };
            map.insert(key.to_owned(), Value::String(message.clone()));
        }
        serde_json::to_vec(&Value::Object(map)).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// Decodes a body.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let value: Value = crate::json::decode_body(bytes)?;
        let mut obj = crate::json::Obj::new(value, &Field::new(""))?;
        let error_type = match obj.optional::<String>("__type")? {
            Some(name) => Some(name),
            None => obj.optional("code")?,
        };
        let message = match obj.optional::<String>("Message")? {
            Some(message) => Some(message),
            None => obj.optional("message")?,
        };
        Ok(Self {
            error_type,
            message,
        })
    }
}

impl FromJson for Value {
    fn from_json(value: Value, _: &Field) -> Result<Self, Error> {
        Ok(value)
    }
}

#[cfg(test)]
mod tests;
