//! Issue 11 over real sockets: upgrade validation, the deadlines and caps of every socket,
//! the GO_AWAY policy, drain, and the routing and control-plane defects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kvs_signaling_core::{HubConfig, Rate};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::harness::{Harness, Listener, Raw, ServerFrame, expect_close, frame, next_frame};
use super::{SECRET, call, config};
use crate::IndicationPolicy;
use crate::store::faulty::{Faulty, Gate};

const KEY_HEADER: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
const VERSION_HEADER: &str = "Sec-WebSocket-Version: 13";

/// Reads until the server ends the stream (or fails it), within `within`; how long it took.
async fn until_closed(io: &mut Raw, within: Duration) -> Duration {
    let started = Instant::now();
    let mut sink = [0u8; 512];
    loop {
        match tokio::time::timeout_at((started + within).into(), io.read(&mut sink)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the socket was still open after {within:?}"),
        }
    }
}

#[tokio::test]
async fn bad_upgrade_requests_are_refused_before_the_upgrade() {
    for listener in Listener::BOTH {
        let harness = Harness::start(listener, config()).await;
        let arn = harness.channel("handshakes").await;
        let path = harness.connect_path(&arn, Some("v"), &[]);
        let cases: [(&[&str], &str, &str); 5] = [
            (&[VERSION_HEADER], "400", "Sec-WebSocket-Key: is required"),
            (
                &["Sec-WebSocket-Key: c2hvcnQ=", VERSION_HEADER],
                "400",
                "Sec-WebSocket-Key: must be the base64 encoding of 16 bytes",
            ),
            (
                &["Sec-WebSocket-Key: not base64 at all!!!!!!", VERSION_HEADER],
                "400",
                "Sec-WebSocket-Key",
            ),
            (
                &[KEY_HEADER, "Sec-WebSocket-Version: 8"],
                "426",
                "only version 13 is spoken; got 8",
            ),
            (&[KEY_HEADER], "426", "got none"),
        ];
        for (headers, status, message) in cases {
            let (mut io, head) = harness.upgrade_request(&path, headers).await;
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status}")),
                "{listener:?} {headers:?}: {head}"
            );
            if status == "426" {
                assert!(
                    head.to_ascii_lowercase()
                        .contains("sec-websocket-version: 13"),
                    "{head}"
                );
            }
            let mut body = vec![0u8; 512];
            let n = io.read(&mut body).await.unwrap();
            let body = String::from_utf8_lossy(&body[..n]);
            assert!(body.contains(message), "{listener:?} {headers:?}: {body}");
        }
    }
}

#[tokio::test]
async fn slow_and_silent_sockets_are_closed_at_their_deadlines() {
    let config = config()
        .header_read_timeout(Duration::from_secs(1))
        .tls_handshake_timeout(Duration::from_secs(1));
    for listener in Listener::BOTH {
        let harness = Arc::new(Harness::start(listener, config.clone()).await);
        // Slowloris: a request head trickled a byte every 200 ms never finishes.
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let harness = Arc::clone(&harness);
            tasks.push(tokio::spawn(async move {
                let mut io = harness.raw().await;
                let started = Instant::now();
                for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
                    if io.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    if tokio::time::timeout(Duration::from_millis(200), io.read(&mut [0u8; 64]))
                        .await
                        .is_ok()
                    {
                        // The server answered (its 408) or closed.
                        break;
                    }
                }
                let closed = until_closed(&mut io, Duration::from_secs(10)).await;
                started.elapsed().max(closed)
            }));
        }
        // Sockets that connect and never send a byte (nor, over TLS, a handshake).
        for _ in 0..100 {
            let addr = harness.server.local_addr();
            tasks.push(tokio::spawn(async move {
                let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let started = Instant::now();
                let mut sink = [0u8; 64];
                loop {
                    match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut sink)).await {
                        Ok(Ok(0) | Err(_)) => break,
                        Ok(Ok(_)) => {}
                        Err(_) => panic!("a silent socket was still open after 10 s"),
                    }
                }
                started.elapsed()
            }));
        }
        for task in tasks {
            let took = task.await.unwrap();
            assert!(
                took < Duration::from_secs(4),
                "{listener:?}: closed after {took:?}"
            );
        }
        assert_eq!(harness.server.wait_closed(Duration::from_secs(5)).await, 0);
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let harness = Harness::start(
        Listener::Plain,
        config().header_read_timeout(Duration::from_secs(1)),
    )
    .await;
    let mut io = harness.raw().await;
    io.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 512];
    let n = io.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let idle = until_closed(&mut io, Duration::from_secs(10)).await;
    assert!(idle < Duration::from_secs(4), "{idle:?}");
}

