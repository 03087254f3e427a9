//! The transport over real sockets on loopback: tokio-tungstenite clients against connections
//! served by a shard.

#![allow(
    clippy::result_large_err,
    reason = "the handshake callback's error type is tungstenite's"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use kvs_signaling_core::{AlexaOffer, Hub, HubConfig, OpenConnection};
use kvs_signaling_proto::{ChannelArn, ClientId, MessagePayload, MessageTtlSeconds, PeerId};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{ShardConfig, ShardHandle, serve_websocket, spawn, websocket_config};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn arn(name: &str) -> ChannelArn {
    ChannelArn::new(format!(
        "arn:aws:kinesisvideo:us-west-2:123456789012:channel/{name}/1"
    ))
    .unwrap()
}

/// A server whose URL path names the connection's identity: `/master/<channel>` or
/// `/viewer/<channel>/<client id>`. (The real server takes it from the presigned query.)
async fn server(config: HubConfig, shard_config: ShardConfig) -> (SocketAddr, ShardHandle) {
    let (shard, _task) = spawn(Hub::new(config).unwrap(), shard_config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepting = shard.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let shard = accepting.clone();
            tokio::spawn(async move {
                let path = Arc::new(Mutex::new(String::new()));
                let seen = Arc::clone(&path);
                let callback = move |request: &Request, response: Response| {
                    *seen.lock().unwrap() = request.uri().path().to_owned();
                    Ok(response)
                };
                let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(
                    tcp,
                    callback,
                    Some(websocket_config(64 * 1024)),
                )
                .await
                else {
                    return;
                };
                let path = path.lock().unwrap().clone();
                let ttl = MessageTtlSeconds::default();
                let open = match path.split('/').collect::<Vec<_>>().as_slice() {
                    ["", "master", channel] => OpenConnection::master(arn(channel), ttl),
                    ["", "viewer", channel, id] => {
                        OpenConnection::viewer(arn(channel), ClientId::new(*id).unwrap(), ttl)
                    }
                    _ => return,
                };
                if let Ok(Ok(registration)) = shard.open(open).await {
                    serve_websocket(ws, registration).await;
                }
            });
        }
    });
    (addr, shard)
}

async fn connect(addr: SocketAddr, path: &str) -> Client {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
        .await
        .unwrap();
    ws
}

/// The next text frame, within five seconds.
async fn next_text(ws: &mut Client) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within five seconds")
            .expect("the connection is open")
            .unwrap();
        match message {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn send(ws: &mut Client, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

/// Waits until the hub has seen everything sent so far: a counters query is answered after
/// every earlier input.
async fn settle(shard: &ShardHandle) -> kvs_signaling_core::Counters {
    shard.counters().await.unwrap()
}

#[tokio::test]
async fn master_and_viewers_exchange_offers_answers_and_candidates() {
    let (addr, shard) = server(HubConfig::default(), ShardConfig::default()).await;
    let mut master = connect(addr, "/master/demo").await;
    let mut v1 = connect(addr, "/viewer/demo/v1").await;
    let mut v2 = connect(addr, "/viewer/demo/v2").await;
    // Every connection is registered before the first message.
    while settle(&shard).await.opened < 3 {
        tokio::task::yield_now().await;
    }

    send(
        &mut v1,
        r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXI=","correlationId":"1"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut master).await,
        r#"{"messagePayload":"b2ZmZXI=","messageType":"SDP_OFFER","senderClientId":"v1"}"#
    );
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"YW5zd2Vy"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut v1).await,
        r#"{"messagePayload":"YW5zd2Vy","messageType":"SDP_ANSWER"}"#
    );
    send(
        &mut master,
        r#"{"action":"ICE_CANDIDATE","recipientClientId":"v2","messagePayload":"Yw=="}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut v2).await,
        r#"{"messagePayload":"Yw==","messageType":"ICE_CANDIDATE"}"#
    );
    // A refusal with a correlation id comes back to the sender only.
    send(
        &mut master,
        r#"{"action":"ICE_CANDIDATE","messagePayload":"Yw==","correlationId":"c9"}"#,
    )
    .await;
    let status = next_text(&mut master).await;
    assert!(
        status.starts_with(
            r#"{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"c9""#
        ),
        "{status}"
    );
    let counters = settle(&shard).await;
    assert_eq!((counters.delivered, counters.status_responses), (3, 1));
}

