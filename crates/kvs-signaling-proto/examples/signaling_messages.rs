//! kvs-signaling-proto alone: what the official SDKs send, validated; what a service sends
//! back, built and encoded; the SDP and ICE views inside the payloads; and a REST body.
//!
//! Run it with `cargo run -p kvs-signaling-proto --example signaling_messages`. It prints what
//! it does and checks each step, so it fails loudly if the crate stops behaving as shown.
#![allow(
    clippy::print_stdout,
    reason = "an example shows its results on stdout"
)]

use std::error::Error;

use kvs_signaling_proto::{
    Action, ClientMessage, CreateSignalingChannelRequest, ErrorBody, ErrorType, IceCandidate,
    JsonBody as _, MessagePayload, MessageType, PayloadJson as _, PeerId, SdpType, ServerEvent,
    SessionDescription,
};

/// Frames captured from each official SDK (the crate's test vectors).
const FRAMES: [(&str, &str); 5] = [
    (
        "JavaScript SDK, viewer offer",
        include_str!("../testdata/vectors/client/js_viewer_offer.json"),
    ),
    (
        "C SDK, viewer offer",
        include_str!("../testdata/vectors/client/c_sdk_viewer_offer.json"),
    ),
    (
        "Android SDK, master answer",
        include_str!("../testdata/vectors/client/android_master_answer.json"),
    ),
    (
        "iOS SDK, ICE candidate",
        include_str!("../testdata/vectors/client/ios_ice_candidate.json"),
    ),
    (
        "JavaScript SDK, ICE candidate",
        include_str!("../testdata/vectors/client/js_ice_candidate.json"),
    ),
];

fn main() -> Result<(), Box<dyn Error>> {
    decode_what_the_sdks_send()?;
    refuse_a_bad_message()?;
    relay_an_offer()?;
    build_an_answer_and_a_candidate()?;
    rest_bodies()?;
    println!("\nall checks passed");
    Ok(())
}

/// Each SDK's frame decodes, whatever its key case (`RecipientClientId` from the C SDK,
/// `recipientClientId` from the others), and its payload reads as SDP or as a candidate.
fn decode_what_the_sdks_send() -> Result<(), Box<dyn Error>> {
    println!("== what the official SDKs send");
    for (sdk, frame) in FRAMES {
        let message = ClientMessage::decode(frame)?;
        let recipient = message
            .recipient_client_id
            .as_ref()
            .map_or("(none: a viewer writes to its master)", PeerId::as_str);
        match message.action {
            Action::SdpOffer | Action::SdpAnswer => {
                let description = SessionDescription::from_payload(&message.message_payload)?;
                let expected = if message.action == Action::SdpOffer {
                    SdpType::Offer
                } else {
                    SdpType::Answer
                };
                assert_eq!(description.sdp_type, expected);
                assert!(description.sdp.starts_with("v=0"));
                println!(
                    "{sdk}: {} to {recipient}, {:?} of {} SDP lines",
                    message.action,
                    description.sdp_type,
                    description.sdp.lines().count()
                );
            }
            Action::IceCandidate => {
                let candidate = IceCandidate::from_payload(&message.message_payload)?;
                assert!(candidate.candidate.starts_with("candidate:"));
                println!(
                    "{sdk}: {} to {recipient}, mid {:?}: {}",
                    message.action,
                    candidate.sdp_mid.as_deref().unwrap_or("-"),
                    candidate.candidate
                );
            }
        }
    }
    Ok(())
}

/// A bad message is refused with an error that names the field and the rule; with a
/// correlation id, the service answers it with a STATUS_RESPONSE.
fn refuse_a_bad_message() -> Result<(), Box<dyn Error>> {
    println!("\n== a bad message");
    let frame = r#"{"action":"SDP_OFFER","recipientClientId":"master","messagePayload":"not base64!","correlationId":"42"}"#;
    let Err(refused) = ClientMessage::decode(frame) else {
        return Err("a payload that is not base64 was accepted".into());
    };
    assert_eq!(
        refused.error.error_type(),
        ErrorType::InvalidArgumentException
    );
    assert!(refused.error.to_string().starts_with("messagePayload: "));
    println!("refused: {}", refused.error);
    let answer = refused
        .status_response()
        .ok_or("a message with a correlation id gets an answer")?
        .encode();
    assert!(answer.contains(r#""correlationId":"42""#));
    println!("answered: {answer}");
    Ok(())
}

/// What the service delivers to the master: the viewer's payload, unchanged, with the
/// viewer's id as `senderClientId`. Events decode back as a client would read them.
fn relay_an_offer() -> Result<(), Box<dyn Error>> {
    println!("\n== relayed to the master");
    let (_, frame) = FRAMES[0];
    let offer = ClientMessage::decode(frame)?;
    let viewer = PeerId::new("viewer-1")?;
    let event = ServerEvent::relay(
        offer.action.message_type(),
        Some(&viewer),
        offer.message_payload.clone(),
    );
    let wire = event.encode();
    let read = ServerEvent::decode(&wire)?;
    assert_eq!(read.message_type, MessageType::SdpOffer);
    assert_eq!(read.sender_client_id.as_deref(), Some(&viewer));
    assert_eq!(
        read.message_payload.as_ref().map(MessagePayload::as_str),
        Some(offer.message_payload.as_str())
    );
    println!("{} bytes: {}…", wire.len(), &wire[..wire.len().min(90)]);
    println!("GO_AWAY: {}", ServerEvent::go_away().encode());
    Ok(())
}

/// A client's side: an answer and a candidate, typed, into payloads and frames.
fn build_an_answer_and_a_candidate() -> Result<(), Box<dyn Error>> {
    println!("\n== built by a client");
    let answer = SessionDescription::new(SdpType::Answer, "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n");
    let mut message = ClientMessage::new(Action::SdpAnswer, answer.to_payload()?);
    message.recipient_client_id = Some(PeerId::new("viewer-1")?);
    let frame = message.encode();
    let again = ClientMessage::decode(&frame)?;
    assert_eq!(
        SessionDescription::from_payload(&again.message_payload)?,
        answer
    );
    println!("answer: {frame}");

    let candidate = IceCandidate::new(
        "candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host",
        "0",
        0,
    );
    let frame = ClientMessage::new(Action::IceCandidate, candidate.to_payload()?).encode();
    assert_eq!(
        IceCandidate::from_payload(&ClientMessage::decode(&frame)?.message_payload)?,
        candidate
    );
    println!("candidate: {frame}");
    Ok(())
}

/// REST bodies: what an SDK sends is validated member by member; errors name the member.
fn rest_bodies() -> Result<(), Box<dyn Error>> {
    println!("\n== REST");
    let body = include_str!("../testdata/vectors/rest/create_signaling_channel_request_c_sdk.json");
    let request = CreateSignalingChannelRequest::decode(body.as_bytes())?;
    println!(
        "CreateSignalingChannel for {:?}",
        request.channel_name.as_str()
    );
    let Err(err) = CreateSignalingChannelRequest::decode(br#"{"ChannelName":"no spaces"}"#) else {
        return Err("a channel name with a space was accepted".into());
    };
    assert!(err.to_string().starts_with("ChannelName: "));
    assert_eq!(err.error_type().http_status(), 400);
    let answer = ErrorBody::new(err.error_type(), err.to_string()).encode();
    println!(
        "refused ({}): {}",
        err.error_type().http_status(),
        String::from_utf8(answer)?
    );
    Ok(())
}

#[test]
fn the_example_runs() {
    main().unwrap();
}
