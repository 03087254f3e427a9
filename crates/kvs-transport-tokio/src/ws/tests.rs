//! The transport over real sockets on loopback: tokio-tungstenite clients, and raw TCP peers
//! that misbehave, against connections served by a shard.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use kvs_signaling_core::{AlexaOffer, Hub, HubConfig, OpenConnection, Rate};
use kvs_signaling_proto::{ChannelArn, ClientId, MessagePayload, MessageTtlSeconds, PeerId};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::codec::accept_key;
use crate::{ShardConfig, ShardHandle, WebSocketLimits, serve_websocket, spawn};

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
    server_with(config, shard_config, WebSocketLimits::default()).await
}

/// [`server`] with `limits` on every connection.
async fn server_with(
    config: HubConfig,
    shard_config: ShardConfig,
    limits: WebSocketLimits,
) -> (SocketAddr, ShardHandle) {
    let (shard, _task) = spawn(Hub::new(config).unwrap(), shard_config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepting = shard.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let shard = accepting.clone();
            tokio::spawn(async move {
                // Small buffers, so that a peer that stops reading is felt soon.
                let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(8 * 1024);
                let Some((mut tcp, path, key)) = read_upgrade(tcp).await else {
                    return;
                };
                let ttl = MessageTtlSeconds::default();
                // `?hold`: the client goes away between the hub's verdict and the 101;
                // `?tracked`: the connection asks for delivery status.
                let (path, hold, tracked) = match path.split_once('?') {
                    Some((path, "hold")) => (path.to_owned(), true, false),
                    Some((path, "tracked")) => (path.to_owned(), false, true),
                    _ => (path, false, false),
                };
                let open = match path.split('/').collect::<Vec<_>>().as_slice() {
                    ["", "master", channel] => OpenConnection::master(arn(channel), ttl),
                    ["", "viewer", channel, id] => {
                        OpenConnection::viewer(arn(channel), ClientId::new(*id).unwrap(), ttl)
                    }
                    _ => return,
                };
                let open = open.indications(true).delivery_status(tracked);
                let Ok(Ok(registration)) = shard.open(open).await else {
                    return;
                };
                if hold {
                    let mut rest = Vec::new();
                    let _ = tcp.read_to_end(&mut rest).await;
                    // The upgrade never completes: the registration goes, never established.
                    drop(registration);
                    return;
                }
                let accept = accept_key(Some(b"13"), Some(key.as_bytes())).unwrap();
                let response = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                );
                if tcp.write_all(response.as_bytes()).await.is_ok() {
                    serve_websocket(tcp, Vec::new(), registration, limits).await;
                }
            });
        }
    });
    (addr, shard)
}

/// Reads an upgrade request's head: the path and the key.
async fn read_upgrade(mut tcp: TcpStream) -> Option<(TcpStream, String, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).ok()?;
    let path = head.split(' ').nth(1)?.to_owned();
    let key = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_owned())
    })?;
    Some((tcp, path, key))
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
        Hub::new(HubConfig::default().master_sdp_rate(Rate::per_second(1000))).unwrap(),
        ShardConfig::default().outbound_capacity(4),
    );
    let ttl = MessageTtlSeconds::default();
    let master = shard
        .open(OpenConnection::master(arn("slow"), ttl))
        .await
        .unwrap()
        .unwrap();
    shard.established(master.conn()).await.unwrap();
    let mut viewer = shard
        .open(OpenConnection::viewer(
            arn("slow"),
            ClientId::new("v").unwrap(),
            ttl,
        ))
        .await
        .unwrap()
        .unwrap();
    shard.established(viewer.conn()).await.unwrap();
    for _ in 0..5 {
        shard
            .frame(
                master.conn(),
                r#"{"action":"SDP_OFFER","recipientClientId":"v","messagePayload":"QQ=="}"#
                    .to_owned(),
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
            r#"{"action":"ICE_CANDIDATE","recipientClientId":"v","messagePayload":"QQ=="}"#
                .to_owned(),
        )
        .await
        .unwrap();
    assert_eq!(settle(&shard).await.buffered, 1);
    drop(master);
}

/// Upgrades a raw TCP connection to `path`, and returns it after the `101`.
async fn raw_connect(addr: SocketAddr, path: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small receive buffer, so that a peer that stops reading fills it soon.
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            tcp.read(&mut byte).await.unwrap(),
            1,
            "the upgrade was answered"
        );
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    tcp
}

