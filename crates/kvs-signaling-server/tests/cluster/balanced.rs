//! The official KVS WebRTC JavaScript SDK's end-to-end run (`tests/js-sdk/e2e.mjs`, which
//! `js_sdk.rs` runs against one server) through two nodes behind HAProxy balancing TCP
//! connections round robin, so that the master and the viewers land on different nodes and
//! their messages cross between nodes through Redis.
//!
//! The SDK accepts only `wss://` endpoints and the harness's nodes serve plain HTTP, so the
//! balancer terminates TLS with a development certificate for 127.0.0.1 (Node trusts its CA
//! through `NODE_EXTRA_CA_CERTS`) and passes the plain bytes on, as a balancer offloading TLS
//! does; the nodes hand out the balancer's URL, and the SDK signs its connects for the
//! balancer's host.

use std::time::Duration;

use super::harness::{
    Haproxy, KEY, Node, REGION, Redis, SECRET, TempDir, call, create, free_port, metric,
};
use crate::common;

/// The script's own time limit; it exits 1 when it elapses.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(20);

/// Text messages the node read from its clients' sockets, and text frames it wrote to them.
const READ: &str = "kvs_websocket_messages_received_total";
const WRITTEN: &str = "kvs_websocket_frames_sent_total";

#[tokio::test]
async fn official_js_sdk_through_two_nodes_behind_a_round_robin_balancer() {
    // No skipping when Node is missing: a skipped test reads as a passed one.
    common::require_node(&["amazon-kinesis-video-streams-webrtc", "ws"], &[]);

    let dir = TempDir::new("balanced");
    let dev = kvs_signaling_server::dev_certificate(&dir.0).unwrap();
    let pem = dir.0.join("balancer.pem");
    std::fs::write(
        &pem,
        std::fs::read_to_string(&dev.files.cert).unwrap()
            + &std::fs::read_to_string(&dev.files.key).unwrap(),
    )
    .unwrap();

    let redis = Redis::start();
    // The nodes must know the balancer's URL before it starts, and it their addresses.
    let port = free_port();
    let public_url = format!("https://127.0.0.1:{port}");
    let a = Node::start_with_public_url(&redis, "127.0.0.1", &public_url, &[]);
    let b = Node::start_with_public_url(&redis, "127.0.0.2", &public_url, &[]);
    let balancer = Haproxy::start(port, &[a.addr, b.addr], Some(&pem));

    // REST calls go to the nodes themselves: only the SDK's sockets pass the balancer.
    let arn = create(a.addr, "balanced-e2e").await;
    let wss = format!("wss://127.0.0.1:{port}");
    for node in [a.addr, b.addr] {
        let request = serde_json::json!({
            "ChannelARN": arn,
            "SingleMasterChannelEndpointConfiguration": {"Protocols": ["WSS", "HTTPS"], "Role": "MASTER"},
        });
        let answer = call(node, "/getSignalingChannelEndpoint", &request.to_string()).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(
            answer.json()["ResourceEndpointList"],
            serde_json::json!([
                {"Protocol": "WSS", "ResourceEndpoint": wss},
                {"Protocol": "HTTPS", "ResourceEndpoint": public_url},
            ]),
            "{node} should hand out the balancer"
        );
    }

    let counts = async |node| (metric(node, READ).await, metric(node, WRITTEN).await);
    let before = [counts(a.addr).await, counts(b.addr).await];

    common::run_script(
        "e2e.mjs",
        &[
            ("NODE_EXTRA_CA_CERTS", dev.ca.display().to_string()),
            ("KVS_WSS_ENDPOINT", wss),
            ("KVS_HTTPS_ENDPOINT", public_url),
            ("KVS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
            ("KVS_CHANNEL_ARN", arn),
            ("KVS_E2E_TIMEOUT_MS", SCRIPT_TIMEOUT.as_millis().to_string()),
        ],
        SCRIPT_TIMEOUT,
        "e2e: PASSED",
        // The nodes print their own logs when the test fails.
        || format!("--- haproxy ---\n{}", balancer.log.text()),
    );

    // Which node served whom, from what each node's sockets carried. In e2e.mjs the master
    // writes 4 text messages (an answer and a candidate to each viewer) and is sent 4 (an offer
    // and a candidate from each); each viewer writes 2 and is sent 2; a viewer presigning with
    // a wrong secret is refused before the upgrade and carries none. The script opens its
    // sockets one at a time (that viewer, the master, viewer A, viewer B, each once the one
    // before is open or refused), and round robin sends each connection to the other node
    // than the one before, whichever node it starts with: the refused viewer and viewer A on
    // one node, the master and viewer B on the other. So one node carried 2 and 2 (viewer A
    // alone) and the other 6 and 6; had the master and both viewers shared a node, it would
    // have carried 8 and 8 and the other none.
    let after = [counts(a.addr).await, counts(b.addr).await];
    let carried = |i: usize| (after[i].0 - before[i].0, after[i].1 - before[i].1);
    let mut split = [carried(0), carried(1)];
    split.sort_unstable();
    assert_eq!(
        split,
        [(2, 2), (6, 6)],
        "(messages read, frames written) at {} and {}: {:?}, {:?}; the master and viewer A \
         should be on different nodes\n--- haproxy ---\n{}",
        a.addr,
        b.addr,
        carried(0),
        carried(1),
        balancer.log.text()
    );
}
