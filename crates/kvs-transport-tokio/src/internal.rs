//! Entry points for the fuzz targets: each takes arbitrary input, checks the properties that
//! must hold for every input, and panics when one does not. Not part of the API.

use crate::codec::{Decoder, Event, accept_key};

/// Decodes `data` as the bytes a client sends on a WebSocket (its first byte picks the size
/// limit and how the rest is split into reads). Nothing may panic; however the bytes are
/// split, the same events come out; the decoder never holds more than a message's limit; and
/// nothing follows a close or a refusal.
pub fn fuzz_frames(data: &[u8]) {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let max = [0, 1, 125, 126, 1000, 16_384][usize::from(choice % 6)];
    let mut whole = Decoder::new(max);
    let mut expected = Vec::new();
    whole.feed(bytes, &mut expected);
    let ends = expected
        .iter()
        .position(|e| matches!(e, Event::Close(_) | Event::Refuse(..)));
    if let Some(at) = ends {
        assert_eq!(at + 1, expected.len(), "events after the end: {expected:?}");
    }
    for event in &expected {
        if let Event::Text(text) = event {
            assert!(text.len() <= max, "a message over the limit came out");
        }
    }
    let step = usize::from(choice / 6).max(1);
    let mut split = Decoder::new(max);
    let mut got = Vec::new();
    for chunk in bytes.chunks(step) {
        split.feed(chunk, &mut got);
        assert!(
            split.held() <= max + 125,
            "the decoder holds {} bytes",
            split.held()
        );
    }
    assert_eq!(got, expected, "reads of {step} bytes gave other events");
}

/// Checks `data` as an upgrade request's head: the `Sec-WebSocket-Version` and
/// `Sec-WebSocket-Key` headers it carries, and the connect query of its target. Nothing may
/// panic; an accepted key gives an accept value of 20 bytes, in base64.
pub fn fuzz_upgrade(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let target = request_line.split(' ').nth(1).unwrap_or("");
    let header = |name: &str| {
        text.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().as_bytes())
        })
    };
    match accept_key(header("sec-websocket-version"), header("sec-websocket-key")) {
        Ok(accept) => {
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&accept)
                .unwrap_or_default();
            assert_eq!(raw.len(), 20, "{accept}");
        }
        Err(err) => assert!(err.to_string().starts_with("Sec-WebSocket-")),
    }
    let query = target.split_once('?').map_or("", |(_, q)| q);
    if let Err(err) = kvs_signaling_proto::ConnectQuery::parse(query) {
        let _ = err.error_type();
        assert!(!err.to_string().is_empty());
    }
}

/// Every committed fuzz input, and every crash turned into a regression input, run through
/// the targets' entry points by `cargo test`, without the fuzzer.
#[cfg(test)]
mod corpus {
    fn replay(target: &str, run: fn(&[u8])) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{} holds no input", dir.display());
        for input in inputs {
            run(&std::fs::read(&input).unwrap());
        }
    }

    #[test]
    fn the_committed_corpora_replay() {
        replay("ws_frames", super::fuzz_frames);
        replay("upgrade_request", super::fuzz_upgrade);
    }
}
