use super::*;

#[test]
fn session_description_round_trip() {
    let offer = SessionDescription::new(SdpType::Offer, "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n");
    let payload = offer.to_payload().unwrap();
    assert!(payload.is_standard());
    assert_eq!(SessionDescription::from_payload(&payload).unwrap(), offer);
    assert_eq!(
        String::from_utf8(payload.decode().unwrap()).unwrap(),
        r#"{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}"#
    );
}

#[test]
fn reads_what_each_sdk_writes() {
    // JavaScript: RTCSessionDescription.toJSON() puts sdp first.
    let js = MessagePayload::encode(br#"{"sdp":"v=0\r\n","type":"answer"}"#);
    assert_eq!(
        SessionDescription::from_payload(&js).unwrap(),
        SessionDescription::new(SdpType::Answer, "v=0\r\n")
    );
    // C SDK candidate with hard-coded sdpMid and index; browser's with usernameFragment.
    let c = MessagePayload::encode(
        br#"{"candidate":"candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}"#,
    );
    assert_eq!(
        IceCandidate::from_payload(&c).unwrap(),
        IceCandidate::new(
            "candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host",
            "0",
            0
        )
    );
    let browser = MessagePayload::encode(
        br#"{"candidate":"candidate:2 1 tcp 1 ::1 9 typ host","sdpMid":null,"sdpMLineIndex":1,"usernameFragment":"abcd"}"#,
    );
    let candidate = IceCandidate::from_payload(&browser).unwrap();
    assert_eq!(candidate.sdp_mid, None);
    assert_eq!(candidate.username_fragment.as_deref(), Some("abcd"));
    // Android: URL-safe, unpadded.
    let android = MessagePayload::new("eyJ0eXBlIjoib2ZmZXIiLCJzZHAiOiJ2PTAifQ").unwrap();
    assert_eq!(
        SessionDescription::from_payload(&android).unwrap().sdp_type,
        SdpType::Offer
    );
}

#[test]
fn payloads_that_are_not_the_shape_are_errors() {
    let not_json = MessagePayload::encode(b"hello");
    let err = SessionDescription::from_payload(&not_json).unwrap_err();
    assert_eq!(err.field(), Some(&Field::new("messagePayload")));
    assert!(matches!(
        err,
        Error::Invalid {
            violation: Violation::Payload { .. },
            ..
        }
    ));
    let wrong_type = MessagePayload::encode(br#"{"type":"bogus","sdp":""}"#);
    assert!(SessionDescription::from_payload(&wrong_type).is_err());
}
