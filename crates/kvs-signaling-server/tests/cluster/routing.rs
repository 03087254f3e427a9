//! Every routing rule across nodes: a master and its viewers on different nodes talk as on
//! one node, messages to absent recipients are held, the newest connection of a client id
//! wins across nodes, the viewer limit counts every node's viewers, and refusals and
//! STATUS_RESPONSE are the owner's. The console of any node shows every node's channels,
//! connections and events.

use std::time::Duration;

use super::harness::{
    Node, Redis, Ws, call, closed, connect, create, limits_config, metric, next_text, send, text,
};

#[tokio::test]
async fn a_master_and_viewers_on_different_nodes_talk_as_on_one_node() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let c = Node::start(&redis, "127.0.0.3", &[]);
    let arn = create(a.addr, "split").await;

    let mut master = connect(a.addr, &arn, None).await;
    let mut v1 = connect(b.addr, &arn, Some("v1")).await;
    let mut v2 = connect(c.addr, &arn, Some("v2")).await;

    send(
        &mut v1,
        r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXIx"}"#,
    )
    .await;
    assert_eq!(
        text(&mut master).await,
        r#"{"messagePayload":"b2ZmZXIx","messageType":"SDP_OFFER","senderClientId":"v1"}"#
    );
    send(
        &mut v2,
        r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXIy"}"#,
    )
    .await;
    assert_eq!(
        text(&mut master).await,
        r#"{"messagePayload":"b2ZmZXIy","messageType":"SDP_OFFER","senderClientId":"v2"}"#
    );
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v2","messagePayload":"YW5zd2VyMg=="}"#,
    )
    .await;
    assert_eq!(
        text(&mut v2).await,
        r#"{"messagePayload":"YW5zd2VyMg==","messageType":"SDP_ANSWER"}"#
    );
    send(
        &mut master,
        r#"{"action":"ICE_CANDIDATE","recipientClientId":"v1","messagePayload":"Yw=="}"#,
    )
    .await;
    assert_eq!(
        text(&mut v1).await,
        r#"{"messagePayload":"Yw==","messageType":"ICE_CANDIDATE"}"#
    );
    // A viewer can never reach another viewer: nothing else arrived.
    assert_eq!(next_text(&mut v1, Duration::from_millis(300)).await, None);
    assert_eq!(next_text(&mut v2, Duration::from_millis(100)).await, None);

    // A bad message with a correlation id is answered by the owner, across the hop.
    send(
        &mut v1,
        r#"{"action":"SDP_OFFER","messagePayload":"not base64!","correlationId":"bad-1"}"#,
    )
    .await;
    let status = text(&mut v1).await;
    assert!(
        status.contains("STATUS_RESPONSE") && status.contains("bad-1"),
        "{status}"
    );

    // Held across nodes: an answer for a viewer that is not there yet waits, and is delivered
    // when it connects, on yet another node.
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"late","messagePayload":"bGF0ZQ=="}"#,
    )
    .await;
    let mut late = connect(b.addr, &arn, Some("late")).await;
    assert_eq!(
        text(&mut late).await,
        r#"{"messagePayload":"bGF0ZQ==","messageType":"SDP_ANSWER"}"#
    );
}

