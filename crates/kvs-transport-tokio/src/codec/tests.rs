use super::*;

/// A client frame: masked with `mask`.
pub(crate) fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn feed_all(decoder: &mut Decoder, bytes: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    decoder.feed(bytes, &mut events);
    events
}

fn decode(bytes: &[u8], max: usize) -> Vec<Event> {
    feed_all(&mut Decoder::new(max), bytes)
}

#[test]
fn frames_split_anywhere_come_out_whole() {
    let text = "x".repeat(300) + "é";
    let mut bytes = client_frame(true, OP_TEXT, text.as_bytes(), [1, 2, 3, 4]);
    bytes.extend(client_frame(true, OP_PING, b"hi", [9, 9, 9, 9]));
    bytes.extend(client_frame(
        true,
        OP_TEXT,
        &[b'y'; 70_000],
        [0xA1, 0xB2, 0xC3, 0xD4],
    ));
    for split in 0..bytes.len().min(400) {
        let mut decoder = Decoder::new(100_000);
        let mut events = feed_all(&mut decoder, &bytes[..split]);
        events.extend(feed_all(&mut decoder, &bytes[split..]));
        assert_eq!(
            events,
            vec![
                Event::Text(text.clone()),
                Event::Ping(b"hi".to_vec()),
                Event::Text("y".repeat(70_000)),
            ],
            "split at {split}"
        );
        assert_eq!(decoder.held(), 0, "nothing held between messages");
    }
}

#[test]
fn a_message_of_many_small_fragments_grows_by_doubling() {
    // 10,000 fragments of one byte each: the message's room grows a few dozen times at
    // most, not once per fragment (which would copy the message over and over).
    let mut bytes = client_frame(false, OP_TEXT, b"a", [1, 2, 3, 4]);
    for _ in 1..9_999 {
        bytes.extend(client_frame(false, OP_CONTINUATION, b"b", [5, 6, 7, 8]));
    }
    bytes.extend(client_frame(true, OP_CONTINUATION, b"c", [9, 9, 9, 9]));
    let mut decoder = Decoder::new(20_000);
    let mut events = Vec::new();
    let mut capacities = std::collections::BTreeSet::new();
    for chunk in bytes.chunks(7) {
        decoder.feed(chunk, &mut events);
        capacities.insert(decoder.message.capacity());
    }
    assert!(
        capacities.len() <= 32,
        "the message was reallocated {} times",
        capacities.len()
    );
    let text = format!("a{}c", "b".repeat(9_998));
    assert_eq!(events, vec![Event::Text(text)]);
}

#[test]
fn a_frame_trickled_a_byte_at_a_time_is_reserved_once_and_never_copied_again() {
    let payload: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let bytes = client_frame(true, OP_TEXT, &payload, [7, 13, 42, 99]);
    let mut decoder = Decoder::new(20_000);
    let mut events = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        decoder.feed(std::slice::from_ref(b), &mut events);
        if i > 14 && i + 1 < bytes.len() {
            // The message's room was reserved once, for the whole frame: each byte lands in
            // its place, so trickling costs what one read costs.
            assert_eq!(decoder.message.capacity(), payload.len());
        }
    }
    assert_eq!(
        events,
        vec![Event::Text(String::from_utf8(payload).unwrap())]
    );
}

#[test]
fn fragments_are_reassembled_within_the_limit() {
    let mut bytes = client_frame(false, OP_TEXT, b"hel", [1, 1, 1, 1]);
    bytes.extend(client_frame(true, OP_PING, b"", [0, 0, 0, 0]));
    bytes.extend(client_frame(false, OP_CONTINUATION, b"l", [3, 3, 3, 3]));
    bytes.extend(client_frame(true, OP_CONTINUATION, b"o", [2, 2, 2, 2]));
    assert_eq!(
        decode(&bytes, 100),
        vec![Event::Ping(vec![]), Event::Text("hello".to_owned())]
    );
    let mut big = client_frame(false, OP_TEXT, &[b'a'; 60], [1, 1, 1, 1]);
    big.extend(client_frame(
        true,
        OP_CONTINUATION,
        &[b'a'; 60],
        [1, 1, 1, 1],
    ));
    assert_eq!(
        decode(&big, 100),
        vec![Event::Refuse(
            CLOSE_TOO_BIG,
            "a frame or message passed the size limit"
        )]
    );
}

