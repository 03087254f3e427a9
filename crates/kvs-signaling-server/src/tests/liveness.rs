//! Dead sockets found by the server's pings, over real sockets: a client that stops reading is
//! closed within the ping interval and the pong timeout, a client that answers stays, what is
//! sent to the dead one's id meanwhile waits for it, and answering pings is not activity.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{SECRET, call, config, json_field, next_text, presign};
use crate::Server;

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(1);

async fn server(idle_timeout: Option<Duration>) -> Server {
    let mut config = config();
    config.websocket = config
        .websocket
        .ping_interval(Some(INTERVAL))
        .pong_timeout(TIMEOUT)
        .close_timeout(Duration::from_secs(1))
        .write_timeout(Duration::from_secs(1));
    if let Some(idle) = idle_timeout {
        config.hub = config.hub.idle_timeout(idle);
    }
    Server::start(config).await.unwrap()
}

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

/// Waits until the server has `open` connections, at most `limit`; how long it took.
async fn until_open(server: &Server, open: usize, limit: Duration) -> Duration {
    let started = Instant::now();
    while server.open_connections() != open {
        assert!(
            started.elapsed() < limit,
            "still {} connections open after {limit:?}, not {open}",
            server.open_connections()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_and_what_is_sent_to_it_waits() {
    let server = server(None).await;
    let arn = channel(&server, "liveness").await;

    // The master is a client like any other: its library answers pings while it reads.
    let (master, _) = tokio_tungstenite::connect_async(presign(&server, &arn, None, SECRET))
        .await
        .unwrap();
    let (mut master_tx, mut master_rx) = master.split();
    let (texts, mut master_texts) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(Ok(message)) = master_rx.next().await {
            if let Message::Text(text) = message {
                let _ = texts.send(text.as_str().to_owned()).await;
            }
        }
    });
    // The viewer's device then loses power: its socket is never read again (no pongs), and
    // its kernel, as a dead one would, sends nothing.
    let (dead, _) = tokio_tungstenite::connect_async(presign(&server, &arn, Some("v1"), SECRET))
        .await
        .unwrap();
    until_open(&server, 2, Duration::from_secs(5)).await;
    let silent_since = Instant::now();

    until_open(&server, 1, Duration::from_secs(8)).await;
    let took = silent_since.elapsed();
    assert!(
        took >= INTERVAL + TIMEOUT - Duration::from_millis(200),
        "closed after {took:?}, before the interval and the timeout ran out"
    );
    assert!(
        took <= INTERVAL + TIMEOUT + Duration::from_secs(3),
        "closed only after {took:?}"
    );

    // The master, silent too but answering pings, is still there two rounds later.
    tokio::time::sleep(2 * (INTERVAL + TIMEOUT)).await;
    assert_eq!(server.open_connections(), 1, "the live master was closed");

    // v1's id is free: an answer to it is held (no STATUS_RESPONSE comes back), and its next
    // connection receives it.
    master_tx
        .send(Message::Text(
            r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"YW5z","correlationId":"c1"}"#
                .into(),
        ))
        .await
        .unwrap();
    let (mut back, _) =
        tokio_tungstenite::connect_async(presign(&server, &arn, Some("v1"), SECRET))
            .await
            .unwrap();
    assert_eq!(
        next_text(&mut back).await,
        r#"{"messagePayload":"YW5z","messageType":"SDP_ANSWER"}"#
    );
    assert!(
        master_texts.try_recv().is_err(),
        "the master heard back about a message that was held"
    );
    drop(dead);
}

#[tokio::test]
async fn answering_pings_is_not_activity() {
    let idle = Duration::from_secs(3);
    let server = server(Some(idle)).await;
    let arn = channel(&server, "liveness-idle").await;
    let (mut viewer, _) =
        tokio_tungstenite::connect_async(presign(&server, &arn, Some("v1"), SECRET))
            .await
            .unwrap();
    let started = Instant::now();
    // Read (and so answer every ping) until the server closes: the idle timeout, although the
    // connection answered pings all along.
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + idle + Duration::from_secs(5);
    let close = loop {
        let message = tokio::time::timeout_at(deadline, viewer.next())
            .await
            .expect("the idle connection was not closed: answering pings kept it open")
            .expect("the stream ended without a close frame")
            .unwrap();
        match message {
            Message::Ping(_) => pings += 1,
            Message::Close(frame) => break frame,
            other => panic!("unexpected {other:?}"),
        }
    };
    let elapsed = started.elapsed();
    assert!(pings >= 1, "no ping in {elapsed:?}");
    assert!(elapsed >= idle - Duration::from_millis(200), "{elapsed:?}");
    let close = close.expect("a close frame without a code");
    assert_eq!(close.code, CloseCode::Normal);
    assert_eq!(close.reason.as_str(), "idle timeout");
}
