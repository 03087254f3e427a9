#![cfg(test)]

//! Every mode, briefly and at small scale, against the real server and the reference relay,
//! both in this process, on loopback; and the deadline against a server that never answers.

use std::time::{Duration, Instant};

use futures_util::SinkExt as _;
use kvs_ice_rest::{Credentials, RestClient, TlsTrust, TurnConfig, presign_connect_url};
use kvs_signaling_core::{HubConfig, Rate};
use kvs_signaling_loadgen::{LoadError, Mode, PayloadKind, ReferenceRelay, Report, RunConfig, run};
use kvs_signaling_proto::{
    Action, ChannelName, ClientId, ClientMessage, IceServerTtl, IceUri, MessagePayload,
};
use kvs_signaling_server::{Server, ServerConfig};

const KEY: &str = "AKIDLOADGENTEST";
const SECRET: &str = "loadgen-test-secret";

/// The server with the service's limits, or with the message and connect limits raised out of
/// the way.
async fn server(raised: bool) -> Server {
    let ice = TurnConfig::new(
        vec![],
        vec![IceUri::new("stun:127.0.0.1:3478").unwrap()],
        vec![],
        IceServerTtl::default(),
    )
    .unwrap();
    let mut hub = HubConfig::default();
    if raised {
        hub = hub
            .sdp_rate(Rate::per_second(1_000_000))
            .ice_candidate_rate(Rate::per_second(1_000_000))
            .master_sdp_rate(Rate::per_second(1_000_000))
            .master_ice_candidate_rate(Rate::per_second(1_000_000))
            .connect_rate(Rate::per_second(10_000));
    }
    let config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![Credentials::new(KEY, SECRET)],
        ice,
    )
    .hub(hub)
    .shards(2);
    Server::start(config).await.unwrap()
}

/// A short run at small scale; the server is this process.
fn config(endpoint: &str, mode: Mode) -> RunConfig {
    RunConfig::new(endpoint, KEY, SECRET, mode)
        .channels(4)
        .duration(Duration::from_secs(1))
        .warmup(Duration::from_millis(200))
        .deadline(Duration::from_secs(30))
        .server_pid(Some(std::process::id()))
        .progress(false)
}