#[tokio::test]
async fn the_newest_connection_of_a_client_id_wins_across_nodes() {
    // A linger of a second, so that the older connection's close is seen.
    let (_dir, config) = limits_config("linger", "superseded_linger_seconds = 1\n");
    let flags = ["--config", config.as_str()];
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &flags);
    let b = Node::start(&redis, "127.0.0.2", &flags);
    let arn = create(a.addr, "twice").await;
    let mut master = connect(a.addr, &arn, None).await;
    let mut older = connect(a.addr, &arn, Some("phone")).await;
    let mut newer = connect(b.addr, &arn, Some("phone")).await;
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"phone","messagePayload":"bmV3"}"#,
    )
    .await;
    assert_eq!(
        text(&mut newer).await,
        r#"{"messagePayload":"bmV3","messageType":"SDP_ANSWER"}"#
    );
    // The older gets nothing more, its frames are dropped, and it is closed after the linger
    // (1000), as on one node.
    send(
        &mut older,
        r#"{"action":"SDP_OFFER","messagePayload":"b2xk"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut master, Duration::from_millis(300)).await,
        None
    );
    assert_eq!(closed(&mut older, Duration::from_secs(3)).await, Some(1000));
    // Its close does not unregister the newer.
    send(
        &mut master,
        r#"{"action":"ICE_CANDIDATE","recipientClientId":"phone","messagePayload":"Yw=="}"#,
    )
    .await;
    assert_eq!(
        text(&mut newer).await,
        r#"{"messagePayload":"Yw==","messageType":"ICE_CANDIDATE"}"#
    );
    // The other way round: the older on the remote node, the newer on the owner. (Its
    // first message, as a viewer's offer comes first, shows its socket is up at the hub: a
    // client's 101 may reach it a moment before the hub hears the socket is served.)
    let mut newest = connect(a.addr, &arn, Some("phone")).await;
    send(
        &mut newest,
        r#"{"action":"SDP_OFFER","messagePayload":"bmV3ZXN0"}"#,
    )
    .await;
    assert!(text(&mut master).await.contains("bmV3ZXN0"));
    send(
        &mut master,
        r#"{"action":"ICE_CANDIDATE","recipientClientId":"phone","messagePayload":"Mg=="}"#,
    )
    .await;
    assert_eq!(
        text(&mut newest).await,
        r#"{"messagePayload":"Mg==","messageType":"ICE_CANDIDATE"}"#
    );
    assert_eq!(closed(&mut newer, Duration::from_secs(3)).await, Some(1000));
}

#[tokio::test]
async fn held_messages_expire_and_newer_offers_replace_older_ones_across_nodes() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let c = Node::start(&redis, "127.0.0.3", &[]);
    let created = call(
        a.addr,
        "/createSignalingChannel",
        r#"{"ChannelName":"short","SingleMasterConfiguration":{"MessageTtlSeconds":5}}"#,
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let arn = created.json()["ChannelARN"].as_str().unwrap().to_owned();
    // The viewer connects first, through B (B owns the channel); the master is not there.
    let mut v1 = connect(b.addr, &arn, Some("v1")).await;
    send(&mut v1, r#"{"action":"SDP_OFFER","messagePayload":"b2xk"}"#).await;
    send(
        &mut v1,
        r#"{"action":"ICE_CANDIDATE","messagePayload":"MQ=="}"#,
    )
    .await;
    send(&mut v1, r#"{"action":"SDP_OFFER","messagePayload":"bmV3"}"#).await;
    // (Held by then: the viewer's socket is read while the master connects.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The master, through C: the newer offer replaced the older, in its place after the
    // candidate.
    let mut master = connect(c.addr, &arn, None).await;
    assert_eq!(
        text(&mut master).await,
        r#"{"messagePayload":"MQ==","messageType":"ICE_CANDIDATE","senderClientId":"v1"}"#
    );
    assert_eq!(
        text(&mut master).await,
        r#"{"messagePayload":"bmV3","messageType":"SDP_OFFER","senderClientId":"v1"}"#
    );
    assert_eq!(
        next_text(&mut master, Duration::from_millis(300)).await,
        None
    );
    // Held for the channel's TTL (5 s), then dropped: a viewer connecting after it gets
    // nothing, one connecting before gets it.
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"soon","messagePayload":"c29vbg=="}"#,
    )
    .await;
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"late","messagePayload":"bGF0ZQ=="}"#,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut soon = connect(a.addr, &arn, Some("soon")).await;
    assert_eq!(
        text(&mut soon).await,
        r#"{"messagePayload":"c29vbg==","messageType":"SDP_ANSWER"}"#
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut late = connect(a.addr, &arn, Some("late")).await;
    assert_eq!(next_text(&mut late, Duration::from_millis(500)).await, None);
}

#[tokio::test]
async fn nodes_racing_to_claim_a_channel_agree_on_one_owner() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    for round in 0..5 {
        let arn = create(a.addr, &format!("raced-{round}")).await;
        // The master through A and a viewer through B at once: each node tries to claim.
        let (mut master, mut viewer) = tokio::join!(
            connect(a.addr, &arn, None),
            connect(b.addr, &arn, Some("v1"))
        );
        send(
            &mut viewer,
            r#"{"action":"SDP_OFFER","messagePayload":"cmFjZQ=="}"#,
        )
        .await;
        assert_eq!(
            text(&mut master).await,
            r#"{"messagePayload":"cmFjZQ==","messageType":"SDP_OFFER","senderClientId":"v1"}"#
        );
        send(
            &mut master,
            r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"d29u"}"#,
        )
        .await;
        assert!(text(&mut viewer).await.contains("d29u"));
        // One claim: the first epoch, never a second.
        let epoch = redis.cli(&["HGET", &format!("kvs:chan:{arn}"), "epoch"]);
        let owner = redis.cli(&["HGET", &format!("kvs:chan:{arn}"), "owner"]);
        assert!(!owner.is_empty());
        let epochs = redis.cli(&["GET", "kvs:epoch"]);
        assert_eq!(epoch, epochs, "round {round}: claimed twice");
    }
}

