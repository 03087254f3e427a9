//! The control plane and the HTTPS data plane: each operation's body decoded by proto, run on
//! the registry (and the hub, where live connections are concerned), answered as the service
//! answers.

#![allow(
    clippy::result_large_err,
    reason = "the error of these helpers is the ready HTTP answer, returned once per request"
)]

use std::time::SystemTime;

use bytes::Bytes;
use kvs_signaling_core::{AlexaOffer, RegistryError};
use kvs_signaling_proto::{
    ChannelArn, ChannelProtocol, CreateSignalingChannelRequest, DeleteSignalingChannelRequest,
    DescribeMediaStorageConfigurationRequest, DescribeSignalingChannelRequest, ErrorType,
    GetIceServerConfigRequest, GetSignalingChannelEndpointRequest, JsonBody,
    ListSignalingChannelsRequest, ListTagsForResourceRequest, MessageTtlSeconds, Operation,
    ResourceEndpointListItem, SendAlexaOfferToMasterRequest, SendAlexaOfferToMasterResponse,
    TagResourceRequest, UntagResourceRequest, UpdateSignalingChannelRequest,
};

use crate::access::{Action, Caller};
use crate::app::App;
use crate::channels::{Scope, registry_error};
use crate::http::{HttpResponse, json, rest_error};

fn decode<T: JsonBody>(body: &Bytes) -> Result<T, HttpResponse> {
    T::decode(body).map_err(|err| rest_error(err.error_type(), err.to_string()))
}

/// A request body that names the channel it acts on.
trait NamesChannel {
    /// The channel's name, taken from its name or ARN; `None` when the body names neither
    /// (the operation then answers that itself).
    fn channel(&self) -> Option<&str>;
}

impl NamesChannel for CreateSignalingChannelRequest {
    fn channel(&self) -> Option<&str> {
        Some(self.channel_name.as_str())
    }
}

impl NamesChannel for DescribeSignalingChannelRequest {
    fn channel(&self) -> Option<&str> {
        named(self.channel_name.as_ref(), self.channel_arn.as_ref())
    }
}

impl NamesChannel for UpdateSignalingChannelRequest {
    fn channel(&self) -> Option<&str> {
        Some(self.channel_arn.channel_name())
    }
}

impl NamesChannel for DeleteSignalingChannelRequest {
    fn channel(&self) -> Option<&str> {
        Some(self.channel_arn.channel_name())
    }
}

impl NamesChannel for GetSignalingChannelEndpointRequest {
    fn channel(&self) -> Option<&str> {
        Some(self.channel_arn.channel_name())
    }
}

impl NamesChannel for TagResourceRequest {
    fn channel(&self) -> Option<&str> {
        Some(self.resource_arn.channel_name())
    }
}

impl NamesChannel for UntagResourceRequest {
    fn channel(&self) -> Option<&str> {
        Some(self.resource_arn.channel_name())
    }
}

impl NamesChannel for ListTagsForResourceRequest {
    fn channel(&self) -> Option<&str> {
        Some(self.resource_arn.channel_name())
    }
}

impl NamesChannel for DescribeMediaStorageConfigurationRequest {
    fn channel(&self) -> Option<&str> {
        named(self.channel_name.as_ref(), self.channel_arn.as_ref())
    }
}

impl NamesChannel for GetIceServerConfigRequest {
    fn channel(&self) -> Option<&str> {
        Some(self.channel_arn.channel_name())
    }
}

impl NamesChannel for SendAlexaOfferToMasterRequest {
    fn channel(&self) -> Option<&str> {
        Some(self.channel_arn.channel_name())
    }
}

/// Decodes the body of `operation` and checks that `caller` may run it on the channel the body
/// names: the decode error, or the service's AccessDeniedException, when not.
fn decode_allowed<T: JsonBody + NamesChannel>(
    body: &Bytes,
    caller: Option<&Caller<'_>>,
    operation: Operation,
) -> Result<T, HttpResponse> {
    let request: T = decode(body)?;
    allow(caller, operation, request.channel())?;
    Ok(request)
}

fn answer<T: JsonBody>(result: Result<T, RegistryError>) -> HttpResponse {
    match result {
        Ok(body) => json(body.encode()),
        Err(err) => registry_error(&err),
    }
}

/// The channel named by `arn`, its TTL and the revision it was read at, or the service's 404.
async fn channel_ttl(
    app: &App,
    arn: &ChannelArn,
) -> Result<(MessageTtlSeconds, u64), HttpResponse> {
    app.channels
        .by_arn(arn)
        .await?
        .map(|channel| (channel.message_ttl(), channel.revision()))
        .ok_or_else(|| {
            rest_error(
                ErrorType::ResourceNotFoundException,
                format!("The requested channel is not found or not active: ChannelARN {arn}"),
            )
        })
}

