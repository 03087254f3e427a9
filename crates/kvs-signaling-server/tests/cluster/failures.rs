//! Losing a node, and losing Redis: only the lost node's clients notice, owners free the
//! slots of connections that node held, and nodes recover from Redis coming back without a
//! restart of their own.

use std::time::{Duration, Instant};

use super::harness::{
    Node, Proxy, Redis, SLOW_USER, SlowUser, call, closed, connect, connect_url, connect_with,
    create, get, limits_config, metric, next_text, node_id_of, send, signal, text,
};

/// ICE candidate `n`, its payload numbered.
fn candidate(n: usize) -> String {
    format!(r#"{{"action":"ICE_CANDIDATE","messagePayload":"Y2FuZA{n:04}"}}"#)
}

/// How long after a node's death its peers act on it: the heartbeat TTL (5 s), a heartbeat
/// interval, and a margin for a loaded machine.
const DEATH_NOTICED: Duration = Duration::from_secs(9);

#[tokio::test]
async fn a_sender_hears_what_becomes_of_its_held_message_after_the_owner_dies() {
    let redis = Redis::start();
    let mut a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "told").await;
    let held = format!("kvs:held:{arn}");
    // A viewer connects through A first (A owns the channel); the master, asking for delivery
    // status, through B. Its offer to a viewer that is not there is held by A.
    let _first = connect(a.addr, &arn, Some("v0")).await;
    let mut master = connect_with(b.addr, &arn, None, &[("X-Kvs-DeliveryStatus", "true")]).await;
    send(
        &mut master,
        r#"{"action":"SDP_OFFER","recipientClientId":"late","messagePayload":"b2xk","correlationId":"c1"}"#,
    )
    .await;
    let held_status = text(&mut master).await;
    assert!(held_status.contains(r#""status":"HELD""#), "{held_status}");
    assert!(
        eventually(Duration::from_secs(5), || redis.cli(&["HLEN", &held])
            == "1")
        .await
    );
    // A dies. B takes the channel over with the held offer, and moves the master's socket.
    a.kill();
    tokio::time::sleep(DEATH_NOTICED).await;
    // The viewer connects to the next owner and gets the offer; the master hears DELIVERED.
    let mut late = connect(b.addr, &arn, Some("late")).await;
    assert!(text(&mut late).await.contains("b2xk"));
    assert_eq!(
        next_text(&mut master, Duration::from_secs(5))
            .await
            .as_deref(),
        Some(
            r#"{"deliveryStatus":{"correlationId":"c1","recipientClientId":"late","status":"DELIVERED"},"messageType":"DELIVERY_STATUS"}"#
        ),
        "{}",
        b.log()
    );
}

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

/// Waits until `check` holds, for at most `within`.
async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check()
}

#[tokio::test]
async fn owners_reassert_their_claims_and_held_messages_when_redis_comes_back_without_its_last_writes()
 {
    comes_back_without_its_last_writes(Duration::ZERO).await;
}

/// As a failover goes: Redis is away for longer than the heartbeat TTL (so every node's
/// validity lapses) before it comes back without its last writes.
#[tokio::test]
async fn owners_reassert_their_claims_and_held_messages_after_redis_was_away_past_the_ttl() {
    comes_back_without_its_last_writes(Duration::from_secs(7)).await;
}

async fn comes_back_without_its_last_writes(away: Duration) {
    let mut redis = Redis::start();
    let mut a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "forgetful").await;
    let channel = format!("kvs:chan:{arn}");
    let held = format!("kvs:held:{arn}");
    // Redis's data as it stands before anyone connects: the channel, claimed by nobody.
    let unclaimed = redis.copy_data();
    // The master connects through A (A claims the channel) and answers two viewers that are
    // not there: both answers are held, in A's hub and in their copy in Redis.
    let mut master = connect(a.addr, &arn, None).await;
    for (viewer, payload) in [("v1", "b25l"), ("v2", "dHdv")] {
        send(
            &mut master,
            &format!(
                r#"{{"action":"SDP_ANSWER","recipientClientId":"{viewer}","messagePayload":"{payload}"}}"#
            ),
        )
        .await;
    }
    assert!(
        eventually(Duration::from_secs(5), || redis.cli(&["HLEN", &held])
            == "2")
        .await,
        "the held answers were not copied to Redis: {}",
        a.log()
    );
    let claimed = redis.cli(&["HGET", &channel, "owner"]);
    assert!(!claimed.is_empty());

    // Redis comes back without the writes made since the copy (as after a failover to a
    // replica that lagged): nobody owns the channel there, and nothing is held.
    if !away.is_zero() {
        redis.kill();
        tokio::time::sleep(away).await;
    }
    redis.restart_from(&unclaimed);
    let restarted = Instant::now();
    // A third answer is held at once: its copy reaches Redis before A has noticed (its next
    // heartbeat), finds the claim gone, and waits for A to reassert instead of costing A the
    // channel.
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v3","messagePayload":"dGhyZWU="}"#,
    )
    .await;
    // Within a few heartbeats A sees another Redis and reasserts: the claim is its own again
    // and the held answers are copied again from its hub.
    assert!(
        eventually(Duration::from_secs(10), || {
            redis.cli(&["HGET", &channel, "owner"]) == claimed && redis.cli(&["HLEN", &held]) == "3"
        })
        .await,
        "A did not reassert its claim and held messages: owner {:?}, held {:?}\n{}",
        redis.cli(&["HGET", &channel, "owner"]),
        redis.cli(&["HGETALL", &held]),
        a.log()
    );
    eprintln!(
        "claim and held messages back in Redis {:?} after its restart",
        restarted.elapsed()
    );
    assert!(
        a.log().contains("reasserted this node's claims"),
        "{}",
        a.log()
    );
    assert_eq!(metric(a.addr, "kvs_cluster_held_fenced_total").await, 0);
    assert_eq!(metric(a.addr, "kvs_cluster_reasserts_total").await, 1);
    // So the channel still has one hub: v1, connecting through B, gets its held answer from
    // A's hub, and what it sends reaches the master on A.
    let mut v1 = connect(b.addr, &arn, Some("v1")).await;
    assert_eq!(
        text(&mut v1).await,
        r#"{"messagePayload":"b25l","messageType":"SDP_ANSWER"}"#,
        "{}\n{}",
        a.log(),
        b.log()
    );
    send(
        &mut v1,
        r#"{"action":"ICE_CANDIDATE","messagePayload":"Y2FuZA=="}"#,
    )
    .await;
    assert!(text(&mut master).await.contains("Y2FuZA=="));
    // And the copy in Redis is what a next owner loads: A dies, B takes the channel over,
    // and v2 gets the answer held for it.
    a.kill();
    tokio::time::sleep(DEATH_NOTICED).await;
    let mut v2 = connect(b.addr, &arn, Some("v2")).await;
    assert_eq!(
        text(&mut v2).await,
        r#"{"messagePayload":"dHdv","messageType":"SDP_ANSWER"}"#,
        "{}",
        b.log()
    );
}