#[tokio::test]
async fn limits_and_deletion_hold_across_nodes() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "limited").await;
    // Ten viewers spread over both nodes fill the channel (the service's limit); an eleventh
    // is refused by the owner, as one server would refuse it.
    let mut viewers = Vec::new();
    for i in 0..10 {
        let node = if i % 2 == 0 { a.addr } else { b.addr };
        viewers.push(connect(node, &arn, Some(&format!("v{i}"))).await);
        // The service's connect rate: 3 a second per channel and role.
        if i % 3 == 2 {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let url = super::harness::connect_url(b.addr, &arn, Some("v10"), &[]);
    let refused = tokio_tungstenite::connect_async(url).await.unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = refused else {
        panic!("expected an HTTP refusal, got {refused:?}");
    };
    assert_eq!(response.status(), 400);
    let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
    assert!(body.contains("ClientLimitExceededException"), "{body}");

    // Deleting the channel on either node closes every socket, on every node.
    let deleted = call(
        b.addr,
        "/deleteSignalingChannel",
        &format!(r#"{{"ChannelARN":"{arn}"}}"#),
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    for viewer in &mut viewers {
        assert_eq!(closed(viewer, Duration::from_secs(5)).await, Some(1000));
    }
}

#[tokio::test]
async fn the_console_of_any_node_shows_every_nodes_channels_and_connections() {
    const TOKEN: &str = "ClusterConsoleToken0123456789";
    let flags = ["--console-token", TOKEN];
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &flags);
    let b = Node::start(&redis, "127.0.0.2", &flags);
    let arn = create(a.addr, "watched").await;
    let mut master = connect(a.addr, &arn, None).await;
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    send(
        &mut viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXI="}"#,
    )
    .await;
    assert!(text(&mut master).await.contains("b2ZmZXI="));
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"late","messagePayload":"aGVsZA=="}"#,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // B's console: the channel lives on A's hub, with both connections and what it holds.
    let state = super::harness::exchange(
        b.addr,
        "/console/api/state",
        &format!(
            "GET /console/api/state HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\n\
             connection: close\r\n\r\n",
            b.addr
        ),
    )
    .await;
    assert_eq!(state.status, 200, "{}", state.body);
    let state = state.json();
    let channel = state["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ch| ch["name"] == "watched")
        .unwrap_or_else(|| panic!("{state}"))
        .clone();
    let node = state["cluster"]["node"].as_str().unwrap();
    let owner = channel["node"]
        .as_str()
        .unwrap_or_else(|| panic!("{channel}"));
    assert_ne!(owner, node, "the channel is live on A, not B: {state}");
    let connections = channel["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 2, "{channel}");
    assert_eq!(channel["held"].as_array().unwrap().len(), 1, "{channel}");
    assert_eq!(state["cluster"]["nodesMissing"], serde_json::json!([]));
    // Counters are every node's: A's hub relayed the offer.
    assert!(
        state["counters"]["delivered"].as_u64().unwrap() >= 1,
        "{state}"
    );
}

/// The events of the console event stream of `node`, as they come; the stream is closed when
/// the task is aborted.
async fn console_events(
    node: std::net::SocketAddr,
    token: &str,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    tokio::task::AbortHandle,
) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(node).await.unwrap();
    let request = format!(
        "GET /console/api/events HTTP/1.1\r\nhost: {node}\r\nauthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(data) = line.strip_prefix("data: ")
                && let Ok(event) = serde_json::from_str(data)
                && tx.send(event).is_err()
            {
                return;
            }
        }
    });
    (rx, task.abort_handle())
}

