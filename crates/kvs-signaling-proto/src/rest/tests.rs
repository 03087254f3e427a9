use serde_json::{Value, json};

use super::*;
use crate::error::{Error, ErrorType, Field, JsonType, Violation};
use crate::ids::{ChannelArn, ChannelName, Version};
use crate::number::MessageTtlSeconds;
use crate::tags::TagKey;

fn decode<T: JsonBody>(value: Value) -> Result<T, Error> {
    T::decode(value.to_string().as_bytes())
}

fn tags(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
            .collect(),
    )
}

const ARN: &str = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1657142193914";

#[test]
fn create_request() {
    let body: CreateSignalingChannelRequest = decode(json!({
        "ChannelName": "demo",
        "ChannelType": "SINGLE_MASTER",
        "SingleMasterConfiguration": {"MessageTtlSeconds": 60},
        "Tags": [{"Key": "env", "Value": "dev"}],
        "SomethingNew": {"ignored": true}
    }))
    .unwrap();
    assert_eq!(body.channel_name.as_str(), "demo");
    assert_eq!(body.channel_type, Some(ChannelType::SingleMaster));
    assert_eq!(
        body.single_master_configuration
            .unwrap()
            .message_ttl_seconds
            .unwrap()
            .get(),
        60
    );
    assert_eq!(body.tags.unwrap()[0].key.as_str(), "env");

    let minimal = CreateSignalingChannelRequest::new(ChannelName::new("a").unwrap());
    assert_eq!(minimal.encode(), br#"{"ChannelName":"a"}"#);
}

#[test]
fn rejections_name_the_member_path_and_rule() {
    let invalid = |field: &str, violation| Error::Invalid {
        field: Field::new("").member(field),
        violation,
    };
    let cases: Vec<(Result<(), Error>, Error)> = vec![
        (
            decode::<CreateSignalingChannelRequest>(json!({})).map(|_| ()),
            Error::Missing {
                field: Field::new("ChannelName"),
            },
        ),
        (
            decode::<CreateSignalingChannelRequest>(json!({"ChannelName": null})).map(|_| ()),
            Error::Missing {
                field: Field::new("ChannelName"),
            },
        ),
        (
            decode::<CreateSignalingChannelRequest>(json!({"ChannelName": 7})).map(|_| ()),
            Error::WrongType {
                field: Field::new("ChannelName"),
                expected: JsonType::String,
                found: JsonType::Number,
            },
        ),
        (
            decode::<CreateSignalingChannelRequest>(
                json!({"ChannelName": "a", "ChannelType": "single_master"}),
            )
            .map(|_| ()),
            invalid(
                "ChannelType",
                Violation::UnknownValue {
                    found: "single_master".to_owned(),
                    allowed: "SINGLE_MASTER, FULL_MESH",
                },
            ),
        ),
        (
            decode::<CreateSignalingChannelRequest>(
                json!({"ChannelName": "a", "SingleMasterConfiguration": {"MessageTtlSeconds": 121}}),
            )
            .map(|_| ()),
            Error::Invalid {
                field: Field::new("SingleMasterConfiguration.MessageTtlSeconds"),
                violation: Violation::Range {
                    min: 5,
                    max: 120,
                    found: "121".to_owned(),
                },
            },
        ),
        (
            decode::<CreateSignalingChannelRequest>(json!({"ChannelName": "a", "Tags": tags(51)}))
                .map(|_| ()),
            Error::TooManyTags {
                field: Field::new("Tags"),
                max: 50,
                found: 51,
            },
        ),
        (
            decode::<CreateSignalingChannelRequest>(json!({
                "ChannelName": "a",
                "Tags": [{"Key": "a", "Value": "b"}, {"Key": "a", "Value": "b"}, {"Key": "a", "Value": "b"}, {"Key": "bad!", "Value": "b"}]
            }))
            .map(|_| ()),
            Error::Invalid {
                field: Field::new("Tags[3].Key"),
                violation: Violation::Character {
                    ch: '!',
                    position: 3,
                    allowed: crate::tags::TAG_CHARS,
                },
            },
        ),
        (
            decode::<CreateSignalingChannelRequest>(json!({"ChannelName": "a", "Tags": [{"Key": "a"}]}))
                .map(|_| ()),
            Error::Missing {
                field: Field::new("Tags[0].Value"),
            },
        ),
        (
            decode::<TagResourceRequest>(json!({"ResourceARN": ARN, "Tags": []})).map(|_| ()),
            invalid(
                "Tags",
                Violation::Count {
                    min: 1,
                    max: 50,
                    found: 0,
                },
            ),
        ),
        (
            decode::<TagResourceRequest>(json!({"ResourceARN": ARN, "Tags": tags(51)})).map(|_| ()),
            Error::TooManyTags {
                field: Field::new("Tags"),
                max: 50,
                found: 51,
            },
        ),
        (
            decode::<UntagResourceRequest>(json!({"ResourceARN": ARN, "TagKeyList": vec!["k"; 51]}))
                .map(|_| ()),
            invalid(
                "TagKeyList",
                Violation::Count {
                    min: 1,
                    max: 50,
                    found: 51,
                },
            ),
        ),
        (
            decode::<GetSignalingChannelEndpointRequest>(json!({
                "ChannelARN": ARN,
                "SingleMasterChannelEndpointConfiguration": {"Protocols": ["WSS", "HTTPS", "WSS", "HTTPS", "WSS", "HTTPS"]}
            }))
            .map(|_| ()),
            Error::Invalid {
                field: Field::new("SingleMasterChannelEndpointConfiguration.Protocols"),
                violation: Violation::Count {
                    min: 1,
                    max: 5,
                    found: 6,
                },
            },
        ),
        (
            decode::<GetSignalingChannelEndpointRequest>(json!({
                "ChannelARN": ARN,
                "SingleMasterChannelEndpointConfiguration": {"Protocols": ["WSS", "wss"], "Role": "VIEWER"}
            }))
            .map(|_| ()),
            Error::Invalid {
                field: Field::new("SingleMasterChannelEndpointConfiguration.Protocols[1]"),
                violation: Violation::UnknownValue {
                    found: "wss".to_owned(),
                    allowed: "WSS, HTTPS, WEBRTC",
                },
            },
        ),
        (
            decode::<ListSignalingChannelsRequest>(json!({"MaxResults": 0})).map(|_| ()),
            invalid(
                "MaxResults",
                Violation::Range {
                    min: 1,
                    max: 10_000,
                    found: "0".to_owned(),
                },
            ),
        ),
        (
            decode::<UpdateSignalingChannelRequest>(json!({"ChannelARN": ARN})).map(|_| ()),
            Error::Missing {
                field: Field::new("CurrentVersion"),
            },
        ),
        (
            decode::<DeleteSignalingChannelRequest>(json!({"ChannelARN": "arn:aws:s3:::bucket"}))
                .map(|_| ()),
            invalid(
                "ChannelARN",
                Violation::Format {
                    expected: "\"kinesisvideo:\"",
                    position: 8,
                },
            ),
        ),
        (
            decode::<GetIceServerConfigRequest>(json!({"ChannelARN": ARN, "Service": "STUN"}))
                .map(|_| ()),
            invalid(
                "Service",
                Violation::UnknownValue {
                    found: "STUN".to_owned(),
                    allowed: "TURN",
                },
            ),
        ),
        (
            decode::<SendAlexaOfferToMasterRequest>(json!({
                "ChannelARN": ARN,
                "SenderClientId": "alexa",
                "MessagePayload": "A".repeat(10_004)
            }))
            .map(|_| ()),
            invalid(
                "MessagePayload",
                Violation::Length {
                    min: 1,
                    max: 10_000,
                    found: 10_004,
                },
            ),
        ),
        (
            DescribeSignalingChannelRequest::decode(b"[1,2]").map(|_| ()),
            Error::WrongType {
                field: Field::new(""),
                expected: JsonType::Object,
                found: JsonType::Array,
            },
        ),
    ];
    for (got, expected) in cases {
        assert_eq!(got, Err(expected));
    }
    assert!(matches!(
        DescribeSignalingChannelRequest::decode(b"{\"ChannelName\":"),
        Err(Error::Syntax { .. })
    ));
}

#[test]
fn empty_body_reads_as_an_empty_object() {
    assert_eq!(
        DescribeSignalingChannelRequest::decode(b"").unwrap(),
        DescribeSignalingChannelRequest::new()
    );
    assert_eq!(
        ListSignalingChannelsRequest::decode(b" \n").unwrap(),
        ListSignalingChannelsRequest::new()
    );
    assert_eq!(
        CreateSignalingChannelRequest::decode(b""),
        Err(Error::Missing {
            field: Field::new("ChannelName")
        })
    );
}

#[test]
fn channel_info_encodes_integers_and_epoch_seconds() {
    let mut info = ChannelInfo::new();
    info.channel_name = Some(ChannelName::new("demo").unwrap());
    info.channel_arn = Some(ChannelArn::new(ARN).unwrap());
    info.channel_type = Some(ChannelType::SingleMaster);
    info.channel_status = Some(ChannelStatus::Active);
    info.creation_time = Some(Timestamp::from_unix_millis(1_657_142_193_914));
    let mut config = SingleMasterConfiguration::new();
    config.message_ttl_seconds = Some(MessageTtlSeconds::new(60).unwrap());
    info.single_master_configuration = Some(config);
    info.version = Some(Version::new("abc123XYZ").unwrap());
    let mut response = DescribeSignalingChannelResponse::new();
    response.channel_info = Some(info);
    let text = String::from_utf8(response.encode()).unwrap();
    assert_eq!(
        text,
        format!(
            r#"{{"ChannelInfo":{{"ChannelARN":"{ARN}","ChannelName":"demo","ChannelStatus":"ACTIVE","ChannelType":"SINGLE_MASTER","CreationTime":1657142193.914,"SingleMasterConfiguration":{{"MessageTtlSeconds":60}},"Version":"abc123XYZ"}}}}"#
        )
    );
    assert_eq!(
        DescribeSignalingChannelResponse::decode(text.as_bytes()).unwrap(),
        response
    );
    assert_eq!(
        serde_json::to_string(&Timestamp::from_unix_millis(1_657_142_193_000)).unwrap(),
        "1657142193"
    );
}

#[test]
fn list_tags_response_is_a_map() {
    let body: ListTagsForResourceResponse =
        decode(json!({"Tags": {"env": "dev", "team": ""}})).unwrap();
    let tags = body.tags.unwrap();
    assert_eq!(tags.len(), 2);
    assert_eq!(tags[&TagKey::new("team").unwrap()].as_str(), "");
    assert_eq!(
        decode::<ListTagsForResourceResponse>(json!({"Tags": {"bad!": "x"}})),
        Err(Error::Invalid {
            field: Field::new("Tags.bad!"),
            violation: Violation::Character {
                ch: '!',
                position: 3,
                allowed: crate::tags::TAG_CHARS
            }
        })
    );
}

#[test]
fn error_bodies() {
    let not_found = ErrorBody::new(
        ErrorType::ResourceNotFoundException,
        "The requested channel is not found or not active.",
    );
    assert_eq!(
        not_found.encode(),
        br#"{"Message":"The requested channel is not found or not active.","__type":"ResourceNotFoundException"}"#
    );
    let invalid_client = ErrorBody::new(ErrorType::InvalidClientException, "no");
    assert_eq!(
        invalid_client.encode(),
        br#"{"__type":"InvalidClientException","message":"no"}"#
    );
    for (body, error_type, message) in [
        (
            r#"{"Message":"The requested stream is not found or not active."}"#,
            None,
            Some("The requested stream is not found or not active."),
        ),
        (
            r#"{"__type":"com.amazonaws.kinesisvideo#ResourceInUseException","message":"m"}"#,
            Some(ErrorType::ResourceInUseException),
            Some("m"),
        ),
        (
            r#"{"code":"VersionMismatchException"}"#,
            Some(ErrorType::VersionMismatchException),
            None,
        ),
    ] {
        let decoded = ErrorBody::decode(body.as_bytes()).unwrap();
        assert_eq!(decoded.known_error_type(), error_type, "{body}");
        assert_eq!(decoded.message.as_deref(), message, "{body}");
    }
}

#[test]
fn operation_paths() {
    for op in Operation::ALL {
        assert_eq!(Operation::from_path(op.path()), Some(op));
    }
    assert_eq!(
        Operation::from_path("/TagResource"),
        Some(Operation::TagResource)
    );
    assert_eq!(Operation::from_path("/tagResource"), None);
    assert!(Operation::GetIceServerConfig.is_data_plane());
    assert!(!Operation::CreateSignalingChannel.is_data_plane());
}