#[tokio::test]
async fn a_node_drained_just_after_redis_lost_its_claim_still_hands_its_held_messages_over() {
    // No grace for clients on GO_AWAY: the hand-over follows the SIGTERM at once.
    let (_dir, config) = limits_config("no-grace", "go_away_grace_seconds = 0\n");
    let flags = ["--config", config.as_str()];
    let mut redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &flags);
    let b = Node::start(&redis, "127.0.0.2", &flags);
    let arn = create(a.addr, "handed").await;
    let held = format!("kvs:held:{arn}");
    let unclaimed = redis.copy_data();
    // A owns the channel and holds an answer for v2.
    let mut master = connect(a.addr, &arn, None).await;
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v2","messagePayload":"aGFuZGVk"}"#,
    )
    .await;
    assert!(
        eventually(Duration::from_secs(5), || redis.cli(&["HLEN", &held])
            == "1")
        .await
    );
    // Redis comes back without A's claim, and A is stopped at once, before its heartbeat has
    // told it: its hand-over finds the claim gone on a Redis it has not reasserted on, waits
    // for its heartbeat, reasserts, and hands the channel over with the answer.
    redis.restart_from(&unclaimed);
    // The master answers A's close, so A's drain need not wait out its closing handshake.
    let master = tokio::spawn(async move { closed(&mut master, Duration::from_secs(10)).await });
    let stopping = Instant::now();
    let exited = tokio::task::spawn_blocking(move || {
        let mut a = a;
        let exited = a.terminate(Duration::from_secs(15));
        (exited, a.log())
    })
    .await
    .unwrap();
    assert!(exited.0, "A did not exit: {}", exited.1);
    eprintln!("A drained in {:?}", stopping.elapsed());
    assert_eq!(master.await.unwrap(), Some(1001));
    let mut v2 = connect(b.addr, &arn, Some("v2")).await;
    assert_eq!(
        next_text(&mut v2, Duration::from_secs(5)).await.as_deref(),
        Some(r#"{"messagePayload":"aGFuZGVk","messageType":"SDP_ANSWER"}"#),
        "A:\n{}\nB:\n{}",
        exited.1,
        b.log()
    );
}