#[test]
fn utf8_split_across_fragments_is_whole_text() {
    let text = "κόσμε";
    let bytes = text.as_bytes();
    let mut frames = client_frame(false, OP_TEXT, &bytes[..3], [5, 5, 5, 5]);
    frames.extend(client_frame(
        true,
        OP_CONTINUATION,
        &bytes[3..],
        [6, 6, 6, 6],
    ));
    assert_eq!(decode(&frames, 100), vec![Event::Text(text.to_owned())]);
}

/// Non-minimal lengths: 5 bytes written in the 16-bit form, and 200 in the 64-bit form.
fn long_form(len_form: u8, len: u64) -> Vec<u8> {
    let mut out = vec![0x81, 0x80 | len_form];
    if len_form == 126 {
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend(std::iter::repeat_n(b'a', len as usize));
    out
}

#[test]
fn rule_breakers_are_refused_with_the_right_code() {
    let mask = [1, 2, 3, 4];
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "binary",
            client_frame(true, OP_BINARY, b"\x00", mask),
            CLOSE_UNSUPPORTED,
        ),
        (
            "too big",
            client_frame(true, OP_TEXT, &[b'a'; 200], mask),
            CLOSE_TOO_BIG,
        ),
        ("unmasked", vec![0x81, 0x01, b'a'], CLOSE_PROTOCOL),
        (
            "not UTF-8",
            client_frame(true, OP_TEXT, &[0xFF, 0xFE], mask),
            CLOSE_INVALID_DATA,
        ),
        (
            "lone continuation",
            client_frame(true, OP_CONTINUATION, b"a", mask),
            CLOSE_PROTOCOL,
        ),
        (
            "fragmented ping",
            client_frame(false, OP_PING, b"", mask),
            CLOSE_PROTOCOL,
        ),
        (
            "long ping",
            client_frame(true, OP_PING, &[0; 126], mask),
            CLOSE_PROTOCOL,
        ),
        ("rsv1", vec![0xC1, 0x80, 0, 0, 0, 0], CLOSE_PROTOCOL),
        ("rsv3", vec![0x91, 0x80, 0, 0, 0, 0], CLOSE_PROTOCOL),
        ("opcode 3", vec![0x83, 0x80, 0, 0, 0, 0], CLOSE_PROTOCOL),
        ("opcode 11", vec![0x8B, 0x80, 0, 0, 0, 0], CLOSE_PROTOCOL),
        ("16-bit form of 5", long_form(126, 5), CLOSE_PROTOCOL),
        ("64-bit form of 200", long_form(127, 200), CLOSE_PROTOCOL),
        (
            "64-bit top bit",
            vec![0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            CLOSE_PROTOCOL,
        ),
        (
            "text inside a fragmented message",
            [
                client_frame(false, OP_TEXT, b"a", mask),
                client_frame(true, OP_TEXT, b"b", mask),
            ]
            .concat(),
            CLOSE_PROTOCOL,
        ),
        (
            "reserved close code 1005",
            client_frame(true, OP_CLOSE, &1005u16.to_be_bytes(), mask),
            CLOSE_PROTOCOL,
        ),
        (
            "close code 999",
            client_frame(true, OP_CLOSE, &999u16.to_be_bytes(), mask),
            CLOSE_PROTOCOL,
        ),
        (
            "close code 5000",
            client_frame(true, OP_CLOSE, &5000u16.to_be_bytes(), mask),
            CLOSE_PROTOCOL,
        ),
        (
            "one-byte close",
            client_frame(true, OP_CLOSE, &[3], mask),
            CLOSE_PROTOCOL,
        ),
        (
            "close reason not UTF-8",
            client_frame(true, OP_CLOSE, &[0x03, 0xE8, 0xC0, 0xAF], mask),
            CLOSE_INVALID_DATA,
        ),
    ];
    for (name, bytes, code) in cases {
        let events = decode(&bytes, 100);
        assert!(
            matches!(events.as_slice(), [Event::Refuse(c, _)] if *c == code),
            "{name}: {events:?}, wanted {code}"
        );
    }
}