/// This node's id, as its console says.
async fn node_id(node: std::net::SocketAddr, token: &str) -> String {
    let state = super::harness::exchange(
        node,
        "/console/api/state",
        &format!(
            "GET /console/api/state HTTP/1.1\r\nhost: {node}\r\nauthorization: Bearer {token}\r\n\
             connection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(state.status, 200, "{}", state.body);
    state.json()["cluster"]["node"].as_str().unwrap().to_owned()
}

/// An offer from `viewer`, which `master` gets.
async fn offer_across(viewer: &mut Ws, master: &mut Ws) {
    send(
        viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXI="}"#,
    )
    .await;
    assert!(text(master).await.contains("b2ZmZXI="));
}

/// Sends offers from `viewer` to `master` until `events` carries one relayed by node `from`,
/// within `within`; whether it did.
async fn relays_seen(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    master: &mut Ws,
    viewer: &mut Ws,
    from: &str,
    within: Duration,
    keep_alive: &impl Fn(),
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        keep_alive();
        offer_across(viewer, master).await;
        let round = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(Some(event)) = tokio::time::timeout_at(round, events.recv()).await {
            if event["type"] == "relayed" && event["channel"] == "evented" {
                assert_eq!(event["messageType"], "SDP_OFFER", "{event}");
                if event["node"] == from {
                    return true;
                }
            }
        }
    }
    false
}

#[tokio::test]
async fn the_console_event_stream_of_any_node_carries_every_nodes_events() {
    const TOKEN: &str = "ClusterConsoleToken0123456789";
    let flags = ["--console-token", TOKEN];
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &flags);
    let b = Node::start(&redis, "127.0.0.2", &flags);
    let (a_id, b_id) = (node_id(a.addr, TOKEN).await, node_id(b.addr, TOKEN).await);
    // A channel whose hub is B's: its events are B's.
    let arn = create(a.addr, "evented").await;
    let mut master = connect(b.addr, &arn, None).await;
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    let (mut events, stream) = console_events(a.addr, TOKEN).await;
    let nothing = || {};
    // A's stream carries B's events once B heard, with the heartbeats, that A watches.
    assert!(
        relays_seen(
            &mut events,
            &mut master,
            &mut viewer,
            &b_id,
            Duration::from_secs(10),
            &nothing
        )
        .await,
        "A's console never showed B's events"
    );
    // A's own events name A.
    let mut own = connect(a.addr, &create(a.addr, "own").await, None).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("A's own connect was not shown")
            .unwrap();
        if event["type"] == "connected" && event["channel"] == "own" {
            assert_eq!(event["node"], a_id.as_str(), "{event}");
            break;
        }
    }
    own.close(None).await.unwrap();

    // Two more watching nodes (stand-ins: alive, watching, never reading): one of a release
    // whose format has no events (it reads format 1 alone) gets none, since it could not read
    // an inbox entry holding them (it would drop the entry whole); one that reads format 2
    // gets them. A's stream goes on meanwhile.
    let watchers = || {
        let now = redis.time_ms().to_string();
        for (node, formats) in [("old-watcher", "1-1"), ("new-watcher", "1-2")] {
            redis.cli(&["HSET", "kvs:formats", node, formats]);
            redis.cli(&["ZADD", "kvs:nodes", &now, node]);
            redis.cli(&["ZADD", "kvs:watchers", &now, node]);
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        watchers();
        let health = super::harness::get(b.addr, "/health").await;
        if health.body.contains("old-watcher (1-1)") {
            assert!(
                health.body.contains("the cluster writes format 1"),
                "{}",
                health.body
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", health.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        relays_seen(
            &mut events,
            &mut master,
            &mut viewer,
            &b_id,
            Duration::from_secs(10),
            &watchers
        )
        .await,
        "B's events stopped"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while redis.cli(&["XLEN", "kvs:inbox:new-watcher"]) == "0" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher of format 2 got nothing"
        );
        watchers();
        offer_across(&mut viewer, &mut master).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What the watcher of format 2 got says format 2; the other gets nothing, also from the
    // rounds after.
    let entry = redis.cli(&["XRANGE", "kvs:inbox:new-watcher", "-", "+", "COUNT", "1"]);
    assert!(entry.contains("\nv\n2\nb\n"), "{entry}");
    assert!(entry.contains(r#""t":"Events""#), "{entry}");
    for _ in 0..3 {
        watchers();
        offer_across(&mut viewer, &mut master).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(redis.cli(&["XLEN", "kvs:inbox:old-watcher"]), "0");

    // Once A's stream is closed (and the stand-ins gone), B stops sending: A's inbox, which
    // gets nothing else here, stays as it is.
    for node in ["old-watcher", "new-watcher"] {
        redis.cli(&["ZREM", "kvs:nodes", node]);
        redis.cli(&["ZREM", "kvs:watchers", node]);
    }
    stream.abort();
    drop(events);
    let inbox = format!("kvs:inbox:{a_id}");
    let read = "kvs_cluster_inbox_entries_read_total";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let before = metric(a.addr, read).await;
        // The events a relay makes go out at once (one offer a round, well within the rate).
        offer_across(&mut viewer, &mut master).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        if metric(a.addr, read).await == before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B still sends A events; A's inbox: {}",
            redis.cli(&["XLEN", &inbox])
        );
    }
    assert_eq!(redis.cli(&["ZSCORE", "kvs:watchers", &a_id]), "");
}

#[tokio::test]
async fn delivery_status_and_dead_socket_detection_hold_for_remote_connections() {
    // Pings every second, and a second to answer.
    let (_dir, config) = limits_config(
        "liveness",
        "ping_interval_seconds = 1\npong_timeout_seconds = 1\n",
    );
    let flags = ["--config", config.as_str()];
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &flags);
    let b = Node::start(&redis, "127.0.0.2", &flags);
    let arn = create(a.addr, "tracked").await;
    let mut master =
        super::harness::connect_with(a.addr, &arn, None, &[("X-Kvs-DeliveryStatus", "true")]).await;
    let mut v1 = connect(b.addr, &arn, Some("v1")).await;
    let status = |id: &str, to: &str, state: &str| {
        format!(
            r#"{{"deliveryStatus":{{"correlationId":"{id}","recipientClientId":"{to}","status":"{state}"}},"messageType":"DELIVERY_STATUS"}}"#
        )
    };
    // Written to the socket on B: DELIVERED, once B says so.
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"YQ==","correlationId":"c1"}"#,
    )
    .await;
    assert!(text(&mut v1).await.contains("YQ=="));
    assert_eq!(text(&mut master).await, status("c1", "v1", "DELIVERED"));
    // Held for a viewer not there, then delivered on B when it comes.
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"late","messagePayload":"Yg==","correlationId":"c2"}"#,
    )
    .await;
    assert_eq!(text(&mut master).await, status("c2", "late", "HELD"));
    let mut late = connect(b.addr, &arn, Some("late")).await;
    assert!(text(&mut late).await.contains("Yg=="));
    assert_eq!(text(&mut master).await, status("c2", "late", "DELIVERED"));

    // A socket on B whose client went silent (upgraded, then never read nor answered a
    // ping): B finds it dead within its ping interval and pong timeout, and the owner holds
    // what is sent to it rather than writing it into a dead socket.
    let url = super::harness::connect_url(b.addr, &arn, Some("ghost"), &[]);
    let path = url.split_once(&b.addr.to_string()).unwrap().1.to_owned();
    let mut ghost = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    ghost
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nhost: {}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
                 sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
                b.addr
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        ghost.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // (The master is read meanwhile, so that it answers A's pings: nothing else comes.)
    assert_eq!(next_text(&mut master, Duration::from_secs(4)).await, None);
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"ghost","messagePayload":"Yw==","correlationId":"c3"}"#,
    )
    .await;
    assert_eq!(text(&mut master).await, status("c3", "ghost", "HELD"));
    drop(ghost);
}

