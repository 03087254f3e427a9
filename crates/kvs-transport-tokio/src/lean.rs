//! A WebSocket connection over plain TCP that holds no buffer while idle.
//!
//! tungstenite keeps a read and a write buffer per connection for its whole life (they keep
//! the capacity the largest message gave them), and splitting a stream takes a lock and a
//! second task. Here one task serves the socket: it waits for readiness, reads what is there
//! into a buffer on the stack, and keeps bytes only for a frame that has not fully arrived;
//! what goes out is written from a buffer made for that frame. Only the server side of RFC
//! 6455 is spoken: client frames must be masked, server frames are not.

use std::io::{ErrorKind, IoSlice};

use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::shard::Registration;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_PROTOCOL: u16 = 1002;
const CLOSE_UNSUPPORTED: u16 = 1003;
const CLOSE_INVALID_DATA: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;

/// Bytes read from the socket at once, on the stack.
const READ_CHUNK: usize = 4096;

/// What the reader found in the bytes that arrived.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Text(Utf8Bytes),
    Ping(Vec<u8>),
    Pong,
    /// The client closes, with this code if it gave one.
    Close(Option<u16>),
    /// The client broke a rule: close with this code and reason.
    Refuse(u16, &'static str),
}

/// One parsed frame.
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// Parses the frame at the start of `buf`: `Ok(None)` when it has not all arrived, or the
/// frame and how many bytes it took.
fn parse(buf: &[u8], max_len: usize) -> Result<Option<(Frame, usize)>, (u16, &'static str)> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err((CLOSE_PROTOCOL, "reserved bits set: no extension was agreed"));
    }
    if second & 0x80 == 0 {
        return Err((CLOSE_PROTOCOL, "client frames must be masked"));
    }
    let fin = first & 0x80 != 0;
    let opcode = first & 0x0F;
    let (len, mut at) = match second & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(b);
                (u64::from_be_bytes(bytes), 10)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    if opcode >= 0x8 && (len > 125 || !fin) {
        return Err((
            CLOSE_PROTOCOL,
            "control frames must be whole and at most 125 bytes",
        ));
    }
    let len = match usize::try_from(len) {
        Ok(len) if len <= max_len => len,
        _ => return Err((CLOSE_TOO_BIG, "a frame or message passed the size limit")),
    };
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let mask = [mask[0], mask[1], mask[2], mask[3]];
    at += 4;
    let Some(masked) = buf.get(at..at + len) else {
        return Ok(None);
    };
    let payload = masked
        .iter()
        .enumerate()
        .map(|(i, byte)| byte ^ mask[i % 4])
        .collect();
    Ok(Some((
        Frame {
            fin,
            opcode,
            payload,
        },
        at + len,
    )))
}

/// Reassembles messages from frames.
#[derive(Default)]
struct Reader {
    /// Bytes of a frame that has not fully arrived; empty (no allocation) between frames.
    partial: Vec<u8>,
    /// A text message whose later fragments are still to come.
    message: Option<Vec<u8>>,
}

impl Reader {
    /// Takes `bytes` that arrived and appends what they complete to `events`; stops at the
    /// first refusal or close.
    fn feed(&mut self, bytes: &[u8], max_len: usize, events: &mut Vec<Event>) {
        let owned;
        let mut data: &[u8] = if self.partial.is_empty() {
            bytes
        } else {
            self.partial.extend_from_slice(bytes);
            owned = std::mem::take(&mut self.partial);
            &owned
        };
        loop {
            match parse(data, max_len) {
                Ok(None) => break,
                Ok(Some((frame, used))) => {
                    data = &data[used..];
                    if let Some(event) = self.frame(frame, max_len) {
                        let ends = matches!(event, Event::Close(_) | Event::Refuse(..));
                        events.push(event);
                        if ends {
                            return;
                        }
                    }
                }
                Err((code, reason)) => {
                    events.push(Event::Refuse(code, reason));
                    return;
                }
            }
        }
        if !data.is_empty() {
            self.partial = data.to_vec();
        }
    }

