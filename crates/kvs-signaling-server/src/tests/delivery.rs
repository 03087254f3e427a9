//! Delivery status over real sockets (issue 14): a connection that asks with
//! `X-Kvs-DeliveryStatus=true` hears what became of each message it sends with a correlation
//! id: delivered, held then delivered, overwritten, expired; one that does not ask, and
//! messages without a correlation id, hear nothing.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use super::{KEY, SECRET, Signing, Ws, call, config, json_field, next_text, presign_extra};
use crate::Server;

const ASK: &[(&str, &str)] = &[("X-Kvs-DeliveryStatus", "true")];

async fn channel(server: &Server, name: &str, ttl: u32) -> String {
    let created = call(
        server,
        "/createSignalingChannel",
        &format!(
            r#"{{"ChannelName":"{name}","SingleMasterConfiguration":{{"MessageTtlSeconds":{ttl}}}}}"#
        ),
        Some(SECRET),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    json_field(&created.body, "ChannelARN")
}

async fn connect(server: &Server, arn: &str, client_id: Option<&str>, asks: bool) -> Ws {
    let extra = if asks { ASK } else { &[] };
    let url = presign_extra(server, arn, client_id, extra, &Signing::new(KEY, SECRET));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

/// Whatever text frame comes within `within`, or `None`.
async fn maybe_text(ws: &mut Ws, within: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(text)))) => return Some(text.as_str().to_owned()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected a text frame, got {other:?}"),
        }
    }
}

fn status(correlation_id: &str, recipient: Option<&str>, state: &str) -> String {
    match recipient {
        Some(to) => format!(
            r#"{{"deliveryStatus":{{"correlationId":"{correlation_id}","recipientClientId":"{to}","status":"{state}"}},"messageType":"DELIVERY_STATUS"}}"#
        ),
        None => format!(
            r#"{{"deliveryStatus":{{"correlationId":"{correlation_id}","status":"{state}"}},"messageType":"DELIVERY_STATUS"}}"#
        ),
    }
}

#[tokio::test]
async fn a_message_to_a_connected_recipient_is_reported_delivered() {
    let server = Server::start(config()).await.unwrap();
    let arn = channel(&server, "delivered", 60).await;
    let mut master = connect(&server, &arn, None, true).await;
    let mut viewer = connect(&server, &arn, Some("v1"), true).await;
    send(
        &mut viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXI=","correlationId":"o1"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut master).await,
        r#"{"messagePayload":"b2ZmZXI=","messageType":"SDP_OFFER","senderClientId":"v1"}"#
    );
    // To the master, which has no id: no recipient.
    assert_eq!(
        next_text(&mut viewer).await,
        status("o1", None, "DELIVERED")
    );
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"YW5zd2Vy","correlationId":"a1"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut viewer).await,
        r#"{"messagePayload":"YW5zd2Vy","messageType":"SDP_ANSWER"}"#
    );
    assert_eq!(
        next_text(&mut master).await,
        status("a1", Some("v1"), "DELIVERED")
    );
    // No correlation id, no status.
    send(
        &mut master,
        r#"{"action":"ICE_CANDIDATE","recipientClientId":"v1","messagePayload":"Yw=="}"#,
    )
    .await;
    assert!(next_text(&mut viewer).await.contains("ICE_CANDIDATE"));
    assert_eq!(
        maybe_text(&mut master, Duration::from_millis(300)).await,
        None
    );
}

#[tokio::test]
async fn held_then_delivered_and_overwritten() {
    let server = Server::start(config()).await.unwrap();
    let arn = channel(&server, "held", 60).await;
    let mut master = connect(&server, &arn, None, true).await;
    send(
        &mut master,
        r#"{"action":"SDP_OFFER","recipientClientId":"late","messagePayload":"MQ==","correlationId":"first"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut master).await,
        status("first", Some("late"), "HELD")
    );
    // A newer offer from the same sender replaces the first one while it waits.
    send(
        &mut master,
        r#"{"action":"SDP_OFFER","recipientClientId":"late","messagePayload":"Mg==","correlationId":"second"}"#,
    )
    .await;
    let mut heard = vec![next_text(&mut master).await, next_text(&mut master).await];
    heard.sort();
    let mut expected = vec![
        status("first", Some("late"), "OVERWRITTEN"),
        status("second", Some("late"), "HELD"),
    ];
    expected.sort();
    assert_eq!(heard, expected);
    // The recipient connects: it gets the newer offer, and its sender hears DELIVERED.
    let mut late = connect(&server, &arn, Some("late"), false).await;
    assert_eq!(
        next_text(&mut late).await,
        r#"{"messagePayload":"Mg==","messageType":"SDP_OFFER"}"#
    );
    assert_eq!(
        next_text(&mut master).await,
        status("second", Some("late"), "DELIVERED")
    );
    assert_eq!(
        maybe_text(&mut late, Duration::from_millis(300)).await,
        None
    );
}

#[tokio::test]
async fn a_held_message_whose_ttl_runs_out_is_reported_expired() {
    let server = Server::start(config()).await.unwrap();
    let arn = channel(&server, "expiring", 5).await;
    let mut master = connect(&server, &arn, None, true).await;
    send(
        &mut master,
        r#"{"action":"ICE_CANDIDATE","recipientClientId":"gone","messagePayload":"Yw==","correlationId":"c1"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut master).await,
        status("c1", Some("gone"), "HELD")
    );
    let started = tokio::time::Instant::now();
    let expired = maybe_text(&mut master, Duration::from_secs(8))
        .await
        .expect("no EXPIRED within the TTL and 3 s");
    assert_eq!(expired, status("c1", Some("gone"), "EXPIRED"));
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // It is gone: the recipient connecting now gets nothing.
    let mut gone = connect(&server, &arn, Some("gone"), false).await;
    assert_eq!(
        maybe_text(&mut gone, Duration::from_millis(300)).await,
        None
    );
}

