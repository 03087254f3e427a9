//! The HTTPS data plane's bodies: ICE server configuration and Alexa offers.

use serde::Serialize;
use serde_json::Value;

use super::JsonBody;
use super::shared::{IceCredential, IceServer, IceService, check_alexa_payload, check_answer};
use crate::error::{Error, Field};
use crate::ids::{ChannelArn, PeerId};
use crate::json::FromJson;
use crate::payload::MessagePayload;

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
