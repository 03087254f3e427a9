use kvs_signaling_proto::{ClientMessage, MessageType, PeerId, ServerEvent};

use super::*;

const RUN: u32 = 4_000_000_007;

/// What the service delivers for a client's frame: the payload relayed unchanged.
fn relayed(frame: &str, sender: Option<&PeerId>) -> String {
    let message = ClientMessage::decode(frame).unwrap();
    ServerEvent::relay(
        message.action.message_type(),
        sender,
        message.message_payload,
    )
    .encode()
}

#[test]
fn payloads_have_realistic_sizes() {
    let json = |kind, from_master| {
        payload(kind, from_master, 123_456_789_012, RUN)
            .decode()
            .unwrap()
    };
    let offer = json(PayloadKind::Offer, false);
    assert!((900..=1200).contains(&offer.len()), "{}", offer.len());
    assert!(offer.starts_with(
        br#"{"type":"offer","sdp":"v=0\r\no=- 123456789012 4000000007 IN IP4 127.0.0.1\r\n"#
    ));
    let answer = json(PayloadKind::Offer, true);
    assert!(answer.starts_with(br#"{"type":"answer","sdp":"#));
    let candidate = json(PayloadKind::Candidate, false);
    assert!(
        (250..=350).contains(&candidate.len()),
        "{}",
        candidate.len()
    );
    assert!(candidate.starts_with(br#"{"candidate":"candidate:123456789012 1 udp"#));
}

#[test]
fn frames_are_what_the_sdks_send() {
    let frames = Frames::new(PayloadKind::Offer, false, RUN);
    let viewer = frames.viewer(7);
    assert!(viewer.starts_with(r#"{"action":"SDP_OFFER","messagePayload":"eyJ0eXBlIjoib2ZmZXIi"#));
    let v0 = PeerId::new("v0").unwrap();
    let master = frames.master(&v0, 7);
    assert!(
        master.starts_with(r#"{"action":"SDP_ANSWER","recipientClientId":"v0","messagePayload":"#)
    );
    let with_ids = Frames::new(PayloadKind::Candidate, true, RUN).viewer(7);
    assert!(with_ids.starts_with(r#"{"action":"ICE_CANDIDATE","#));
    assert!(with_ids.ends_with(r#","correlationId":"loadgen"}"#));
}

#[test]
fn the_send_time_survives_the_relay() {
    for kind in [PayloadKind::Offer, PayloadKind::Candidate] {
        let frames = Frames::new(kind, false, RUN);
        let v3 = PeerId::new("v3").unwrap();
        let to_master = relayed(&frames.viewer(42_000_000_001), Some(&v3));
        assert_eq!(
            decode_event(&to_master, kind, Check::Run(RUN)),
            Event::Relay {
                message_type: frames.payload_type(false),
                sender: Sender::Viewer(3),
                ts: Some(42_000_000_001),
            }
        );
        let to_viewer = relayed(&frames.master(&v3, 5), None);
        let expected = frames.payload(true, 5);
        assert_eq!(
            decode_event(&to_viewer, kind, Check::Payload(expected.as_str())),
            Event::Relay {
                message_type: frames.payload_type(true),
                sender: Sender::Absent,
                ts: None,
            }
        );
    }
}

#[test]
fn messages_of_another_run_are_stale() {
    for kind in [PayloadKind::Offer, PayloadKind::Candidate] {
        let earlier = Frames::new(kind, false, RUN - 1);
        let now = Frames::new(kind, false, RUN);
        let v0 = PeerId::new("v0").unwrap();
        let old = relayed(&earlier.viewer(0), Some(&v0));
        assert_eq!(decode_event(&old, kind, Check::Run(RUN)), Event::Stale);
        let expected = now.payload(false, 0);
        assert_eq!(
            decode_event(&old, kind, Check::Payload(expected.as_str())),
            Event::Stale
        );
        // An earlier run's message of the other kind is stale too, not undecodable.
        let other = match kind {
            PayloadKind::Offer | PayloadKind::Large => PayloadKind::Candidate,
            PayloadKind::Candidate => PayloadKind::Offer,
        };
        let old = relayed(&Frames::new(other, false, RUN - 1).viewer(0), Some(&v0));
        assert_eq!(decode_event(&old, kind, Check::Run(RUN)), Event::Stale);
    }
}

#[test]
fn other_frames_are_classified() {
    let kind = PayloadKind::Offer;
    let run = Check::Run(RUN);
    assert_eq!(
        decode_event(r#"{"messageType":"GO_AWAY"}"#, kind, run),
        Event::GoAway
    );
    assert_eq!(
        decode_event(r#"{"messageType":"RECONNECT_ICE_SERVER"}"#, kind, run),
        Event::Other
    );
    let status = r#"{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"loadgen","errorType":"ClientLimitExceededException","statusCode":"400","description":"x","success":false}}"#;
    assert_eq!(decode_event(status, kind, run), Event::Status);
    assert_eq!(decode_event("not json", kind, run), Event::Undecodable);
    // A relayed payload without a readable time is undecodable when the time matters.
    let plain = r#"{"messagePayload":"e30=","messageType":"SDP_OFFER","senderClientId":"x"}"#;
    assert_eq!(decode_event(plain, kind, run), Event::Undecodable);
    assert_eq!(
        decode_event(plain, kind, Check::Payload("e30=")),
        Event::Relay {
            message_type: MessageType::SdpOffer,
            sender: Sender::Other,
            ts: None
        }
    );
}

#[test]
fn a_large_offer_is_near_the_payload_limit_and_reads_back() {
    let frames = Frames::new(PayloadKind::Large, false, 7);
    let (payload, frame) = frames.sizes();
    assert!((9_000..=10_240).contains(&payload), "{payload}");
    assert!(frame > payload);
    let sent = frames.payload(false, 12_345);
    assert_eq!(stamp(PayloadKind::Large, &sent), Some((12_345, 7)));
}
