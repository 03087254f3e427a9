//! The server side of RFC 6455, sans IO: the upgrade's accept key, a frame decoder that is fed
//! bytes as they arrive and yields whole messages, and the encoding of server frames. No
//! socket, clock or runtime is touched here; `ws.rs` carries it over any stream.
//!
//! The decoder is linear in what it is fed: a frame's header is gathered in a small array, its
//! payload is unmasked (a word at a time) straight into the message it belongs to, and nothing
//! is copied twice, however the bytes are split. Between messages it holds no allocation.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub(crate) const OP_CONTINUATION: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// 1000: normal closure.
pub(crate) const CLOSE_NORMAL: u16 = 1000;
/// 1002: protocol error.
pub(crate) const CLOSE_PROTOCOL: u16 = 1002;
/// 1003: unsupported data (a binary frame).
pub(crate) const CLOSE_UNSUPPORTED: u16 = 1003;
/// 1007: invalid payload data (text that is not UTF-8).
pub(crate) const CLOSE_INVALID_DATA: u16 = 1007;
/// 1009: message too big.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;

/// The longest payload of a control frame (RFC 6455 section 5.5).
const MAX_CONTROL_LEN: usize = 125;

/// The GUID of RFC 6455 section 1.3, appended to the client's key.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What the decoder found in the bytes fed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A whole text message.
    Text(String),
    /// A ping, with its payload (at most 125 bytes), to answer with a pong.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// The client closes, with this code if it gave one (a code a server may echo).
    Close(Option<u16>),
    /// The client broke a rule: close with this code and reason.
    Refuse(u16, &'static str),
}

/// The header of the frame being read.
#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    opcode: u8,
    len: usize,
    mask: [u8; 4],
}

/// Where the decoder is in the byte stream.
#[derive(Debug)]
enum State {
    /// Gathering a frame header: the bytes so far.
    Header { bytes: [u8; 14], filled: u8 },
    /// Reading a payload: how much of it has been read.
    Payload { header: Header, read: usize },
    /// A close or a refusal was yielded: nothing more is read.
    Ended,
}

/// Decodes the frames a client sends into [`Event`]s.
#[derive(Debug)]
pub(crate) struct Decoder {
    max_message_len: usize,
    state: State,
    /// The text message being assembled, fragments and all; empty (no allocation) between
    /// messages.
    message: Vec<u8>,
    /// Whether a fragmented text message is open (its first frame had no FIN).
    fragmented: bool,
    /// The payload of the control frame being read.
    control: Vec<u8>,
}

impl Decoder {
    /// A decoder accepting messages of up to `max_message_len` bytes.
    pub(crate) fn new(max_message_len: usize) -> Self {
        Self {
            max_message_len,
            state: State::Header {
                bytes: [0; 14],
                filled: 0,
            },
            message: Vec::new(),
            fragmented: false,
            control: Vec::new(),
        }
    }

