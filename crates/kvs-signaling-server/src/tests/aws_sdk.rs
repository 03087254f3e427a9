//! The official AWS Rust SDK crates, pointed at the server with static credentials and
//! nothing else changed: every control-plane and HTTPS data-plane operation, and their errors
//! as the SDK's typed variants.

use std::time::Duration;

use aws_sdk_kinesisvideo as kv;
use aws_sdk_kinesisvideosignaling as kvs;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use futures_util::SinkExt as _;
use kv::error::{ProvideErrorMetadata, SdkError};
use kv::types::{ChannelProtocol, ChannelRole, SingleMasterChannelEndpointConfiguration};
use tokio_tungstenite::tungstenite::Message;

use super::{KEY, SECRET, config, next_text, presign};
use crate::{Grant, Scope, Server};

fn control(server: &Server, http: SharedHttpClient, key: &str, secret: &str) -> kv::Client {
    let config = kv::Config::builder()
        .behavior_version(kv::config::BehaviorVersion::latest())
        .region(kv::config::Region::new("us-west-2"))
        .endpoint_url(server.public_url())
        .credentials_provider(kv::config::Credentials::new(
            key, secret, None, None, "test",
        ))
        .http_client(http)
        .build();
    kv::Client::from_conf(config)
}

fn data_plane(endpoint: &str, http: SharedHttpClient) -> kvs::Client {
    let config = kvs::Config::builder()
        .behavior_version(kvs::config::BehaviorVersion::latest())
        .region(kvs::config::Region::new("us-west-2"))
        .endpoint_url(endpoint)
        .credentials_provider(kvs::config::Credentials::new(
            KEY, SECRET, None, None, "test",
        ))
        .http_client(http)
        .build();
    kvs::Client::from_conf(config)
}

fn plain_http() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_http()
}

/// The error code the SDK read from the answer.
fn code<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: SdkError<E, R>,
) -> String {
    match err.code() {
        Some(code) => code.to_owned(),
        None => panic!("no error code in {err:?}"),
    }
}

