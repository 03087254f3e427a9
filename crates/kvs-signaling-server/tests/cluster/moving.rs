//! Channels moving between nodes: the owner killed, paused past its heartbeat TTL, or shut
//! down, and a rolling restart of every node. Clients of the channel on other nodes keep
//! their sockets, held messages survive, and what is sent meanwhile is delivered once, in
//! order, or counted lost.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;

use super::harness::{
    Node, Redis, SLOW_USER, SlowUser, TempDir, Ws, call, closed, connect, connect_url, create, get,
    limits_config, metric, next_text, send, signal, text,
};

/// The payload of candidate `i`: its number in four digits (which is base64).
fn candidate(i: usize) -> String {
    format!("{i:04}")
}

/// The number of a candidate frame the master got, if it is one.
fn candidate_number(frame: &str) -> Option<usize> {
    let value: serde_json::Value = serde_json::from_str(frame).ok()?;
    if value["messageType"] != "ICE_CANDIDATE" {
        return None;
    }
    value["messagePayload"].as_str()?.parse().ok()
}

/// Sends `count` numbered candidates from `viewer` to its master, one every `every`, on a
/// task of its own; returns the socket when done.
fn send_candidates(mut viewer: Ws, count: usize, every: Duration) -> tokio::task::JoinHandle<Ws> {
    tokio::spawn(async move {
        for i in 0..count {
            send(
                &mut viewer,
                &format!(
                    r#"{{"action":"ICE_CANDIDATE","messagePayload":"{}"}}"#,
                    candidate(i)
                ),
            )
            .await;
            tokio::time::sleep(every).await;
        }
        viewer
    })
}

/// Connects the master of `arn` to `node`, again and again (a refused connect is what a
/// client gets while the channel has no owner yet), for at most `within`.
async fn reconnect(node: std::net::SocketAddr, arn: &str, within: Duration) -> Ws {
    reconnect_as(node, arn, None, within).await
}

/// The candidates a master gets until none comes for `quiet`: their numbers, in order.
async fn candidates_received(master: &mut Ws, quiet: Duration) -> Vec<usize> {
    let mut got = Vec::new();
    while let Some(frame) = next_text(master, quiet).await {
        if let Some(n) = candidate_number(&frame) {
            got.push(n);
        }
    }
    got
}

/// The owner field of a channel's record in Redis.
fn owner_in_redis(redis: &Redis, arn: &str) -> (String, String) {
    (
        redis.cli(&["HGET", &format!("kvs:chan:{arn}"), "owner"]),
        redis.cli(&["HGET", &format!("kvs:chan:{arn}"), "epoch"]),
    )
}

