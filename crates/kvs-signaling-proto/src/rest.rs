//! Request and response bodies of the control plane and the HTTPS data plane, and the error
//! body, with the member names of the API model (`ChannelARN`, `MessageTtlSeconds`, …).
//!
//! Decoding reads member by member so that an error names the member's path and its rule;
//! unknown members are ignored and `null` reads as absent, as the service does. Encoding omits
//! absent members.
//!
//! `shared.rs` holds the enumerations, strings, timestamps, member checks and structures the
//! bodies share; `control.rs` the control plane's bodies, `data.rs` the HTTPS data plane's,
//! `error.rs` the error body.

use serde::Serialize;

use crate::error::Error;

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

mod control;
mod data;
mod error;
mod shared;

pub use control::{
    CreateSignalingChannelRequest, CreateSignalingChannelResponse, DeleteSignalingChannelRequest,
    DescribeMediaStorageConfigurationRequest, DescribeMediaStorageConfigurationResponse,
    DescribeSignalingChannelRequest, DescribeSignalingChannelResponse, EmptyResponse,
    GetSignalingChannelEndpointRequest, GetSignalingChannelEndpointResponse,
    ListSignalingChannelsRequest, ListSignalingChannelsResponse, ListTagsForResourceRequest,
    ListTagsForResourceResponse, TagResourceRequest, UntagResourceRequest,
    UpdateSignalingChannelRequest,
};
pub use data::{
    GetIceServerConfigRequest, GetIceServerConfigResponse, SendAlexaOfferToMasterRequest,
    SendAlexaOfferToMasterResponse,
};
pub use error::ErrorBody;
pub use shared::{
    ChannelInfo, ChannelNameCondition, ChannelProtocol, ChannelStatus, ChannelType,
    ComparisonOperator, IceCredential, IceServer, IceService, IceUri, MediaStorageConfiguration,
    MediaStorageStatus, ResourceEndpointListItem, SingleMasterChannelEndpointConfiguration,
    SingleMasterConfiguration, Timestamp,
};

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

#[cfg(test)]
mod tests;
