//! Property tests: encode-then-decode is the identity for valid values, decoding never panics
//! on arbitrary input, and every validator agrees with a regex reference of the API model's
//! pattern.

use proptest::prelude::*;
use regex::Regex;

use crate::*;

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap()
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

// Strategies for valid values.

fn id(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex(&format!("[a-zA-Z0-9_.-]{{1,{}}}", max.min(40))).unwrap(),
        proptest::string::string_regex(&format!("[a-z]{{{},{max}}}", max - 1)).unwrap(),
    ]
}

fn peer_id() -> impl Strategy<Value = PeerId> {
    id(256).prop_map(|s| PeerId::new(s).unwrap())
}

fn correlation_id() -> impl Strategy<Value = CorrelationId> {
    id(256).prop_map(|s| CorrelationId::new(s).unwrap())
}

/// Payloads as senders encode them: standard padded, standard unpadded, URL-safe unpadded.
fn payload() -> impl Strategy<Value = MessagePayload<'static>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    (proptest::collection::vec(any::<u8>(), 1..600), 0..3u8).prop_map(|(bytes, dialect)| {
        let text = match dialect {
            0 => STANDARD.encode(&bytes),
            1 => STANDARD_NO_PAD.encode(&bytes),
            _ => URL_SAFE_NO_PAD.encode(&bytes),
        };
        MessagePayload::new(text).unwrap()
    })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::SdpOffer),
        Just(Action::SdpAnswer),
        Just(Action::IceCandidate)
    ]
}

fn tag_text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!(
        "[a-zA-Z0-9 _.:/=+@\\-\u{e9}\u{65e5}\u{661}\u{a0}\u{b2}]{{1,{}}}",
        max.min(30)
    ))
    .unwrap()
}

fn tag() -> impl Strategy<Value = Tag> {
    (
        tag_text(128),
        prop_oneof![Just(String::new()), tag_text(256)],
    )
        .prop_map(|(k, v)| Tag::new(TagKey::new(k).unwrap(), TagValue::new(v).unwrap()))
}

fn channel_name() -> impl Strategy<Value = ChannelName> {
    id(256).prop_map(|s| ChannelName::new(s).unwrap())
}