#[tokio::test]
async fn every_control_plane_operation_through_the_official_sdk() {
    let server = Server::start(config()).await.unwrap();
    let kv = control(&server, plain_http(), KEY, SECRET);

    // CreateSignalingChannel, with tags and a TTL; a second one for the list.
    let created = kv
        .create_signaling_channel()
        .channel_name("front-door")
        .single_master_configuration(
            kv::types::SingleMasterConfiguration::builder()
                .message_ttl_seconds(90)
                .build(),
        )
        .tags(
            kv::types::Tag::builder()
                .key("site")
                .value("home")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let arn = created.channel_arn().unwrap().to_owned();
    assert!(
        arn.starts_with("arn:aws:kinesisvideo:us-west-2:") && arn.contains(":channel/front-door/"),
        "{arn}"
    );
    kv.create_signaling_channel()
        .channel_name("back-door")
        .send()
        .await
        .unwrap();

    // Errors come back as the SDK's typed variants.
    let again = kv
        .create_signaling_channel()
        .channel_name("front-door")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(again.is_resource_in_use_exception(), "{again:?}");
    let bad = kv
        .create_signaling_channel()
        .channel_name("no spaces allowed")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(bad.is_invalid_argument_exception(), "{bad:?}");
    assert!(
        bad.message().unwrap_or_default().contains("ChannelName"),
        "{bad:?}"
    );

    // DescribeSignalingChannel by name and by ARN.
    let by_name = kv
        .describe_signaling_channel()
        .channel_name("front-door")
        .send()
        .await
        .unwrap();
    let info = by_name.channel_info().unwrap();
    assert_eq!(info.channel_arn(), Some(arn.as_str()));
    assert_eq!(info.channel_status(), Some(&kv::types::Status::Active));
    assert_eq!(
        info.single_master_configuration()
            .and_then(|c| c.message_ttl_seconds()),
        Some(90)
    );
    assert!(info.creation_time().is_some());
    let version = info.version().unwrap().to_owned();
    let by_arn = kv
        .describe_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_arn.channel_info().unwrap().channel_name(),
        Some("front-door")
    );
    let missing = kv
        .describe_signaling_channel()
        .channel_name("nowhere")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");

    // ListSignalingChannels: pages, and the name filter.
    let first = kv
        .list_signaling_channels()
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(first.channel_info_list().len(), 1);
    let token = first.next_token().unwrap().to_owned();
    let second = kv
        .list_signaling_channels()
        .max_results(1)
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(second.channel_info_list().len(), 1);
    assert_ne!(
        first.channel_info_list()[0].channel_name(),
        second.channel_info_list()[0].channel_name()
    );
    let filtered = kv
        .list_signaling_channels()
        .channel_name_condition(
            kv::types::ChannelNameCondition::builder()
                .comparison_operator(kv::types::ComparisonOperator::BeginsWith)
                .comparison_value("back")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let names: Vec<_> = filtered
        .channel_info_list()
        .iter()
        .filter_map(|c| c.channel_name())
        .collect();
    assert_eq!(names, ["back-door"]);

    // UpdateSignalingChannel, with the version check.
    kv.update_signaling_channel()
        .channel_arn(&arn)
        .current_version(&version)
        .single_master_configuration(
            kv::types::SingleMasterConfiguration::builder()
                .message_ttl_seconds(120)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let stale = kv
        .update_signaling_channel()
        .channel_arn(&arn)
        .current_version(&version)
        .single_master_configuration(
            kv::types::SingleMasterConfiguration::builder()
                .message_ttl_seconds(30)
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(stale.is_version_mismatch_exception(), "{stale:?}");

    // GetSignalingChannelEndpoint: this server's own URLs.
    let endpoints = kv
        .get_signaling_channel_endpoint()
        .channel_arn(&arn)
        .single_master_channel_endpoint_configuration(
            SingleMasterChannelEndpointConfiguration::builder()
                .protocols(ChannelProtocol::Wss)
                .protocols(ChannelProtocol::Https)
                .role(ChannelRole::Viewer)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let list = endpoints.resource_endpoint_list();
    let host = server.local_addr().to_string();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].protocol(), Some(&ChannelProtocol::Wss));
    assert_eq!(
        list[0].resource_endpoint(),
        Some(format!("ws://{host}").as_str())
    );
    assert_eq!(
        list[1].resource_endpoint(),
        Some(format!("http://{host}").as_str())
    );
    let webrtc = kv
        .get_signaling_channel_endpoint()
        .channel_arn(&arn)
        .single_master_channel_endpoint_configuration(
            SingleMasterChannelEndpointConfiguration::builder()
                .protocols(ChannelProtocol::Webrtc)
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(webrtc.is_invalid_argument_exception(), "{webrtc:?}");

    // TagResource, UntagResource, ListTagsForResource.
    kv.tag_resource()
        .resource_arn(&arn)
        .tags(
            kv::types::Tag::builder()
                .key("floor")
                .value("1")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    kv.untag_resource()
        .resource_arn(&arn)
        .tag_key_list("site")
        .send()
        .await
        .unwrap();
    let tags = kv
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let tags = tags.tags().unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags.get("floor").map(String::as_str), Some("1"));
    let too_many = kv
        .tag_resource()
        .resource_arn(&arn)
        .set_tags(Some(
            (0..60)
                .map(|i| {
                    kv::types::Tag::builder()
                        .key(format!("k{i}"))
                        .value("v")
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        too_many.is_tags_per_resource_exceeded_limit_exception()
            || too_many.is_invalid_argument_exception(),
        "{too_many:?}"
    );

    // DescribeMediaStorageConfiguration: signaling-only channels have media storage off.
    let media = kv
        .describe_media_storage_configuration()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        media.media_storage_configuration().map(|c| c.status()),
        Some(&kv::types::MediaStorageConfigurationStatus::Disabled)
    );

    // DeleteSignalingChannel, then it is gone; the version is checked here too.
    let wrong_version = kv
        .delete_signaling_channel()
        .channel_arn(&arn)
        .current_version("0000")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        wrong_version.is_version_mismatch_exception(),
        "{wrong_version:?}"
    );
    kv.delete_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    let gone = kv
        .describe_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(gone.is_resource_not_found_exception(), "{gone:?}");
}

#[tokio::test]
async fn signatures_and_key_limits_through_the_official_sdk() {
    let mut config = config();
    config.credentials.push(kvs_ice_rest::Credentials::new(
        "AKIDVIEWER",
        "viewer-secret",
    ));
    let config = config.limit(
        "AKIDVIEWER",
        Scope::new(vec!["door".to_owned()], vec![Grant::Viewer]).unwrap(),
    );
    let server = Server::start(config).await.unwrap();
    let forged = control(&server, plain_http(), KEY, "not-the-secret");
    let err = forged.list_signaling_channels().send().await.unwrap_err();
    assert_eq!(code(err), "InvalidSignatureException");
    let unknown = control(&server, plain_http(), "AKIDUNKNOWN", SECRET);
    let err = unknown.list_signaling_channels().send().await.unwrap_err();
    assert_eq!(code(err), "InvalidSignatureException");

    let limited = control(&server, plain_http(), "AKIDVIEWER", "viewer-secret");
    let denied = limited
        .create_signaling_channel()
        .channel_name("door")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(denied.is_access_denied_exception(), "{denied:?}");
    assert!(
        denied
            .message()
            .unwrap_or_default()
            .contains("kinesisvideo:CreateSignalingChannel"),
        "{denied:?}"
    );
}

#[tokio::test]
async fn the_https_data_plane_through_the_official_sdk() {
    let hub = kvs_signaling_core::HubConfig::default().alexa_timeout(Duration::from_millis(500));
    let server = Server::start(config().hub(hub)).await.unwrap();
    let kv = control(&server, plain_http(), KEY, SECRET);
    let arn = kv
        .create_signaling_channel()
        .channel_name("porch")
        .send()
        .await
        .unwrap()
        .channel_arn()
        .unwrap()
        .to_owned();
    let endpoints = kv
        .get_signaling_channel_endpoint()
        .channel_arn(&arn)
        .single_master_channel_endpoint_configuration(
            SingleMasterChannelEndpointConfiguration::builder()
                .protocols(ChannelProtocol::Https)
                .role(ChannelRole::Master)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let https = endpoints.resource_endpoint_list()[0]
        .resource_endpoint()
        .unwrap()
        .to_owned();
    let signaling = data_plane(&https, plain_http());

    // GetIceServerConfig: the STUN entry and a TURN entry with REST-API credentials.
    let ice = signaling
        .get_ice_server_config()
        .channel_arn(&arn)
        .client_id("viewer-1")
        .service(kvs::types::Service::Turn)
        .send()
        .await
        .unwrap();
    let servers = ice.ice_server_list();
    let turn = servers
        .iter()
        .find(|s| s.uris().iter().any(|u| u.starts_with("turn:")))
        .expect("a TURN entry");
    assert_eq!(turn.ttl(), Some(300));
    let username = turn.username().unwrap();
    let (expiry, _) = username.split_once(':').unwrap();
    let expiry: u64 = expiry.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 290..=now + 310).contains(&expiry), "{username}");
    assert!(!turn.password().unwrap().is_empty());
    let missing = signaling
        .get_ice_server_config()
        .channel_arn(arn.replace("porch", "attic"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");

    // SendAlexaOfferToMaster with no master: refused; with one, held until it answers.
    let no_master = signaling
        .send_alexa_offer_to_master()
        .channel_arn(&arn)
        .sender_client_id("AWS_ALEXA")
        .message_payload("b2ZmZXI=")
        .send()
        .await
        .unwrap_err();
    // Nobody answered within the timeout: the service's ResourceNotFoundException.
    assert_eq!(code(no_master), "ResourceNotFoundException");
    let (mut master, _) = tokio_tungstenite::connect_async(presign(&server, &arn, None, SECRET))
        .await
        .unwrap();
    let offer = signaling
        .send_alexa_offer_to_master()
        .channel_arn(&arn)
        .sender_client_id("AWS_ALEXA")
        .message_payload("b2ZmZXI=")
        .send();
    let (answer, ()) = tokio::join!(offer, async {
        let frame = next_text(&mut master).await;
        assert!(frame.contains(r#""senderClientId":"AWS_ALEXA""#), "{frame}");
        master
            .send(Message::Text(
                r#"{"action":"SDP_ANSWER","messagePayload":"YW5zd2Vy","recipientClientId":"AWS_ALEXA"}"#
                    .into(),
            ))
            .await
            .unwrap();
    });
    assert_eq!(answer.unwrap().answer(), Some("YW5zd2Vy"));
}

#[tokio::test]
async fn the_sdk_over_tls_trusting_only_the_development_ca() {
    let dir = std::env::temp_dir().join(format!("kvs-sdk-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dev = crate::dev_certificate(&dir).unwrap();
    let server = Server::start(config().tls(dev.files.clone()))
        .await
        .unwrap();
    let ca = std::fs::read(&dev.ca).unwrap();
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(TrustStore::empty().with_pem_certificate(ca))
                .build()
                .unwrap(),
        )
        .build_https();
    let kv = control(&server, https.clone(), KEY, SECRET);
    let arn = kv
        .create_signaling_channel()
        .channel_name("tls")
        .send()
        .await
        .unwrap()
        .channel_arn()
        .unwrap()
        .to_owned();
    let endpoints = kv
        .get_signaling_channel_endpoint()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    let urls: Vec<_> = endpoints
        .resource_endpoint_list()
        .iter()
        .filter_map(|e| e.resource_endpoint())
        .collect();
    let host = server.local_addr().to_string();
    assert_eq!(urls, [format!("wss://{host}"), format!("https://{host}")]);
    let ice = data_plane(urls[1], https)
        .get_ice_server_config()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    assert!(!ice.ice_server_list().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
