//! Two Rust WebRTC peers (str0m), a master and a viewer, find each other through our signaling
//! and ping each other over a data channel on loopback UDP.
//!
//! By default the example starts the signaling server in-process on 127.0.0.1:
//!
//! ```text
//! cargo run -p kvs-signaling-tests --example webrtc-data-channel
//! ```
//!
//! To run against a server that is already up (`kvs-signaling serve`, say), name it; the access
//! key comes from `KVS_ACCESS_KEY_ID` and `KVS_SECRET_ACCESS_KEY`:
//!
//! ```text
//! cargo run -p kvs-signaling-tests --example webrtc-data-channel -- \
//!     --endpoint https://127.0.0.1:8443 --ca-pem dev-ca.pem --channel demo --rounds 5
//! ```
//!
//! Relay-only, as a browser with `iceTransportPolicy: "relay"`: `--relay-only` also starts a
//! coturn (`turnserver`, installed by `scripts/install-test-deps.sh`) on 127.0.0.1, points the
//! in-process server's GetIceServerConfig at it with a shared secret, and each peer allocates a
//! relay there with the credentials the server issued and uses it as its only candidate, so
//! every datagram goes peer -> coturn -> coturn -> peer:
//!
//! ```text
//! cargo run -p kvs-signaling-tests --example webrtc-data-channel -- --relay-only
//! ```
//!
//! With `--endpoint`, `--relay-only` starts no coturn: the peers use the TURN server that
//! server's GetIceServerConfig names.
//!
//! Options: `--endpoint URL`, `--region REGION` (us-west-2), `--channel NAME`
//! (webrtc-data-channel), `--ca-pem FILE` (a CA to trust besides the web's), `--rounds N` (3),
//! `--timeout SECONDS` (20), `--relay-only`.

#![expect(clippy::print_stdout, reason = "the example reports on stdout")]

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use kvs_ice_rest::{Credentials, TlsTrust, TurnConfig, TurnSecret};
use kvs_signaling_proto::{IceServerTtl, IceUri};
use kvs_signaling_server::{Server, ServerConfig};
use kvs_signaling_tests::turn::{Coturn, turnserver_on_path};
use kvs_signaling_tests::webrtc::{LocalCandidate, PairOptions, run_pair};

const KEY: &str = "AKIDWEBRTCEXAMPLE";
const SECRET: &str = "webrtc-example-secret";
const TURN_SECRET: &str = "webrtc-example-turn-secret";

