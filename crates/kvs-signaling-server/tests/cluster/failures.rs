//! Losing a node, and losing Redis: only the lost node's clients notice, owners free the
//! slots of connections that node held, and nodes recover from Redis coming back without a
//! restart of their own.

use std::time::{Duration, Instant};

use super::harness::{Node, Redis, call, connect, create, next_text, send, signal, text};

/// How long after a node's death its peers act on it: the heartbeat TTL (5 s), a heartbeat
/// interval, and a margin for a loaded machine.
const DEATH_NOTICED: Duration = Duration::from_secs(9);

#[tokio::test]
async fn killing_a_node_that_owns_nothing_frees_its_clients_slots_at_the_owner() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let mut b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "survivor").await;
    // The master connects first, through A: A owns the channel.
    let mut master = connect(a.addr, &arn, None).await;
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    send(
        &mut viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"b25l"}"#,
    )
    .await;
    assert!(text(&mut master).await.contains("b25l"));

    let killed = Instant::now();
    b.kill();
    // The viewer's socket died with its node.
    assert_eq!(next_text(&mut viewer, Duration::from_secs(2)).await, None);
    // Once A notices, it closes the viewer's connection as if its client had: what the master
    // sends v1 from then on is held for v1, not lost to a dead node.
    tokio::time::sleep(DEATH_NOTICED.saturating_sub(killed.elapsed())).await;
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"aGVsZA=="}"#,
    )
    .await;
    let mut back = connect(a.addr, &arn, Some("v1")).await;
    assert_eq!(
        text(&mut back).await,
        r#"{"messagePayload":"aGVsZA==","messageType":"SDP_ANSWER"}"#,
        "{}",
        a.log()
    );
    // The master never noticed: its socket went on relaying.
    send(
        &mut back,
        r#"{"action":"ICE_CANDIDATE","messagePayload":"Yw=="}"#,
    )
    .await;
    assert!(text(&mut master).await.contains("ICE_CANDIDATE"));
}

#[tokio::test]
async fn nodes_recover_when_redis_is_killed_and_comes_back() {
    let mut redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "weathered").await;
    let mut master = connect(a.addr, &arn, None).await;
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    let before = redis.pid();
    redis.restart();
    assert_ne!(redis.pid(), before);
    // Within a bounded time both nodes work again, without a restart of their own: the
    // channel made before is there (Redis's AOF), new calls and connects work across nodes.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let described = call(
            b.addr,
            "/describeSignalingChannel",
            r#"{"ChannelName":"weathered"}"#,
        )
        .await;
        if described.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B did not recover: {} {}",
            described.status,
            described.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fresh = create(b.addr, "after-restart").await;
    let mut other_master = connect(b.addr, &fresh, None).await;
    let mut other_viewer = connect(a.addr, &fresh, Some("w1")).await;
    send(
        &mut other_viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"YWZ0ZXI="}"#,
    )
    .await;
    assert!(
        text(&mut other_master).await.contains("YWZ0ZXI="),
        "{}\n{}",
        a.log(),
        b.log()
    );
    // The sockets of before still relay (their messages went through the restart's gap or
    // after it; none is delivered twice).
    send(
        &mut viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"c3RpbGw="}"#,
    )
    .await;
    let got = text(&mut master).await;
    assert!(got.contains("c3RpbGw="), "{got}");
    assert_eq!(
        next_text(&mut master, Duration::from_millis(500)).await,
        None
    );
}

#[tokio::test]
async fn a_frozen_redis_kills_nobody() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "frozen").await;
    let mut master = connect(a.addr, &arn, None).await;
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    // Frozen past the heartbeat TTL: every node's heartbeat is late by as much, so none is
    // taken for dead when Redis thaws.
    signal(redis.pid(), "STOP");
    tokio::time::sleep(Duration::from_secs(7)).await;
    signal(redis.pid(), "CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    send(
        &mut viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"dGhhd2Vk"}"#,
    )
    .await;
    let got = next_text(&mut master, Duration::from_secs(5)).await;
    assert!(
        got.as_deref().is_some_and(|t| t.contains("dGhhd2Vk")),
        "the viewer's socket lost its master after the freeze: {got:?}\n{}\n{}",
        a.log(),
        b.log()
    );
}
