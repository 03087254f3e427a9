//! Decode+validate and encode of realistic frames, beside a plain unvalidated serde_json
//! decode of the same bytes.
//!
//! The goal: validation costs at most 1.5x the plain decode.

#![allow(clippy::unwrap_used, reason = "benchmark set-up on known-good inputs")]

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kvs_signaling_proto::{
    ClientMessage, MessagePayload, PayloadJson, PeerId, SdpType, ServerEvent, SessionDescription,
};
use serde::{Deserialize, Serialize};

/// The envelope as a naive relay would decode it: owned strings, no validation.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "only decoded")]
struct PlainOwned {
    action: String,
    recipient_client_id: Option<String>,
    message_payload: String,
    correlation_id: Option<String>,
}

/// The same, borrowing from the frame where it can.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "only decoded")]
struct PlainBorrowed<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    recipient_client_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message_payload: Cow<'a, str>,
    #[serde(borrow)]
    correlation_id: Option<Cow<'a, str>>,
}

/// The event as a naive relay would encode it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlainEvent<'a> {
    message_payload: &'a str,
    message_type: &'a str,
    sender_client_id: &'a str,
}

/// A browser's audio+video offer, cut to the size that makes a 2 KB envelope.
fn offer_envelope_2k() -> String {
    let mut sdp = String::from(
        "v=0\r\no=- 4715385935207245618 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\n\
         a=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:Wq2d\r\na=ice-pwd:pxoQ9m2b5yHjJ1dcq0ZkN6vY\r\n\
         a=ice-options:trickle\r\na=fingerprint:sha-256 4A:1F:9C:0B:33:7E:D1:58:AA:2C:64:90:\
         17:E3:5B:C8:0D:72:F6:19:8E:21:4B:A7:3D:C0:55:96:E8:0F:12:6A\r\na=setup:actpass\r\n\
         a=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n\
         a=fmtp:111 minptime=10;useinbandfec=1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n\
         c=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
         a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 transport-cc\r\n\
         a=rtcp-fb:96 ccm fir\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n\
         a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n",
    );
    let mut line = 0;
    loop {
        let payload = SessionDescription::new(SdpType::Offer, sdp.clone())
            .to_payload()
            .unwrap();
        let envelope = format!(
            r#"{{"action":"SDP_OFFER","messagePayload":"{}","correlationId":"1697058567743"}}"#,
            payload.as_str()
        );
        if envelope.len() >= 2048 {
            return envelope;
        }
        sdp.push_str(&format!("a=ssrc:{line} cname:4TOk42mSjXCkVIa6\r\n"));
        line += 1;
    }
}

fn bench_frame(c: &mut Criterion, name: &str, frame: &str) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("decode_validate", |b| {
        b.iter(|| ClientMessage::decode(black_box(frame)).unwrap())
    });
    group.bench_function("plain_serde_owned", |b| {
        b.iter(|| serde_json::from_str::<PlainOwned>(black_box(frame)).unwrap())
    });
    group.bench_function("plain_serde_borrowed", |b| {
        b.iter(|| serde_json::from_str::<PlainBorrowed<'_>>(black_box(frame)).unwrap())
    });

    let message = ClientMessage::decode(frame).unwrap();
    let text = message.message_payload.as_str().to_owned();
    group.bench_function("validate_payload_only", |b| {
        b.iter(|| MessagePayload::new(black_box(text.as_str())).unwrap())
    });
    let sender = PeerId::new("lujlnuo5-x7k2m9qj4fh").unwrap();
    group.bench_function("encode_event", |b| {
        b.iter(|| {
            let payload: &MessagePayload<'_> = black_box(&message.message_payload);
            ServerEvent::relay(
                message.action.message_type(),
                Some(&sender),
                payload.clone(),
            )
            .encode()
        })
    });
    group.bench_function("encode_plain_serde", |b| {
        b.iter(|| {
            serde_json::to_string(&PlainEvent {
                message_payload: black_box(message.message_payload.as_str()),
                message_type: "SDP_OFFER",
                sender_client_id: sender.as_str(),
            })
            .unwrap()
        })
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    let offer = offer_envelope_2k();
    bench_frame(c, "sdp_offer_2k", &offer);
    bench_frame(
        c,
        "sdp_offer_js_4k",
        include_str!("../testdata/vectors/client/js_viewer_offer.json"),
    );
    bench_frame(
        c,
        "ice_candidate",
        include_str!("../testdata/vectors/client/js_ice_candidate.json"),
    );
}

criterion_group!(benches, codec);
criterion_main!(benches);