/// A SendAlexaOfferToMaster call through `node`, and `master` answering the offer it gets:
/// the call answers with the master's answer.
async fn alexa_answered_through(node: std::net::SocketAddr, arn: &str, master: &mut Ws) {
    let body = format!(
        r#"{{"ChannelARN":"{arn}","SenderClientId":"AWS_ALEXA","MessagePayload":"b2ZmZXI="}}"#
    );
    let (answer, ()) = tokio::join!(call(node, "/v1/send-alexa-offer-to-master", &body), async {
        let offer = text(master).await;
        assert!(offer.contains(r#""senderClientId":"AWS_ALEXA""#), "{offer}");
        send(
                master,
                r#"{"action":"SDP_ANSWER","recipientClientId":"AWS_ALEXA","messagePayload":"YW5zd2Vy"}"#,
            )
            .await;
    });
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["Answer"], "YW5zd2Vy");
}

#[tokio::test]
async fn alexa_offers_and_message_rates_hold_across_nodes() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "alexa").await;
    let mut master = connect(a.addr, &arn, None).await;
    // SendAlexaOfferToMaster through B: the owner's hub (on A) hands the offer to the master
    // and answers B's call with the master's answer.
    alexa_answered_through(b.addr, &arn, &mut master).await;

    // A viewer on B sending 25 candidates at once: the service's 20 a second pass to the
    // master, the rest are refused with a STATUS_RESPONSE, as on one server.
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    for i in 0..25 {
        send(
            &mut viewer,
            &format!(
                r#"{{"action":"ICE_CANDIDATE","messagePayload":"{i:04}","correlationId":"c{i}"}}"#
            ),
        )
        .await;
    }
    let mut relayed = 0;
    while let Some(frame) = next_text(&mut master, Duration::from_millis(700)).await {
        assert!(frame.contains("ICE_CANDIDATE"), "{frame}");
        relayed += 1;
    }
    let mut refused = 0;
    while let Some(frame) = next_text(&mut viewer, Duration::from_millis(300)).await {
        assert!(
            frame.contains("STATUS_RESPONSE") && frame.contains("ClientLimitExceededException"),
            "{frame}"
        );
        refused += 1;
    }
    assert_eq!((relayed, refused), (20, 5));
}

