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
//! Options: `--endpoint URL`, `--region REGION` (us-west-2), `--channel NAME`
//! (webrtc-data-channel), `--ca-pem FILE` (a CA to trust besides the web's), `--rounds N` (3),
//! `--timeout SECONDS` (20).

#![expect(clippy::print_stdout, reason = "the example reports on stdout")]

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use kvs_ice_rest::{Credentials, TlsTrust, TurnConfig, TurnSecret};
use kvs_signaling_proto::{IceServerTtl, IceUri};
use kvs_signaling_server::{Server, ServerConfig};
use kvs_signaling_tests::webrtc::{PairOptions, run_pair};

const KEY: &str = "AKIDWEBRTCEXAMPLE";
const SECRET: &str = "webrtc-example-secret";

struct Args {
    endpoint: Option<String>,
    region: String,
    channel: String,
    ca_pem: Option<String>,
    rounds: u32,
    timeout: Duration,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        endpoint: None,
        region: "us-west-2".to_owned(),
        channel: "webrtc-data-channel".to_owned(),
        ca_pem: None,
        rounds: 3,
        timeout: Duration::from_secs(20),
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

    let (server, endpoint, credentials) = match &args.endpoint {
        Some(endpoint) => {
            let key = std::env::var("KVS_ACCESS_KEY_ID")
                .map_err(|_| "KVS_ACCESS_KEY_ID: needed with --endpoint")?;
            let secret = std::env::var("KVS_SECRET_ACCESS_KEY")
                .map_err(|_| "KVS_SECRET_ACCESS_KEY: needed with --endpoint")?;
            (None, endpoint.clone(), Credentials::new(key, secret))
        }
        None => {
            let server = start_server(&args.region).await?;
            let endpoint = server.public_url().to_owned();
            println!("signaling server started in-process at {endpoint}");
            (Some(server), endpoint, Credentials::new(KEY, SECRET))
        }
    };

    let options = PairOptions::default()
        .rounds(args.rounds)
        .timeout(args.timeout)
        .trust(trust)
        .observer(|step| println!("{step}"));
    let outcome = run_pair(&endpoint, &args.region, credentials, &args.channel, options).await;
    if let Some(server) = server {
        server.stop().await;
    }
    let report = match outcome {
        Ok(report) => report,
        Err(err) => {
            println!("FAILED: {}", err.message);
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
        println!("{name}: sent {:?}", peer.sent);
        println!("{name}: received {:?}", peer.received);
    }
    println!("done in {:.3} s", report.elapsed.as_secs_f64());
    Ok(())
}

fn at(when: Option<Duration>) -> String {
    when.map_or_else(|| "-".to_owned(), |d| format!("{:.3} s", d.as_secs_f64()))
}

async fn start_server(region: &str) -> Result<Server, Box<dyn Error>> {
    // The ICE servers are handed out but not used: the peers only have host candidates.
    let ice = TurnConfig::new(
        vec![IceUri::new("turn:127.0.0.1:3478?transport=udp")?],
        vec![IceUri::new("stun:127.0.0.1:3478")?],
        vec![TurnSecret::new("webrtc-example-turn-secret")],
        IceServerTtl::default(),
    )?;
    let listen: SocketAddr = "127.0.0.1:0".parse()?;
    let config = ServerConfig::new(listen, vec![Credentials::new(KEY, SECRET)], ice).region(region);
    Ok(Server::start(config).await?)
}
