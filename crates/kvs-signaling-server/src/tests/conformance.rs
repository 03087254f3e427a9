//! Issue 11: the WebSocket conformance table, in the spirit of the Autobahn testsuite's cases
//! (framing, pings, fragmentation, UTF-8, close handling, limits), run against both the plain
//! and the TLS listener, which share one codec and must answer every case alike.
//!
//! Each case is what a viewer sends after its upgrade, and what must follow: the master
//! receiving the message, a pong, nothing at all (the connection then still answers a ping), or
//! the server's close frame with a given code and the clean end of the stream.

use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use super::config;
use super::harness::{Harness, Listener, Raw, ServerFrame, expect_close, frame, next_frame};
use kvs_signaling_core::{HubConfig, Rate};

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// What must follow a case's bytes.
#[derive(Debug, Clone)]
enum Then {
    /// The master receives an offer with this payload, and the connection stays up.
    Relayed(&'static str),
    /// A pong with this payload.
    Pong(Vec<u8>),
    /// A pong with this payload, and the master receives an offer with this payload.
    PongAndRelayed(Vec<u8>, &'static str),
    /// Nothing: the connection still answers a ping.
    Nothing,
    /// The server closes with this code (`None`: a close frame without one).
    Closed(Option<u16>),
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    then: Then,
}

fn offer(payload: &str) -> String {
    format!(r#"{{"action":"SDP_OFFER","messagePayload":"{payload}"}}"#)
}

fn case(name: &'static str, bytes: Vec<u8>, then: Then) -> Case {
    Case { name, bytes, then }
}

/// Raw header bytes: `first` (FIN, RSV, opcode), a masked length byte, and a zero mask.
fn raw_header(first: u8, len: u8) -> Vec<u8> {
    vec![first, 0x80 | len, 0, 0, 0, 0]
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        // Framing.
        case(
            "text",
            frame(true, TEXT, offer("QQ==").as_bytes()),
            Then::Relayed("QQ=="),
        ),
        case(
            "text of 16-bit length",
            frame(true, TEXT, offer(&"QUFB".repeat(100)).as_bytes()),
            Then::Relayed("QUFBQUFB"),
        ),
        case(
            "binary",
            frame(true, BINARY, b"\x00\x01"),
            Then::Closed(Some(1003)),
        ),
        case(
            "unmasked",
            vec![0x81, 0x02, b'{', b'}'],
            Then::Closed(Some(1002)),
        ),
        case("rsv1", raw_header(0xC1, 0), Then::Closed(Some(1002))),
        case("rsv2", raw_header(0xA1, 0), Then::Closed(Some(1002))),
        case("rsv3", raw_header(0x91, 0), Then::Closed(Some(1002))),
        case(
            "16-bit length of 5",
            [vec![0x81, 0x80 | 126, 0, 5, 0, 0, 0, 0], b"aaaaa".to_vec()].concat(),
            Then::Closed(Some(1002)),
        ),
        case(
            "64-bit length of 200",
            [
                vec![0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0, 0],
                vec![b'a'; 200],
            ]
            .concat(),
            Then::Closed(Some(1002)),
        ),
        case(
            "64-bit length with the top bit",
            vec![0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
            Then::Closed(Some(1002)),
        ),
        // Pings and pongs.
        case("empty ping", frame(true, PING, b""), Then::Pong(Vec::new())),
        case(
            "ping of 125 bytes",
            frame(true, PING, &[7; 125]),
            Then::Pong(vec![7; 125]),
        ),
        case(
            "ping of 126 bytes",
            frame(true, PING, &[7; 126]),
            Then::Closed(Some(1002)),
        ),
        case(
            "fragmented ping",
            frame(false, PING, b"hi"),
            Then::Closed(Some(1002)),
        ),
        case("unsolicited pong", frame(true, PONG, b"x"), Then::Nothing),
        // Fragmentation.
        case(
            "fragmented text",
            [
                frame(false, TEXT, br#"{"action":"SDP_OFFER","#),
                frame(false, CONTINUATION, br#""messagePayload""#),
                frame(true, CONTINUATION, br#":"Qg=="}"#),
            ]
            .concat(),
            Then::Relayed("Qg=="),
        ),
        case(
            "fragmented text with a ping between",
            [
                frame(false, TEXT, br#"{"action":"SDP_OFFER","#),
                frame(true, PING, b"mid"),
                frame(true, CONTINUATION, br#""messagePayload":"Qw=="}"#),
            ]
            .concat(),
            Then::PongAndRelayed(b"mid".to_vec(), "Qw=="),
        ),
        case(
            "continuation without a start",
            frame(true, CONTINUATION, b"x"),
            Then::Closed(Some(1002)),
        ),
        case(
            "text inside a fragmented message",
            [frame(false, TEXT, b"{"), frame(true, TEXT, b"}")].concat(),
            Then::Closed(Some(1002)),
        ),
        case(
            "fragmented close",
            frame(false, CLOSE, &1000u16.to_be_bytes()),
            Then::Closed(Some(1002)),
        ),
        // UTF-8.
        case(
            "UTF-8 text",
            frame(
                true,
                TEXT,
                r#"{"action":"SDP_OFFER","messagePayload":"RA==","note":"κόσμε"}"#.as_bytes(),
            ),
            Then::Relayed("RA=="),
        ),
        case(
            "UTF-8 split across fragments",
            {
                let text =
                    r#"{"note":"κόσμε","action":"SDP_OFFER","messagePayload":"RQ=="}"#.as_bytes();
                [
                    frame(false, TEXT, &text[..10]),
                    frame(true, CONTINUATION, &text[10..]),
                ]
                .concat()
            },
            Then::Relayed("RQ=="),
        ),
        case(
            "invalid UTF-8 text",
            frame(
                true,
                TEXT,
                b"{\"a\":\"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\"}",
            ),
            Then::Closed(Some(1007)),
        ),
        case(
            "invalid UTF-8 across fragments",
            [
                frame(false, TEXT, b"{\"a\":\"\xce"),
                frame(true, CONTINUATION, b"\xff\"}"),
            ]
            .concat(),
            Then::Closed(Some(1007)),
        ),
        case("empty text", frame(true, TEXT, b""), Then::Nothing),
        // Close handling.
        case(
            "empty close",
            frame(true, CLOSE, b""),
            Then::Closed(Some(1000)),
        ),
        case(
            "close with one byte",
            frame(true, CLOSE, &[3]),
            Then::Closed(Some(1002)),
        ),
        case(
            "close with an invalid UTF-8 reason",
            frame(true, CLOSE, &close_payload(1000, b"\xce\xba\xff")),
            Then::Closed(Some(1007)),
        ),
        case(
            "close with a UTF-8 reason",
            frame(true, CLOSE, &close_payload(1000, "κόσμε".as_bytes())),
            Then::Closed(Some(1000)),
        ),
        // Limits.
        case(
            "a frame over the limit",
            frame(true, TEXT, &[b' '; 20_000]),
            Then::Closed(Some(1009)),
        ),
        case(
            "fragments over the limit",
            [
                frame(false, TEXT, &[b' '; 10_000]),
                frame(true, CONTINUATION, &[b' '; 10_000]),
            ]
            .concat(),
            Then::Closed(Some(1009)),
        ),
    ];
    for opcode in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        cases.push(case(
            "reserved opcode",
            raw_header(0x80 | opcode, 0),
            Then::Closed(Some(1002)),
        ));
    }
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        cases.push(case(
            "close with an invalid code",
            frame(true, CLOSE, &code.to_be_bytes()),
            Then::Closed(Some(1002)),
        ));
    }
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        cases.push(case(
            "close with a valid code",
            frame(true, CLOSE, &code.to_be_bytes()),
            Then::Closed(Some(code)),
        ));
    }
    cases
}

/// The next text frame on `io`.
async fn next_text(io: &mut Raw) -> String {
    match next_frame(io).await {
        ServerFrame::Text(text) => text,
        other => panic!("expected text, got {other:?}"),
    }
}

/// Checks that `io` still answers a ping.
async fn still_alive(io: &mut Raw, name: &str) {
    io.write_all(&frame(true, PING, b"alive")).await.unwrap();
    loop {
        match next_frame(io).await {
            ServerFrame::Pong(payload) if payload == b"alive" => return,
            ServerFrame::Pong(_) => {}
            other => panic!("{name}: expected the pong, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn every_case_is_answered_alike_on_both_listeners() {
    let hub = HubConfig::default()
        .max_viewers_per_channel(100)
        .connect_rate(Rate::per_second(1000))
        .sdp_rate(Rate::per_second(1000))
        .max_payload_len(10_240);
    for listener in Listener::BOTH {
        let harness = Harness::start(listener, config().hub(hub.clone())).await;
        let arn = harness.channel("conformance").await;
        let mut master = harness.upgrade(&arn, None).await;
        for (n, case) in cases().into_iter().enumerate() {
            let label = format!("{listener:?}: {} (case {n})", case.name);
            let mut viewer = harness.upgrade(&arn, Some(&format!("v{n}"))).await;
            viewer.write_all(&case.bytes).await.unwrap();
            match &case.then {
                Then::Relayed(payload) => {
                    let got = next_text(&mut master).await;
                    assert!(
                        got.contains(payload)
                            && got.contains(&format!(r#""senderClientId":"v{n}""#)),
                        "{label}: the master got {got}"
                    );
                    still_alive(&mut viewer, &label).await;
                }
                Then::Pong(payload) => {
                    assert_eq!(
                        next_frame(&mut viewer).await,
                        ServerFrame::Pong(payload.clone()),
                        "{label}"
                    );
                    still_alive(&mut viewer, &label).await;
                }
                Then::PongAndRelayed(pong, relayed) => {
                    assert_eq!(
                        next_frame(&mut viewer).await,
                        ServerFrame::Pong(pong.clone()),
                        "{label}"
                    );
                    let got = next_text(&mut master).await;
                    assert!(got.contains(relayed), "{label}: the master got {got}");
                    still_alive(&mut viewer, &label).await;
                }
                Then::Nothing => still_alive(&mut viewer, &label).await,
                Then::Closed(code) => {
                    assert_eq!(expect_close(&mut viewer).await, *code, "{label}");
                }
            }
        }
        // Nothing else reached the master: every broken frame was refused, not relayed.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), next_text(&mut master))
                .await
                .is_err(),
            "{listener:?}: the master got more than the valid cases"
        );
    }
}

/// A frame trickled a byte per write arrives whole, on both listeners.
#[tokio::test]
async fn a_frame_trickled_byte_by_byte_arrives_whole() {
    for listener in Listener::BOTH {
        let harness = Harness::start(listener, config()).await;
        let arn = harness.channel("trickle").await;
        let mut master = harness.upgrade(&arn, None).await;
        let mut viewer = harness.upgrade(&arn, Some("slow")).await;
        let bytes = frame(true, TEXT, offer(&"QUFB".repeat(500)).as_bytes());
        for byte in &bytes {
            viewer.write_all(std::slice::from_ref(byte)).await.unwrap();
            viewer.flush().await.unwrap();
        }
        match next_frame(&mut master).await {
            ServerFrame::Text(text) => assert!(text.contains(&"QUFB".repeat(500)), "{listener:?}"),
            other => panic!("{listener:?}: {other:?}"),
        }
    }
}
