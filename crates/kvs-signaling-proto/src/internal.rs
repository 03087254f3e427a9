//! Entry points for the fuzz targets: each decodes arbitrary input and checks the properties
//! that must hold for every input. Not part of the API.

use crate::rest::*;
use crate::{ClientMessage, ConnectQuery, ServerEvent};

/// Decodes `data` as a client message; a decoded message must re-encode to a frame that
/// decodes to the same message.
pub fn fuzz_client_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let viewer = crate::DecodeOptions::default().ignore_recipient(true);
    assert_eq!(
        ClientMessage::decode_with(text, &viewer),
        ClientMessage::decode_general(text, &viewer),
        "the fast and general decoders disagree on {text:?} from a viewer"
    );
    let general = ClientMessage::decode_general(text, &crate::DecodeOptions::default());
    assert_eq!(
        ClientMessage::decode(text),
        general,
        "the fast and general decoders disagree on {text:?}"
    );
    if let Ok(message) = general {
        let encoded = message.encode();
        let again = ClientMessage::decode(&encoded);
        assert_eq!(
            again.as_ref().ok(),
            Some(&message),
            "re-encoding changed {text:?}"
        );
    }
}

/// Decodes `data` as a server event; a decoded event must re-encode to a frame that decodes
/// to the same event, payload normalized.
pub fn fuzz_server_event(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(event) = ServerEvent::decode(text) {
        let encoded = event.encode();
        let again =
            ServerEvent::decode(&encoded).map(|e| e.message_payload.map(|p| p.as_str().to_owned()));
        let normalized = event
            .message_payload
            .as_ref()
            .map(|p| p.normalized().into_owned());
        assert_eq!(again.ok(), Some(normalized), "re-encoding changed {text:?}");
    }
}

/// Decodes `data` as every REST body; a decoded body must re-encode to bytes that decode to
/// the same body.
pub fn fuzz_rest_bodies(data: &[u8]) {
    fn round_trip<T: JsonBody + PartialEq + std::fmt::Debug>(data: &[u8]) {
        if let Ok(body) = T::decode(data) {
            let again = T::decode(&body.encode());
            assert_eq!(again.as_ref().ok(), Some(&body));
        }
    }
    round_trip::<CreateSignalingChannelRequest>(data);
    round_trip::<DescribeSignalingChannelRequest>(data);
    round_trip::<DescribeSignalingChannelResponse>(data);
    round_trip::<ListSignalingChannelsRequest>(data);
    round_trip::<ListSignalingChannelsResponse>(data);
    round_trip::<UpdateSignalingChannelRequest>(data);
    round_trip::<DeleteSignalingChannelRequest>(data);
    round_trip::<GetSignalingChannelEndpointRequest>(data);
    round_trip::<GetSignalingChannelEndpointResponse>(data);
    round_trip::<TagResourceRequest>(data);
    round_trip::<UntagResourceRequest>(data);
    round_trip::<ListTagsForResourceRequest>(data);
    round_trip::<ListTagsForResourceResponse>(data);
    round_trip::<GetIceServerConfigRequest>(data);
    round_trip::<GetIceServerConfigResponse>(data);
    round_trip::<SendAlexaOfferToMasterRequest>(data);
    round_trip::<SendAlexaOfferToMasterResponse>(data);
    let _ = ErrorBody::decode(data);
}

/// Parses `data` as a connect query string and an ARN.
pub fn fuzz_connect_query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(query) = ConnectQuery::parse(text) {
        assert_eq!(
            query.role() == crate::Role::Viewer,
            query.client_id.is_some()
        );
    }
    if let Ok(arn) = crate::ChannelArn::new(text) {
        assert!(text.ends_with(arn.suffix()) && text.contains(arn.channel_name()));
    }
}

/// Routes `data` as an HTTP request (`METHOD /path\nbody`) the way the server does: the
/// operation its path names, then that operation's request body. Nothing may panic; every
/// path that names an operation is its own path; a refused body names what is wrong and maps
/// to a 400.
pub fn fuzz_request(data: &[u8]) {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => {
            let (head, rest) = data.split_at(at);
            (head, rest.get(1..).unwrap_or_default())
        }
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let (_method, path) = head.split_once(' ').unwrap_or(("POST", &head));
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    let Some(operation) = Operation::from_path(path) else {
        return;
    };
    assert_eq!(operation.path(), path);
    fn decode<T: JsonBody>(body: &[u8]) {
        if let Err(err) = T::decode(body) {
            let message = err.to_string();
            assert!(!message.is_empty());
            assert!(
                err.error_type().http_status() < 500,
                "a bad body is the caller's fault: {message}"
            );
        }
    }
    match operation {
        Operation::CreateSignalingChannel => decode::<CreateSignalingChannelRequest>(body),
        Operation::DescribeSignalingChannel => {
            decode::<DescribeSignalingChannelRequest>(body);
        }
        Operation::ListSignalingChannels => decode::<ListSignalingChannelsRequest>(body),
        Operation::UpdateSignalingChannel => decode::<UpdateSignalingChannelRequest>(body),
        Operation::DeleteSignalingChannel => decode::<DeleteSignalingChannelRequest>(body),
        Operation::GetSignalingChannelEndpoint => {
            decode::<GetSignalingChannelEndpointRequest>(body);
        }
        Operation::TagResource => decode::<TagResourceRequest>(body),
        Operation::UntagResource => decode::<UntagResourceRequest>(body),
        Operation::ListTagsForResource => decode::<ListTagsForResourceRequest>(body),
        Operation::DescribeMediaStorageConfiguration => {
            decode::<DescribeMediaStorageConfigurationRequest>(body);
        }
        Operation::GetIceServerConfig => decode::<GetIceServerConfigRequest>(body),
        Operation::SendAlexaOfferToMaster => decode::<SendAlexaOfferToMasterRequest>(body),
    }
}

/// Every committed fuzz input, and every crash turned into a regression input, run through
/// the targets' entry points by `cargo test`, without the fuzzer.
#[cfg(test)]
mod corpus {
    fn replay(target: &str, run: fn(&[u8])) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{} holds no input", dir.display());
        for input in inputs {
            run(&std::fs::read(&input).unwrap());
        }
    }

    #[test]
    fn the_committed_corpora_replay() {
        replay("client_message", super::fuzz_client_message);
        replay("server_event", super::fuzz_server_event);
        replay("rest_bodies", super::fuzz_rest_bodies);
        replay("connect_query", super::fuzz_connect_query);
        replay("request_routing", super::fuzz_request);
    }
}
