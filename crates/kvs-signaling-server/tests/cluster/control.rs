//! The control plane in Redis: any node answers any call, and two nodes racing on the same
//! CreateSignalingChannel, UpdateSignalingChannel or DeleteSignalingChannel give exactly the
//! answers one server would.

use std::time::Duration;

use super::harness::{Node, Redis, call, create, get};

#[tokio::test]
async fn any_node_answers_any_call_and_races_resolve_as_on_one_server() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);

    // Made on one node, seen on the other.
    let arn = create(a.addr, "shared").await;
    let described = call(
        b.addr,
        "/describeSignalingChannel",
        r#"{"ChannelName":"shared"}"#,
    )
    .await;
    assert_eq!(described.status, 200, "{}", described.body);
    assert_eq!(described.json()["ChannelInfo"]["ChannelARN"], arn.as_str());
    let endpoints = call(
        b.addr,
        "/getSignalingChannelEndpoint",
        &format!(
            r#"{{"ChannelARN":"{arn}","SingleMasterChannelEndpointConfiguration":{{"Protocols":["WSS","HTTPS"],"Role":"MASTER"}}}}"#
        ),
    )
    .await;
    assert_eq!(endpoints.status, 200, "{}", endpoints.body);
    // The balancer's URL, never a node's: the C SDK caches what it gets.
    assert!(
        endpoints.body.contains("ws://signaling.test")
            && endpoints.body.contains("http://signaling.test"),
        "{}",
        endpoints.body
    );

    // Twenty races on the same name: exactly one create wins each, the other gets the error
    // one server gives a second create.
    for round in 0..20 {
        let name = format!("race-{round}");
        let body = format!(r#"{{"ChannelName":"{name}"}}"#);
        let (first, second) = tokio::join!(
            call(a.addr, "/createSignalingChannel", &body),
            call(b.addr, "/createSignalingChannel", &body)
        );
        let mut statuses = [first.status, second.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 400], "{first:?} {second:?}");
        let loser = if first.status == 400 { &first } else { &second };
        assert!(
            loser.body.contains("ResourceInUseException"),
            "{}",
            loser.body
        );
    }

    // Updates racing with the same CurrentVersion: one wins, the other is told the version
    // changed.
    let described = call(
        a.addr,
        "/describeSignalingChannel",
        r#"{"ChannelName":"shared"}"#,
    )
    .await;
    let version = described.json()["ChannelInfo"]["Version"]
        .as_str()
        .unwrap()
        .to_owned();
    let update = |ttl: u32| {
        format!(
            r#"{{"ChannelARN":"{arn}","CurrentVersion":"{version}","SingleMasterConfiguration":{{"MessageTtlSeconds":{ttl}}}}}"#
        )
    };
    let (thirty, forty) = (update(30), update(40));
    let (first, second) = tokio::join!(
        call(a.addr, "/updateSignalingChannel", &thirty),
        call(b.addr, "/updateSignalingChannel", &forty)
    );
    let mut statuses = [first.status, second.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "{first:?} {second:?}");
    let loser = if first.status == 400 { &first } else { &second };
    assert!(
        loser.body.contains("VersionMismatchException"),
        "{}",
        loser.body
    );
    let winner_ttl = if first.status == 200 { 30 } else { 40 };
    let described = call(
        b.addr,
        "/describeSignalingChannel",
        r#"{"ChannelName":"shared"}"#,
    )
    .await;
    assert_eq!(
        described.json()["ChannelInfo"]["SingleMasterConfiguration"]["MessageTtlSeconds"],
        winner_ttl
    );

    // Deletes racing: one deletes, the other finds nothing, as one server would answer.
    let delete = format!(r#"{{"ChannelARN":"{arn}"}}"#);
    let (first, second) = tokio::join!(
        call(a.addr, "/deleteSignalingChannel", &delete),
        call(b.addr, "/deleteSignalingChannel", &delete)
    );
    let mut statuses = [first.status, second.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 404], "{first:?} {second:?}");

    // Listing: every channel, from either node, with pagination.
    let listed = call(a.addr, "/listSignalingChannels", r#"{"MaxResults":15}"#).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let page = listed.json();
    assert_eq!(page["ChannelInfoList"].as_array().unwrap().len(), 15);
    let token = page["NextToken"].as_str().unwrap();
    let rest = call(
        b.addr,
        "/listSignalingChannels",
        &format!(r#"{{"MaxResults":15,"NextToken":"{token}"}}"#),
    )
    .await;
    assert_eq!(rest.json()["ChannelInfoList"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn a_node_refuses_to_start_without_a_public_url_or_on_an_evicting_redis() {
    let redis = Redis::start();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kvs-signaling"))
        .args([
            "serve",
            "--no-tls",
            "--in-memory",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--cluster", &redis.url()])
        .args(["--access-key-id", "AKIDX", "--secret-access-key", "x"])
        .env_remove("KVS_PUBLIC_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--public-url is required in cluster mode"),
        "{stderr}"
    );

    assert_eq!(
        redis.cli(&["CONFIG", "SET", "maxmemory-policy", "volatile-lru"]),
        "OK"
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kvs-signaling"))
        .args([
            "serve",
            "--no-tls",
            "--in-memory",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--cluster", &redis.url(), "--public-url", "http://lb.test"])
        .args(["--access-key-id", "AKIDX", "--secret-access-key", "x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("maxmemory-policy volatile-lru") && stderr.contains("noeviction"),
        "{stderr}"
    );
}

#[tokio::test]
async fn health_warns_when_nodes_run_with_different_shared_settings() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    // The same settings: all is well.
    let health = get(a.addr, "/health").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    // A third node allowing another origin for CORS: both the others say so (healthy still,
    // since each node works; the warning is for the operator).
    let c = Node::start(
        &redis,
        "127.0.0.3",
        &["--cors-origin", "https://other.example"],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let health = get(a.addr, "/health").await;
        assert_eq!(health.status, 200);
        if health.body.contains("warning") {
            assert!(health.body.contains("CORS"), "{}", health.body);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no warning: {}",
            health.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(get(c.addr, "/health").await.body.contains("warning"));
    drop(b);
}