#[tokio::test]
async fn connections_past_the_cap_get_a_clear_refusal() {
    for listener in Listener::BOTH {
        let harness = Harness::start(listener, config().max_connections(4)).await;
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut io = harness.raw().await;
            // A request answered proves the connection holds its place.
            io.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut answer = vec![0u8; 512];
            let n = io.read(&mut answer).await.unwrap();
            assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{listener:?}");
            held.push(io);
        }
        let mut refused = harness.raw().await;
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), refused.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 503"), "{listener:?}: {answer}");
        assert!(
            answer.contains("at most 4 at once (max_connections)"),
            "{answer}"
        );
        assert!(answer.contains("x-amzn-ErrorType: ServiceUnavailableException"));
        // A place freed is taken again.
        drop(held.pop());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut io = harness.raw().await;
            io.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            let _ = io.read_to_string(&mut answer).await;
            if answer.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(Instant::now() < deadline, "{answer}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut io = harness.raw().await;
        io.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut metrics = String::new();
        let _ = io.read_to_string(&mut metrics).await;
        assert!(metrics.contains("kvs_sockets_max 4"), "{metrics}");
        assert!(metrics.contains("kvs_sockets_refused_total "), "{metrics}");
        assert!(
            !metrics.contains("kvs_sockets_refused_total 0"),
            "{metrics}"
        );
    }
}

/// Reads text frames until the close, answers it and, once the server has ended the stream,
/// closes the socket as a conforming client does; returns the texts and the close code.
async fn texts_until_close(mut io: Raw) -> (Vec<String>, Option<u16>) {
    let mut texts = Vec::new();
    loop {
        match next_frame(&mut io).await {
            ServerFrame::Text(text) => texts.push(text),
            ServerFrame::Close(code) => {
                let answer = frame(true, 0x8, &code.unwrap_or(1000).to_be_bytes());
                let _ = io.write_all(&answer).await;
                assert_eq!(next_frame(&mut io).await, ServerFrame::End);
                return (texts, code);
            }
            ServerFrame::Ping(_) | ServerFrame::Pong(_) => {}
            other => panic!("expected text or a close, got {other:?}"),
        }
    }
}

const GO_AWAY: &str = r#"{"messageType":"GO_AWAY"}"#;
const ASK: &[(&str, &str)] = &[("X-Kvs-Indications", "true")];
const C_SDK: &[&str] = &["Sec-WebSocket-Protocol: wss"];

#[tokio::test]
async fn go_away_reaches_only_clients_that_handle_it() {
    for listener in Listener::BOTH {
        // Opt-in, the default: only the client that asked hears GO_AWAY; the others, the C
        // SDK (sub-protocol `wss`) among them, are closed with 1001 at once.
        let harness = Harness::start(listener, config()).await;
        let arn = harness.channel("policy").await;
        let mut asked = harness.upgrade_with(&arn, None, ASK, &[]).await;
        let plain = harness.upgrade(&arn, Some("plain")).await;
        let c_sdk = harness.upgrade_with(&arn, Some("c-sdk"), &[], C_SDK).await;
        let started = Instant::now();
        harness.server.drain().await;
        for io in [plain, c_sdk] {
            let closed = texts_until_close(io).await;
            assert_eq!(closed, (vec![], Some(1001)), "{listener:?}");
        }
        let go_away = ServerFrame::Text(GO_AWAY.to_owned());
        assert_eq!(next_frame(&mut asked).await, go_away);
        // The client that heard GO_AWAY closes; the drain is then over at once, long
        // before the grace period (60 s).
        let close = frame(true, 0x8, &1000u16.to_be_bytes());
        asked.write_all(&close).await.unwrap();
        assert_eq!(expect_close(&mut asked).await, Some(1000));
        drop(asked);
        assert_eq!(harness.server.wait_closed(Duration::from_secs(60)).await, 0);
        let drained = started.elapsed();
        assert!(
            drained < Duration::from_secs(4),
            "{listener:?}: {drained:?}"
        );

        // Unless-C-SDK: every client but the C SDK hears it.
        let policy = IndicationPolicy::UnlessCSdk;
        let harness = Harness::start(listener, config().indications(policy)).await;
        let arn = harness.channel("policy").await;
        let mut plain = harness.upgrade(&arn, Some("plain")).await;
        let c_sdk = harness.upgrade_with(&arn, Some("c-sdk"), &[], C_SDK).await;
        harness.server.drain().await;
        assert_eq!(texts_until_close(c_sdk).await, (vec![], Some(1001)));
        assert_eq!(next_frame(&mut plain).await, go_away);

        // Never: not even the client that asked.
        let policy = IndicationPolicy::Never;
        let harness = Harness::start(listener, config().indications(policy)).await;
        let arn = harness.channel("policy").await;
        let asked = harness.upgrade_with(&arn, None, ASK, &[]).await;
        harness.server.drain().await;
        assert_eq!(texts_until_close(asked).await, (vec![], Some(1001)));
    }
}