#[tokio::test]
async fn hub_closes_arrive_as_close_frames_and_drain_sends_go_away() {
    let (addr, shard) = server(HubConfig::default(), ShardConfig::default()).await;
    let mut master = connect(addr, "/master/gone").await;
    let mut other = connect(addr, "/master/kept").await;
    while settle(&shard).await.opened < 2 {
        tokio::task::yield_now().await;
    }
    shard.channel_deleted(arn("gone")).await.unwrap();
    let close = tokio::time::timeout(Duration::from_secs(5), master.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match close {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Normal);
            assert_eq!(frame.reason.as_str(), "channel deleted");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    shard.drain().await.unwrap();
    assert_eq!(next_text(&mut other).await, r#"{"messageType":"GO_AWAY"}"#);
    shard.reconnect_ice_servers(None).await.unwrap();
    assert_eq!(
        next_text(&mut other).await,
        r#"{"messageType":"RECONNECT_ICE_SERVER"}"#
    );
}

#[tokio::test]
async fn a_client_close_reaches_the_hub() {
    let (addr, shard) = server(HubConfig::default(), ShardConfig::default()).await;
    let mut viewer = connect(addr, "/viewer/demo/v1").await;
    while settle(&shard).await.opened < 1 {
        tokio::task::yield_now().await;
    }
    viewer.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while settle(&shard).await.closed_by_client < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub never heard of the close"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_alexa_offer_is_answered_by_the_master_over_its_socket() {
    let (addr, shard) = server(HubConfig::default(), ShardConfig::default()).await;
    let mut master = connect(addr, "/master/demo").await;
    while settle(&shard).await.opened < 1 {
        tokio::task::yield_now().await;
    }
    let call = tokio::spawn({
        let shard = shard.clone();
        async move {
            shard
                .alexa_offer(AlexaOffer::new(
                    arn("demo"),
                    PeerId::new("AWS_ALEXA").unwrap(),
                    MessagePayload::new("b2ZmZXI=".to_owned()).unwrap(),
                    MessageTtlSeconds::default(),
                ))
                .await
        }
    });
    assert_eq!(
        next_text(&mut master).await,
        r#"{"messagePayload":"b2ZmZXI=","messageType":"SDP_OFFER","senderClientId":"AWS_ALEXA"}"#
    );
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"AWS_ALEXA","messagePayload":"YW5zd2Vy"}"#,
    )
    .await;
    let answer = call.await.unwrap().unwrap().unwrap();
    assert_eq!(answer.as_str(), "YW5zd2Vy");
}

#[tokio::test]
async fn a_slow_consumer_is_closed_not_buffered_for() {
    // No socket: the viewer's registration is never read, as if its client stopped reading.
    let (shard, _task) = spawn(
        Hub::new(HubConfig::default().sdp_rate(kvs_signaling_core::Rate::per_second(1000)))
            .unwrap(),
        ShardConfig::default().outbound_capacity(4),
    );
    let ttl = MessageTtlSeconds::default();
    let master = shard
        .open(OpenConnection::master(arn("slow"), ttl))
        .await
        .unwrap()
        .unwrap();
    let mut viewer = shard
        .open(OpenConnection::viewer(
            arn("slow"),
            ClientId::new("v").unwrap(),
            ttl,
        ))
        .await
        .unwrap()
        .unwrap();
    for _ in 0..5 {
        shard
            .frame(
                master.conn(),
                r#"{"action":"SDP_OFFER","recipientClientId":"v","messagePayload":"QQ=="}"#.into(),
            )
            .await
            .unwrap();
    }
    // The fifth frame found the queue full: the viewer is told to close, ahead of its frames.
    match viewer.next().await {
        Some(Err(close)) => assert_eq!(close.code, crate::SLOW_CONSUMER_CLOSE_CODE),
        other => panic!("expected a close order, got {other:?}"),
    }
    let counters = settle(&shard).await;
    assert_eq!(counters.delivered, 5);
    // The hub forgot the viewer: a sixth message waits for it instead.
    shard
        .frame(
            master.conn(),
            r#"{"action":"ICE_CANDIDATE","recipientClientId":"v","messagePayload":"QQ=="}"#.into(),
        )
        .await
        .unwrap();
    assert_eq!(settle(&shard).await.buffered, 1);
    drop(master);
}