    /// Whether a close or a refusal ended the stream.
    pub(crate) fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended)
    }

    /// Bytes the decoder holds for a frame or message still arriving.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn held(&self) -> usize {
        self.message.capacity() + self.control.capacity()
    }

    /// Takes `bytes` that arrived and appends what they complete to `events`. After a close or
    /// a refusal, further bytes are ignored.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], events: &mut Vec<Event>) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Ended => return,
                State::Header {
                    bytes: head,
                    filled,
                } => {
                    let have = usize::from(*filled);
                    let need = header_len(&head[..have]);
                    let take = (need - have).min(bytes.len());
                    let (now, rest) = bytes.split_at(take);
                    head[have..have + take].copy_from_slice(now);
                    bytes = rest;
                    let had = have;
                    let have = have + take;
                    *filled = have as u8;
                    // The first two bytes say whether the frame is acceptable at all; an
                    // unmasked frame has no mask to wait for.
                    if had < 2 && have >= 2 {
                        let (first, second) = (head[0], head[1]);
                        if let Err((code, reason)) = check_start(self.fragmented, first, second) {
                            self.refuse(code, reason, events);
                            continue;
                        }
                    }
                    // The length byte may have asked for more header than first thought.
                    if have < header_len(&head[..have]) {
                        continue;
                    }
                    let head = *head;
                    match self.start_frame(&head[..have]) {
                        Ok(header) => self.begin_payload(header, events),
                        Err((code, reason)) => self.refuse(code, reason, events),
                    }
                }
                State::Payload { header, read } => {
                    let header = *header;
                    let take = (header.len - *read).min(bytes.len());
                    let (now, rest) = bytes.split_at(take);
                    bytes = rest;
                    let offset = *read;
                    *read += take;
                    let done = *read == header.len;
                    let target = if header.opcode >= OP_CLOSE {
                        &mut self.control
                    } else {
                        &mut self.message
                    };
                    let start = target.len();
                    target.extend_from_slice(now);
                    if let Some(payload) = target.get_mut(start..) {
                        unmask(payload, header.mask, offset);
                    }
                    if done {
                        self.end_frame(header, events);
                    }
                }
            }
        }
    }

    /// Reads a whole header (its first two bytes checked already) and returns it, or the
    /// refusal its length earns.
    fn start_frame(&mut self, head: &[u8]) -> Result<Header, (u16, &'static str)> {
        let [first, second, ..] = *head else {
            return Err((CLOSE_PROTOCOL, "a frame header is cut short"));
        };
        let fin = first & 0x80 != 0;
        let opcode = first & 0x0F;
        let (len, mask_at) = match second & 0x7F {
            126 => {
                let len = u64::from(u16::from_be_bytes([byte(head, 2), byte(head, 3)]));
                if len < 126 {
                    return Err((CLOSE_PROTOCOL, "a frame length must use the shortest form"));
                }
                (len, 4)
            }
            127 => {
                let mut raw = [0u8; 8];
                for (i, b) in raw.iter_mut().enumerate() {
                    *b = byte(head, 2 + i);
                }
                let len = u64::from_be_bytes(raw);
                if len >> 63 != 0 {
                    return Err((
                        CLOSE_PROTOCOL,
                        "a frame length must leave its top bit clear",
                    ));
                }
                if len <= 0xFFFF {
                    return Err((CLOSE_PROTOCOL, "a frame length must use the shortest form"));
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };
        let mask = [
            byte(head, mask_at),
            byte(head, mask_at + 1),
            byte(head, mask_at + 2),
            byte(head, mask_at + 3),
        ];
        let len = match usize::try_from(len) {
            Ok(len) if opcode >= OP_CLOSE => len,
            Ok(len) if len <= self.max_message_len.saturating_sub(self.message.len()) => len,
            _ => return Err((CLOSE_TOO_BIG, "a frame or message passed the size limit")),
        };
        Ok(Header {
            fin,
            opcode,
            len,
            mask,
        })
    }

    /// The header is whole: make room for its payload, or finish an empty frame at once.
    fn begin_payload(&mut self, header: Header, events: &mut Vec<Event>) {
        if header.opcode < OP_CLOSE {
            // Amortized: a message of many small fragments grows by doubling (within the
            // size limit), so reassembling it copies each byte a bounded number of times.
            let want = self.message.len().saturating_add(header.len);
            if want > self.message.capacity() {
                let grown = want
                    .max(self.message.capacity().saturating_mul(2))
                    .min(self.max_message_len.max(want));
                self.message.reserve_exact(grown - self.message.len());
            }
        } else if header.len > 0 {
            self.control.reserve_exact(header.len);
        }
        self.state = State::Payload { header, read: 0 };
        if header.len == 0 {
            self.end_frame(header, events);
        }
    }

    /// The payload of `header` has all arrived.
    fn end_frame(&mut self, header: Header, events: &mut Vec<Event>) {
        self.state = State::Header {
            bytes: [0; 14],
            filled: 0,
        };
        match header.opcode {
            OP_TEXT | OP_CONTINUATION => {
                self.fragmented = !header.fin;
                if header.fin {
                    let message = std::mem::take(&mut self.message);
                    match String::from_utf8(message) {
                        Ok(text) => events.push(Event::Text(text)),
                        Err(_) => {
                            self.refuse(CLOSE_INVALID_DATA, "text frames must be UTF-8", events);
                        }
                    }
                }
            }
            OP_PING => events.push(Event::Ping(std::mem::take(&mut self.control))),
            OP_PONG => {
                self.control = Vec::new();
                events.push(Event::Pong);
            }
            _ => {
                let payload = std::mem::take(&mut self.control);
                let event = match *payload.as_slice() {
                    [] => Event::Close(None),
                    [high, low, ref reason @ ..] => {
                        let code = u16::from_be_bytes([high, low]);
                        if !sendable_close_code(code) {
                            Event::Refuse(
                                CLOSE_PROTOCOL,
                                "a close frame's code must be 1000-1003, 1007-1014 or 3000-4999",
                            )
                        } else if std::str::from_utf8(reason).is_err() {
                            Event::Refuse(CLOSE_INVALID_DATA, "a close reason must be UTF-8")
                        } else {
                            Event::Close(Some(code))
                        }
                    }
                    [_] => Event::Refuse(
                        CLOSE_PROTOCOL,
                        "a close frame carries no payload or a two-byte code first",
                    ),
                };
                self.state = State::Ended;
                self.message = Vec::new();
                events.push(event);
            }
        }
    }

    fn refuse(&mut self, code: u16, reason: &'static str, events: &mut Vec<Event>) {
        self.state = State::Ended;
        self.message = Vec::new();
        self.control = Vec::new();
        events.push(Event::Refuse(code, reason));
    }
}

/// Checks the first two bytes of a header: reserved bits, the mask bit, the opcode (given
/// whether a fragmented message is open) and the form of control frames.
fn check_start(fragmented: bool, first: u8, second: u8) -> Result<(), (u16, &'static str)> {
    if first & 0x70 != 0 {
        return Err((CLOSE_PROTOCOL, "reserved bits set: no extension was agreed"));
    }
    if second & 0x80 == 0 {
        return Err((CLOSE_PROTOCOL, "client frames must be masked"));
    }
    let fin = first & 0x80 != 0;
    match first & 0x0F {
        OP_CLOSE | OP_PING | OP_PONG => {
            if !fin || second & 0x7F > MAX_CONTROL_LEN as u8 {
                return Err((
                    CLOSE_PROTOCOL,
                    "control frames must be whole and at most 125 bytes",
                ));
            }
        }
        OP_TEXT if fragmented => {
            return Err((
                CLOSE_PROTOCOL,
                "a new message began before the fragmented one ended",
            ));
        }
        OP_CONTINUATION if !fragmented => {
            return Err((
                CLOSE_PROTOCOL,
                "a continuation frame must follow an unfinished message",
            ));
        }
        OP_TEXT | OP_CONTINUATION => {}
        OP_BINARY => {
            return Err((
                CLOSE_UNSUPPORTED,
                "binary frames are not accepted: the protocol is JSON text",
            ));
        }
        _ => return Err((CLOSE_PROTOCOL, "unknown opcode")),
    }
    Ok(())
}

/// The byte at `at`, or 0 past the end (callers only read what `header_len` said is there).
fn byte(bytes: &[u8], at: usize) -> u8 {
    bytes.get(at).copied().unwrap_or(0)
}

/// How long the header starting with `head` is: 2 bytes until the length byte is known, then
/// 2, 4 or 10 bytes and the 4-byte mask.
fn header_len(head: &[u8]) -> usize {
    match head.get(1).map(|b| b & 0x7F) {
        None => 2,
        Some(126) => 8,
        Some(127) => 14,
        Some(_) => 6,
    }
}

/// Unmasks `payload`, which starts `offset` bytes into its frame's payload, a word at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    let rotated = {
        let shift = offset % 4;
        [
            mask[shift],
            mask[(shift + 1) % 4],
            mask[(shift + 2) % 4],
            mask[(shift + 3) % 4],
        ]
    };
    let word = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= rotated[i % 4];
    }
}