struct Args {
    endpoint: Option<String>,
    region: String,
    channel: String,
    ca_pem: Option<String>,
    rounds: u32,
    timeout: Duration,
    relay_only: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        endpoint: None,
        region: "us-west-2".to_owned(),
        channel: "webrtc-data-channel".to_owned(),
        ca_pem: None,
        rounds: 3,
        timeout: Duration::from_secs(20),
        relay_only: false,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().ok_or(format!("{flag}: a value is missing"));
        match flag.as_str() {
            "--endpoint" => args.endpoint = Some(value()?),
            "--region" => args.region = value()?,
            "--channel" => args.channel = value()?,
            "--ca-pem" => args.ca_pem = Some(value()?),
            "--rounds" => {
                args.rounds = value()?.parse().map_err(|err| format!("--rounds: {err}"))?;
            }
            "--timeout" => {
                let seconds: u64 = value()?
                    .parse()
                    .map_err(|err| format!("--timeout: {err}"))?;
                args.timeout = Duration::from_secs(seconds);
            }
            "--relay-only" => args.relay_only = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = args()?;
    let mut trust = TlsTrust::default();
    if let Some(path) = &args.ca_pem {
        trust = trust.with_pem(&std::fs::read(path)?)?;
    }

    // Started first and dropped last (which kills it): the server hands out its address.
    let coturn = if args.relay_only && args.endpoint.is_none() {
        if !turnserver_on_path() {
            return Err(
                "--relay-only starts coturn, and `turnserver` is not on PATH: install \
                        it with scripts/install-test-deps.sh (or apt-get install coturn)"
                    .into(),
            );
        }
        let coturn = tokio::task::spawn_blocking(|| Coturn::start(&[TURN_SECRET])).await??;
        println!(
            "coturn started at {} (realm {}, relays on 127.0.0.1:{:?})",
            coturn.addr(),
            coturn.realm(),
            coturn.relay_ports()
        );
        Some(coturn)
    } else {
        None
    };

    let (server, endpoint, credentials) = match &args.endpoint {
        Some(endpoint) => {
            let key = std::env::var("KVS_ACCESS_KEY_ID")
                .map_err(|_| "KVS_ACCESS_KEY_ID: needed with --endpoint")?;
            let secret = std::env::var("KVS_SECRET_ACCESS_KEY")
                .map_err(|_| "KVS_SECRET_ACCESS_KEY: needed with --endpoint")?;
            (None, endpoint.clone(), Credentials::new(key, secret))
        }
        None => {
            let server = start_server(&args.region, coturn.as_ref()).await?;
            let endpoint = server.public_url().to_owned();
            println!("signaling server started in-process at {endpoint}");
            (Some(server), endpoint, Credentials::new(KEY, SECRET))
        }
    };

    let mut options = PairOptions::default()
        .rounds(args.rounds)
        .timeout(args.timeout)
        .trust(trust)
        .observer(|step| println!("{step}"));
    if args.relay_only {
        options = options.local_candidates(vec![LocalCandidate::Relay]);
    }
    let outcome = run_pair(&endpoint, &args.region, credentials, &args.channel, options).await;
    if let Some(server) = server {
        server.stop().await;
    }
    let report = match outcome {
        Ok(report) => report,
        Err(err) => {
            println!("FAILED: {}", err.message);
            if let Some(coturn) = &coturn {
                println!("coturn log:\n{}", coturn.log());
            }
            return Err(err.message.into());
        }
    };

    println!();
    for (name, peer) in [("master", &report.master), ("viewer", &report.viewer)] {
        let s = &peer.signaling;
        println!(
            "{name}: UDP {}, signaling sent {} offer(s) {} answer(s) {} candidate(s), \
             received {} offer(s) {} answer(s) {} candidate(s)",
            peer.local_address
                .map_or_else(|| "-".to_owned(), |a| a.to_string()),
            s.offers_sent,
            s.answers_sent,
            s.candidates_sent,
            s.offers_received,
            s.answers_received,
            s.candidates_received,
        );
        println!(
            "{name}: ICE connected at {}, DTLS at {}, channel open at {}; \
             {} datagrams out, {} in",
            at(peer.ice_connected_at),
            at(peer.connected_at),
            at(peer.channel_open_at),
            peer.datagrams_sent,
            peer.datagrams_received,
        );
        if let Some(relay) = &peer.relay {
            println!(
                "{name}: relayed on {} by {} ({}): {} Send indications out, {} Data \
                 indications in, {} dropped; permissions for {:?}",
                relay.relayed_address,
                relay.server,
                relay.uri,
                relay.send_indications,
                relay.data_indications,
                relay.dropped,
                relay.permitted,
            );
        }
        for (address, counts) in &peer.datagrams_by_address {
            println!(
                "{name}: {} datagrams to {address}, {} from it",
                counts.sent, counts.received
            );
        }
        println!("{name}: sent {:?}", peer.sent);
        println!("{name}: received {:?}", peer.received);
    }
    println!("done in {:.3} s", report.elapsed.as_secs_f64());
    Ok(())
}

fn at(when: Option<Duration>) -> String {
    when.map_or_else(|| "-".to_owned(), |d| format!("{:.3} s", d.as_secs_f64()))
}

async fn start_server(region: &str, coturn: Option<&Coturn>) -> Result<Server, Box<dyn Error>> {
    // Without coturn the ICE servers are handed out but not used: the peers only have host
    // candidates.
    let (turn, stun) = match coturn {
        Some(coturn) => (coturn.turn_uri(), coturn.stun_uri()),
        None => (
            "turn:127.0.0.1:3478?transport=udp".to_owned(),
            "stun:127.0.0.1:3478".to_owned(),
        ),
    };
    let ice = TurnConfig::new(
        vec![IceUri::new(turn)?],
        vec![IceUri::new(stun)?],
        vec![TurnSecret::new(TURN_SECRET)],
        IceServerTtl::default(),
    )?;
    let listen: SocketAddr = "127.0.0.1:0".parse()?;
    let config = ServerConfig::new(listen, vec![Credentials::new(KEY, SECRET)], ice).region(region);
    Ok(Server::start(config).await?)
}
