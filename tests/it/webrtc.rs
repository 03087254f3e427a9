//! A real WebRTC connection through our signaling: a str0m master and viewer exchange their
//! SDP offer and answer and their trickled ICE candidates through the in-process server, connect
//! over loopback UDP, and ping each other over a data channel.

// Marks the helpers below as test code, for clippy's `allow-*-in-tests`.
#![cfg(test)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use kvs_ice_rest::{Credentials, TurnConfig, TurnSecret};
use kvs_signaling_proto::{IceServerTtl, IceUri, PeerId};
use kvs_signaling_server::{Server, ServerConfig};
use kvs_signaling_tests::webrtc::{PairOptions, run_pair};

const KEY: &str = "AKIDWEBRTCTEST";
const SECRET: &str = "webrtc-test-secret";

async fn start() -> Server {
    let ice = TurnConfig::new(
        vec![IceUri::new("turn:127.0.0.1:3478?transport=udp").unwrap()],
        vec![IceUri::new("stun:127.0.0.1:3478").unwrap()],
        vec![TurnSecret::new("turn-secret")],
        IceServerTtl::default(),
    )
    .unwrap();
    let config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![Credentials::new(KEY, SECRET)],
        ice,
    );
    Server::start(config).await.unwrap()
}

/// A counter of the server's `/metrics`.
async fn metric(server: SocketAddr, name: &'static str) -> u64 {
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(server).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in {response}"))
            .trim()
            .parse()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn str0m_peers_connect_through_our_signaling_and_exchange_data() {
    let server = start().await;
    let delivered_before = metric(server.local_addr(), "kvs_messages_delivered_total").await;

    let rounds = 3;
    let options = PairOptions::default()
        .rounds(rounds)
        .timeout(Duration::from_secs(20))
        .viewer_id("str0m-viewer");
    let report = match run_pair(
        server.public_url(),
        "us-west-2",
        Credentials::new(KEY, SECRET),
        "webrtc-pair",
        options,
    )
    .await
    {
        Ok(report) => report,
        Err(err) => panic!("{err}"),
    };
    let timeline: Vec<String> = report.timeline.iter().map(ToString::to_string).collect();
    let timeline = timeline.join("\n");

    // The data went both ways, in order, with the right content.
    let pings: Vec<String> = (1..=rounds).map(|n| format!("ping {n}")).collect();
    let pongs: Vec<String> = (1..=rounds).map(|n| format!("pong {n}")).collect();
    assert_eq!(report.viewer.sent, pings, "{timeline}");
    assert_eq!(report.master.received, pings, "{timeline}");
    assert_eq!(report.master.sent, pongs, "{timeline}");
    assert_eq!(report.viewer.received, pongs, "{timeline}");
    assert_eq!(report.master.channel_label.as_deref(), Some("kvs-ping"));
    assert_eq!(report.viewer.channel_label.as_deref(), Some("kvs-ping"));

    // The offer, the answer and the candidates each went through the server.
    let (master, viewer) = (&report.master.signaling, &report.viewer.signaling);
    assert_eq!((viewer.offers_sent, master.offers_received), (1, 1));
    assert_eq!((master.answers_sent, viewer.answers_received), (1, 1));
    assert!(viewer.candidates_sent >= 1 && master.candidates_sent >= 1);
    assert_eq!(viewer.candidates_sent, master.candidates_received);
    assert_eq!(master.candidates_sent, viewer.candidates_received);
    assert_eq!(
        report.master.remote_candidates, report.viewer.local_candidates,
        "{timeline}"
    );
    assert_eq!(
        report.viewer.remote_candidates, report.master.local_candidates,
        "{timeline}"
    );
    assert_eq!(
        report.master.remote_description,
        report.viewer.local_description
    );
    assert_eq!(
        report.viewer.remote_description,
        report.master.local_description
    );
    assert_eq!(
        report.master.remote_peer,
        Some(PeerId::new("str0m-viewer").unwrap())
    );
    // No candidate rode in the SDP: ICE could only use the trickled ones.
    for sdp in [
        &report.viewer.local_description,
        &report.master.local_description,
    ] {
        let sdp = sdp.as_deref().unwrap();
        assert!(!sdp.contains("a=candidate"), "{sdp}");
    }
    // Every candidate is a loopback host candidate on the peer's own socket.
    for peer in [&report.master, &report.viewer] {
        let address = peer.local_address.unwrap();
        assert!(address.ip().is_loopback());
        for line in &peer.local_candidates {
            assert!(
                line.contains(&format!("{} {} typ host", address.ip(), address.port())),
                "{line}"
            );
        }
        assert!(peer.ice_connected_at.is_some() && peer.connected_at.is_some());
        assert!(peer.datagrams_sent > 0 && peer.datagrams_received > 0);
    }

    let delivered = metric(server.local_addr(), "kvs_messages_delivered_total").await;
    let relayed = u64::from(
        viewer.offers_sent + viewer.candidates_sent + master.answers_sent + master.candidates_sent,
    );
    assert!(
        delivered - delivered_before >= relayed && relayed >= 4,
        "{delivered_before} -> {delivered} delivered, {relayed} relayed\n{timeline}"
    );
    server.stop().await;
}