    fn frame(&mut self, frame: Frame, max_len: usize) -> Option<Event> {
        match frame.opcode {
            OP_TEXT | OP_CONTINUATION => {
                let payload = match (frame.opcode, self.message.take()) {
                    (OP_TEXT, None) => frame.payload,
                    (OP_CONTINUATION, Some(mut started)) => {
                        if started.len() + frame.payload.len() > max_len {
                            return Some(Event::Refuse(
                                CLOSE_TOO_BIG,
                                "a frame or message passed the size limit",
                            ));
                        }
                        started.extend_from_slice(&frame.payload);
                        started
                    }
                    _ => {
                        return Some(Event::Refuse(
                            CLOSE_PROTOCOL,
                            "a continuation frame must follow an unfinished message",
                        ));
                    }
                };
                if !frame.fin {
                    self.message = Some(payload);
                    return None;
                }
                Some(match Utf8Bytes::try_from(payload) {
                    Ok(text) => Event::Text(text),
                    Err(_) => Event::Refuse(CLOSE_INVALID_DATA, "text frames must be UTF-8"),
                })
            }
            OP_BINARY => Some(Event::Refuse(
                CLOSE_UNSUPPORTED,
                "binary frames are not accepted: the protocol is JSON text",
            )),
            OP_PING => Some(Event::Ping(frame.payload)),
            OP_PONG => Some(Event::Pong),
            OP_CLOSE => Some(match *frame.payload.as_slice() {
                [] => Event::Close(None),
                [high, low, ..] if sendable_close_code(u16::from_be_bytes([high, low])) => {
                    Event::Close(Some(u16::from_be_bytes([high, low])))
                }
                _ => Event::Refuse(
                    CLOSE_PROTOCOL,
                    "a close frame's code must be 1000-1003, 1007-1014 or 3000-4999",
                ),
            }),
            _ => Some(Event::Refuse(CLOSE_PROTOCOL, "unknown opcode")),
        }
    }
}

/// Whether a close frame may carry `code` (RFC 6455 section 7.4): echoing the client's code
/// must not put a reserved one on the wire.
fn sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Writes the header of a server frame (unmasked) carrying `len` bytes into `out`; returns
/// its length.
fn frame_header(opcode: u8, len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = 0x80 | opcode;
    match len {
        0..=125 => {
            out[1] = len as u8;
            2
        }
        126..=0xFFFF => {
            out[1] = 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            out[1] = 127;
            out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    }
}

/// A whole server frame carrying `payload`, for the small control frames.
fn encode(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 10];
    let header_len = frame_header(opcode, payload.len(), &mut header);
    let mut out = Vec::with_capacity(header_len + payload.len());
    out.extend_from_slice(&header[..header_len]);
    out.extend_from_slice(payload);
    out
}

/// Writes a frame carrying `payload` without copying it: header and payload go out in one
/// vectored write where the socket takes them.
async fn write_frame(tcp: &mut TcpStream, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut header = [0u8; 10];
    let header_len = frame_header(opcode, payload.len(), &mut header);
    let mut slices = [IoSlice::new(&header[..header_len]), IoSlice::new(payload)];
    let mut unwritten = &mut slices[..];
    while !unwritten.is_empty() {
        let written = tcp.write_vectored(unwritten).await?;
        if written == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut unwritten, written);
    }
    Ok(())
}

fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    // Control frames carry at most 125 bytes.
    let reason = reason.get(..reason.len().min(123)).unwrap_or("");
    payload.extend_from_slice(reason.as_bytes());
    encode(OP_CLOSE, &payload)
}

/// Reads what the socket has into a buffer on this function's stack (never in the task's
/// state) and feeds it to `reader`; `false` when the connection has ended.
fn read_ready(
    tcp: &TcpStream,
    reader: &mut Reader,
    max_len: usize,
    events: &mut Vec<Event>,
) -> bool {
    let mut chunk = [0u8; READ_CHUNK];
    match tcp.try_read(&mut chunk) {
        Ok(0) => false,
        Ok(n) => {
            reader.feed(&chunk[..n], max_len, events);
            true
        }
        Err(err) => err.kind() == ErrorKind::WouldBlock,
    }
}