#[tokio::test]
async fn a_node_redis_names_owner_of_a_channel_it_let_go_takes_it_again_when_asked() {
    let mut redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "forgotten").await;
    let channel = format!("kvs:chan:{arn}");
    let held = format!("kvs:held:{arn}");
    // A owns the channel and holds an answer for v3; Redis's data is copied with that claim
    // and the answer in it.
    let mut master = connect(a.addr, &arn, None).await;
    let owner = redis.cli(&["HGET", &channel, "owner"]);
    assert!(!owner.is_empty());
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v3","messagePayload":"a2VwdA=="}"#,
    )
    .await;
    assert!(
        eventually(Duration::from_secs(5), || redis.cli(&["HLEN", &held])
            == "1")
        .await
    );
    let named_a = redis.copy_data();
    // A lets the channel go: its claim is gone (as if another node had taken it), so A's next
    // write of the channel is fenced.
    redis.cli(&["HSET", &channel, "owner", ""]);
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v9","messagePayload":"bG9zdA=="}"#,
    )
    .await;
    assert!(
        closed(&mut master, Duration::from_secs(5)).await.is_some(),
        "A kept the channel"
    );
    // Redis comes back naming A the owner, which A does not know: a viewer connecting through
    // B is sent to A, and A, asked, takes the channel again (with what Redis holds for it)
    // instead of redirecting B to itself until B gives up.
    redis.restart_from(&named_a);
    let mut v3 = connect(b.addr, &arn, Some("v3")).await;
    assert_eq!(
        next_text(&mut v3, Duration::from_secs(5)).await.as_deref(),
        Some(r#"{"messagePayload":"a2VwdA==","messageType":"SDP_ANSWER"}"#),
        "{}\n{}",
        a.log(),
        b.log()
    );
    assert_eq!(redis.cli(&["HGET", &channel, "owner"]), owner);
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    let mut master = connect(a.addr, &arn, None).await;
    send(
        &mut viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"YWdhaW4="}"#,
    )
    .await;
    assert!(
        text(&mut master).await.contains("YWdhaW4="),
        "{}\n{}",
        a.log(),
        b.log()
    );
}