/// Waits, up to `within`, until the hub counts `n` connections closed by their side.
async fn until_closed(shard: &ShardHandle, n: u64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while settle(shard).await.closed_by_client < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection was not released within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Issue 11: a peer with a zero window used to pin its task, socket and queued frames
/// forever; a write now has a deadline, after which the connection is dropped.
#[tokio::test]
async fn a_peer_that_stops_reading_is_dropped_at_the_write_deadline() {
    let limits = WebSocketLimits::default().write_timeout(Duration::from_millis(300));
    let config = HubConfig::default()
        .master_sdp_rate(Rate::per_second(100_000))
        .max_payload_len(10_240);
    let (addr, shard) = server_with(config, ShardConfig::default(), limits).await;
    let mut master = connect(addr, "/master/stuck").await;
    // The viewer upgrades, then never reads again.
    let stuck = raw_connect(addr, "/viewer/stuck/v").await;
    while settle(&shard).await.opened < 2 {
        tokio::task::yield_now().await;
    }
    let payload = "QUFB".repeat(2_500);
    let frame =
        format!(r#"{{"action":"SDP_OFFER","recipientClientId":"v","messagePayload":"{payload}"}}"#);
    // Far more than the socket buffers take: the writer blocks on a full window.
    for _ in 0..200 {
        send(&mut master, &frame).await;
    }
    until_closed(&shard, 1, Duration::from_secs(10)).await;
    // The master is unharmed.
    send(
        &mut master,
        r#"{"action":"SDP_OFFER","recipientClientId":"v2","messagePayload":"QQ==","correlationId":"ok"}"#,
    )
    .await;
    assert_eq!(settle(&shard).await.closed_by_client, 1);
    drop(stuck);
}

/// Issue 11: a peer that never answers the server's close frame used to keep its TCP
/// connection for over a minute; the closing handshake now ends at its deadline.
#[tokio::test]
async fn a_close_the_peer_never_answers_ends_at_the_close_deadline() {
    let limits = WebSocketLimits::default().close_timeout(Duration::from_millis(300));
    let (addr, shard) = server_with(HubConfig::default(), ShardConfig::default(), limits).await;
    let mut silent = raw_connect(addr, "/master/silent").await;
    while settle(&shard).await.opened < 1 {
        tokio::task::yield_now().await;
    }
    shard.channel_deleted(arn("silent")).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut chunk))
            .await
            .expect("the server ends the connection");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    // The close frame (1000, "channel deleted"), then the end of the stream, which came at
    // the close deadline although the peer never answered.
    assert_eq!(&got[..4], &[0x88, 17, 0x03, 0xE8]);
    assert_eq!(&got[4..], b"channel deleted");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A client's close frame is answered with the same code, and the server then ends the
/// stream.
#[tokio::test]
async fn a_client_close_is_echoed_then_the_stream_ends() {
    let (addr, shard) = server(HubConfig::default(), ShardConfig::default()).await;
    let mut tcp = raw_connect(addr, "/master/echo").await;
    while settle(&shard).await.opened < 1 {
        tokio::task::yield_now().await;
    }
    // A masked close frame with code 4001.
    let mask = [1, 2, 3, 4];
    let code = 4001u16.to_be_bytes();
    let frame = [
        0x88,
        0x82,
        mask[0],
        mask[1],
        mask[2],
        mask[3],
        code[0] ^ mask[0],
        code[1] ^ mask[1],
    ];
    tcp.write_all(&frame).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, [0x88, 2, 0x0F, 0xA1]);
    until_closed(&shard, 1, Duration::from_secs(5)).await;
}

/// Issue 11: a connect whose client goes away before its 101 is written displaces nobody;
/// the hub used to supersede the live master at the verdict.
#[tokio::test]
async fn a_connect_dropped_before_its_101_evicts_nobody() {
    let (addr, shard) = server(HubConfig::default(), ShardConfig::default()).await;
    let mut master = connect(addr, "/master/kept").await;
    let mut viewer = connect(addr, "/viewer/kept/v").await;
    while settle(&shard).await.opened < 2 {
        tokio::task::yield_now().await;
    }
    // A second master asks, and its client is gone before the answer.
    let mut dropped = TcpStream::connect(addr).await.unwrap();
    dropped
        .write_all(
            b"GET /master/kept?hold HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    while settle(&shard).await.opened < 3 {
        tokio::task::yield_now().await;
    }
    drop(dropped);
    while settle(&shard).await.closed_by_client < 1 {
        tokio::task::yield_now().await;
    }
    // The live master still gets the viewer's offer, and was never superseded.
    send(
        &mut viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"a2VwdA=="}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut master).await,
        r#"{"messagePayload":"a2VwdA==","messageType":"SDP_OFFER","senderClientId":"v"}"#
    );
    assert_eq!(settle(&shard).await.superseded, 0);
}