/// Whether a close frame may carry `code` (RFC 6455 section 7.4): echoing the client's code
/// must not put a reserved one on the wire.
pub(crate) fn sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Writes the header of a server frame (unmasked, FIN set) carrying `len` bytes into `out`;
/// returns its length.
pub(crate) fn frame_header(opcode: u8, len: usize, out: &mut [u8; 10]) -> usize {
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
pub(crate) fn encode(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 10];
    let header_len = frame_header(opcode, payload.len(), &mut header);
    let mut out = Vec::with_capacity(header_len + payload.len());
    out.extend_from_slice(&header[..header_len]);
    out.extend_from_slice(payload);
    out
}

/// A close frame with `code` and as much of `reason` as fits in a control frame, cut at a
/// character boundary.
pub(crate) fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_LEN - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.get(..end).unwrap_or("").as_bytes());
    encode(OP_CLOSE, &payload)
}

/// Why an upgrade request cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// `Sec-WebSocket-Key` is absent.
    #[error("Sec-WebSocket-Key: is required for a WebSocket connect")]
    MissingKey,
    /// `Sec-WebSocket-Key` is not the base64 of 16 bytes.
    #[error(
        "Sec-WebSocket-Key: must be the base64 encoding of 16 bytes (24 characters); got {len} characters"
    )]
    BadKey {
        /// The length of the value received.
        len: usize,
    },
    /// `Sec-WebSocket-Version` is absent or not 13.
    #[error("Sec-WebSocket-Version: only version 13 is spoken; got {found}")]
    UnsupportedVersion {
        /// What the client sent, or "none".
        found: String,
    },
}

/// Checks an upgrade request's `Sec-WebSocket-Version` and `Sec-WebSocket-Key` (RFC 6455
/// section 4.2.1) and returns the `Sec-WebSocket-Accept` value to answer with.
pub fn accept_key(version: Option<&[u8]>, key: Option<&[u8]>) -> Result<String, HandshakeError> {
    match version.map(<[u8]>::trim_ascii) {
        Some(b"13") => {}
        other => {
            return Err(HandshakeError::UnsupportedVersion {
                found: other.map_or_else(
                    || "none".to_owned(),
                    |v| String::from_utf8_lossy(v).chars().take(16).collect(),
                ),
            });
        }
    }
    let key = key.ok_or(HandshakeError::MissingKey)?.trim_ascii();
    match STANDARD.decode(key) {
        Ok(decoded) if decoded.len() == 16 => {}
        _ => return Err(HandshakeError::BadKey { len: key.len() }),
    }
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key);
    context.update(ACCEPT_GUID);
    Ok(STANDARD.encode(context.finish().as_ref()))
}

#[cfg(test)]
mod tests;