#[tokio::test]
async fn what_a_node_read_is_not_replayed_when_redis_comes_back_with_it_in_its_inbox() {
    let mut redis = Redis::start();
    let mut a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "replayed").await;
    // The master connects through A (A owns the channel), the viewer through B.
    let mut master = connect(a.addr, &arn, None).await;
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    let owner = redis.cli(&["HGET", &format!("kvs:chan:{arn}"), "owner"]);
    let inbox = format!("kvs:inbox:{owner}");
    // A is paused, so the viewer's offer waits in A's inbox, and Redis's data is copied with it
    // there; then A reads it (the master gets it) and trims it.
    signal(a.pid(), "STOP");
    send(
        &mut viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"b2xk"}"#,
    )
    .await;
    let queued = eventually(Duration::from_secs(5), || {
        redis.cli(&["XRANGE", &inbox, "-", "+"]).contains("b2xk")
    })
    .await;
    let with_offer = redis.copy_data();
    signal(a.pid(), "CONT");
    assert!(queued, "the offer did not wait in A's inbox");
    assert!(text(&mut master).await.contains("b2xk"));
    assert!(
        eventually(Duration::from_secs(5), || redis.cli(&["XLEN", &inbox])
            == "0")
        .await
    );
    // Redis comes back from the copy, the offer in A's inbox again, once A's trim is answered
    // (with the read after it, which waits a second at most for entries): A's reader, on its
    // new connection, trims what it has read.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart_from(&with_offer);
    assert!(
        eventually(Duration::from_secs(5), || redis.cli(&["XLEN", &inbox])
            == "0")
        .await,
        "A's inbox still holds what A read: {}\n{}",
        redis.cli(&["XRANGE", &inbox, "-", "+"]),
        a.log()
    );
    // Nor does A, reading on from where it stood, relay it again.
    assert_eq!(
        next_text(&mut master, Duration::from_millis(500)).await,
        None
    );
    // So when A dies and B replays A's inbox to the channel's next owner, nothing of it comes
    // back: the master, connecting again through B, is held nothing, and hears what is new.
    a.kill();
    tokio::time::sleep(DEATH_NOTICED).await;
    let mut back = connect(b.addr, &arn, None).await;
    assert_eq!(
        next_text(&mut back, Duration::from_secs(2)).await,
        None,
        "{}",
        b.log()
    );
    send(
        &mut viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"bmV3"}"#,
    )
    .await;
    assert!(text(&mut back).await.contains("bmV3"), "{}", b.log());
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

#[tokio::test]
async fn killed_redis_connections_are_mended_and_nothing_is_delivered_twice() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "reconnected").await;
    let mut master = connect(a.addr, &arn, None).await;
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    // Twenty candidates, with every client connection of Redis killed (the nodes' commands,
    // inbox reads and heartbeats) after the tenth.
    for i in 0..20 {
        if i == 10 {
            let killed = redis.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
            assert!(killed.parse::<u32>().unwrap_or(0) >= 4, "{killed}");
        }
        send(
            &mut viewer,
            &format!(r#"{{"action":"ICE_CANDIDATE","messagePayload":"{i:04}"}}"#),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut got = Vec::new();
    while let Some(frame) = next_text(&mut master, Duration::from_secs(3)).await {
        got.push(frame);
    }
    let expected: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"messagePayload":"{i:04}","messageType":"ICE_CANDIDATE","senderClientId":"v1"}}"#
            )
        })
        .collect();
    assert_eq!(got, expected, "{}\n{}", a.log(), b.log());
    // Both still serve everything.
    assert_eq!(get(a.addr, "/ready").await.status, 200);
    assert_eq!(get(b.addr, "/ready").await.status, 200);
    let fresh = create(b.addr, "after-kill").await;
    let mut other = connect(a.addr, &fresh, Some("w1")).await;
    let mut other_master = connect(b.addr, &fresh, None).await;
    send(
        &mut other,
        r#"{"action":"SDP_OFFER","messagePayload":"b2s="}"#,
    )
    .await;
    assert!(text(&mut other_master).await.contains("b2s="));
}