#[tokio::test]
async fn no_opt_in_no_status_and_a_bad_opt_in_is_refused() {
    let server = Server::start(config()).await.unwrap();
    let arn = channel(&server, "quiet", 60).await;
    let mut master = connect(&server, &arn, None, false).await;
    let mut viewer = connect(&server, &arn, Some("v1"), false).await;
    send(
        &mut master,
        r#"{"action":"SDP_OFFER","recipientClientId":"absent","messagePayload":"MQ==","correlationId":"x1"}"#,
    )
    .await;
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"Mg==","correlationId":"x2"}"#,
    )
    .await;
    assert!(next_text(&mut viewer).await.contains("SDP_ANSWER"));
    assert_eq!(
        maybe_text(&mut master, Duration::from_millis(300)).await,
        None
    );
    // Errors stay STATUS_RESPONSE, with or without the opt-in.
    let mut asking = connect(&server, &arn, Some("v2"), true).await;
    send(
        &mut asking,
        r#"{"action":"SDP_OFFER","messagePayload":"not base64!","correlationId":"bad"}"#,
    )
    .await;
    let answer = next_text(&mut asking).await;
    assert!(
        answer.contains(r#""messageType":"STATUS_RESPONSE""#),
        "{answer}"
    );
    assert!(!answer.contains("DELIVERY_STATUS"), "{answer}");
    // A value other than true or false is refused before the upgrade, naming the parameter.
    let url = presign_extra(
        &server,
        &arn,
        Some("v3"),
        &[("X-Kvs-DeliveryStatus", "sometimes")],
        &Signing::new(KEY, SECRET),
    );
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = err else {
        panic!("expected an HTTP refusal, got {err:?}");
    };
    assert_eq!(response.status(), 400);
    let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
    assert!(body.contains("X-Kvs-DeliveryStatus"), "{body}");
}

/// The transport's half: frames that never reach a socket (its reader stopped, so the
/// writes time out or its queue overflows and it is closed) come back to the hub unwritten
/// and wait for the recipient's next connection. Every tracked message ends DELIVERED exactly
/// once, and the next connection receives exactly those that were not written before.
#[tokio::test]
async fn frames_that_never_reached_a_dead_socket_wait_for_the_next_connection() {
    let mut config = config().websocket(
        kvs_transport_tokio::WebSocketLimits::default()
            .write_timeout(Duration::from_secs(1))
            .close_timeout(Duration::from_secs(1)),
    );
    config.shard = kvs_transport_tokio::ShardConfig::default().outbound_capacity(64);
    // A small kernel send buffer, so that a peer that stops reading pushes back at once.
    config.tcp.send_buffer = Some(16 * 1024);
    config.hub = config.hub.clone().max_pending_per_recipient(64);
    let server = Server::start(config).await.unwrap();
    let arn = channel(&server, "stalled", 60).await;
    let mut master = connect(&server, &arn, None, true).await;
    // A viewer whose socket takes 4 KiB and is never read again.
    let url = presign_extra(&server, &arn, Some("v1"), &[], &Signing::new(KEY, SECRET));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.local_addr()).await.unwrap();
    let (stalled, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    // 40 candidates of about 9 KB each: far more than the socket and the queue take.
    let payload = "QUJD".repeat(2300);
    const COUNT: usize = 40;
    for i in 0..COUNT {
        send(
            &mut master,
            &format!(
                r#"{{"action":"ICE_CANDIDATE","recipientClientId":"v1","messagePayload":"{payload}","correlationId":"c{i}"}}"#
            ),
        )
        .await;
    }
    // Until the stalled viewer is gone, the master hears DELIVERED for what was written and
    // HELD for what came back.
    let mut delivered_before = std::collections::BTreeSet::new();
    let mut held = std::collections::BTreeSet::new();
    while delivered_before.len() + held.len() < COUNT {
        let text = maybe_text(&mut master, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{} delivered and {} held of {COUNT}",
                    delivered_before.len(),
                    held.len()
                )
            });
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        let id = event["deliveryStatus"]["correlationId"]
            .as_str()
            .unwrap()
            .to_owned();
        match event["deliveryStatus"]["status"].as_str().unwrap() {
            "DELIVERED" => assert!(delivered_before.insert(id.clone()), "{id} twice"),
            "HELD" => assert!(held.insert(id.clone()), "{id} held twice"),
            other => panic!("{other} for {id}"),
        }
        assert!(
            !(delivered_before.contains(&id) && held.contains(&id)),
            "{id} both delivered and held"
        );
    }
    assert!(!held.is_empty(), "nothing came back unwritten");
    drop(stalled);
    // The viewer comes back: it receives exactly the held ones, and the master hears DELIVERED
    // for each.
    let mut back = connect(&server, &arn, Some("v1"), false).await;
    for _ in 0..held.len() {
        let text = next_text(&mut back).await;
        assert!(text.contains("ICE_CANDIDATE"));
    }
    assert_eq!(
        maybe_text(&mut back, Duration::from_millis(300)).await,
        None
    );
    let mut delivered_after = std::collections::BTreeSet::new();
    while delivered_after.len() < held.len() {
        let text = next_text(&mut master).await;
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(event["deliveryStatus"]["status"], "DELIVERED", "{text}");
        let id = event["deliveryStatus"]["correlationId"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(held.contains(&id), "{id} was not held");
        assert!(delivered_after.insert(id.clone()), "{id} twice");
    }
    assert_eq!(
        maybe_text(&mut master, Duration::from_millis(300)).await,
        None
    );
}
