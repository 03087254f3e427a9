use kvs_signaling_proto::PayloadJson as _;

use super::*;

#[test]
fn relayed_offers_answers_and_candidates_are_typed() {
    let offer = SessionDescription::new(kvs_signaling_proto::SdpType::Offer, "v=0\r\n");
    let payload = offer.to_payload().unwrap();
    let viewer = PeerId::new("viewer-1").unwrap();
    match relayed(
        MessageType::SdpOffer,
        Some(viewer.clone()),
        Some(payload.clone()),
    ) {
        ClientEvent::Offer(received) => {
            assert_eq!(received.sender, Some(viewer.clone()));
            assert_eq!(received.body, offer);
            assert_eq!(received.payload, payload);
        }
        other => panic!("{other:?}"),
    }
    let answer = SessionDescription::new(kvs_signaling_proto::SdpType::Answer, "v=0\r\n");
    assert!(matches!(
        relayed(
            MessageType::SdpAnswer,
            None,
            Some(answer.to_payload().unwrap())
        ),
        ClientEvent::Answer(Received { sender: None, .. })
    ));
    let candidate = IceCandidate::new("candidate:1 1 udp 1 127.0.0.1 9 typ host", "0", 0);
    assert!(matches!(
        relayed(MessageType::IceCandidate, Some(viewer), Some(candidate.to_payload().unwrap())),
        ClientEvent::IceCandidate(Received { body, .. }) if body == candidate
    ));
}

#[test]
fn payloads_that_are_not_their_json_are_reported_not_dropped() {
    let not_json = MessagePayload::encode(b"not json");
    match relayed(MessageType::SdpOffer, None, Some(not_json.clone())) {
        ClientEvent::Undecodable {
            message_type,
            payload,
            error,
            ..
        } => {
            assert_eq!(message_type, MessageType::SdpOffer);
            assert_eq!(payload, Some(not_json));
            assert!(error.contains("messagePayload"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        relayed(MessageType::IceCandidate, None, None),
        ClientEvent::Undecodable { payload: None, .. }
    ));
}

#[test]
fn send_errors_say_what_to_do() {
    assert_eq!(
        SendError::QueueFull(64).to_string(),
        "not connected, and 64 messages already wait for the connection"
    );
    assert!(
        SendError::RecipientRequired
            .to_string()
            .contains("recipientClientId")
    );
}