#[tokio::test]
async fn a_node_cut_off_from_redis_says_so_serves_what_it_owns_and_rejoins() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port);
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start_on(&proxy.url(), "127.0.0.2", &[]);
    // B owns `island`, both its clients on B; A owns `mainland`, with a viewer on B.
    let island = create(b.addr, "island").await;
    let mut island_master = connect(b.addr, &island, None).await;
    let mut island_viewer = connect(b.addr, &island, Some("v1")).await;
    let mainland = create(a.addr, "mainland").await;
    let mut mainland_master = connect(a.addr, &mainland, None).await;
    let mut bridged = connect(b.addr, &mainland, Some("w1")).await;
    send(
        &mut bridged,
        r#"{"action":"SDP_OFFER","messagePayload":"YnJpZGdl"}"#,
    )
    .await;
    assert!(text(&mut mainland_master).await.contains("YnJpZGdl"));
    assert_eq!(get(b.addr, "/ready").await.status, 200);

    proxy.cut();
    let cut = Instant::now();
    // Within the TTL B says it cannot serve fully: not ready, not healthy, and why.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let ready = get(b.addr, "/ready").await;
        if ready.status == 503 {
            assert!(ready.body.contains("cannot reach Redis"), "{}", ready.body);
            break;
        }
        assert!(Instant::now() < deadline, "B still ready when cut off");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(b.addr, "/health").await.status, 503);
    assert_eq!(get(a.addr, "/ready").await.status, 200);
    // B goes on relaying between the sockets it holds of the channel it owns.
    send(
        &mut island_viewer,
        r#"{"action":"SDP_OFFER","messagePayload":"aXNsYW5k"}"#,
    )
    .await;
    assert!(text(&mut island_master).await.contains("aXNsYW5k"));
    // B takes no connects meanwhile: it cannot know who owns what.
    let refused =
        tokio_tungstenite::connect_async(connect_url(b.addr, &island, Some("v2"), &[])).await;
    assert!(refused.is_err(), "B took a connect while cut off");
    // A takes B for dead: B's viewer of A's channel is closed there, its slot freed.
    tokio::time::sleep(DEATH_NOTICED.saturating_sub(cut.elapsed())).await;
    let mut w1_again = connect(a.addr, &mainland, Some("w1")).await;
    send(
        &mut w1_again,
        r#"{"action":"SDP_OFFER","messagePayload":"YWdhaW4="}"#,
    )
    .await;
    assert!(text(&mut mainland_master).await.contains("YWdhaW4="));
    // And A claims B's channel for the clients that reach it: two groups, for as long as the
    // partition lasts.
    let mut island_v3 = connect(a.addr, &island, Some("v3")).await;

    proxy.heal();
    // B rejoins within a bounded time, without a restart: ready again; the channel it lost
    // is closed here (its clients reconnect to its new owner), and so is the socket whose
    // connection A closed while B was away.
    let healed = Instant::now();
    let deadline = healed + Duration::from_secs(10);
    while get(b.addr, "/ready").await.status != 200 {
        assert!(Instant::now() < deadline, "B did not rejoin\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "partition: B ready again {} ms after the heal",
        healed.elapsed().as_millis()
    );
    assert_eq!(
        closed(&mut island_master, Duration::from_secs(5)).await,
        Some(1001),
        "{}",
        b.log()
    );
    assert_eq!(
        closed(&mut bridged, Duration::from_secs(5)).await,
        Some(1001)
    );
    // One owner again: the master reconnecting through B reaches A's hub, and the viewer
    // that joined there during the partition.
    let mut island_master = connect(b.addr, &island, None).await;
    send(
        &mut island_v3,
        r#"{"action":"SDP_OFFER","messagePayload":"djM="}"#,
    )
    .await;
    assert!(text(&mut island_master).await.contains("djM="));
    assert_eq!(
        next_text(&mut island_master, Duration::from_millis(500)).await,
        None
    );
}