#[test]
fn closes_carry_the_code_to_echo_and_end_the_stream() {
    let mask = [5, 6, 7, 8];
    let mut close = client_frame(true, OP_CLOSE, &1001u16.to_be_bytes(), mask);
    close.extend(client_frame(true, OP_TEXT, b"after", mask));
    let mut decoder = Decoder::new(100);
    assert_eq!(
        feed_all(&mut decoder, &close),
        vec![Event::Close(Some(1001))]
    );
    assert!(decoder.is_ended());
    assert!(
        feed_all(&mut decoder, &close).is_empty(),
        "nothing after the close"
    );
    let bare = client_frame(true, OP_CLOSE, b"", mask);
    assert_eq!(decode(&bare, 100), vec![Event::Close(None)]);
    let with_reason = client_frame(true, OP_CLOSE, b"\x0f\xa0bye \xc3\xa9", mask);
    assert_eq!(decode(&with_reason, 100), vec![Event::Close(Some(4000))]);
}

#[test]
fn unmasking_by_words_matches_unmasking_by_bytes_at_every_offset() {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let plain: Vec<u8> = (0..=255u8).collect();
    for offset in 0..8 {
        for len in [0, 1, 7, 8, 9, 31, 64, 100] {
            let mut data: Vec<u8> = plain[..len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[(offset + i) % 4])
                .collect();
            unmask(&mut data, mask, offset);
            assert_eq!(data, plain[..len], "offset {offset}, len {len}");
        }
    }
}

#[test]
fn server_frames_use_the_shortest_length() {
    assert_eq!(encode(OP_TEXT, b"ab"), vec![0x81, 2, b'a', b'b']);
    let medium = encode(OP_TEXT, &[0; 300]);
    assert_eq!(&medium[..4], &[0x81, 126, 1, 44]);
    assert_eq!(medium.len(), 304);
    let large = encode(OP_TEXT, &[0; 70_000]);
    assert_eq!(&large[..2], &[0x81, 127]);
    assert_eq!(large.len(), 70_010);
    let close = close_frame(1008, "slow consumer");
    assert_eq!(&close[..4], &[0x88, 15, 0x03, 0xF0]);
    // A long reason is cut at a character boundary, within a control frame.
    let long = close_frame(1000, &"é".repeat(100));
    assert_eq!(long.len(), 2 + 2 + 122);
    assert!(std::str::from_utf8(&long[4..]).is_ok());
}

#[test]
fn the_accept_key_is_the_rfc_one_and_bad_handshakes_are_named() {
    // RFC 6455 section 1.3.
    assert_eq!(
        accept_key(Some(b"13"), Some(b"dGhlIHNhbXBsZSBub25jZQ==")).unwrap(),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert_eq!(
        accept_key(Some(b"13"), None),
        Err(HandshakeError::MissingKey)
    );
    for bad in [
        &b"short"[..],
        b"dGhlIHNhbXBsZSBub25jZQ",
        b"AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_eq!(
            accept_key(Some(b"13"), Some(bad)),
            Err(HandshakeError::BadKey { len: bad.len() }),
            "{bad:?}"
        );
    }
    assert_eq!(
        accept_key(Some(b"8"), Some(b"dGhlIHNhbXBsZSBub25jZQ==")),
        Err(HandshakeError::UnsupportedVersion {
            found: "8".to_owned()
        })
    );
    assert!(matches!(
        accept_key(None, Some(b"dGhlIHNhbXBsZSBub25jZQ==")),
        Err(HandshakeError::UnsupportedVersion { .. })
    ));
}