fn channel_arn() -> impl Strategy<Value = ChannelArn> {
    (
        "[a-z-]{1,8}",
        "[a-z0-9-]{1,12}",
        "[0-9]{1,12}",
        "[a-z]{1,8}",
        id(64),
        any::<u64>(),
    )
        .prop_map(|(partition, region, account, kind, name, suffix)| {
            ChannelArn::new(format!(
                "arn:{partition}:kinesisvideo:{region}:{account}:{kind}/{name}/{suffix}"
            ))
            .unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_message_round_trip(
        action in action(),
        recipient in proptest::option::of(peer_id()),
        payload in payload(),
        correlation in proptest::option::of(correlation_id()),
    ) {
        let mut message = ClientMessage::new(action, payload);
        message.recipient_client_id = recipient;
        message.correlation_id = correlation;
        let text = message.encode();
        let fast = ClientMessage::decode_fast(&text, &DecodeOptions::default());
        prop_assert_eq!(fast.as_ref(), Some(&message));
        prop_assert_eq!(
            ClientMessage::decode_general(&text, &DecodeOptions::default()),
            Ok(message)
        );
    }

    #[test]
    fn server_event_round_trip(
        action in action(),
        sender in proptest::option::of(peer_id()),
        payload in payload(),
    ) {
        let event = ServerEvent::relay(action.message_type(), sender.as_ref(), payload.clone());
        let text = event.encode();
        let back = ServerEvent::decode(&text).unwrap();
        prop_assert_eq!(&back.sender_client_id, &event.sender_client_id);
        prop_assert_eq!(back.message_type, event.message_type);
        // The payload arrives standard, and carries the same bytes.
        let relayed = back.message_payload.unwrap();
        prop_assert!(relayed.is_standard());
        prop_assert_eq!(relayed.decode().unwrap(), payload.decode().unwrap());
    }

    #[test]
    fn status_response_round_trip(
        correlation in correlation_id(),
        description in any::<String>(),
        type_index in 0..ErrorType::ALL.len(),
    ) {
        let error_type = ErrorType::ALL[type_index];
        let event = ServerEvent::status_response(StatusResponse::new(correlation, error_type, description));
        let text = event.encode();
        let back = ServerEvent::decode(&text).unwrap();
        prop_assert_eq!(back, event);
    }

    #[test]
    fn delivery_status_round_trip(
        correlation in correlation_id(),
        recipient in proptest::option::of(peer_id()),
        state in prop_oneof![
            Just(DeliveryState::Delivered),
            Just(DeliveryState::Held),
            Just(DeliveryState::Expired),
            Just(DeliveryState::Overwritten),
        ],
    ) {
        let event = ServerEvent::delivery_status(DeliveryStatus::new(correlation, recipient, state));
        let text = event.encode();
        // Exactly the documented shape: the member first (keys sorted), nothing else.
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(json.as_object().unwrap().len(), 2);
        prop_assert_eq!(&json["messageType"], "DELIVERY_STATUS");
        prop_assert_eq!(&json["deliveryStatus"]["status"], state.as_str());
        let back = ServerEvent::decode(&text).unwrap();
        prop_assert_eq!(back, event);
    }

    #[test]
    fn create_request_round_trip(
        name in channel_name(),
        ttl in proptest::option::of(5..=120u32),
        tags in proptest::option::of(proptest::collection::vec(tag(), 0..=50)),
    ) {
        let mut request = CreateSignalingChannelRequest::new(name);
        request.channel_type = Some(ChannelType::SingleMaster);
        request.single_master_configuration = ttl.map(|ttl| {
            let mut config = SingleMasterConfiguration::new();
            config.message_ttl_seconds = Some(MessageTtlSeconds::new(ttl).unwrap());
            config
        });
        request.tags = tags;
        prop_assert_eq!(CreateSignalingChannelRequest::decode(&request.encode()), Ok(request));
    }

    #[test]
    fn channel_info_round_trip(
        name in channel_name(),
        arn in channel_arn(),
        millis in 0..4_102_444_800_000i64,
        version in "[a-zA-Z0-9]{1,64}",
    ) {
        let mut info = ChannelInfo::new();
        info.channel_name = Some(name);
        info.channel_arn = Some(arn);
        info.channel_status = Some(ChannelStatus::Active);
        info.creation_time = Some(Timestamp::from_unix_millis(millis));
        info.version = Some(Version::new(version).unwrap());
        let mut list = ListSignalingChannelsResponse::new();
        list.channel_info_list = Some(vec![info]);
        prop_assert_eq!(ListSignalingChannelsResponse::decode(&list.encode()), Ok(list));
    }

    #[test]
    fn session_description_round_trip(sdp in any::<String>(), answer in any::<bool>()) {
        let kind = if answer { SdpType::Answer } else { SdpType::Offer };
        let description = SessionDescription::new(kind, sdp);
        if let Ok(payload) = description.to_payload() {
            prop_assert_eq!(SessionDescription::from_payload(&payload), Ok(description));
        }
    }
}

// Decoders never panic.

fn json_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("null".to_owned()),
        Just("1e999".to_owned()),
        Just("-0.5".to_owned()),
        Just("\"action\"".to_owned()),
        Just("\"MessagePayload\"".to_owned()),
        Just("\"correlationId\"".to_owned()),
        Just("\"recipientClientId\"".to_owned()),
        Just("\"messageType\"".to_owned()),
        Just("\"statusResponse\"".to_owned()),
        Just("\"statusCode\"".to_owned()),
        Just("\"SDP_OFFER\"".to_owned()),
        Just("\"STATUS_RESPONSE\"".to_owned()),
        Just("\"ChannelName\"".to_owned()),
        Just("\"Tags\"".to_owned()),
        Just("\"QQ==\"".to_owned()),
        Just("\"\\u00e9\\/\"".to_owned()),
        "\"[ -~]{0,8}\"",
    ];
    proptest::collection::vec(token, 0..24).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoders_never_panic(text in prop_oneof![any::<String>(), json_like()]) {
        let _ = ClientMessage::decode(&text);
        let _ = ServerEvent::decode(&text);
        let _ = ConnectQuery::parse(&text);
        let _ = ChannelArn::new(text.as_str());
        let _ = ErrorBody::decode(text.as_bytes());
        internal::fuzz_client_message(text.as_bytes());
        internal::fuzz_server_event(text.as_bytes());
        internal::fuzz_rest_bodies(text.as_bytes());
        internal::fuzz_connect_query(text.as_bytes());
    }

    #[test]
    fn decoders_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        internal::fuzz_rest_bodies(&bytes);
        internal::fuzz_client_message(&bytes);
    }
}

// Validators against the model's patterns.