#[tokio::test]
async fn entries_that_never_reach_a_node_are_counted_by_it() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "gaps").await;
    let mut master = connect(a.addr, &arn, None).await;
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    let offer = |n: usize| format!(r#"{{"action":"SDP_OFFER","messagePayload":"b2ZmZXI{n}"}}"#);
    send(&mut viewer, &offer(0)).await;
    assert!(text(&mut master).await.contains("b2ZmZXI0"));
    let missing = "kvs_cluster_inbox_entries_missing_total";
    assert_eq!(metric(a.addr, missing).await, 0);

    // A stops (for less than the TTL). Its read already waiting in Redis takes the first entry
    // B writes meanwhile; the others stay in the inbox, and are deleted unread, as the
    // inbox's cap or a Redis that lost writes would.
    let a_id = node_id_of(&redis, a.pid());
    let inbox = format!("kvs:inbox:{a_id}");
    // A's next read is waiting in Redis by then.
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(a.pid(), "STOP");
    let before: Vec<String> = redis
        .cli(&["XRANGE", &inbox, "-", "+"])
        .lines()
        .filter(|line| {
            line.contains('-') && line.chars().next().is_some_and(|c| c.is_ascii_digit())
        })
        .map(str::to_owned)
        .collect();
    for n in 1..=3 {
        send(&mut viewer, &offer(n)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let written: Vec<String> = redis
        .cli(&["XRANGE", &inbox, "-", "+"])
        .lines()
        .filter(|line| {
            line.contains('-') && line.chars().next().is_some_and(|c| c.is_ascii_digit())
        })
        .filter(|id| !before.contains(&(*id).to_owned()))
        .map(str::to_owned)
        .collect();
    // One entry an offer (each went out alone): the first is A's already.
    assert_eq!(written.len(), 3, "{written:?}");
    let lost = &written[1..];
    let mut xdel = vec!["XDEL", inbox.as_str()];
    xdel.extend(lost.iter().map(String::as_str));
    assert_eq!(redis.cli(&xdel), lost.len().to_string());
    signal(a.pid(), "CONT");

    // The next entry shows A the gap in B's batch numbers: it counts the entries lost, and
    // relays what comes after.
    assert!(text(&mut master).await.contains("b2ZmZXI1"));
    send(&mut viewer, &offer(4)).await;
    let seen = text(&mut master).await;
    assert!(seen.contains("b2ZmZXI4"), "{seen}");
    assert_eq!(metric(a.addr, missing).await, lost.len() as u64);
    assert_eq!(metric(b.addr, missing).await, 0);
    assert!(a.log().contains("never reached it"), "{}", a.log());
}

#[tokio::test]
async fn an_inbox_keeps_at_most_its_cap_and_its_node_counts_what_was_trimmed_unread() {
    let (_dir, config) = limits_config(
        "inbox-cap",
        "cluster_inbox_max_entries = 100\nice_candidates_per_second = 100000\n",
    );
    let flags = ["--config", config.as_str()];
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &flags);
    let b = Node::start(&redis, "127.0.0.2", &flags);
    let arn = create(a.addr, "capped").await;
    let mut master = connect(a.addr, &arn, None).await;
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    send(&mut viewer, &candidate(0)).await;
    assert!(text(&mut master).await.contains("Y2FuZA0000"));
    let inbox = format!("kvs:inbox:{}", node_id_of(&redis, a.pid()));

    // A stops reading (for about a second, well within the TTL's 4 s of validity) while B
    // writes 300 entries to its inbox, one a candidate: the inbox keeps about its cap (Redis
    // trims whole nodes of 100 entries).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let entries = "kvs_cluster_inbox_entries_written_total";
    let written_before = metric(b.addr, entries).await;
    signal(a.pid(), "STOP");
    const SENT: usize = 300;
    for n in 1..=SENT {
        send(&mut viewer, &candidate(n)).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let written = loop {
        let written = metric(b.addr, entries).await - written_before;
        if written >= 250 || Instant::now() > deadline {
            break written;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // What B still had queued is in by now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let written = written.max(metric(b.addr, entries).await - written_before);
    let kept: u64 = redis.cli(&["XLEN", &inbox]).parse().unwrap();
    signal(a.pid(), "CONT");
    assert!(written >= 250, "B wrote only {written} entries");
    assert!((100..=200).contains(&kept), "the inbox kept {kept} entries");

    // A relays what was kept, and counts what was trimmed unread: every entry B wrote is
    // kept, taken by A's read already waiting in Redis, or counted missing.
    let mut received = 0;
    while next_text(&mut master, Duration::from_secs(2))
        .await
        .is_some()
    {
        received += 1;
    }
    let missing = metric(a.addr, "kvs_cluster_inbox_entries_missing_total").await;
    assert!(
        (written - kept - 1..=written - kept).contains(&missing),
        "{written} written, {kept} kept, {missing} counted missing, {received} received"
    );
    assert!(received >= kept, "{received} received of {kept} kept");
}

#[tokio::test]
async fn a_node_fallen_behind_its_inbox_has_the_sockets_other_nodes_hold_for_it_closed() {
    let redis = Redis::start();
    // A connects as a user of its own, whose reads the test takes away: A then heartbeats on
    // while its inbox fills, as a node too slow to read it would.
    let slow = SlowUser::add(&redis);
    let (_dir, config) = limits_config(
        "behind",
        "cluster_inbox_high_water = 100\nice_candidates_per_second = 100000\n\
         cluster_heartbeat_seconds = 3\ncluster_node_ttl_seconds = 9\n",
    );
    let flags = ["--config", config.as_str()];
    let a = Node::start_with(&redis.url(), "127.0.0.1", &flags, &SLOW_USER);
    let b = Node::start(&redis, "127.0.0.2", &flags);
    let arn = create(a.addr, "behind").await;
    let mut master = connect(a.addr, &arn, None).await;
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    send(&mut viewer, &candidate(0)).await;
    assert!(text(&mut master).await.contains("Y2FuZA0000"));
    let a_id = node_id_of(&redis, a.pid());
    let inbox = format!("kvs:inbox:{a_id}");
    const SENT: usize = 200;

    // One heartbeat past the mark is no fall behind: A reads nothing for a moment while 5,000
    // empty entries come from elsewhere; once a heartbeat of A's has found them waiting, A
    // reads again and catches up before its next.
    slow.stop_reads(&a).await;
    let flood = "for i = 1, 5000 do redis.call('XADD', KEYS[1], '*', 'v', '1', 'b', \
                 '{\"from\":\"elsewhere\",\"seq\":' .. i .. ',\"msgs\":[]}') end \
                 return redis.call('XLEN', KEYS[1])";
    let queued: usize = redis.cli(&["EVAL", flood, "1", &inbox]).parse().unwrap();
    assert!(queued >= 5000, "{queued}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(a.addr, "kvs_cluster_inbox_unread_entries").await < 5000 {
        assert!(
            Instant::now() < deadline,
            "no heartbeat of A's saw its inbox"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(redis.cli(&["ZSCORE", "kvs:behind", &a_id]), "");
    slow.resume_reads();
    // (Heartbeats 3 s apart leave A's reader, back from its retry's back-off, time to catch
    // up.) A heartbeat of B's later, A is not behind, and the viewer's socket is still open.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(redis.cli(&["ZSCORE", "kvs:behind", &a_id]), "");
    send(&mut viewer, &candidate(1)).await;
    assert!(text(&mut master).await.contains("Y2FuZA0001"));
    assert_eq!(metric(b.addr, "kvs_cluster_shed_sockets_total").await, 0);
    assert_eq!(metric(a.addr, "kvs_cluster_inbox_unread_entries").await, 0);

    // A reads nothing more (but heartbeats on); B's viewer sends 200 candidates again.
    slow.stop_reads(&a).await;
    for n in 1..=SENT {
        send(&mut viewer, &candidate(n)).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Past 100 entries at two of A's heartbeats in a row, A is behind: B closes its socket for
    // A's channel with 1008, and tells A.
    assert_eq!(
        closed(&mut viewer, Duration::from_secs(10)).await,
        Some(1008)
    );
    let queued: u64 = redis.cli(&["XLEN", &inbox]).parse().unwrap();
    assert!(queued >= 100, "A's inbox holds {queued} entries");
    assert_eq!(metric(b.addr, "kvs_cluster_shed_sockets_total").await, 1);
    assert_eq!(metric(a.addr, "kvs_cluster_inbox_behind").await, 1);
    assert!(metric(a.addr, "kvs_cluster_inbox_unread_entries").await >= 100);
    let health = get(b.addr, "/health").await;
    assert!(
        health.body.contains("fell behind") && health.body.contains(&a_id),
        "{}",
        health.body
    );
    // Meanwhile B takes no connect for A's channels: it would wait in A's inbox.
    let refused = tokio::time::timeout(
        Duration::from_secs(1),
        tokio_tungstenite::connect_async(connect_url(b.addr, &arn, Some("v3"), &[])),
    )
    .await
    .expect("B answered at once");
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 500);
        }
        other => panic!("a connect through B: {other:?}"),
    }
    // And no Alexa offer either.
    let body = format!(
        r#"{{"ChannelARN":"{arn}","SenderClientId":"AWS_ALEXA","MessagePayload":"b2ZmZXI="}}"#
    );
    let offer = tokio::time::timeout(
        Duration::from_secs(1),
        call(b.addr, "/v1/send-alexa-offer-to-master", &body),
    )
    .await
    .expect("B answered at once");
    assert_eq!(offer.status, 500, "{}", offer.body);
    assert!(offer.body.contains("overloaded"), "{}", offer.body);
    assert_eq!(metric(b.addr, "kvs_cluster_behind_refusals_total").await, 2);

    // A reads again: it relays what waited, in order, to its own socket (never closed),
    // catches up, and is no longer behind.
    slow.resume_reads();
    for n in 1..=SENT {
        let seen = text(&mut master).await;
        assert!(seen.contains(&format!("Y2FuZA{n:04}")), "{n}: {seen}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(a.addr, "kvs_cluster_inbox_behind").await != 0
        || get(b.addr, "/health").await.body.contains("fell behind")
    {
        assert!(Instant::now() < deadline, "A still behind");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Sockets B holds for A's channels stay open again.
    let mut viewer = connect(b.addr, &arn, Some("v2")).await;
    send(&mut viewer, OFFER_V2).await;
    assert_eq!(text(&mut master).await, OFFER_V2_SEEN);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    send(&mut viewer, OFFER_V2).await;
    assert_eq!(text(&mut master).await, OFFER_V2_SEEN);
    assert_eq!(metric(b.addr, "kvs_cluster_shed_sockets_total").await, 1);
}

const OFFER_V2: &str = r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXI="}"#;
const OFFER_V2_SEEN: &str =
    r#"{"messagePayload":"b2ZmZXI=","messageType":"SDP_OFFER","senderClientId":"v2"}"#;

#[tokio::test]
async fn a_connect_that_waited_too_long_in_the_owners_inbox_is_refused_and_never_replaces_a_newer_one()
 {
    let redis = Redis::start();
    // A connects as a user of its own, whose reads the test takes away for a while.
    let slow = SlowUser::add(&redis);
    let a = Node::start_with(&redis.url(), "127.0.0.1", &[], &SLOW_USER);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    let arn = create(a.addr, "late-open").await;
    let mut master = connect(a.addr, &arn, None).await;

    // A reads nothing: v1's connect through B waits for A's verdict, three times 2 s, and
    // fails; v1 then connects to A itself.
    slow.stop_reads(&a).await;
    let url = connect_url(b.addr, &arn, Some("v1"), &[]);
    let through_b = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("B answered within 15 s");
    match through_b {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 500);
        }
        other => panic!("a connect through B: {other:?}"),
    }
    let mut v1 = connect(a.addr, &arn, Some("v1")).await;

    // A reads again: B's three opens, each over 1.5 s old by then, are refused, not opened,
    // so the newer v1 keeps its identity.
    let read = "kvs_cluster_inbox_entries_read_total";
    let read_before = metric(a.addr, read).await;
    slow.resume_reads();
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(a.addr, read).await < read_before + 3 {
        assert!(Instant::now() < deadline, "A did not read B's opens");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(
        &mut master,
        r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"YW5zd2Vy"}"#,
    )
    .await;
    assert_eq!(
        text(&mut v1).await,
        r#"{"messagePayload":"YW5zd2Vy","messageType":"SDP_ANSWER"}"#
    );
    assert_eq!(metric(a.addr, "kvs_cluster_remote_connections").await, 0);
    assert_eq!(metric(a.addr, "kvs_cluster_stale_opens_total").await, 3);
    assert!(
        a.log().contains("refused a connect that waited too long"),
        "{}",
        a.log()
    );
}
