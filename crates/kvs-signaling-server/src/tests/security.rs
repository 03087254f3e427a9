//! Hostile and broken clients over real sockets: each is refused with the right error, and
//! a bystander pair on another channel keeps talking throughout.

use std::time::{Duration, SystemTime};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{
    KEY, SECRET, Signing, Ws, call, call_signed, json_field, next_text, presign, presign_extra,
    presign_signed, refused_status, start,
};
use crate::Server;

async fn channel(server: &Server, name: &str) -> String {
    let created = call(
        server,
        "/createSignalingChannel",
        &format!(r#"{{"ChannelName":"{name}"}}"#),
        Some(SECRET),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    json_field(&created.body, "ChannelARN")
}

async fn open(server: &Server, arn: &str, client_id: Option<&str>) -> Ws {
    tokio_tungstenite::connect_async(presign(server, arn, client_id, SECRET))
        .await
        .unwrap()
        .0
}

/// [`open`], saying that the client handles GO_AWAY and RECONNECT_ICE_SERVER.
pub(super) async fn open_handling_indications(
    server: &Server,
    arn: &str,
    client_id: Option<&str>,
) -> Ws {
    let url = presign_extra(
        server,
        arn,
        client_id,
        &[("X-Kvs-Indications", "true")],
        &Signing::new(KEY, SECRET),
    );
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The close frame that ends `ws` (after any pings), with no text frame before it.
pub(super) async fn next_close(ws: &mut Ws) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within five seconds")
            .expect("a close frame before the end of the stream")
            .unwrap();
        match message {
            Message::Close(Some(frame)) => return (frame.code.into(), frame.reason.to_string()),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// A master and a viewer on their own channel, checked to still relay.
struct Bystanders {
    master: Ws,
    viewer: Ws,
    sent: u32,
}

impl Bystanders {
    async fn new(server: &Server) -> Self {
        let arn = channel(server, "bystanders").await;
        let master = open(server, &arn, None).await;
        let viewer = open(server, &arn, Some("calm")).await;
        Self {
            master,
            viewer,
            sent: 0,
        }
    }

    async fn still_served(&mut self) {
        self.sent += 1;
        let frame = format!(
            r#"{{"action":"ICE_CANDIDATE","messagePayload":"Y2FuZA==","correlationId":"c{}"}}"#,
            self.sent
        );
        self.viewer.send(Message::Text(frame.into())).await.unwrap();
        let got = next_text(&mut self.master).await;
        assert!(got.contains(r#""senderClientId":"calm""#), "{got}");
    }
}

/// The close frame `ws` ends with.
async fn close_of(ws: &mut Ws) -> (CloseCode, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return (frame.code, frame.reason.as_str().to_owned());
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn forged_connects_are_refused_before_the_upgrade() {
    let server = start().await;
    let arn = channel(&server, "guarded").await;
    let mut bystanders = Bystanders::new(&server).await;
    let good = Signing::new(KEY, SECRET);
    let cases = [
        ("wrong secret", Signing::new(KEY, "not-the-secret")),
        ("unknown access key", Signing::new("AKIDNOBODY", SECRET)),
        (
            "wrong region",
            Signing {
                region: "eu-west-1",
                ..good
            },
        ),
        (
            "wrong service",
            Signing {
                service: "execute-api",
                ..good
            },
        ),
        (
            "expired presign",
            Signing {
                time: SystemTime::now() - Duration::from_secs(600),
                ..good
            },
        ),
        (
            "signed in the future",
            Signing {
                time: SystemTime::now() + Duration::from_secs(3600),
                ..good
            },
        ),
    ];
    for (what, signing) in cases {
        let url = presign_signed(&server, &arn, Some("v"), &signing);
        assert_eq!(refused_status(&url).await, 403, "{what}");
    }
    // Tampered: the client id changed after signing; and a signature dropped.
    let url = presign(&server, &arn, Some("alice"), SECRET);
    assert_eq!(
        refused_status(&url.replace("X-Amz-ClientId=alice", "X-Amz-ClientId=mallory")).await,
        403
    );
    let unsigned = url.split("&X-Amz-Algorithm").next().unwrap().to_owned();
    assert_eq!(refused_status(&unsigned).await, 403);
    bystanders.still_served().await;

    // REST calls with the same faults: the service's InvalidSignatureException.
    for signing in [
        Signing {
            region: "eu-west-1",
            ..good
        },
        Signing {
            service: "s3",
            ..good
        },
        Signing {
            time: SystemTime::now() - Duration::from_secs(3600),
            ..good
        },
    ] {
        let answer = call_signed(&server, "/listSignalingChannels", "{}", Some(&signing)).await;
        assert_eq!(
            (answer.status, answer.error_type.as_deref()),
            (403, Some("InvalidSignatureException")),
            "{}",
            answer.body
        );
    }
    let expired = call_signed(
        &server,
        "/listSignalingChannels",
        "{}",
        Some(&Signing {
            time: SystemTime::now() - Duration::from_secs(3600),
            ..good
        }),
    )
    .await;
    assert!(
        expired.body.contains("Signature expired"),
        "{}",
        expired.body
    );
    bystanders.still_served().await;
}

#[tokio::test]
async fn broken_frames_are_answered_and_hostile_ones_closed() {
    let server = start().await;
    let arn = channel(&server, "rough").await;
    let mut bystanders = Bystanders::new(&server).await;
    let mut master = open(&server, &arn, None).await;
    let mut viewer = open(&server, &arn, Some("v")).await;

    // Malformed JSON: nothing to answer to, so it is dropped and the connection lives on.
    viewer
        .send(Message::Text("{not json at all".into()))
        .await
        .unwrap();
    // A bad payload with a correlation id: a STATUS_RESPONSE naming the field.
    viewer
        .send(Message::Text(
            r#"{"action":"SDP_OFFER","messagePayload":"*not base64*","correlationId":"bad1"}"#
                .into(),
        ))
        .await
        .unwrap();
    let status = next_text(&mut viewer).await;
    assert!(
        status.contains(r#""messageType":"STATUS_RESPONSE""#)
            && status.contains("bad1")
            && status.contains("InvalidArgumentException")
            && status.contains("messagePayload"),
        "{status}"
    );
    // A payload over the service's 10K characters, inside the WebSocket limit.
    let big = "A".repeat(12_000);
    viewer
        .send(Message::Text(
            format!(r#"{{"action":"SDP_OFFER","messagePayload":"{big}","correlationId":"big1"}}"#)
                .into(),
        ))
        .await
        .unwrap();
    let status = next_text(&mut viewer).await;
    assert!(
        status.contains("big1") && status.contains("messagePayload"),
        "{status}"
    );
    // The connection still works after all that.
    viewer
        .send(Message::Text(
            r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXI="}"#.into(),
        ))
        .await
        .unwrap();
    assert!(
        next_text(&mut master)
            .await
            .contains(r#""senderClientId":"v""#)
    );

    // A frame past the WebSocket message limit: closed with 1009.
    let mut huge = open(&server, &arn, Some("huge")).await;
    huge.send(Message::Text("x".repeat(64 * 1024).into()))
        .await
        .unwrap();
    assert_eq!(close_of(&mut huge).await.0, CloseCode::Size);

    // A binary frame: closed with 1003.
    let mut binary = open(&server, &arn, Some("bin")).await;
    binary
        .send(Message::Binary(vec![0u8, 1, 2, 3].into()))
        .await
        .unwrap();
    let (code, reason) = close_of(&mut binary).await;
    assert_eq!(code, CloseCode::Unsupported, "{reason}");
    assert!(reason.contains("binary"), "{reason}");
    bystanders.still_served().await;
}

#[tokio::test]
async fn a_flood_from_one_connection_is_throttled_and_others_are_served() {
    let server = start().await;
    let arn = channel(&server, "flooded").await;
    let mut bystanders = Bystanders::new(&server).await;
    let mut master = open(&server, &arn, None).await;
    let mut flooder = open(&server, &arn, Some("flood")).await;

    // Without correlation ids (as the JavaScript SDK sends), throttled frames are dropped
    // without an answer: the master gets at most the burst, 20 candidates.
    const SENT: usize = 500;
    for _ in 0..SENT {
        let frame = r#"{"action":"ICE_CANDIDATE","messagePayload":"Y2FuZA=="}"#;
        flooder.send(Message::Text(frame.into())).await.unwrap();
    }
    bystanders.still_served().await;
    let mut delivered = 0;
    while let Ok(Some(Ok(Message::Text(_)))) =
        tokio::time::timeout(Duration::from_millis(300), master.next()).await
    {
        delivered += 1;
    }
    assert!(
        (1..=25).contains(&delivered),
        "{delivered} of {SENT} candidates were delivered"
    );
    // The flooder is still connected, and served once the bucket refills.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    flooder
        .send(Message::Text(
            r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXI="}"#.into(),
        ))
        .await
        .unwrap();
    assert!(next_text(&mut master).await.contains("SDP_OFFER"));

    // With correlation ids, each throttled frame is answered with ClientLimitExceeded; a
    // flooder that does not read those answers as fast as it provokes them is closed as a
    // slow consumer (1008) instead of being buffered for, and the close goes out ahead of
    // the answers still queued.
    for i in 0..SENT {
        let frame = format!(
            r#"{{"action":"ICE_CANDIDATE","messagePayload":"Y2FuZA==","correlationId":"f{i}"}}"#
        );
        if flooder.send(Message::Text(frame.into())).await.is_err() {
            break; // closed under us
        }
    }
    let mut limited = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), flooder.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                assert!(text.contains("ClientLimitExceededException"), "{text}");
                limited += 1;
                if limited == SENT - 25 {
                    break;
                }
            }
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                assert_eq!(frame.code, CloseCode::Policy, "{frame:?}");
                assert_eq!(frame.reason.as_str(), "slow consumer");
                break;
            }
            other => panic!("expected STATUS_RESPONSE or a close, got {other:?}"),
        }
    }
    bystanders.still_served().await;
    let listed = call(&server, "/listSignalingChannels", "{}", Some(SECRET)).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
}

#[tokio::test]
async fn roles_ttl_delivery_replacement_and_drain_over_sockets() {
    let server = start().await;
    let arn = channel(&server, "semantics").await;

    // TTL delivery: an offer sent before the master connects waits for it.
    let mut early = open(&server, &arn, Some("early")).await;
    early
        .send(Message::Text(
            r#"{"action":"SDP_OFFER","messagePayload":"ZWFybHk="}"#.into(),
        ))
        .await
        .unwrap();
    let mut master = open(&server, &arn, None).await;
    let got = next_text(&mut master).await;
    assert!(
        got.contains(r#""messagePayload":"ZWFybHk=""#)
            && got.contains(r#""senderClientId":"early""#),
        "{got}"
    );

    // Several viewers; the master answers each by client id, candidates go both ways.
    let mut late = open(&server, &arn, Some("late")).await;
    for (viewer, id) in [(&mut early, "early"), (&mut late, "late")] {
        viewer
            .send(Message::Text(
                r#"{"action":"ICE_CANDIDATE","messagePayload":"Y2FuZA=="}"#.into(),
            ))
            .await
            .unwrap();
        let got = next_text(&mut master).await;
        assert!(
            got.contains(&format!(r#""senderClientId":"{id}""#)),
            "{got}"
        );
        master
            .send(Message::Text(
                format!(
                    r#"{{"action":"ICE_CANDIDATE","recipientClientId":"{id}","messagePayload":"bWFzdGVy"}}"#
                )
                .into(),
            ))
            .await
            .unwrap();
        let got = next_text(viewer).await;
        assert_eq!(
            got,
            r#"{"messagePayload":"bWFzdGVy","messageType":"ICE_CANDIDATE"}"#
        );
    }

    // Role rules: the master must name a recipient; a viewer's recipient is ignored and its
    // message still goes to the master.
    master
        .send(Message::Text(
            r#"{"action":"SDP_ANSWER","messagePayload":"YQ==","correlationId":"m1"}"#.into(),
        ))
        .await
        .unwrap();
    let status = next_text(&mut master).await;
    assert!(
        status.contains("STATUS_RESPONSE") && status.contains("recipientClientId"),
        "{status}"
    );
    late.send(Message::Text(
        r#"{"action":"SDP_OFFER","recipientClientId":"early","messagePayload":"dG8tbWFzdGVy"}"#
            .into(),
    ))
    .await
    .unwrap();
    let got = next_text(&mut master).await;
    assert!(got.contains(r#""senderClientId":"late""#), "{got}");

    // Replacement: a second master takes over; the first gets nothing more.
    let mut second = open_handling_indications(&server, &arn, None).await;
    late.send(Message::Text(
        r#"{"action":"SDP_OFFER","messagePayload":"cmVwbGFjZWQ="}"#.into(),
    ))
    .await
    .unwrap();
    let got = next_text(&mut second).await;
    assert!(got.contains("cmVwbGFjZWQ="), "{got}");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), master.next())
            .await
            .is_err(),
        "the superseded master still got a frame"
    );

    // Drain: the connection that handles GO_AWAY gets it; the others (as the official C SDK,
    // which deadlocks on it) are closed with 1001 at once, without one.
    server.drain().await;
    assert_eq!(next_text(&mut second).await, r#"{"messageType":"GO_AWAY"}"#);
    for ws in [&mut early, &mut late] {
        assert_eq!(next_close(ws).await, (1001, "server going away".to_owned()));
    }
}

#[tokio::test]
async fn rotating_the_turn_secret_sends_reconnect_ice_server() {
    use kvs_ice_rest::{TurnConfig, TurnSecret};
    use kvs_signaling_proto::{IceServerTtl, IceUri};

    let server = start().await;
    let arn = channel(&server, "rotating").await;
    let mut master = open_handling_indications(&server, &arn, None).await;
    let mut viewer = open_handling_indications(&server, &arn, Some("v")).await;
    let mut plain = open(&server, &arn, Some("plain")).await;
    let body = format!(r#"{{"ChannelARN":"{arn}"}}"#);
    let credentials = |answer: &str| {
        (
            json_field(answer, "Username"),
            json_field(answer, "Password"),
        )
    };
    let before = call(&server, "/v1/get-ice-server-config", &body, Some(SECRET)).await;
    let (old_user, old_password) = credentials(&before.body);

    // The same signing secret again: nothing to tell anyone.
    let same = server
        .set_turn_secrets(vec![TurnSecret::new("turn-secret")])
        .await
        .unwrap();
    assert!(!same);
    // A new signing secret, the old one kept for verifying: RECONNECT_ICE_SERVER to every
    // client that handles it; the others fetch new credentials on their own schedule.
    let changed = server
        .set_turn_secrets(vec![
            TurnSecret::new("fresh-secret"),
            TurnSecret::new("turn-secret"),
        ])
        .await
        .unwrap();
    assert!(changed);
    for ws in [&mut master, &mut viewer] {
        assert_eq!(
            next_text(ws).await,
            r#"{"messageType":"RECONNECT_ICE_SERVER"}"#
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), plain.next())
            .await
            .is_err(),
        "a client that does not handle RECONNECT_ICE_SERVER got a frame"
    );
    let after = call(&server, "/v1/get-ice-server-config", &body, Some(SECRET)).await;
    let (user, password) = credentials(&after.body);
    let uris = vec![IceUri::new("turn:127.0.0.1:3478?transport=udp").unwrap()];
    let only = |secret: &str| {
        TurnConfig::new(
            uris.clone(),
            vec![],
            vec![TurnSecret::new(secret)],
            IceServerTtl::default(),
        )
        .unwrap()
    };
    let now = SystemTime::now();
    assert!(only("fresh-secret").verify(now, &user, &password));
    assert!(!only("turn-secret").verify(now, &user, &password));
    // Credentials handed out before the rotation still verify under the old secret.
    assert!(only("turn-secret").verify(now, &old_user, &old_password));
    // A configuration the C SDK could not use is refused, and nothing changes.
    assert!(server.set_turn_secrets(vec![]).await.is_err());
}

#[tokio::test]
async fn ten_viewers_bursting_within_their_limits_do_not_get_the_master_closed() {
    // The service's defaults: ten viewers, 20 candidates a second each. Every viewer sends a
    // burst of ten at once; all hundred reach the master, which stays connected.
    // Connects are limited to 3 a second per channel; this test opens eleven at once.
    let mut hub = kvs_signaling_core::HubConfig::default();
    hub.connect_rate = kvs_signaling_core::Rate::per_second(100);
    let server = Server::start(super::config().hub(hub)).await.unwrap();
    let arn = channel(&server, "burst").await;
    let mut master = open(&server, &arn, None).await;
    let mut viewers = Vec::new();
    for i in 0..10 {
        viewers.push(open(&server, &arn, Some(&format!("v{i}"))).await);
    }
    for viewer in &mut viewers {
        for _ in 0..10 {
            let frame = r#"{"action":"ICE_CANDIDATE","messagePayload":"Y2FuZA=="}"#;
            viewer.feed(Message::Text(frame.into())).await.unwrap();
        }
        viewer.flush().await.unwrap();
    }
    for received in 0..100 {
        let got = next_text(&mut master).await;
        assert!(got.contains("ICE_CANDIDATE"), "frame {received}: {got}");
    }
}