/// Everything connected and nothing went wrong on the way.
fn assert_clean(report: &Report) {
    let connections = (report.channels * (report.viewers_per_channel + 1)) as u64;
    assert!(!report.deadline_hit, "{report:#?}");
    assert_eq!(report.connect.attempted, connections, "{report:#?}");
    assert_eq!(report.connect.connected, connections, "{report:#?}");
    assert_eq!(report.connect.failed, 0, "{report:#?}");
    assert_eq!(report.connect.held, connections, "{report:#?}");
    assert_eq!(report.connect.closed_early, 0, "{report:#?}");
    assert_eq!(report.connect.latency_us.count, connections, "{report:#?}");
    assert!(report.connect.per_second > 0.0, "{report:#?}");
    assert_eq!(report.messages.status_responses, 0, "{report:#?}");
    assert_eq!(report.messages.undecodable, 0, "{report:#?}");
    assert_eq!(report.messages.other_events, 0, "{report:#?}");
    // The report is what the binary prints.
    let json = serde_json::to_value(report).unwrap();
    assert_eq!(json["mode"], report.mode.as_str());
    assert!(json["connect"]["latency_us"]["p99"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_connects_everything_and_probes_every_pair_twice() {
    let server = server(true).await;
    let report = run(config(server.public_url(), Mode::Hold).viewers(2))
        .await
        .unwrap();
    assert_clean(&report);
    assert_eq!(report.setup.created, 4);
    assert_eq!(
        report.ws_endpoint,
        server.public_url().replacen("http", "ws", 1)
    );
    let probes = report.probes.as_ref().unwrap();
    for round in [&probes.start, &probes.end] {
        assert_eq!(
            (round.pairs, round.ok, round.failed),
            (8, 8, 0),
            "{report:#?}"
        );
    }
    // Two messages per pair and round.
    assert_eq!(report.messages.received, 32, "{report:#?}");
    let server = report.server.as_ref().unwrap();
    assert!(server.rss_before_kib.is_some() && server.rss_after_kib.is_some());
    assert!(server.rss_per_connection_bytes.is_some(), "{report:#?}");
    assert!(report.latency_us.is_none() && report.rate.is_none());

    // A second run finds the channels there; its sockets come from 127.0.0.1 to 127.0.0.3.
    let again = run(config(&report.endpoint, Mode::Hold)
        .duration(Duration::ZERO)
        .source_ips(3))
    .await
    .unwrap();
    assert_eq!((again.setup.created, again.setup.existed), (0, 4));
    assert_eq!(again.probes.unwrap().end.ok, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturate_relays_a_closed_loop() {
    let server = server(true).await;
    let server_url = server.public_url();
    let report = run(config(server_url, Mode::Saturate).window(4))
        .await
        .unwrap();
    assert_clean(&report);
    let messages = &report.messages;
    assert!(
        messages.received > 0 && messages.per_second > 0.0,
        "{report:#?}"
    );
    assert!(messages.measured_seconds >= 0.9, "{report:#?}");
    assert_eq!(messages.window_refills, 0, "{report:#?}");
    // Each message received was sent, less the window still in flight at the end.
    assert!(
        messages.sent_total + 1 >= messages.received_total,
        "{report:#?}"
    );
    let server = report.server.as_ref().unwrap();
    assert!(server.cpu_us_per_message.is_some(), "{report:#?}");
    // Relaying over loopback TCP costs system time; the share is a fraction of the whole.
    assert!(
        server
            .kernel_share
            .is_some_and(|share| share > 0.0 && share <= 1.0),
        "{report:#?}"
    );

    // Again on the same channels: the server delivers what it buffered for the client ids of
    // the first run when they connect again; those leftovers are told apart and ignored, so
    // the window stays the window.
    let again = run(config(server_url, Mode::Saturate).window(4))
        .await
        .unwrap();
    assert_clean(&again);
    eprintln!("stale: {}", again.messages.stale);
    assert!(
        again.messages.sent_total + 1 >= again.messages.received_total,
        "{again:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_times_every_message_both_ways() {
    let server = server(true).await;
    for (payload, viewers) in [(PayloadKind::Offer, 1), (PayloadKind::Candidate, 2)] {
        let mut config = config(server.public_url(), Mode::Rate)
            .rate(400)
            .payload(payload)
            .viewers(viewers)
            .channel_prefix(format!("rate-{}-", payload.as_str()));
        config.server_metrics = true;
        let report = run(config).await.unwrap();
        assert_clean(&report);
        // The server's own view of the window: its relay latency, below the generator's
        // one-way latency, which contains it.
        let inside = report.server_relay_latency_us.as_ref().unwrap();
        assert!(inside.count > 100, "{report:#?}");
        assert!(
            inside.p50 <= report.latency_us.as_ref().unwrap().p99,
            "{report:#?}"
        );
        let rate = report.rate.as_ref().unwrap();
        let latency = report.latency_us.as_ref().unwrap();
        assert!(rate.sent > 100, "{report:#?}");
        assert_eq!(rate.lost, 0, "{report:#?}");
        assert_eq!(rate.received, rate.sent, "{report:#?}");
        assert_eq!(latency.count, rate.received, "{report:#?}");
        assert_eq!(report.messages.received, rate.received);
        assert!(latency.min <= latency.p50 && latency.p50 <= latency.p99);
        assert!(latency.p99 <= latency.max && latency.max > 0, "{report:#?}");
        // 400/s for 1 s, give or take the edges of the window.
        assert!(
            (300.0..=500.0).contains(&rate.achieved_per_second),
            "{report:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_relay_carries_every_mode() {
    let relay = ReferenceRelay::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = format!("ws://{}", relay.local_addr());
    for mode in [Mode::Hold, Mode::Saturate, Mode::Rate] {
        let report = run(config(&endpoint, mode).no_create(true).rate(400))
            .await
            .unwrap();
        assert_clean(&report);
        assert!(!report.setup.created_channels);
        assert!(report.messages.received > 0, "{report:#?}");
        if let Some(rate) = &report.rate {
            assert_eq!(report.latency_us.as_ref().unwrap().count, rate.received);
            assert_eq!(rate.lost, 0, "{report:#?}");
        }
        if let Some(probes) = &report.probes {
            assert_eq!(probes.end.ok, 4, "{report:#?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_messages_are_reported() {
    // The service's limits: 5 SDP messages a second per connection.
    let server = server(false).await;
    let report = run(config(server.public_url(), Mode::Saturate)
        .channels(1)
        .correlation_ids(true))
    .await
    .unwrap();
    assert!(report.messages.status_responses > 0, "{report:#?}");
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.contains("STATUS_RESPONSE"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_cannot_hold_the_run_past_its_deadline() {
    // Accepts TCP connections and never answers the upgrade.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("ws://{}", listener.local_addr().unwrap());
    let _stall = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let report = run(config(&endpoint, Mode::Hold)
        .no_create(true)
        .deadline(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(60)))
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(report.deadline_hit, "{report:#?}");
    assert_eq!(report.connect.connected, 0, "{report:#?}");
    assert_eq!(
        report.connect.failed, report.connect.attempted,
        "{report:#?}"
    );
    assert_eq!(
        report.connect.errors.get("deadline"),
        Some(&8),
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_stop_the_setup() {
    let server = server(true).await;
    let mut config = config(server.public_url(), Mode::Hold);
    config.credentials = Credentials::new(KEY, "not-the-secret");
    let err = run(config).await.unwrap_err();
    assert!(
        matches!(&err, LoadError::Setup { reason } if reason.contains("InvalidSignatureException")),
        "{err}"
    );
}

/// Leaves `count` candidates from viewer `v0` of `channel` waiting in the server for the
/// absent master: what a run that ended leaves behind (offers would be one: a newer offer
/// replaces an undelivered one). The payloads are another run's.
async fn leave_candidates(server: &Server, channel: &str, count: usize) {
    let rest = RestClient::new(
        server.public_url(),
        "us-west-2",
        Credentials::new(KEY, SECRET),
        TlsTrust::default(),
    )
    .unwrap();
    let name = ChannelName::new(channel).unwrap();
    let _ = rest.create_channel(&name).await;
    let arn = rest
        .describe_channel(&name)
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    let url = presign_connect_url(
        rest.credentials(),
        "us-west-2",
        &server.public_url().replacen("http", "ws", 1),
        &arn,
        Some(&ClientId::new("v0").unwrap()),
        std::time::SystemTime::now(),
    )
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let old =
        br#"{"candidate":"candidate:5 1 udp 1 192.0.2.1 9 typ host network-id 1","sdpMid":"0"}"#;
    let frame = ClientMessage::new(Action::IceCandidate, MessagePayload::encode(old)).encode();
    for _ in 0..count {
        ws.send(frame.clone().into()).await.unwrap();
    }
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_an_earlier_run_are_ignored() {
    let server = server(true).await;
    let runs = [
        (Mode::Saturate, PayloadKind::Offer),
        (Mode::Rate, PayloadKind::Candidate),
    ];
    for (mode, payload) in runs {
        // Channels of their own: each run leaves leftovers too.
        let prefix = format!("leftover-{}-", mode.as_str());
        leave_candidates(&server, &format!("{prefix}0"), 5).await;
        let report = run(config(server.public_url(), mode)
            .payload(payload)
            .channels(1)
            .rate(100)
            .channel_prefix(prefix))
        .await
        .unwrap();
        assert_clean(&report);
        assert_eq!(report.messages.stale, 5, "{report:#?}");
        assert_eq!(report.messages.window_refills, 0, "{report:#?}");
        assert!(report.notes.iter().any(|note| note.contains("earlier run")));
        if let Some(rate) = &report.rate {
            assert_eq!(rate.received, rate.sent, "{report:#?}");
        }
    }
}

/// Issue 11: the generator speaks `wss://`, trusting a development CA given as a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturate_over_tls_with_large_offers() {
    let dir = std::env::temp_dir().join(format!("kvs-loadgen-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dev = kvs_signaling_server::dev_certificate(&dir).unwrap();
    let ice = TurnConfig::new(
        vec![],
        vec![IceUri::new("stun:127.0.0.1:3478").unwrap()],
        vec![],
        IceServerTtl::default(),
    )
    .unwrap();
    let hub = HubConfig::default()
        .sdp_rate(Rate::per_second(1_000_000))
        .master_sdp_rate(Rate::per_second(1_000_000))
        .connect_rate(Rate::per_second(10_000));
    let server = Server::start(
        ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            vec![Credentials::new(KEY, SECRET)],
            ice,
        )
        .hub(hub)
        .tls(dev.files.clone()),
    )
    .await
    .unwrap();
    assert!(server.public_url().starts_with("https://"));
    let mut config = config(server.public_url(), Mode::Saturate)
        .window(2)
        .payload(PayloadKind::Large);
    config.ca_pem = Some(std::fs::read(&dev.ca).unwrap());
    let report = run(config).await.unwrap();
    assert_clean(&report);
    assert!(report.ws_endpoint.starts_with("wss://"), "{report:#?}");
    assert!(report.payload_len > 9_000, "{report:#?}");
    assert!(report.messages.received > 0, "{report:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TCP proxy to `to` on a port of its own: its address, and how many connections it took.
async fn counting_proxy(
    to: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (addr, count)
}

/// A Redis that only answers `INFO`: each reading counts 7 more `xadd` calls and 0.5 s more
/// CPU time than the one before.
async fn fake_redis() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut readings = 0u64;
        while let Ok((mut stream, _)) = listener.accept().await {
            readings += 1;
            let info = format!(
                "# CPU\r\nused_cpu_sys:{}\r\nused_cpu_user:0\r\n# Commandstats\r\n\
                 cmdstat_xadd:calls={},usec=1,usec_per_call=1.00\r\n\
                 cmdstat_info:calls={readings},usec=1,usec_per_call=1.00\r\n",
                readings as f64 * 0.5,
                readings * 7
            );
            let mut request = [0u8; 64];
            let _ = stream.read(&mut request).await;
            let reply = format!("${}\r\n{info}\r\n", info.len());
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    });
    addr
}

/// The cluster options: the masters where `--ws-endpoint` says, the viewers through
/// `--viewer-ws-endpoint` (here a proxy to the same server, which counts them), other
/// processes measured beside the server, and a Redis's counters read around the connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_connect_where_they_are_told_and_redis_is_read() {
    let server = server(true).await;
    let (proxy, proxied) = counting_proxy(server.local_addr()).await;
    let redis = fake_redis().await;
    let direct = format!("ws://{}", server.local_addr());
    let report = run(config(server.public_url(), Mode::Hold)
        .viewers(2)
        .ws_endpoint(Some(direct.clone()))
        .viewer_ws_endpoint(Some(format!("ws://{proxy}")))
        .extra_pids(vec![std::process::id()])
        .redis_stats(Some(format!("redis://{redis}"))))
    .await
    .unwrap();
    assert_clean(&report);
    // Four channels of two viewers, each through the proxy; the masters direct.
    assert_eq!(proxied.load(std::sync::atomic::Ordering::SeqCst), 8);
    assert_eq!(report.ws_endpoint, direct);
    assert_eq!(
        report.viewer_ws_endpoint.as_deref(),
        Some(format!("ws://{proxy}").as_str())
    );
    assert_eq!(report.probes.as_ref().unwrap().end.ok, 8, "{report:#?}");
    assert_eq!(report.extra_processes.len(), 1);
    assert_eq!(report.extra_processes[0].pid, std::process::id());
    // Read before and after the connecting: one reading apart, per connect of the twelve.
    let redis = report.redis.as_ref().expect("the Redis was read");
    assert_eq!(redis.commands.get("xadd"), Some(&7), "{redis:#?}");
    assert!(!redis.commands.contains_key("info"), "{redis:#?}");
    assert_eq!(redis.calls, 7);
    assert_eq!(redis.calls_per_connect, Some(0.583), "{redis:#?}");
    assert_eq!(redis.calls_per_message, None);
    assert_eq!(redis.cpu_seconds, 0.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_redis_is_a_note_not_a_failure() {
    let server = server(true).await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let report = run(config(server.public_url(), Mode::Saturate)
        .window(2)
        .redis_stats(Some(closed.to_string())))
    .await
    .unwrap();
    assert_clean(&report);
    assert!(report.redis.is_none());
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.contains("--redis-stats")),
        "{report:#?}"
    );
    let err = run(config(server.public_url(), Mode::Hold).redis_stats(Some("nowhere".into())))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            LoadError::Config {
                name: "--redis-stats",
                ..
            }
        ),
        "{err}"
    );
}