/// Whether `caller` may run `operation` on the channel called `name`: the service's
/// AccessDeniedException when not.
fn allow(
    caller: Option<&Caller<'_>>,
    operation: Operation,
    name: Option<&str>,
) -> Result<(), HttpResponse> {
    match (caller, name) {
        (Some(caller), Some(name)) => caller
            .check(Action::Rest(operation), name)
            .map_err(|message| rest_error(ErrorType::AccessDeniedException, message)),
        // Unlimited, or no channel named: the operation answers the missing name itself.
        _ => Ok(()),
    }
}

/// The channel a by-name-or-by-ARN request names.
fn named<'a>(
    name: Option<&'a kvs_signaling_proto::ChannelName>,
    arn: Option<&'a ChannelArn>,
) -> Option<&'a str> {
    name.map(|n| n.as_str())
        .or(arn.map(ChannelArn::channel_name))
}

macro_rules! try_response {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

/// Runs `operation` on `body`.
pub(crate) async fn dispatch(
    app: &App,
    caller: Option<&Caller<'_>>,
    operation: Operation,
    body: Bytes,
) -> HttpResponse {
    let now = SystemTime::now();
    match operation {
        Operation::CreateSignalingChannel => {
            let request: CreateSignalingChannelRequest =
                try_response!(decode_allowed(&body, caller, operation));
            let (response, _) = try_response!(
                app.channels
                    .write(Scope::New, |registry| registry.stage_create(now, &request))
                    .await
            );
            json(response.encode())
        }
        Operation::DescribeSignalingChannel => {
            let request: DescribeSignalingChannelRequest =
                try_response!(decode_allowed(&body, caller, operation));
            let scope = Scope::Either(request.channel_name.as_ref(), request.channel_arn.as_ref());
            answer(try_response!(
                app.channels
                    .read(scope, |registry| registry.describe(&request))
                    .await
            ))
        }
        Operation::ListSignalingChannels => {
            let request: ListSignalingChannelsRequest = try_response!(decode(&body));
            let mut result = try_response!(
                app.channels
                    .read(Scope::All, |registry| registry.list(&request))
                    .await
            );
            if let (Some(caller), Ok(response)) = (caller, &mut result)
                && let Some(list) = &mut response.channel_info_list
            {
                // A limited key sees only its channels; pages may come out shorter.
                list.retain(|info| {
                    info.channel_name
                        .as_ref()
                        .is_some_and(|name| caller.scope.covers(name.as_str()))
                });
            }
            answer(result)
        }
        Operation::UpdateSignalingChannel => {
            let request: UpdateSignalingChannelRequest =
                try_response!(decode_allowed(&body, caller, operation));
            let (response, updated) = try_response!(
                app.channels
                    .write(Scope::Arn(&request.channel_arn), |registry| {
                        registry.stage_update(&request)
                    })
                    .await
            );
            // Connects read the TTL with its revision, so the hub keeps the later one
            // whichever reaches it first.
            match &app.router {
                Some(router) => {
                    router
                        .channel_updated(updated.arn(), updated.message_ttl(), updated.revision())
                        .await;
                }
                None => {
                    let _ = app
                        .shards
                        .of(updated.arn())
                        .channel_updated(
                            updated.arn().clone(),
                            updated.message_ttl(),
                            updated.revision(),
                        )
                        .await;
                }
            }
            json(response.encode())
        }
        Operation::DeleteSignalingChannel => {
            let request: DeleteSignalingChannelRequest =
                try_response!(decode_allowed(&body, caller, operation));
            let (response, removed) = try_response!(
                app.channels
                    .write(Scope::Arn(&request.channel_arn), |registry| {
                        registry.stage_delete(&request)
                    })
                    .await
            );
            match &app.router {
                Some(router) => router.channel_deleted(removed.arn()).await,
                None => {
                    let _ = app
                        .shards
                        .of(removed.arn())
                        .channel_deleted(removed.arn().clone())
                        .await;
                }
            }
            json(response.encode())
        }
        Operation::GetSignalingChannelEndpoint => {
            let request: GetSignalingChannelEndpointRequest =
                try_response!(decode_allowed(&body, caller, operation));
            try_response!(channel_ttl(app, &request.channel_arn).await);
            endpoints(app, &request)
        }
        Operation::TagResource => {
            let request: TagResourceRequest =
                try_response!(decode_allowed(&body, caller, operation));
            let (response, _) = try_response!(
                app.channels
                    .write(Scope::Arn(&request.resource_arn), |registry| {
                        registry.stage_tag_resource(&request)
                    })
                    .await
            );
            json(response.encode())
        }
        Operation::UntagResource => {
            let request: UntagResourceRequest =
                try_response!(decode_allowed(&body, caller, operation));
            let (response, _) = try_response!(
                app.channels
                    .write(Scope::Arn(&request.resource_arn), |registry| {
                        registry.stage_untag_resource(&request)
                    })
                    .await
            );
            json(response.encode())
        }
        Operation::ListTagsForResource => {
            let request: ListTagsForResourceRequest =
                try_response!(decode_allowed(&body, caller, operation));
            answer(try_response!(
                app.channels
                    .read(Scope::Arn(&request.resource_arn), |registry| {
                        registry.list_tags_for_resource(&request)
                    })
                    .await
            ))
        }
        Operation::DescribeMediaStorageConfiguration => {
            let request: DescribeMediaStorageConfigurationRequest =
                try_response!(decode_allowed(&body, caller, operation));
            let scope = Scope::Either(request.channel_name.as_ref(), request.channel_arn.as_ref());
            answer(try_response!(
                app.channels
                    .read(scope, |registry| {
                        registry.describe_media_storage_configuration(&request)
                    })
                    .await
            ))
        }
        Operation::GetIceServerConfig => {
            let request: GetIceServerConfigRequest =
                try_response!(decode_allowed(&body, caller, operation));
            try_response!(channel_ttl(app, &request.channel_arn).await);
            json(
                app.ice()
                    .ice_server_config(now, &request.channel_arn)
                    .encode(),
            )
        }
        Operation::SendAlexaOfferToMaster => {
            let request: SendAlexaOfferToMasterRequest =
                try_response!(decode_allowed(&body, caller, operation));
            let (ttl, revision) = try_response!(channel_ttl(app, &request.channel_arn).await);
            let offer = AlexaOffer::new(
                request.channel_arn,
                request.sender_client_id,
                request.message_payload,
                ttl,
            )
            .ttl_revision(revision);
            let answered = match &app.router {
                Some(router) => router.alexa_offer(offer).await.map_err(|err| err.0),
                None => app
                    .shards
                    .of(&offer.channel_arn)
                    .alexa_offer(offer)
                    .await
                    .map_err(|_| "the hub has stopped".to_owned()),
            };
            match answered {
                Ok(Ok(answer)) => {
                    let mut response = SendAlexaOfferToMasterResponse::new();
                    response.answer = Some(answer.as_str().to_owned());
                    json(response.encode())
                }
                Ok(Err(refused)) => rest_error(refused.error_type, refused.message),
                Err(message) => rest_error(ErrorType::InternalFailure, message),
            }
        }
        other => rest_error(
            ErrorType::InvalidArgumentException,
            format!("{other:?} is not served here"),
        ),
    }
}

/// This server's own endpoints: the WebSocket at the public URL with `ws`/`wss` in place of
/// `http`/`https`, and the HTTPS data plane at the public URL itself (no trailing slash: the
/// C SDK appends its paths).
fn endpoints(app: &App, request: &GetSignalingChannelEndpointRequest) -> HttpResponse {
    let config = request
        .single_master_channel_endpoint_configuration
        .as_ref();
    let protocols = config
        .and_then(|c| c.protocols.clone())
        .unwrap_or_else(|| vec![ChannelProtocol::Wss, ChannelProtocol::Https]);
    let https = app.public_url.clone();
    let wss = match https.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => format!("ws://{https}"),
    };
    let mut list = Vec::new();
    for protocol in protocols {
        let endpoint = match protocol {
            ChannelProtocol::Wss => wss.clone(),
            ChannelProtocol::Https => https.clone(),
            _ => {
                return rest_error(
                    ErrorType::InvalidArgumentException,
                    format!(
                        "SingleMasterChannelEndpointConfiguration.Protocols: {protocol} needs a \
                         channel with media storage, which this server does not offer"
                    ),
                );
            }
        };
        let mut item = ResourceEndpointListItem::new();
        item.protocol = Some(protocol);
        item.resource_endpoint = Some(endpoint);
        list.push(item);
    }
    let mut response = kvs_signaling_proto::GetSignalingChannelEndpointResponse::new();
    response.resource_endpoint_list = Some(list);
    json(response.encode())
}
