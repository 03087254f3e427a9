//! Routing through one hub with 10,000 channels of a master and 10 viewers each: the cost per
//! message of a 1 KB offer (viewer to master) and a 300 B candidate (master to viewer), beside
//! proto's decode and encode of the same frames, which any relay pays. The goal: the hub adds
//! at most 1x on top of that (routing costs no more than parsing).
//!
//! Also prints the hub's memory per idle connection, from the process's resident memory before
//! and after opening the 110,000 connections.
//!
//! The send rates are raised for the benchmark: replaying one connection's frames back to back
//! would otherwise measure throttling, not routing. The buckets are still checked.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "benchmark set-up on known-good inputs, and its report"
)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kvs_signaling_core::{ConnId, Hub, HubConfig, OpenConnection, Rate};
use kvs_signaling_proto::{
    ChannelArn, ClientId, ClientMessage, MessagePayload, MessageTtlSeconds, PeerId, ServerEvent,
};

fn arn(name: &str) -> ChannelArn {
    ChannelArn::new(format!(
        "arn:aws:kinesisvideo:us-west-2:123456789012:channel/{name}/1"
    ))
    .unwrap()
}

/// The benchmark's one clock read: the hub sees this instant throughout.
#[allow(clippy::disallowed_methods, reason = "the benchmark's fixed time")]
fn origin() -> Instant {
    Instant::now()
}

const CHANNELS: usize = 10_000;
const VIEWERS: usize = 10;

struct Fleet {
    hub: Hub,
    now: Instant,
    masters: Vec<ConnId>,
    viewers: Vec<ConnId>,
}

fn config() -> HubConfig {
    HubConfig::default()
        .connect_rate(Rate::per_second(1_000_000))
        .sdp_rate(Rate::per_second(1_000_000))
        .ice_candidate_rate(Rate::per_second(1_000_000))
        .master_sdp_rate(Rate::per_second(1_000_000))
        .master_ice_candidate_rate(Rate::per_second(1_000_000))
}

fn fleet() -> Fleet {
    let now = origin();
    let mut hub = Hub::new(config()).unwrap();
    let ttl = MessageTtlSeconds::default();
    let mut masters = Vec::with_capacity(CHANNELS);
    let mut viewers = Vec::with_capacity(CHANNELS * VIEWERS);
    for c in 0..CHANNELS {
        let channel = arn(&format!("channel-{c}"));
        let master = hub
            .handle_open(now, OpenConnection::master(channel.clone(), ttl))
            .unwrap();
        hub.handle_established(now, master);
        masters.push(master);
        for v in 0..VIEWERS {
            let id = ClientId::new(format!("viewer-{v}")).unwrap();
            let viewer = hub
                .handle_open(now, OpenConnection::viewer(channel.clone(), id, ttl))
                .unwrap();
            hub.handle_established(now, viewer);
            viewers.push(viewer);
        }
    }
    assert!(hub.poll_output().is_none());
    Fleet {
        hub,
        now,
        masters,
        viewers,
    }
}

/// The process's resident memory in bytes, on Linux.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn payload(len: usize) -> String {
    let bytes: Vec<u8> = (0..len * 3 / 4).map(|i| (i * 7 % 251) as u8).collect();
    MessagePayload::encode(&bytes).as_str().to_owned()
}

fn hub(c: &mut Criterion) {
    let before = resident_bytes();
    let mut fleet = fleet();
    if let (Some(before), Some(after)) = (before, resident_bytes()) {
        let connections = fleet.hub.connection_count() as u64;
        println!(
            "hub memory: {connections} idle connections in {CHANNELS} channels: {} bytes of \
             resident memory per connection",
            after.saturating_sub(before) / connections
        );
    }

    let offer = format!(
        r#"{{"action":"SDP_OFFER","messagePayload":"{}","correlationId":"1697058567743"}}"#,
        payload(1024)
    );
    let candidate_payload = payload(300);
    let candidates: Vec<String> = (0..VIEWERS)
        .map(|v| {
            format!(
                r#"{{"action":"ICE_CANDIDATE","recipientClientId":"viewer-{v}","messagePayload":"{candidate_payload}"}}"#
            )
        })
        .collect();

    let mut group = c.benchmark_group("hub_10k_channels");
    let sender = PeerId::new("viewer-3").unwrap();

    group.throughput(Throughput::Elements(1));
    group.bench_function("offer_1k/proto_decode_encode", |b| {
        b.iter(|| {
            let message = ClientMessage::decode(black_box(&offer)).unwrap();
            ServerEvent::relay(
                message.action.message_type(),
                Some(&sender),
                message.message_payload,
            )
            .encode()
        })
    });
    // Senders are taken in a stride through all of them, as a server sees them: one frame from
    // here, the next from a connection far away in memory.
    let mut next = 0usize;
    group.bench_function("offer_1k/hub_route", |b| {
        b.iter(|| {
            next = (next + 7919) % fleet.viewers.len();
            fleet
                .hub
                .handle_frame(fleet.now, fleet.viewers[next], black_box(&offer));
            while let Some(output) = fleet.hub.poll_output() {
                black_box(output);
            }
        })
    });
    group.bench_function("candidate_300b/proto_decode_encode", |b| {
        b.iter(|| {
            let message = ClientMessage::decode(black_box(&candidates[3])).unwrap();
            ServerEvent::relay(message.action.message_type(), None, message.message_payload)
                .encode()
        })
    });
    let mut next = 0usize;
    group.bench_function("candidate_300b/hub_route", |b| {
        b.iter(|| {
            next = (next + 7919) % fleet.masters.len();
            let text = &candidates[next % VIEWERS];
            fleet
                .hub
                .handle_frame(fleet.now, fleet.masters[next], black_box(text));
            while let Some(output) = fleet.hub.poll_output() {
                black_box(output);
            }
        })
    });
    group.finish();
    let counters = fleet.hub.counters();
    assert_eq!(counters.throttled + counters.buffered + counters.invalid, 0);
    println!(
        "hub counters after the benchmark: {} delivered",
        counters.delivered
    );
}

criterion_group!(benches, hub);
criterion_main!(benches);