#[tokio::test]
async fn go_away_local_ends_this_process_sockets_and_keeps_taking_connects() {
    let config = HubConfig::default().go_away_grace(Duration::from_millis(300));
    let (addr, shard) = server(config, ShardConfig::default()).await;
    let mut master = connect(addr, "/master/local").await;
    while settle(&shard).await.opened < 1 {
        tokio::task::yield_now().await;
    }
    shard.go_away_local().await.unwrap();
    // This server's clients handle GO_AWAY: they get it, and the close a grace period later.
    assert_eq!(next_text(&mut master).await, r#"{"messageType":"GO_AWAY"}"#);
    let close = tokio::time::timeout(Duration::from_secs(5), master.next())
        .await
        .expect("no close within 5 s")
        .unwrap()
        .unwrap();
    match close {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Away);
            assert_eq!(frame.reason.as_str(), "server going away");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    // Not a drain: a new connect is taken, and kept.
    let mut again = connect(addr, "/master/local").await;
    while settle(&shard).await.opened < 2 {
        tokio::task::yield_now().await;
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), again.next())
            .await
            .is_err(),
        "the new connection was ended"
    );
}

/// A socket whose reads wait for room in a busy hub's queue still writes what the hub sends
/// it. Before, it wrote nothing until every frame it had read was queued, so a client that
/// sent a burst while its peer did the same had its outbox filled by the peer's burst and was
/// closed as a slow consumer although it read all the time.
#[tokio::test]
async fn a_socket_waiting_on_a_busy_hub_still_writes_what_the_hub_sends_it() {
    const BURST: usize = 300;
    let fast = Rate::per_second(1_000_000);
    let config = HubConfig::default()
        .ice_candidate_rate(fast)
        .master_ice_candidate_rate(fast);
    // A hub queue of one, so every frame but the first waits for room, and outboxes of 8.
    let shard_config = ShardConfig::default()
        .inbound_capacity(1)
        .outbound_capacity(8);
    let (addr, shard) = server(config, shard_config).await;
    let mut master = connect(addr, "/master/busy").await;
    // The viewer asks for delivery status: receipts of what it is sent flow back meanwhile.
    let mut viewer = connect(addr, "/viewer/busy/v?tracked").await;
    while settle(&shard).await.opened < 2 {
        tokio::task::yield_now().await;
    }
    // Each side's burst goes out in one write (loopback's buffers take both; the clients read
    // after).
    for i in 0..BURST {
        let to_viewer = format!(
            r#"{{"action":"ICE_CANDIDATE","recipientClientId":"v","messagePayload":"{}","correlationId":"m{i}"}}"#,
            "QUFB".repeat(10)
        );
        master.feed(Message::Text(to_viewer.into())).await.unwrap();
        let to_master = format!(
            r#"{{"action":"ICE_CANDIDATE","messagePayload":"{}","correlationId":"v{i}"}}"#,
            "QkJC".repeat(10)
        );
        viewer.feed(Message::Text(to_master.into())).await.unwrap();
    }
    let (master_flushed, viewer_flushed) = tokio::join!(master.flush(), viewer.flush());
    master_flushed.unwrap();
    viewer_flushed.unwrap();

    /// Reads until `candidates` candidates and `statuses` DELIVERED statuses arrived.
    async fn read(ws: &mut Client, want: usize, statuses: usize) -> (usize, usize) {
        let (mut candidates, mut delivered) = (0, 0);
        while candidates < want || delivered < statuses {
            let text = next_text(ws).await;
            if text.contains(r#""messageType":"ICE_CANDIDATE""#) {
                candidates += 1;
            } else if text.contains("DELIVERED") {
                delivered += 1;
            } else {
                panic!("unexpected frame {text}");
            }
        }
        (candidates, delivered)
    }
    // The viewer hears DELIVERED for each of its candidates, once the master's socket wrote it.
    let (to_master, to_viewer) =
        tokio::join!(read(&mut master, BURST, 0), read(&mut viewer, BURST, BURST));
    assert_eq!((to_master, to_viewer), ((BURST, 0), (BURST, BURST)));
    // And nothing more: no candidate or status comes twice.
    let quiet = Duration::from_millis(200);
    let (master_more, viewer_more) = tokio::join!(
        tokio::time::timeout(quiet, master.next()),
        tokio::time::timeout(quiet, viewer.next())
    );
    assert!(master_more.is_err(), "{master_more:?}");
    assert!(viewer_more.is_err(), "{viewer_more:?}");
    let counters = settle(&shard).await;
    assert_eq!(counters.closed_by_hub, 0, "{counters:?}");
    assert_eq!(counters.delivered, 2 * BURST as u64);
}
