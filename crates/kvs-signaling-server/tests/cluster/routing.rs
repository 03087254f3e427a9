//! Every routing rule across nodes: a master and its viewers on different nodes talk as on
//! one node, messages to absent recipients are held, the newest connection of a client id
//! wins across nodes, the viewer limit counts every node's viewers, and refusals and
//! STATUS_RESPONSE are the owner's.

use std::time::Duration;

use super::harness::{Node, Redis, call, closed, connect, create, next_text, send, text};

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
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
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
    // The older gets nothing more, and its frames are dropped.
    assert_eq!(
        next_text(&mut older, Duration::from_millis(300)).await,
        None
    );
    send(
        &mut older,
        r#"{"action":"SDP_OFFER","messagePayload":"b2xk"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut master, Duration::from_millis(300)).await,
        None
    );
    // Its late close does not unregister the newer.
    drop(older);
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(
        &mut master,
        r#"{"action":"ICE_CANDIDATE","recipientClientId":"phone","messagePayload":"Yw=="}"#,
    )
    .await;
    assert_eq!(
        text(&mut newer).await,
        r#"{"messagePayload":"Yw==","messageType":"ICE_CANDIDATE"}"#
    );
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
