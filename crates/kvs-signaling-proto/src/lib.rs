//! Wire types and validation for the Amazon Kinesis Video Streams WebRTC signaling protocol.
//!
//! This crate holds every message and body that crosses the wire between KVS signaling clients
//! and the service, and nothing else: no IO, no clock, no state.
//!
//! - WebSocket: [`ClientMessage`] (what a master or viewer sends) and [`ServerEvent`] (what the
//!   service delivers: relayed offers, answers and candidates, STATUS_RESPONSE, GO_AWAY,
//!   RECONNECT_ICE_SERVER), and [`ConnectQuery`], the query of the connect URL.
//! - REST: the request and response bodies of the control plane and the HTTPS data plane (see
//!   [`Operation`]), and the error body [`ErrorBody`].
//! - Validated newtypes for every constrained value ([`ChannelName`], [`ChannelArn`],
//!   [`ClientId`], [`PeerId`], [`CorrelationId`], [`MessagePayload`], [`MessageTtlSeconds`],
//!   [`TagKey`], …): a value that breaks a rule cannot be constructed or deserialized.
//! - [`Error`], which names the field, the rule and the culprit, and maps to the service's
//!   [`ErrorType`] and status code.
//! - Typed views of decoded payloads: [`SessionDescription`] and [`IceCandidate`].
//!
//! - This project's extensions, which the service does not have and no official SDK sends:
//!   [`DeliveryStatus`] (the `DELIVERY_STATUS` event, asked for with
//!   [`DELIVERY_STATUS_PARAM`]) and [`INDICATIONS_PARAM`] (a client that handles GO_AWAY and
//!   RECONNECT_ICE_SERVER).
//!
//! Decoders accept what the official clients really send (keys in any letter case, unknown
//! keys, URL-safe base64); encoders write only what every official client parses.
//!
//! ```
//! use kvs_signaling_proto::{Action, ClientMessage, MessageType, PeerId, ServerEvent};
//!
//! // A viewer's offer, as the official C SDK writes it.
//! let frame = r#"{"action":"SDP_OFFER","RecipientClientId":"ProducerMaster",
//!     "MessagePayload":"eyJ0eXBlIjoib2ZmZXIifQ==","CorrelationId":"1"}"#;
//! let message = ClientMessage::decode(frame)?;
//! assert_eq!(message.action, Action::SdpOffer);
//!
//! // Relayed to the master, stamped with the viewer's id; the payload goes out unchanged.
//! let viewer = PeerId::new("viewer-1")?;
//! let event = ServerEvent::relay(MessageType::SdpOffer, Some(&viewer), message.message_payload);
//! assert_eq!(
//!     event.encode(),
//!     r#"{"messagePayload":"eyJ0eXBlIjoib2ZmZXIifQ==","messageType":"SDP_OFFER","senderClientId":"viewer-1"}"#
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A malformed message that carried a correlation id is answered with a STATUS_RESPONSE:
//!
//! ```
//! use kvs_signaling_proto::{ClientMessage, ErrorType};
//!
//! let err = ClientMessage::decode(r#"{"action":"SDP_OFFER","messagePayload":"a$b","correlationId":"7"}"#)
//!     .unwrap_err();
//! assert_eq!(err.error.error_type(), ErrorType::InvalidArgumentException);
//! assert_eq!(
//!     err.error.to_string(),
//!     "messagePayload: character '$' (U+0024) at position 1 is not allowed; allowed: the base64 \
//!      alphabet: letters, digits, '+' and '/' (or URL-safe '-' and '_'), '=' padding"
//! );
//! let answer = err.status_response().unwrap().encode();
//! assert!(answer.starts_with(r#"{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"7","description":"messagePayload: character"#));
//! assert!(answer.ends_with(r#"","errorType":"InvalidArgumentException","statusCode":"400","success":false}}"#));
//! ```

#![warn(clippy::indexing_slicing)]

mod connect;
mod error;
mod ids;
mod json;
pub mod limits;
mod message;
mod number;
mod payload;
mod rest;
mod sdp;
mod tags;
mod text;

pub use connect::{
    AmzDate, ConnectQuery, Credential, DELIVERY_STATUS_PARAM, INDICATIONS_PARAM, PresignParams,
    Role, parse_query,
};
pub use error::{Error, ErrorType, Field, JsonType, Violation};
pub use ids::{ChannelArn, ChannelName, ClientId, CorrelationId, NextToken, PeerId, Version};
pub use message::{
    Action, ClientMessage, ClientMessageError, DecodeOptions, DeliveryState, DeliveryStatus,
    MessageType, ServerEvent, StatusResponse,
};
pub use number::{IceServerTtl, MaxResults, MessageTtlSeconds, PresignExpires};
pub use payload::MessagePayload;
pub use rest::{
    ChannelInfo, ChannelNameCondition, ChannelProtocol, ChannelStatus, ChannelType,
    ComparisonOperator, CreateSignalingChannelRequest, CreateSignalingChannelResponse,
    DeleteSignalingChannelRequest, DescribeMediaStorageConfigurationRequest,
    DescribeMediaStorageConfigurationResponse, DescribeSignalingChannelRequest,
    DescribeSignalingChannelResponse, EmptyResponse, ErrorBody, GetIceServerConfigRequest,
    GetIceServerConfigResponse, GetSignalingChannelEndpointRequest,
    GetSignalingChannelEndpointResponse, IceCredential, IceServer, IceService, IceUri, JsonBody,
    ListSignalingChannelsRequest, ListSignalingChannelsResponse, ListTagsForResourceRequest,
    ListTagsForResourceResponse, MediaStorageConfiguration, MediaStorageStatus, Operation,
    ResourceEndpointListItem, SendAlexaOfferToMasterRequest, SendAlexaOfferToMasterResponse,
    SingleMasterChannelEndpointConfiguration, SingleMasterConfiguration, TagResourceRequest,
    Timestamp, UntagResourceRequest, UpdateSignalingChannelRequest,
};
pub use sdp::{IceCandidate, PayloadJson, SdpType, SessionDescription};
pub use tags::{Tag, TagKey, TagValue};

#[cfg(test)]
mod golden;
#[cfg(test)]
mod proptests;

/// Entry points for the fuzz targets. Not part of the API.
#[doc(hidden)]
pub mod internal;
