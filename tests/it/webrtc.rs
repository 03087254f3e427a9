//! A real WebRTC connection through our signaling: a str0m master and viewer exchange their
//! SDP offer and answer and their trickled ICE candidates through the in-process server, connect
//! over loopback UDP, and ping each other over a data channel: on host candidates, and
//! relay-only through a real coturn with the TURN credentials our GetIceServerConfig issued.

// Marks the helpers below as test code, for clippy's `allow-*-in-tests`.
#![cfg(test)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use kvs_ice_rest::{Credentials, TurnConfig, TurnSecret};
use kvs_signaling_proto::{IceServerTtl, IceUri, PeerId};
use kvs_signaling_server::{Server, ServerConfig};
use kvs_signaling_tests::turn::Coturn;
use kvs_signaling_tests::webrtc::{LocalCandidate, PairOptions, Report, run_pair};

const KEY: &str = "AKIDWEBRTCTEST";
const SECRET: &str = "webrtc-test-secret";
const TURN_SECRET: &str = "turn-secret";

async fn start() -> Server {
    start_with_turn("turn:127.0.0.1:3478?transport=udp", "stun:127.0.0.1:3478").await
}

/// The server, handing out `turn` and `stun` with credentials signed by [`TURN_SECRET`].
async fn start_with_turn(turn: &str, stun: &str) -> Server {
    let ice = TurnConfig::new(
        vec![IceUri::new(turn).unwrap()],
        vec![IceUri::new(stun).unwrap()],
        vec![TurnSecret::new(TURN_SECRET)],
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
    let timeline = timeline(&report);
    assert_data_both_ways(&report, rounds, &timeline);

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

fn timeline(report: &Report) -> String {
    let timeline: Vec<String> = report.timeline.iter().map(ToString::to_string).collect();
    timeline.join("\n")
}

/// The data went both ways, in order, with the right content.
fn assert_data_both_ways(report: &Report, rounds: u32, timeline: &str) {
    let pings: Vec<String> = (1..=rounds).map(|n| format!("ping {n}")).collect();
    let pongs: Vec<String> = (1..=rounds).map(|n| format!("pong {n}")).collect();
    assert_eq!(report.viewer.sent, pings, "{timeline}");
    assert_eq!(report.master.received, pings, "{timeline}");
    assert_eq!(report.master.sent, pongs, "{timeline}");
    assert_eq!(report.viewer.received, pongs, "{timeline}");
    assert_eq!(report.master.channel_label.as_deref(), Some("kvs-ping"));
    assert_eq!(report.viewer.channel_label.as_deref(), Some("kvs-ping"));
}

/// Issue #6: the same pair, relay-only. Each peer allocates on a real coturn with the TURN
/// credentials our server issued in GetIceServerConfig (coturn checks them against the same
/// `static-auth-secret`), trickles its relayed address as its only candidate, and str0m's
/// datagrams go peer -> coturn -> coturn -> peer in Send and Data indications.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_through_coturn() {
    let started = Instant::now();
    let coturn = tokio::task::spawn_blocking(|| Coturn::start(&[TURN_SECRET]))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let server = start_with_turn(&coturn.turn_uri(), &coturn.stun_uri()).await;

    let rounds = 3;
    let options = PairOptions::default()
        .rounds(rounds)
        .timeout(Duration::from_secs(20))
        .local_candidates(vec![LocalCandidate::Relay])
        .viewer_id("str0m-relay-viewer");
    let report = match run_pair(
        server.public_url(),
        "us-west-2",
        Credentials::new(KEY, SECRET),
        "webrtc-relay-pair",
        options,
    )
    .await
    {
        Ok(report) => report,
        Err(err) => panic!("{err}\ncoturn log:\n{}", coturn.log()),
    };
    let timeline = timeline(&report);
    assert_data_both_ways(&report, rounds, &timeline);

    // The candidates went through the server, and no side had any but its relay candidate.
    assert_eq!(
        report.master.remote_candidates, report.viewer.local_candidates,
        "{timeline}"
    );
    assert_eq!(
        report.viewer.remote_candidates, report.master.local_candidates,
        "{timeline}"
    );
    for sdp in [
        &report.viewer.local_description,
        &report.master.local_description,
    ] {
        let sdp = sdp.as_deref().unwrap();
        assert!(!sdp.contains("a=candidate"), "{sdp}");
    }
    let relay_ports = coturn.relay_ports();
    let mut relayed = Vec::new();
    for peer in [&report.master, &report.viewer] {
        let relay = peer.relay.as_ref().unwrap();
        // The TURN server is the one GetIceServerConfig named, and coturn relays on its own ports.
        assert_eq!(relay.uri, coturn.turn_uri());
        assert_eq!(relay.server, coturn.addr());
        let address = relay.relayed_address;
        assert_eq!(address.ip(), coturn.addr().ip());
        assert!(relay_ports.contains(&address.port()), "{address}");
        relayed.push(address);

        // Every candidate exchanged is `typ relay` on coturn's relayed address.
        assert_eq!(peer.local_candidates.len(), 1, "{timeline}");
        assert_eq!(peer.remote_candidates.len(), 1, "{timeline}");
        for line in peer.local_candidates.iter().chain(&peer.remote_candidates) {
            assert!(line.contains(" typ relay"), "{line}");
            assert!(!line.contains(" typ host"), "{line}");
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port: u16 = fields[5].parse().unwrap();
            assert_eq!(fields[4], "127.0.0.1", "{line}");
            assert!(relay_ports.contains(&port), "{line}");
        }
        assert!(
            peer.local_candidates[0].contains(&format!(
                "{} {} typ relay",
                address.ip(),
                address.port()
            )),
            "{timeline}"
        );

        // The proof that the path went through TURN: the peer's socket only ever exchanged
        // datagrams with coturn, and str0m's went in Send indications and came back in Data
        // indications.
        let others: Vec<_> = peer
            .datagrams_by_address
            .iter()
            .filter(|(address, _)| **address != coturn.addr())
            .collect();
        assert!(others.is_empty(), "{others:?}\n{timeline}");
        let with_coturn = peer.datagrams_by_address[&coturn.addr()];
        assert_eq!(with_coturn.sent, peer.datagrams_sent);
        assert_eq!(with_coturn.received, peer.datagrams_received);
        assert!(
            relay.send_indications > 0 && relay.data_indications > 0,
            "{relay:?}"
        );
        assert!(with_coturn.sent > relay.send_indications, "{relay:?}");
        assert!(with_coturn.received > relay.data_indications, "{relay:?}");
        assert_eq!(relay.permitted, vec![coturn.addr().ip()], "{relay:?}");
        assert!(peer.ice_connected_at.is_some() && peer.connected_at.is_some());
    }
    assert_ne!(relayed[0], relayed[1]);
    // Each side's only remote candidate is the other's relayed address, and it asked coturn
    // for a permission for it.
    let (master, viewer) = (
        report.master.relay.as_ref().unwrap(),
        report.viewer.relay.as_ref().unwrap(),
    );
    assert_eq!(master.permissions_requested, vec![viewer.relayed_address]);
    assert_eq!(viewer.permissions_requested, vec![master.relayed_address]);
    // What one side sent through the relay is what the other received from it, or close: UDP
    // on loopback loses nothing in practice, but the last datagrams may still be on their way
    // when the viewer stops.
    assert!(master.data_indications <= viewer.send_indications);
    assert!(viewer.data_indications <= master.send_indications);

    eprintln!(
        "relay_only_through_coturn: pair done in {:.3} s, {:.3} s with coturn and the server; \
         master {} Send / {} Data indications, viewer {} / {}",
        report.elapsed.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        master.send_indications,
        master.data_indications,
        viewer.send_indications,
        viewer.data_indications,
    );
    server.stop().await;
}