/// Strings near an identifier's rules: every class of character, lengths around the limit,
/// the reserved prefix in any case.
fn near_id(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_.\\- /:+=@\u{e9}\u{65e5}\t]{0,12}",
        proptest::string::string_regex(&format!("[a-z]{{{},{}}}", max - 1, max + 1)).unwrap(),
        "[aA][wW][sS][_\\-]?[a-z0-9_]{0,4}",
        any::<String>(),
    ]
}

fn agrees(name: &str, input: &str, ok: bool, reference: bool) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        ok,
        reference,
        "{} disagrees with its reference on {:?}",
        name,
        input
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn identifiers_agree_with_the_model(s in near_id(256)) {
        let id = regex(r"^[a-zA-Z0-9_.-]+$");
        let base = id.is_match(&s) && chars(&s) <= 256;
        agrees("ChannelName", &s, ChannelName::new(s.as_str()).is_ok(), base)?;
        agrees("PeerId", &s, PeerId::new(s.as_str()).is_ok(), base)?;
        agrees("CorrelationId", &s, CorrelationId::new(s.as_str()).is_ok(), base)?;
        let reserved = s.to_ascii_lowercase().starts_with("aws_");
        agrees("ClientId", &s, ClientId::new(s.as_str()).is_ok(), base && !reserved)?;
    }

    #[test]
    fn version_agrees_with_the_model(s in near_id(64)) {
        let reference = regex(r"^[a-zA-Z0-9]+$").is_match(&s) && chars(&s) <= 64;
        agrees("Version", &s, Version::new(s.as_str()).is_ok(), reference)?;
    }

    #[test]
    fn next_token_agrees_with_the_model(s in prop_oneof![near_id(1024), "[a-zA-Z0-9+/=_-]{0,12}"]) {
        let reference = regex(r"^[a-zA-Z0-9+/=]*$").is_match(&s) && chars(&s) <= 1024;
        agrees("NextToken", &s, NextToken::new(s.as_str()).is_ok(), reference)?;
    }

    #[test]
    fn channel_arn_agrees_with_the_model(
        s in prop_oneof![
            "arn:(aws|aws-cn|AWS|a1-|)?:(kinesisvideo|kinesis|KINESISVIDEO):[a-z0-9A-]{0,5}:[0-9a]{0,4}:[a-zA-Z1]{0,6}/[a-zA-Z0-9_. /-]{0,8}/[0-9x]{0,4}(/1)?",
            any::<String>(),
        ]
    ) {
        let pattern = regex(r"^arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+$");
        // The model's \d is ASCII here: a Unicode digit in the partition is not allowed.
        let reference = pattern.is_match(&s) && s.is_ascii() && chars(&s) <= 1024;
        agrees("ChannelArn", &s, ChannelArn::new(s.as_str()).is_ok(), reference)?;
    }

    #[test]
    fn tags_agree_with_the_model(
        s in prop_oneof![
            "[a-zA-Z0-9 _.:/=+@\\-!#$\t\u{e9}\u{65e5}\u{661}\u{a0}\u{b2}\u{2167}\u{301}\u{24b6}\u{1f600}]{0,10}",
            any::<String>(),
            "[a-z]{127,129}",
            "[a-z]{255,257}",
        ]
    ) {
        let pattern = regex(r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$");
        let n = chars(&s);
        agrees("TagKey", &s, TagKey::new(s.as_str()).is_ok(), pattern.is_match(&s) && (1..=128).contains(&n))?;
        agrees("TagValue", &s, TagValue::new(s.as_str()).is_ok(), pattern.is_match(&s) && n <= 256)?;
    }

    #[test]
    fn payload_agrees_with_base64_rules(
        s in prop_oneof![
            "[A-Za-z0-9+/_=\\- .$]{0,14}",
            "[A-Za-z0-9+/]{0,10}={0,3}",
            "[A-Za-z0-9_-]{0,10}={0,3}",
            "[A]{14,18}",
            any::<String>(),
        ]
    ) {
        const MAX: usize = 16;
        let one_alphabet = regex(r"^(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)={0,2}$");
        let len = s.len();
        let padding = len - s.trim_end_matches('=').len();
        let lengths_fit = if padding > 0 { len % 4 == 0 } else { len % 4 != 1 };
        let reference = one_alphabet.is_match(&s) && (1..=MAX).contains(&len) && lengths_fit;
        agrees("MessagePayload", &s, MessagePayload::with_max_len(s.as_str(), MAX).is_ok(), reference)?;
    }
}