#[tokio::test]
async fn killing_the_owner_moves_its_channel_keeping_other_nodes_sockets_and_held_messages() {
    let redis = Redis::start();
    let mut a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let c = Node::start(&redis, "127.0.0.3", &[]);
    let arn = create(b.addr, "rehomed").await;
    // The master connects first, through A: A owns the channel.
    let mut master = connect(a.addr, &arn, None).await;
    let v1 = connect(b.addr, &arn, Some("v1")).await;
    let mut v2 = connect(c.addr, &arn, Some("v2")).await;
    send(
        &mut v2,
        r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXI="}"#,
    )
    .await;
    assert!(text(&mut master).await.contains("b2ZmZXI="));
    // Held at A for a viewer that is not there yet, and copied to Redis.
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"late","messagePayload":"aGVsZA=="}"#,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // v1 sends a candidate every 200 ms through A's death, its detection and the move: to
    // the dead owner (its inbox keeps them), then held on B while its socket moves, then to
    // the new owner, which holds them for the absent master.
    let killed = Instant::now();
    a.kill();
    let sending = send_candidates(v1, 50, Duration::from_millis(200));
    // The master's client reconnects, through C, as soon as a connect is taken.
    drop(master);
    let mut master = reconnect(c.addr, &arn, Duration::from_secs(20)).await;
    let window = killed.elapsed();
    let mut v1 = sending.await.unwrap();
    let got = candidates_received(&mut master, Duration::from_secs(2)).await;
    let lost: Vec<usize> = (0..50).filter(|i| !got.contains(i)).collect();
    eprintln!(
        "owner killed: a connect was taken again after {} ms; the viewer's 50 candidates \
         sent over 10 s from the kill: {} delivered, lost {lost:?}",
        window.as_millis(),
        got.len()
    );
    let mut sorted = got.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, got, "delivered twice or out of order: {got:?}");
    assert!(lost.is_empty(), "lost {lost:?}\n{}\n{}", b.log(), c.log());
    assert!(window < Duration::from_secs(15), "{window:?}");

    // The nodes count what they did: both viewers' sockets moved, v1's frames that A never
    // read were sent again, and one node owns the channel now.
    let moved = metric(b.addr, "kvs_cluster_moved_sockets_total").await
        + metric(c.addr, "kvs_cluster_moved_sockets_total").await;
    assert_eq!(moved, 2);
    assert!(metric(b.addr, "kvs_cluster_replayed_messages_total").await > 0);
    let owners = metric(b.addr, "kvs_cluster_owned_channels").await
        + metric(c.addr, "kvs_cluster_owned_channels").await;
    assert_eq!(owners, 1);
    // Other nodes' sockets never closed: both viewers go on with the new master.
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"djE="}"#,
    )
    .await;
    assert_eq!(
        text(&mut v1).await,
        r#"{"messagePayload":"djE=","messageType":"SDP_ANSWER"}"#
    );
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v2","messagePayload":"djI="}"#,
    )
    .await;
    assert_eq!(
        text(&mut v2).await,
        r#"{"messagePayload":"djI=","messageType":"SDP_ANSWER"}"#
    );
    // What A held survived it.
    let mut late = connect(b.addr, &arn, Some("late")).await;
    assert_eq!(
        text(&mut late).await,
        r#"{"messagePayload":"aGVsZA==","messageType":"SDP_ANSWER"}"#
    );
    assert_eq!(next_text(&mut late, Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn an_owner_paused_past_its_ttl_loses_its_channel_and_never_acts_on_it_again() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let c = Node::start(&redis, "127.0.0.3", &[]);
    let arn = create(a.addr, "paused").await;
    let mut old_master = connect(a.addr, &arn, None).await;
    let mut v1 = connect(b.addr, &arn, Some("v1")).await;
    send(
        &mut old_master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"late","messagePayload":"aGVsZA=="}"#,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (owner_before, _) = owner_in_redis(&redis, &arn);

    signal(a.pid(), "STOP");
    // What v1 sends the frozen owner is replayed to the next one: A's read, waiting in Redis,
    // takes it, but its socket is frozen, and the entry stays in A's inbox.
    send(
        &mut v1,
        r#"{"action":"SDP_OFFER","messagePayload":"ZnJvemVu"}"#,
    )
    .await;
    // Past the TTL, B takes A for dead and moves v1's socket: it claims the channel.
    let mut master = reconnect(c.addr, &arn, Duration::from_secs(20)).await;
    let (owner_during, epoch_during) = owner_in_redis(&redis, &arn);
    assert_ne!(owner_during, owner_before, "nobody claimed the channel");
    let replayed = text(&mut master).await;
    assert!(replayed.contains("ZnJvemVu"), "{replayed}");
    send(&mut v1, r#"{"action":"SDP_OFFER","messagePayload":"bmV3"}"#).await;
    assert!(text(&mut master).await.contains("bmV3"));

    signal(a.pid(), "CONT");
    // A finds it lost the channel: its socket of it is closed (its client reconnects to the
    // new owner), and it writes nothing of the channel to Redis.
    assert_eq!(
        closed(&mut old_master, Duration::from_secs(10)).await,
        Some(1001),
        "{}",
        a.log()
    );
    assert_eq!(
        owner_in_redis(&redis, &arn),
        (owner_during.clone(), epoch_during.clone())
    );
    // One deciding hub: v1's next message reaches the new master once.
    send(
        &mut v1,
        r#"{"action":"SDP_OFFER","messagePayload":"YWZ0ZXI="}"#,
    )
    .await;
    assert!(text(&mut master).await.contains("YWZ0ZXI="));
    assert_eq!(
        next_text(&mut master, Duration::from_millis(500)).await,
        None
    );
    // What A held moved with the channel, once.
    let mut late = connect(c.addr, &arn, Some("late")).await;
    assert_eq!(
        text(&mut late).await,
        r#"{"messagePayload":"aGVsZA==","messageType":"SDP_ANSWER"}"#
    );
    assert_eq!(next_text(&mut late, Duration::from_millis(300)).await, None);
    // A serves again: ready, and its connects work (routed to the new owner).
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(a.addr, "/ready").await.status != 200 {
        assert!(Instant::now() < deadline, "A did not become ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut v3 = connect(a.addr, &arn, Some("v3")).await;
    send(&mut v3, r#"{"action":"SDP_OFFER","messagePayload":"djM="}"#).await;
    assert!(text(&mut master).await.contains("djM="));
    assert_eq!(owner_in_redis(&redis, &arn), (owner_during, epoch_during));
    drop(c);
}

/// A config file shortening the GO_AWAY grace, so that a drain takes a second.
fn short_grace() -> (TempDir, String) {
    limits_config("grace", "go_away_grace_seconds = 1\n")
}

#[tokio::test]
async fn a_node_shutting_down_hands_its_channels_over_with_nothing_lost() {
    let (_dir, config) = short_grace();
    let flags = ["--config", config.as_str()];
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &flags);
    let b = Node::start(&redis, "127.0.0.2", &flags);
    let c = Node::start(&redis, "127.0.0.3", &flags);
    let arn = create(a.addr, "handed").await;
    let mut master = connect(a.addr, &arn, None).await;
    let v1 = connect(b.addr, &arn, Some("v1")).await;
    let mut v2 = connect(c.addr, &arn, Some("v2")).await;
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"late","messagePayload":"aGVsZA=="}"#,
    )
    .await;

    // v1 sends through the whole hand-over; A drains: its own client, the master (which does
    // not handle GO_AWAY), is closed with 1001, after it got what was sent until then.
    let sending = send_candidates(v1, 30, Duration::from_millis(100));
    let old_master = tokio::spawn(async move {
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(20), master.next()).await {
                Ok(Some(Ok(Message::Text(frame)))) => got.extend(candidate_number(&frame)),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return (got, frame.map(|f| u16::from(f.code)));
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("the master's socket ended without a close: {other:?}"),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = Instant::now();
    // (Off the test's runtime: its clients answer meanwhile, as real ones would.)
    let exited = tokio::task::spawn_blocking(move || {
        let mut a = a;
        a.terminate(Duration::from_secs(15))
    })
    .await
    .unwrap();
    assert!(exited, "A did not exit");
    let took = stopping.elapsed();
    let (before, code) = old_master.await.unwrap();
    assert_eq!(code, Some(1001));
    let mut v1 = sending.await.unwrap();
    let mut master = reconnect(b.addr, &arn, Duration::from_secs(10)).await;
    let after = candidates_received(&mut master, Duration::from_secs(2)).await;
    eprintln!(
        "drain: A exited {} ms after SIGTERM; the master got {} candidates before, {} after",
        took.as_millis(),
        before.len(),
        after.len()
    );
    let all: Vec<usize> = before.iter().chain(&after).copied().collect();
    assert_eq!(all, (0..30).collect::<Vec<_>>(), "{}\n{}", b.log(), c.log());
    // Handed over, not lost with A: no node waited for A's death to move the channel.
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The viewers on other nodes kept their sockets.
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"djE="}"#,
    )
    .await;
    assert!(text(&mut v1).await.contains("djE="));
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v2","messagePayload":"djI="}"#,
    )
    .await;
    assert!(text(&mut v2).await.contains("djI="));
    let mut late = connect(c.addr, &arn, Some("late")).await;
    assert_eq!(
        text(&mut late).await,
        r#"{"messagePayload":"aGVsZA==","messageType":"SDP_ANSWER"}"#
    );
    let described = call(
        c.addr,
        "/describeSignalingChannel",
        r#"{"ChannelName":"handed"}"#,
    )
    .await;
    assert_eq!(described.status, 200);
}

/// A client of the rolling restart: which node it is on, and its socket.
struct Client {
    arn: String,
    id: Option<&'static str>,
    node: usize,
    ws: Ws,
}

#[tokio::test]
async fn a_rolling_restart_of_every_node_loses_no_channel_and_no_held_message() {
    let (_dir, config) = short_grace();
    let flags = ["--config", config.as_str()];
    let redis = Redis::start();
    let ips = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let mut nodes: Vec<Option<Node>> = ips
        .iter()
        .map(|ip| Some(Node::start(&redis, ip, &flags)))
        .collect();
    let addr = |nodes: &[Option<Node>], i: usize| nodes[i].as_ref().unwrap().addr;
    let one = create(addr(&nodes, 0), "rolling-one").await;
    let two = create(addr(&nodes, 0), "rolling-two").await;
    // `one` is owned by node 0 (its master connects first there), `two` by node 1; their
    // viewers are on the other nodes.
    let mut clients = Vec::new();
    for (arn, master_node, viewers) in [
        (&one, 0, [("v1", 1), ("v2", 2)]),
        (&two, 1, [("w1", 0), ("w2", 2)]),
    ] {
        let ws = connect(addr(&nodes, master_node), arn, None).await;
        clients.push(Client {
            arn: arn.clone(),
            id: None,
            node: master_node,
            ws,
        });
        for (id, node) in viewers {
            let ws = connect(addr(&nodes, node), arn, Some(id)).await;
            clients.push(Client {
                arn: arn.clone(),
                id: Some(id),
                node,
                ws,
            });
        }
    }
    // Held for viewers that come only at the end.
    send(
        &mut clients[0].ws,
        r#"{"action":"SDP_ANSWER","recipientClientId":"late1","messagePayload":"bGF0ZTE="}"#,
    )
    .await;
    send(
        &mut clients[3].ws,
        r#"{"action":"SDP_ANSWER","recipientClientId":"late2","messagePayload":"bGF0ZTI="}"#,
    )
    .await;

    for restarting in 0..3 {
        let node = nodes[restarting].take().unwrap();
        let exited = tokio::task::spawn_blocking(move || {
            let mut node = node;
            node.terminate(Duration::from_secs(15))
        });
        // Its clients are closed (1001) and reconnect through the next node.
        let next = (restarting + 1) % 3;
        for client in clients.iter_mut().filter(|c| c.node == restarting) {
            assert_eq!(
                closed(&mut client.ws, Duration::from_secs(10)).await,
                Some(1001),
                "{:?} on node {restarting}",
                client.id
            );
        }
        assert!(exited.await.unwrap(), "node {restarting} did not exit");
        for client in clients.iter_mut().filter(|c| c.node == restarting) {
            client.ws = reconnect_as(
                addr(&nodes, next),
                &client.arn,
                client.id,
                Duration::from_secs(15),
            )
            .await;
            client.node = next;
        }
        nodes[restarting] = Some(Node::start(&redis, ips[restarting], &flags));
        // Every viewer still reaches its master, and back.
        let round = format!("{restarting:04}");
        for channel in [&one, &two] {
            let (masters, viewers): (Vec<&mut Client>, Vec<&mut Client>) = clients
                .iter_mut()
                .filter(|c| c.arn == *channel)
                .partition(|c| c.id.is_none());
            let master = masters.into_iter().next().unwrap();
            for viewer in viewers {
                send(
                    &mut viewer.ws,
                    &format!(r#"{{"action":"ICE_CANDIDATE","messagePayload":"{round}"}}"#),
                )
                .await;
                let got = next_text(&mut master.ws, Duration::from_secs(5))
                    .await
                    .unwrap_or_else(|| {
                        panic!(
                            "after restarting node {restarting}: nothing from {:?} on node {} \
                             to the master on node {}",
                            viewer.id, viewer.node, master.node
                        )
                    });
                assert!(
                    got.contains(&round) && got.contains(viewer.id.unwrap()),
                    "after restarting node {restarting}: {got}"
                );
                send(
                    &mut master.ws,
                    &format!(
                        r#"{{"action":"ICE_CANDIDATE","recipientClientId":"{}","messagePayload":"{round}"}}"#,
                        viewer.id.unwrap()
                    ),
                )
                .await;
                assert!(text(&mut viewer.ws).await.contains(&round));
            }
        }
    }
    // Both channels and both held messages survived all three restarts.
    for (name, arn, late, held) in [
        ("rolling-one", &one, "late1", "bGF0ZTE="),
        ("rolling-two", &two, "late2", "bGF0ZTI="),
    ] {
        let described = call(
            addr(&nodes, 2),
            "/describeSignalingChannel",
            &format!(r#"{{"ChannelName":"{name}"}}"#),
        )
        .await;
        assert_eq!(described.status, 200, "{}", described.body);
        let mut ws = connect(addr(&nodes, 1), arn, Some(late)).await;
        assert_eq!(
            text(&mut ws).await,
            format!(r#"{{"messagePayload":"{held}","messageType":"SDP_ANSWER"}}"#)
        );
    }
}

/// [`reconnect`] for a master (`None`) or a viewer.
async fn reconnect_as(
    node: std::net::SocketAddr,
    arn: &str,
    id: Option<&str>,
    within: Duration,
) -> Ws {
    let deadline = Instant::now() + within;
    loop {
        let url = connect_url(node, arn, id, &[]);
        if let Ok(Ok((ws, _))) = tokio::time::timeout(
            Duration::from_secs(8),
            tokio_tungstenite::connect_async(url),
        )
        .await
        {
            return ws;
        }
        assert!(
            Instant::now() < deadline,
            "{id:?} could not connect again within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn what_a_socket_node_still_had_queued_for_a_dead_owner_is_replayed_too() {
    // B holds its frames back 100 ms (a batch linger) so that, when it takes A for dead,
    // some are still queued for A: they are written before B reads what A never read.
    let dir = TempDir::new("queued-replay");
    let config = dir.0.join("node.toml");
    // (The new owner may replay v1's frames before the master's socket moves to it: it holds
    // them for the master meanwhile, up to this many.)
    let limits = "[limits]\nice_candidates_per_second = 100000\nmax_pending_per_recipient = 1000\n";
    std::fs::write(&config, limits).unwrap();
    let lingering = dir.0.join("lingering.toml");
    std::fs::write(
        &lingering,
        format!("{limits}cluster_batch_linger_ms = 100\n"),
    )
    .unwrap();
    let flags = ["--config", config.to_str().unwrap()];
    let redis = Redis::start();
    let mut a = Node::start(&redis, "127.0.0.1", &flags);
    let b = Node::start(
        &redis,
        "127.0.0.2",
        &["--config", lingering.to_str().unwrap()],
    );
    let c = Node::start(&redis, "127.0.0.3", &flags);
    let arn = create(a.addr, "queued").await;
    // A viewer's connect through A makes A the owner; the master is on C, the viewer on B.
    let _v0 = connect(a.addr, &arn, Some("v0")).await;
    let mut master = connect(c.addr, &arn, None).await;
    let v1 = connect(b.addr, &arn, Some("v1")).await;

    // v1 sends a candidate every 20 ms through A's death, its detection and the move.
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.kill();
    const SENT: usize = 450;
    let sending = send_candidates(v1, SENT, Duration::from_millis(20));
    let _v1 = sending.await.unwrap();
    let got = candidates_received(&mut master, Duration::from_secs(3)).await;
    let lost: Vec<usize> = (0..SENT).filter(|i| !got.contains(i)).collect();
    let mut sorted = got.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, got, "delivered twice or out of order: {got:?}");
    assert!(lost.is_empty(), "lost {lost:?}\n{}", b.log());
    assert!(metric(b.addr, "kvs_cluster_replayed_messages_total").await > 0);
    assert_eq!(
        metric(b.addr, "kvs_cluster_moving_messages_lost_total").await,
        0
    );
}

#[tokio::test]
async fn sockets_paused_by_an_owner_that_dies_during_its_hand_over_move_when_it_is_taken_for_dead()
{
    let (_dir, config) = short_grace();
    let flags = ["--config", config.as_str()];
    let redis = Redis::start();
    // A connects as a user of its own, whose reads the test takes away: A then never hears
    // B's answer to its pause, and waits for it, the time for the test to kill it.
    let slow = SlowUser::add(&redis);
    let mut a = Node::start_with(&redis.url(), "127.0.0.1", &flags, &SLOW_USER);
    let b = Node::start(&redis, "127.0.0.2", &flags);
    let c = Node::start(&redis, "127.0.0.3", &flags);
    let arn = create(a.addr, "paused").await;
    let mut master = connect(a.addr, &arn, None).await;
    let v1 = connect(b.addr, &arn, Some("v1")).await;
    let mut v2 = connect(b.addr, &arn, Some("v2")).await;
    slow.stop_reads(&a).await;

    // v1 sends a candidate every 150 ms from now on; A drains (SIGTERM): it closes its own
    // client, the master, and pauses B's socket of the channel it hands over.
    let sending = send_candidates(v1, 60, Duration::from_millis(150));
    tokio::spawn(async move { while master.next().await.is_some() {} });
    signal(a.pid(), "TERM");
    // B holds v1's frames from the pause on: it writes nothing more to other nodes.
    let written = "kvs_cluster_inbox_messages_written_total";
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut last = metric(b.addr, written).await;
    let mut still = Instant::now();
    while still.elapsed() < Duration::from_millis(500) {
        assert!(Instant::now() < deadline, "B did not pause v1's socket");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = metric(b.addr, written).await;
        if now != last {
            last = now;
            still = Instant::now();
        }
    }
    // v2 sends 5 candidates, held with its socket, and leaves: they are lost, and counted.
    for i in 0..5 {
        send(
            &mut v2,
            &format!(r#"{{"action":"ICE_CANDIDATE","messagePayload":"9{i:03}"}}"#),
        )
        .await;
    }
    v2.close(None).await.unwrap();
    let lost = "kvs_cluster_moving_messages_lost_total";
    let deadline = Instant::now() + Duration::from_secs(2);
    while metric(b.addr, lost).await < 5 {
        assert!(
            Instant::now() < deadline,
            "v2's candidates not counted lost"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A dies before it tells B where the channel went.
    a.kill();

    // Once B takes A for dead, v1's socket moves, with what A never read and what B held.
    let mut master = reconnect(c.addr, &arn, Duration::from_secs(20)).await;
    let mut v1 = sending.await.unwrap();
    let got = candidates_received(&mut master, Duration::from_secs(2)).await;
    assert_eq!(got, (0..60).collect::<Vec<_>>(), "{}", b.log());
    assert_eq!(metric(b.addr, lost).await, 5);
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"djE="}"#,
    )
    .await;
    assert!(text(&mut v1).await.contains("djE="));
}

/// Sends `count` frames from `ws`'s client, taking `frames` in turn, as fast as its socket
/// takes them, while reading what comes until 3 s pass without any; returns the frames read,
/// whether the socket was closed, and the socket.
async fn flood(ws: Ws, frames: Vec<String>, count: usize) -> (usize, Option<String>, Ws) {
    use futures_util::SinkExt as _;
    let (mut sink, mut stream) = ws.split();
    let reading = tokio::spawn(async move {
        let mut read = 0;
        let mut closed = None;
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(3), stream.next()).await
        {
            match message {
                Message::Text(_) => read += 1,
                Message::Close(frame) => closed = Some(format!("{frame:?}")),
                _ => {}
            }
        }
        (read, closed, stream)
    });
    for n in 0..count {
        let frame = frames[n % frames.len()].clone();
        if sink.send(Message::Text(frame.into())).await.is_err() {
            break;
        }
    }
    let (read, closed, stream) = reading.await.unwrap();
    (read, closed, stream.reunite(sink).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_flooded_by_its_own_bridged_sockets_and_by_another_node_never_wedges() {
    const FLOOD: usize = 60_000;
    const VIEWERS: usize = 8;
    // Rates raised so that nothing is throttled: the floods fill the node's queues instead.
    let (_dir, config) = limits_config(
        "flood",
        "ice_candidates_per_second = 10000000\nsdp_per_second = 10000000\n",
    );
    let flags = ["--config", config.as_str()];
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &flags);
    let b = Node::start(&redis, "127.0.0.2", &flags);
    let mut c = Node::start(&redis, "127.0.0.3", &flags);
    // Y: C owns it, its master and viewer connect through A; C dies, A claims it, and both
    // sockets stay bridged to A itself.
    let y = create(c.addr, "own").await;
    let first = connect(c.addr, &y, None).await;
    let mut y_master = connect(a.addr, &y, None).await;
    drop(first);
    let mut y_viewer = connect(a.addr, &y, Some("v1")).await;
    c.kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        send(
            &mut y_viewer,
            r#"{"action":"SDP_OFFER","messagePayload":"cHJvYmU="}"#,
        )
        .await;
        if next_text(&mut y_master, Duration::from_millis(500))
            .await
            .is_some_and(|text| text.contains("cHJvYmU="))
        {
            break;
        }
        assert!(Instant::now() < deadline, "Y did not move to A");
    }
    // X: B owns it, its master on B, its viewers on A (several, so that what waits for each
    // stays within what a socket's queue holds).
    let x = create(b.addr, "other").await;
    let x_master = connect(b.addr, &x, None).await;
    let mut x_viewers = Vec::new();
    for n in 0..VIEWERS {
        x_viewers.push(connect(a.addr, &x, Some(&format!("v{n}"))).await);
        // Within the channel's connect rate.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let to = |id: &str| {
        format!(
            r#"{{"action":"ICE_CANDIDATE","recipientClientId":"{id}","messagePayload":"bQ=="}}"#
        )
    };
    // Both masters flood their viewers at once: A writes X's frames from its inbox to bridged
    // sockets, and Y's go through its queue to itself.
    let started = Instant::now();
    let x_frames: Vec<String> = (0..VIEWERS).map(|n| to(&format!("v{n}"))).collect();
    let mut tasks = vec![
        tokio::spawn(flood(x_master, x_frames, FLOOD)),
        tokio::spawn(flood(y_master, vec![to("v1")], FLOOD)),
        tokio::spawn(flood(y_viewer, vec![], 0)),
    ];
    for viewer in x_viewers {
        tasks.push(tokio::spawn(flood(viewer, vec![], 0)));
    }
    // Bounded: a node that stops reading a flooding socket without closing it leaves its
    // sender waiting.
    let mut results = Vec::new();
    for task in tasks {
        let result = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("a flood did not end within 60 s");
        results.push(result.unwrap());
    }
    let x_read: usize = results[3..].iter().map(|(read, _, _)| read).sum();
    let closed: Vec<&String> = results
        .iter()
        .filter_map(|(_, closed, _)| closed.as_ref())
        .collect();
    eprintln!(
        "flooded for {:?}: X's viewers read {x_read}, Y's {}, of {FLOOD} each; closed: {closed:?}",
        started.elapsed(),
        results[2].0
    );
    let mut results = results.into_iter();
    let (_, _, mut x_master) = results.next().unwrap();
    let (_, _, y_master) = results.next().unwrap();
    let (_, _, y_viewer) = results.next().unwrap();
    let (_, x_closed, mut x_viewer) = results.next().unwrap();
    // A still relays what B sends it: an answer reaches X's viewer (connected again if A
    // closed it as a slow consumer).
    if x_closed.is_some() {
        drop(x_viewer);
        x_viewer = reconnect_as(a.addr, &x, Some("v0"), Duration::from_secs(10)).await;
    }
    let answer = r#"{"action":"SDP_ANSWER","recipientClientId":"v0","messagePayload":"ZW5k"}"#;
    send(&mut x_master, answer).await;
    let relayed = |mut ws: Ws| async move {
        while let Some(text) = next_text(&mut ws, Duration::from_secs(10)).await {
            if text.contains("ZW5k") {
                return Some(ws);
            }
        }
        None
    };
    assert!(
        relayed(x_viewer).await.is_some(),
        "A relays nothing more from B\n{}",
        a.log()
    );
    // And Y's clients talk through it, connecting again (A may have closed the master that
    // flooded it, for want of room in its queue to itself, and the viewer too, as a slow
    // consumer).
    drop((y_master, y_viewer));
    let y_master = reconnect(a.addr, &y, Duration::from_secs(10)).await;
    let mut y_viewer = reconnect_as(a.addr, &y, Some("v1"), Duration::from_secs(10)).await;
    send(
        &mut y_viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"ZW5k"}"#,
    )
    .await;
    assert!(
        relayed(y_master).await.is_some(),
        "A relays nothing more of Y\n{}",
        a.log()
    );
}