/// Serves the WebSocket on `tcp` (the upgrade already answered; `initial` holds any bytes that
/// came with the upgrade request) for the hub connection `registration`, as
/// [`crate::serve_websocket`] does for tungstenite streams: text to the hub, ping and pong as
/// activity, binary frames closed with 1003 and oversize ones with 1009, what the hub sends
/// written in order. Returns when the connection is over.
pub async fn serve_tcp_websocket(
    mut tcp: TcpStream,
    initial: Vec<u8>,
    mut registration: Registration,
    max_message_len: usize,
) {
    let shard = registration.shard.clone();
    let conn = registration.conn;
    let mut reader = Reader::default();
    let mut pending = Vec::new();
    if !initial.is_empty() {
        reader.feed(&initial, max_message_len, &mut pending);
    }
    'serve: loop {
        for event in std::mem::take(&mut pending) {
            let delivered = match event {
                Event::Text(text) => shard.frame(conn, text).await,
                Event::Pong => shard.keepalive(conn).await,
                Event::Ping(payload) => {
                    if tcp.write_all(&encode(OP_PONG, &payload)).await.is_err() {
                        break 'serve;
                    }
                    shard.keepalive(conn).await
                }
                Event::Close(code) => {
                    let reply = close_frame(code.unwrap_or(CLOSE_NORMAL), "");
                    let _ = tcp.write_all(&reply).await;
                    break 'serve;
                }
                Event::Refuse(code, reason) => {
                    let _ = tcp.write_all(&close_frame(code, reason)).await;
                    break 'serve;
                }
            };
            if delivered.is_err() {
                break 'serve;
            }
        }
        tokio::select! {
            next = registration.next() => match next {
                Some(Ok(text)) => {
                    if write_frame(&mut tcp, OP_TEXT, text.as_bytes()).await.is_err() {
                        break 'serve;
                    }
                }
                Some(Err(close)) => {
                    let _ = tcp.write_all(&close_frame(close.code, close.reason)).await;
                    break 'serve;
                }
                None => {
                    let _ = tcp.write_all(&close_frame(CLOSE_NORMAL, "")).await;
                    break 'serve;
                }
            },
            ready = tcp.readable() => {
                if ready.is_err() {
                    break 'serve;
                }
                if !read_ready(&tcp, &mut reader, max_message_len, &mut pending) {
                    break 'serve;
                }
            }
        }
    }
    let _ = tcp.shutdown().await;
    let _ = shard.closed(conn).await;
    // Dropping the registration tells the hub, if it does not know already.
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with `mask`.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
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

    fn feed_all(reader: &mut Reader, bytes: &[u8], max: usize) -> Vec<Event> {
        let mut events = Vec::new();
        reader.feed(bytes, max, &mut events);
        events
    }

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let text = "x".repeat(300);
        let mut bytes = client_frame(true, OP_TEXT, text.as_bytes(), [1, 2, 3, 4]);
        bytes.extend(client_frame(true, OP_PING, b"hi", [9, 9, 9, 9]));
        for split in 0..bytes.len() {
            let mut reader = Reader::default();
            let mut events = feed_all(&mut reader, &bytes[..split], 1000);
            events.extend(feed_all(&mut reader, &bytes[split..], 1000));
            assert_eq!(
                events,
                vec![
                    Event::Text(Utf8Bytes::from(text.clone())),
                    Event::Ping(b"hi".to_vec())
                ],
                "split at {split}"
            );
            assert!(reader.partial.is_empty() && reader.partial.capacity() == 0);
        }
    }

    #[test]
    fn fragments_are_reassembled_within_the_limit() {
        let mut bytes = client_frame(false, OP_TEXT, b"hel", [1, 1, 1, 1]);
        bytes.extend(client_frame(true, OP_PING, b"", [0, 0, 0, 0]));
        bytes.extend(client_frame(true, OP_CONTINUATION, b"lo", [2, 2, 2, 2]));
        let events = feed_all(&mut Reader::default(), &bytes, 100);
        assert_eq!(
            events,
            vec![Event::Ping(vec![]), Event::Text(Utf8Bytes::from("hello"))]
        );
        let mut big = client_frame(false, OP_TEXT, &[b'a'; 60], [1, 1, 1, 1]);
        big.extend(client_frame(
            true,
            OP_CONTINUATION,
            &[b'a'; 60],
            [1, 1, 1, 1],
        ));
        assert_eq!(
            feed_all(&mut Reader::default(), &big, 100),
            vec![Event::Refuse(
                CLOSE_TOO_BIG,
                "a frame or message passed the size limit"
            )]
        );
    }

    #[test]
    fn rule_breakers_are_refused_with_the_right_code() {
        let cases: [(Vec<u8>, u16); 6] = [
            (
                client_frame(true, OP_BINARY, b"\x00", [1, 2, 3, 4]),
                CLOSE_UNSUPPORTED,
            ),
            (
                client_frame(true, OP_TEXT, &[b'a'; 200], [1, 2, 3, 4]),
                CLOSE_TOO_BIG,
            ),
            (vec![0x81, 0x01, b'a'], CLOSE_PROTOCOL), // unmasked
            (
                client_frame(true, OP_TEXT, &[0xFF, 0xFE], [0, 0, 0, 0]),
                CLOSE_INVALID_DATA,
            ),
            (
                client_frame(true, OP_CONTINUATION, b"a", [0, 0, 0, 0]),
                CLOSE_PROTOCOL,
            ),
            (
                client_frame(false, OP_PING, b"", [0, 0, 0, 0]),
                CLOSE_PROTOCOL,
            ),
        ];
        for (bytes, code) in cases {
            let events = feed_all(&mut Reader::default(), &bytes, 100);
            assert!(
                matches!(events.as_slice(), [Event::Refuse(c, _)] if *c == code),
                "{events:?}, wanted {code}"
            );
        }
        let close = client_frame(true, OP_CLOSE, &1001u16.to_be_bytes(), [5, 6, 7, 8]);
        assert_eq!(
            feed_all(&mut Reader::default(), &close, 100),
            vec![Event::Close(Some(1001))]
        );
        let bare = client_frame(true, OP_CLOSE, b"", [5, 6, 7, 8]);
        assert_eq!(
            feed_all(&mut Reader::default(), &bare, 100),
            vec![Event::Close(None)]
        );
        // A reserved code (1005: "no status"), and a one-byte payload, are protocol errors.
        for payload in [&1005u16.to_be_bytes()[..], &[3][..]] {
            let bad = client_frame(true, OP_CLOSE, payload, [5, 6, 7, 8]);
            assert!(matches!(
                feed_all(&mut Reader::default(), &bad, 100).as_slice(),
                [Event::Refuse(CLOSE_PROTOCOL, _)]
            ));
        }
    }

    #[tokio::test]
    async fn a_written_frame_arrives_whole() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let payload = vec![b'x'; 70_000];
        write_frame(&mut server, OP_TEXT, &payload).await.unwrap();
        let mut got = vec![0u8; 10 + payload.len()];
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut got)
            .await
            .unwrap();
        assert_eq!(got, encode(OP_TEXT, &payload));
        assert_eq!(&got[..2], &[0x81, 127]);
    }

    #[test]
    fn server_frames_use_the_shortest_length() {
        assert_eq!(encode(OP_TEXT, b"ab"), vec![0x81, 2, b'a', b'b']);
        let medium = encode(OP_TEXT, &[0; 300]);
        assert_eq!(&medium[..4], &[0x81, 126, 1, 44]);
        assert_eq!(medium.len(), 304);
        let close = close_frame(1008, "slow consumer");
        assert_eq!(&close[..4], &[0x88, 15, 0x03, 0xF0]);
    }
}