#[tokio::test]
async fn the_duration_cap_closes_with_1001_and_sends_go_away_only_when_handled() {
    let hub = HubConfig::default()
        .max_connection_duration(Duration::from_secs(3))
        .go_away_grace(Duration::from_secs(1));
    let harness = Harness::start(Listener::Tls, config().hub(hub)).await;
    let arn = harness.channel("cap").await;
    let started = Instant::now();
    let asked = harness.upgrade_with(&arn, None, ASK, &[]).await;
    let c_sdk = harness.upgrade_with(&arn, Some("c-sdk"), &[], C_SDK).await;
    assert_eq!(texts_until_close(c_sdk).await, (vec![], Some(1001)));
    let closed = started.elapsed();
    assert!(
        closed >= Duration::from_millis(2900) && closed < Duration::from_secs(6),
        "{closed:?}"
    );
    let (texts, code) = texts_until_close(asked).await;
    assert_eq!(texts, vec![GO_AWAY.to_owned()]);
    assert_eq!(code, Some(1001));
}

#[tokio::test]
async fn drain_ends_when_the_last_connection_is_closed_with_its_close_frame_on_the_wire() {
    let hub = HubConfig::default().go_away_grace(Duration::from_secs(2));
    for listener in Listener::BOTH {
        let harness = Harness::start(listener, config().hub(hub.clone())).await;
        let arn = harness.channel("drain").await;
        // A client that heard GO_AWAY but never closes: the hub closes it at the end of the
        // grace period, and the drain waits for that close frame to go out and be answered.
        let stubborn = harness.upgrade_with(&arn, None, ASK, &[]).await;
        let mut keep_alive = harness.raw().await;
        keep_alive
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = vec![0u8; 256];
        let n = keep_alive.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
        let started = Instant::now();
        harness.server.drain().await;
        let closing = tokio::spawn(async move {
            let (texts, code) = texts_until_close(stubborn).await;
            (texts, code, started.elapsed())
        });
        // The idle HTTP connection ends at once.
        let idle = until_closed(&mut keep_alive, Duration::from_secs(5)).await;
        assert!(idle < Duration::from_secs(1), "{idle:?}");
        let left = harness.server.wait_closed(Duration::from_secs(30)).await;
        let drained = started.elapsed();
        assert_eq!(left, 0);
        let (texts, code, closed_at) = closing.await.unwrap();
        assert_eq!(texts, vec![r#"{"messageType":"GO_AWAY"}"#.to_owned()]);
        assert_eq!(code, Some(1001));
        assert!(
            closed_at <= drained,
            "the drain ended before the close frame"
        );
        assert!(
            drained >= Duration::from_secs(2) && drained < Duration::from_secs(5),
            "{listener:?}: {drained:?}"
        );
    }
}

/// Sends `text` from the connection `io` as one masked text frame.
async fn send(io: &mut Raw, text: &str) {
    io.write_all(&frame(true, 0x1, text.as_bytes()))
        .await
        .unwrap();
}

async fn next_text(io: &mut Raw) -> String {
    loop {
        match next_frame(io).await {
            ServerFrame::Text(text) => return text,
            ServerFrame::Ping(_) | ServerFrame::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn alexa_offers_cannot_take_a_connected_viewers_client_id() {
    let harness = Harness::start(Listener::Plain, config()).await;
    let arn = harness.channel("alexa").await;
    let mut master = harness.upgrade(&arn, None).await;
    let mut viewer = harness.upgrade(&arn, Some("v1")).await;
    let body = format!(r#"{{"ChannelARN":"{arn}","SenderClientId":"v1","MessagePayload":"QQ=="}}"#);
    let refused = call(
        &harness.server,
        "/v1/send-alexa-offer-to-master",
        &body,
        Some(SECRET),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(
        refused.error_type.as_deref(),
        Some("InvalidArgumentException")
    );
    assert!(
        refused.body.contains("SenderClientId: v1"),
        "{}",
        refused.body
    );
    // The viewer's answer is still the viewer's.
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"Qg=="}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut viewer).await,
        r#"{"messagePayload":"Qg==","messageType":"SDP_ANSWER"}"#
    );
}

#[tokio::test]
async fn a_connect_close_loop_does_not_reset_the_connect_rate() {
    let harness = Harness::start(Listener::Plain, config()).await;
    let arn = harness.channel("looping").await;
    for _ in 0..3 {
        let mut io = harness.upgrade(&arn, None).await;
        io.write_all(&frame(true, 0x8, &1000u16.to_be_bytes()))
            .await
            .unwrap();
        assert_eq!(expect_close(&mut io).await, Some(1000));
    }
    let path = harness.connect_path(&arn, None, &[]);
    let (mut io, head) = harness
        .upgrade_request(&path, &[KEY_HEADER, VERSION_HEADER])
        .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let mut body = vec![0u8; 512];
    let n = io.read(&mut body).await.unwrap();
    let body = String::from_utf8_lossy(&body[..n]);
    assert!(
        body.contains("more than 3 connects per second on this channel"),
        "{body}"
    );
}

#[tokio::test]
async fn a_master_answering_viewers_at_once_loses_no_candidate() {
    let harness = Harness::start(
        Listener::Plain,
        config().hub(HubConfig::default().connect_rate(Rate::per_second(10))),
    )
    .await;
    let arn = harness.channel("burst").await;
    let mut master = harness.upgrade(&arn, None).await;
    let mut viewers = Vec::new();
    for id in ["a", "b", "c"] {
        viewers.push(harness.upgrade(&arn, Some(id)).await);
    }
    // As GStreamer's awskvswebrtcsink serving three viewers: 27 candidates within
    // milliseconds, with no correlation id (a refusal would be silent).
    let mut burst = Vec::new();
    for n in 0..9 {
        for id in ["a", "b", "c"] {
            burst.extend(frame(
                true,
                0x1,
                format!(
                    r#"{{"action":"ICE_CANDIDATE","recipientClientId":"{id}","messagePayload":"Yz{n}="}}"#
                )
                .as_bytes(),
            ));
        }
    }
    master.write_all(&burst).await.unwrap();
    for viewer in &mut viewers {
        for n in 0..9 {
            let got = next_text(viewer).await;
            assert!(got.contains(&format!("Yz{n}=")), "{got}");
        }
    }
}

#[tokio::test]
async fn held_messages_are_bounded_server_wide() {
    let hub = HubConfig::default()
        .max_held_bytes(3000)
        .master_sdp_rate(Rate::per_second(100));
    let harness = Harness::start(Listener::Plain, config().hub(hub).shards(1)).await;
    let arn = harness.channel("held").await;
    let mut master = harness.upgrade(&arn, None).await;
    let payload = "QUFB".repeat(250);
    let mut refused = None;
    for n in 0..6 {
        send(
            &mut master,
            &format!(
                r#"{{"action":"SDP_OFFER","recipientClientId":"absent{n}","messagePayload":"{payload}","correlationId":"c{n}"}}"#
            ),
        )
        .await;
        if let Ok(status) =
            tokio::time::timeout(Duration::from_millis(200), next_text(&mut master)).await
        {
            refused = Some((n, status));
            break;
        }
    }
    let (n, status) = refused.expect("a refusal once the held bytes pass 3000");
    assert_eq!(
        n, 2,
        "two offers of about 1 KB fit in 3000 bytes, the third does not"
    );
    assert!(
        status.contains("ClientLimitExceededException") && status.contains("max_held_bytes"),
        "{status}"
    );
}

#[tokio::test]
async fn a_failed_save_changes_nothing() {
    let mut config = config();
    config.faulty_store = Some(Faulty::Failing);
    let server = crate::Server::start(config).await.unwrap();
    let created = call(
        &server,
        "/createSignalingChannel",
        r#"{"ChannelName":"unsaved"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(created.status, 500, "{}", created.body);
    assert!(
        created
            .body
            .contains("could not be saved, and was not made")
    );
    let described = call(
        &server,
        "/describeSignalingChannel",
        r#"{"ChannelName":"unsaved"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(described.status, 404, "{}", described.body);
}

#[tokio::test]
async fn a_stalled_save_blocks_neither_connects_nor_reads() {
    let gate = Arc::new(Gate::default());
    let mut config = config();
    config.faulty_store = Some(Faulty::Gated(Arc::clone(&gate)));
    let harness = Harness::start(Listener::Plain, config).await;
    // One channel made before the disk stalls.
    let arn = {
        let server = &harness.server;
        let creating = call(
            server,
            "/createSignalingChannel",
            r#"{"ChannelName":"early"}"#,
            Some(SECRET),
        );
        let releasing = async {
            while gate.entered() < 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            gate.release();
        };
        let (created, ()) = tokio::join!(creating, releasing);
        super::json_field(&created.body, "ChannelARN")
    };
    *gate.open.lock().unwrap() = false;
    // A second create stalls on the disk...
    let harness = Arc::new(harness);
    let creating = tokio::spawn({
        let harness = Arc::clone(&harness);
        async move {
            call(
                &harness.server,
                "/createSignalingChannel",
                r#"{"ChannelName":"late"}"#,
                Some(SECRET),
            )
            .await
        }
    });
    while gate.entered() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ...while reads, connects and relaying go on.
    let described = tokio::time::timeout(
        Duration::from_secs(5),
        call(
            &harness.server,
            "/describeSignalingChannel",
            r#"{"ChannelName":"early"}"#,
            Some(SECRET),
        ),
    )
    .await
    .expect("a read during a stalled save");
    assert_eq!(described.status, 200);
    let late = call(
        &harness.server,
        "/describeSignalingChannel",
        r#"{"ChannelName":"late"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(late.status, 404, "not visible before it is saved");
    let mut master = tokio::time::timeout(Duration::from_secs(5), harness.upgrade(&arn, None))
        .await
        .expect("a connect during a stalled save");
    let mut viewer = harness.upgrade(&arn, Some("v")).await;
    send(
        &mut viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"QQ=="}"#,
    )
    .await;
    assert!(next_text(&mut master).await.contains("QQ=="));
    assert!(!creating.is_finished());
    gate.release();
    let created = creating.await.unwrap();
    assert_eq!(created.status, 200, "{}", created.body);
    let late = call(
        &harness.server,
        "/describeSignalingChannel",
        r#"{"ChannelName":"late"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(late.status, 200);
}

#[tokio::test]
async fn metrics_count_the_relay_latency_and_the_bytes() {
    for listener in Listener::BOTH {
        let harness = Harness::start(listener, config()).await;
        let arn = harness.channel("measured").await;
        let mut master = harness.upgrade(&arn, None).await;
        let mut viewer = harness.upgrade(&arn, Some("v")).await;
        for n in 0..3 {
            send(
                &mut viewer,
                &format!(r#"{{"action":"ICE_CANDIDATE","messagePayload":"Yz{n}="}}"#),
            )
            .await;
            assert!(next_text(&mut master).await.contains(&format!("Yz{n}=")));
        }
        let mut io = harness.raw().await;
        io.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut metrics = String::new();
        let _ = io.read_to_string(&mut metrics).await;
        let value = |name: &str| -> f64 {
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
                .parse()
                .unwrap()
        };
        assert_eq!(
            value("kvs_relay_latency_seconds_count"),
            3.0,
            "{listener:?}"
        );
        let sum = value("kvs_relay_latency_seconds_sum");
        assert!(sum > 0.0 && sum < 3.0, "{sum}");
        assert_eq!(value("kvs_relay_latency_seconds_bucket{le=\"+Inf\"}"), 3.0);
        assert_eq!(value("kvs_websocket_messages_received_total"), 3.0);
        assert_eq!(value("kvs_websocket_frames_sent_total"), 3.0);
        assert!(value("kvs_websocket_bytes_received_total") >= 3.0 * 50.0);
        assert!(value("kvs_websocket_bytes_sent_total") >= 3.0 * 50.0);
    }
}

#[tokio::test]
async fn a_request_body_that_never_comes_is_answered_408_and_closed() {
    let config = config().header_read_timeout(Duration::from_secs(1));
    for listener in Listener::BOTH {
        let harness = Harness::start(listener, config.clone()).await;
        let mut io = harness.raw().await;
        // The head announces 100 bytes; 10 come, then nothing. The signature is checked
        // only once the body is in, so before the fix nothing ever answered.
        io.write_all(
            b"POST /describeSignalingChannel HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n\
              {\"Channel",
        )
        .await
        .unwrap();
        let started = Instant::now();
        let head = tokio::time::timeout(Duration::from_secs(5), super::harness::read_head(&mut io))
            .await
            .expect("no answer to a body that never came");
        assert!(head.starts_with("HTTP/1.1 408"), "{listener:?}: {head}");
        assert!(started.elapsed() >= Duration::from_millis(900));
        let mut body = vec![0u8; 512];
        let n = io.read(&mut body).await.unwrap();
        assert!(
            String::from_utf8_lossy(&body[..n]).contains("header_read_timeout_seconds"),
            "{}",
            String::from_utf8_lossy(&body[..n])
        );
        until_closed(&mut io, Duration::from_secs(5)).await;
        assert_eq!(harness.server.wait_closed(Duration::from_secs(5)).await, 0);
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_http_answers_is_dropped_at_the_write_deadline() {
    let limits =
        kvs_transport_tokio::WebSocketLimits::default().write_timeout(Duration::from_secs(1));
    let config = config().websocket(limits);
    for listener in Listener::BOTH {
        let harness = Harness::start(listener, config.clone()).await;
        let io = harness.raw_small_receive_buffer(4096).await;
        let (_reader, mut writer) = tokio::io::split(io);
        // Thousands of pipelined requests whose answers (the metrics page, kilobytes each)
        // are never read: the server's writes push back for good.
        let writing = tokio::spawn(async move {
            let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
            for _ in 0..4000 {
                if writer.write_all(request).await.is_err() {
                    break;
                }
            }
            writer
        });
        let started = Instant::now();
        while harness.server.open_connections() == 0 {
            assert!(started.elapsed() < Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            harness.server.wait_closed(Duration::from_secs(15)).await,
            0,
            "{listener:?}: a connection whose answers were never read was still open"
        );
        writing.abort();
    }
}

#[tokio::test]
async fn a_tls_client_that_never_answers_the_close_still_gets_close_notify() {
    let hub = HubConfig::default().idle_timeout(Duration::from_secs(1));
    let limits = kvs_transport_tokio::WebSocketLimits::default()
        .close_timeout(Duration::from_secs(1))
        .ping_interval(None);
    let harness = Harness::start(Listener::Tls, config().hub(hub).websocket(limits)).await;
    let arn = harness.channel("mute").await;
    let mut io = harness.upgrade(&arn, Some("mute")).await;
    // The idle timeout closes the connection; the client reads but never answers the close.
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), next_frame(&mut io))
            .await
            .expect("no close frame"),
        ServerFrame::Close(Some(1000))
    ));
    // Then the stream ends cleanly: close_notify, not a bare TCP close (which tokio-rustls
    // reports as an unexpected end of file).
    let mut sink = [0u8; 64];
    let end = tokio::time::timeout(Duration::from_secs(5), io.read(&mut sink))
        .await
        .expect("the stream did not end");
    assert_eq!(end.unwrap(), 0, "the stream ended without close_notify");
}

#[tokio::test]
async fn a_write_whose_caller_goes_away_is_still_saved_and_applied() {
    let gate = Arc::new(Gate::default());
    let mut config = config();
    config.faulty_store = Some(Faulty::Gated(Arc::clone(&gate)));
    let harness = Harness::start(Listener::Plain, config).await;
    let request = super::signed_request(
        &harness.server,
        "/createSignalingChannel",
        r#"{"ChannelName":"orphan"}"#,
        Some(&super::Signing::new(super::KEY, SECRET)),
    );
    let mut io = harness.raw().await;
    io.write_all(request.as_bytes()).await.unwrap();
    while gate.entered() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The caller goes away while the change is on its way to the disk.
    drop(io);
    tokio::time::sleep(Duration::from_millis(200)).await;
    gate.release();
    let started = Instant::now();
    loop {
        let described = call(
            &harness.server,
            "/describeSignalingChannel",
            r#"{"ChannelName":"orphan"}"#,
            Some(SECRET),
        )
        .await;
        if described.status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a saved channel never became visible: {}",
            described.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