/// The node inboxes in Redis and what each still holds: (key, entries).
fn inboxes(redis: &Redis) -> Vec<(String, String)> {
    let keys = redis.cli(&["KEYS", "kvs:inbox:*"]);
    keys.lines()
        .filter(|key| !key.is_empty())
        .map(|key| (key.to_owned(), redis.cli(&["XRANGE", key, "-", "+"])))
        .collect()
}

#[tokio::test]
async fn inboxes_are_trimmed_of_frames_at_once_and_of_everything_else_within_seconds() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "trimmed").await;
    // A owns the channel; the viewer's socket is on B.
    let mut master = connect(a.addr, &arn, None).await;
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    for _ in 0..5 {
        // Frames to the owner (A's inbox: replayed if A dies, so trimmed as read), and
        // deliveries to the viewer's node (B's inbox: never replayed).
        send(
            &mut viewer,
            r#"{"action":"ICE_CANDIDATE","messagePayload":"dg=="}"#,
        )
        .await;
        assert!(text(&mut master).await.contains("ICE_CANDIDATE"));
        send(
            &mut master,
            r#"{"action":"ICE_CANDIDATE","recipientClientId":"v1","messagePayload":"bQ=="}"#,
        )
        .await;
        assert!(text(&mut viewer).await.contains("bQ=="));
    }
    // Every frame A read is out of its inbox at once (the trim goes with A's next read), well
    // before a quiet inbox's trim (a second after the last read) would take it.
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    let left = loop {
        let all = inboxes(&redis);
        if all
            .iter()
            .all(|(_, entries)| !entries.contains(r#""t":"Frame""#))
            || std::time::Instant::now() > deadline
        {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        left.iter()
            .all(|(_, entries)| !entries.contains(r#""t":"Frame""#)),
        "frames read by the owner are still in its inbox: {left:?}"
    );
    // Everything else is trimmed within about two seconds of a quiet inbox.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let all = inboxes(&redis);
        if all.iter().all(|(_, entries)| entries.trim().is_empty()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "an inbox was not trimmed within 5 s: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A trimmed each read of frames; B, which only got deliveries, trimmed them together.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let (a_trims, b_trims, b_reads) = loop {
        let counts = (
            metric(a.addr, "kvs_cluster_inbox_trims_total").await,
            metric(b.addr, "kvs_cluster_inbox_trims_total").await,
            metric(b.addr, "kvs_cluster_inbox_entries_read_total").await,
        );
        if (counts.0 >= 5 && counts.1 >= 1) || std::time::Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // (Each frame was sent once the one before it was relayed: five reads of frames.)
    assert!(
        a_trims >= 5,
        "the owner trimmed {a_trims} times for 5 reads of frames"
    );
    assert!(
        b_reads >= 6 && b_trims >= 1 && b_trims < b_reads / 2,
        "B trimmed {b_trims} times for {b_reads} entries read"
    );
    // Both still relay.
    send(
        &mut viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXI="}"#,
    )
    .await;
    assert!(text(&mut master).await.contains("b2ZmZXI="));
}

#[tokio::test]
async fn a_batch_linger_gathers_what_comes_meanwhile_into_one_inbox_entry() {
    let (_dir, config) = limits_config(
        "linger",
        "cluster_batch_linger_ms = 50\nice_candidates_per_second = 100000\n",
    );
    let flags = ["--config", config.as_str()];
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &flags);
    let b = Node::start(&redis, "127.0.0.2", &flags);
    let arn = create(a.addr, "lingering").await;
    let mut master = connect(a.addr, &arn, None).await;
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    let entries = "kvs_cluster_inbox_entries_written_total";
    let messages = "kvs_cluster_inbox_messages_written_total";
    let (entries_before, messages_before) = (
        metric(b.addr, entries).await,
        metric(b.addr, messages).await,
    );

    // Ten candidates sent together cross in one entry, or a few, and none sooner than the
    // linger.
    let sent = std::time::Instant::now();
    for n in 0..10 {
        send(
            &mut viewer,
            &format!(r#"{{"action":"ICE_CANDIDATE","messagePayload":"Y2FuZA{n:02}"}}"#),
        )
        .await;
    }
    for n in 0..10 {
        let got = text(&mut master).await;
        assert!(got.contains(&format!("Y2FuZA{n:02}")), "{got}");
        if n == 0 {
            assert!(
                sent.elapsed() >= Duration::from_millis(50),
                "the first candidate crossed in {:?}",
                sent.elapsed()
            );
        }
    }
    let written = metric(b.addr, messages).await - messages_before;
    let rounds = metric(b.addr, entries).await - entries_before;
    assert!(written >= 10, "{written} messages written");
    assert!(rounds <= 3, "{written} messages in {rounds} entries");
}

#[tokio::test]
async fn what_was_held_reaches_viewers_connecting_through_another_node_at_once() {
    // What was held for a viewer is sent as soon as its connection is up at the owner: it
    // follows the owner's verdict to the viewer's node, which then knows the socket.
    let (_dir, config) = limits_config("held-at-once", "connects_per_second = 1000\n");
    let flags = ["--config", config.as_str()];
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &flags);
    let b = Node::start(&redis, "127.0.0.2", &flags);
    const CHANNELS: usize = 40;
    const VIEWERS: usize = 8;
    let mut masters = Vec::new();
    let mut arns = Vec::new();
    for c in 0..CHANNELS {
        let arn = create(a.addr, &format!("held-at-once-{c}")).await;
        let mut master = connect(a.addr, &arn, None).await;
        for v in 0..VIEWERS {
            send(
                &mut master,
                &format!(
                    r#"{{"action":"SDP_ANSWER","recipientClientId":"v{v}","messagePayload":"{c:02}{v:02}"}}"#
                ),
            )
            .await;
        }
        masters.push(master);
        arns.push(arn);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut viewers = Vec::new();
    for (c, arn) in arns.iter().enumerate() {
        for v in 0..VIEWERS {
            let arn = arn.clone();
            let addr = b.addr;
            viewers.push(tokio::spawn(async move {
                let mut viewer = connect(addr, &arn, Some(&format!("v{v}"))).await;
                let got = next_text(&mut viewer, Duration::from_secs(5)).await;
                (c, v, got)
            }));
        }
    }
    let mut missing = Vec::new();
    for viewer in viewers {
        let (c, v, got) = viewer.await.unwrap();
        let expected = format!(r#"{{"messagePayload":"{c:02}{v:02}","messageType":"SDP_ANSWER"}}"#);
        if got.as_deref() != Some(expected.as_str()) {
            missing.push((c, v, got));
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {}: {missing:?}",
        missing.len(),
        CHANNELS * VIEWERS
    );
}

#[tokio::test]
async fn an_alexa_offer_reaches_a_master_whose_socket_is_on_another_node_than_the_owner() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "alexa-remote-master").await;
    // A viewer's connect through A makes A the owner; the master is on B.
    let _viewer = connect(a.addr, &arn, Some("v1")).await;
    let mut master = connect(b.addr, &arn, None).await;
    // The offer, made through B, is served by A's hub, which hands it to the master on B and
    // waits for the master's answer: that answer comes back to A through its inbox.
    let started = std::time::Instant::now();
    alexa_answered_through(b.addr, &arn, &mut master).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
