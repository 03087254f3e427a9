//! STUN messages (RFC 5389) with the TURN methods and attributes (RFC 5766): an encoder, a
//! decoder, and the MESSAGE-INTEGRITY (long-term credential) and FINGERPRINT checks. Pure
//! functions, no IO.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::process;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

use super::TurnError;

/// The magic cookie every RFC 5389 message carries.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

// Methods. For these small values the message type is `method | class`.

/// Binding (RFC 5389).
pub const BINDING: u16 = 0x001;
/// Allocate (RFC 5766).
pub const ALLOCATE: u16 = 0x003;
/// Refresh (RFC 5766).
pub const REFRESH: u16 = 0x004;
/// Send, an indication (RFC 5766).
pub const SEND: u16 = 0x006;
/// Data, an indication (RFC 5766).
pub const DATA_METHOD: u16 = 0x007;
/// CreatePermission (RFC 5766).
pub const CREATE_PERMISSION: u16 = 0x008;

// Classes.

/// A request.
pub const REQUEST: u16 = 0x0000;
/// An indication.
pub const INDICATION: u16 = 0x0010;
/// A success response.
pub const SUCCESS: u16 = 0x0100;
/// An error response.
pub const ERROR: u16 = 0x0110;

// Attributes.

/// USERNAME.
pub const USERNAME: u16 = 0x0006;
/// MESSAGE-INTEGRITY.
pub const MESSAGE_INTEGRITY: u16 = 0x0008;
/// ERROR-CODE.
pub const ERROR_CODE: u16 = 0x0009;
/// LIFETIME (RFC 5766).
pub const LIFETIME: u16 = 0x000D;
/// XOR-PEER-ADDRESS (RFC 5766).
pub const XOR_PEER_ADDRESS: u16 = 0x0012;
/// DATA (RFC 5766).
pub const DATA: u16 = 0x0013;
/// REALM.
pub const REALM: u16 = 0x0014;
/// NONCE.
pub const NONCE: u16 = 0x0015;
/// XOR-RELAYED-ADDRESS (RFC 5766).
pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
/// REQUESTED-TRANSPORT (RFC 5766).
pub const REQUESTED_TRANSPORT: u16 = 0x0019;
/// XOR-MAPPED-ADDRESS.
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// FINGERPRINT.
pub const FINGERPRINT: u16 = 0x8028;

/// What FINGERPRINT's CRC is XORed with.
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// A STUN transaction id.
pub type TransactionId = [u8; 12];

/// A transaction id no other message of this process has: a counter, the process id.
pub fn transaction_id() -> TransactionId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut id = [0; 12];
    id[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    id[8..].copy_from_slice(&process::id().to_be_bytes());
    id
}

/// A message of type `kind` (`method | class`), with `attributes`, then MESSAGE-INTEGRITY when
/// `key` is given, then FINGERPRINT. Fails only when an attribute is too long for STUN.
pub fn encode(
    kind: u16,
    id: &TransactionId,
    attributes: &[(u16, &[u8])],
    key: Option<&[u8]>,
) -> Result<Vec<u8>, TurnError> {
    let mut message = Vec::with_capacity(
        64 + attributes
            .iter()
            .map(|(_, value)| value.len() + 8)
            .sum::<usize>(),
    );
    message.extend_from_slice(&kind.to_be_bytes());
    message.extend_from_slice(&[0, 0]); // length, set below
    message.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    message.extend_from_slice(id);
    for &(kind, value) in attributes {
        push_attribute(&mut message, kind, value)?;
    }
    if let Some(key) = key {
        // The HMAC covers the header with a length that already counts MESSAGE-INTEGRITY.
        set_length(&mut message, 24)?;
        let mac = hmac_sha1(key, &message);
        push_attribute(&mut message, MESSAGE_INTEGRITY, &mac)?;
    }
    // The CRC covers the header with a length that already counts FINGERPRINT.
    set_length(&mut message, 8)?;
    let crc = crc32(&message) ^ FINGERPRINT_XOR;
    push_attribute(&mut message, FINGERPRINT, &crc.to_be_bytes())?;
    Ok(message)
}

fn push_attribute(message: &mut Vec<u8>, kind: u16, value: &[u8]) -> Result<(), TurnError> {
    let len = u16::try_from(value.len()).map_err(|_| {
        TurnError::Unexpected(format!(
            "a {}-byte attribute does not fit in STUN",
            value.len()
        ))
    })?;
    message.extend_from_slice(&kind.to_be_bytes());
    message.extend_from_slice(&len.to_be_bytes());
    message.extend_from_slice(value);
    message.resize(message.len().next_multiple_of(4), 0);
    Ok(())
}

/// Sets the header's length to the attributes so far plus `extra` bytes still to come.
fn set_length(message: &mut [u8], extra: usize) -> Result<(), TurnError> {
    let length = u16::try_from(message.len().saturating_sub(20) + extra).map_err(|_| {
        TurnError::Unexpected(format!(
            "a {}-byte message does not fit in STUN",
            message.len()
        ))
    })?;
    if let Some(field) = message.get_mut(2..4) {
        field.copy_from_slice(&length.to_be_bytes());
    }
    Ok(())
}

/// The value of an XOR-…-ADDRESS attribute for `addr` in transaction `id`.
pub fn xor_address(addr: SocketAddr, id: &TransactionId) -> Vec<u8> {
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    match addr.ip() {
        IpAddr::V4(ip) => {
            let mut value = vec![0, 0x01];
            value.extend_from_slice(&port.to_be_bytes());
            value.extend_from_slice(&(u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes());
            value
        }
        IpAddr::V6(ip) => {
            let mut value = vec![0, 0x02];
            value.extend_from_slice(&port.to_be_bytes());
            let mask = xor_mask_v6(id);
            value.extend(ip.octets().iter().zip(mask).map(|(a, b)| a ^ b));
            value
        }
    }
}

/// The cookie and the transaction id, which an IPv6 address is XORed with.
fn xor_mask_v6(id: &TransactionId) -> [u8; 16] {
    let mut mask = [0; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(id);
    mask
}

/// The long-term credential key, `MD5(username:realm:password)` (RFC 5389 15.4).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    Md5::digest(format!("{username}:{realm}:{password}")).into()
}

/// HMAC-SHA1, which MESSAGE-INTEGRITY uses.
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    match <Hmac<Sha1> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        // HMAC takes keys of any length: this arm cannot be reached.
        Err(_) => [0; 20],
    }
}

/// CRC-32 (ISO-HDLC, as in zlib), which FINGERPRINT uses.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0_u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A decoded message, with its bytes so that MESSAGE-INTEGRITY and FINGERPRINT can be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    kind: u16,
    transaction_id: TransactionId,
    /// Each attribute's type and the range of the whole attribute (header included) in `raw`.
    attributes: Vec<(u16, Range<usize>)>,
    raw: Vec<u8>,
}

impl Message {
    /// Decodes `raw`, or `None` if it is no STUN message (ChannelData, DTLS, a truncated
    /// datagram…).
    pub fn decode(raw: &[u8]) -> Option<Self> {
        let header = raw.get(..20)?;
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if kind & 0xC000 != 0
            || header[4..8] != MAGIC_COOKIE.to_be_bytes()
            || length != raw.len() - 20
        {
            return None;
        }
        let mut attributes = Vec::new();
        let mut at = 20;
        while at < raw.len() {
            let head = raw.get(at..at + 4)?;
            let attribute = u16::from_be_bytes([head[0], head[1]]);
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let end = at + 4 + len;
            raw.get(at..end)?;
            attributes.push((attribute, at..end));
            at = end.next_multiple_of(4);
        }
        Some(Self {
            kind,
            transaction_id: header[8..20].try_into().ok()?,
            attributes,
            raw: raw.to_vec(),
        })
    }

    /// The message type: `method | class` for the methods here.
    pub fn kind(&self) -> u16 {
        self.kind
    }

    /// The method, such as [`ALLOCATE`].
    pub fn method(&self) -> u16 {
        (self.kind & 0x000F) | ((self.kind >> 1) & 0x0070) | ((self.kind >> 2) & 0x0F80)
    }

    /// The class, such as [`SUCCESS`].
    pub fn class(&self) -> u16 {
        self.kind & 0x0110
    }

    /// The transaction id.
    pub fn transaction_id(&self) -> &TransactionId {
        &self.transaction_id
    }

    /// The bytes it was decoded from.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    fn attribute_range(&self, kind: u16) -> Option<Range<usize>> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, range)| range.clone())
    }

    /// The value of the first attribute of type `kind`.
    pub fn attribute(&self, kind: u16) -> Option<&[u8]> {
        let range = self.attribute_range(kind)?;
        self.raw.get(range.start + 4..range.end)
    }

    /// The value of the first attribute of type `kind`, as UTF-8 text.
    pub fn text(&self, kind: u16) -> Option<String> {
        String::from_utf8(self.attribute(kind)?.to_vec()).ok()
    }

    /// ERROR-CODE as a number: class * 100 + number.
    pub fn error_code(&self) -> Option<u16> {
        let value = self.attribute(ERROR_CODE)?;
        Some(u16::from(value.get(2)? & 0x07) * 100 + u16::from(*value.get(3)?))
    }

    /// ERROR-CODE's reason phrase.
    pub fn error_reason(&self) -> Option<String> {
        String::from_utf8(self.attribute(ERROR_CODE)?.get(4..)?.to_vec()).ok()
    }

    /// An XOR-…-ADDRESS attribute, IPv4 or IPv6.
    pub fn xor_address(&self, kind: u16) -> Option<SocketAddr> {
        let value = self.attribute(kind)?;
        let port =
            u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
        let ip = match (value.get(1)?, value.len()) {
            (0x01, 8) => {
                let ip = u32::from_be_bytes(value.get(4..8)?.try_into().ok()?) ^ MAGIC_COOKIE;
                IpAddr::V4(Ipv4Addr::from(ip))
            }
            (0x02, 20) => {
                let mut octets = [0; 16];
                let mask = xor_mask_v6(&self.transaction_id);
                for ((octet, byte), mask) in octets.iter_mut().zip(value.get(4..20)?).zip(mask) {
                    *octet = byte ^ mask;
                }
                IpAddr::V6(Ipv6Addr::from(octets))
            }
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }

    /// Whether MESSAGE-INTEGRITY is there and is the HMAC of what precedes it under `key`.
    pub fn integrity_ok(&self, key: &[u8]) -> bool {
        let Some(range) = self.attribute_range(MESSAGE_INTEGRITY) else {
            return false;
        };
        let mut signed = self.raw[..range.start].to_vec();
        if set_length(&mut signed, 24).is_err() {
            return false;
        }
        self.raw[range.start + 4..range.end] == hmac_sha1(key, &signed)
    }

    /// Whether FINGERPRINT is there, last, and right.
    pub fn fingerprint_ok(&self) -> bool {
        let Some(range) = self.attribute_range(FINGERPRINT) else {
            return false;
        };
        range.end == self.raw.len()
            && self.raw[range.start + 4..range.end]
                == (crc32(&self.raw[..range.start]) ^ FINGERPRINT_XOR).to_be_bytes()
    }

    /// Whether there is a FINGERPRINT attribute, right or not.
    pub fn has_fingerprint(&self) -> bool {
        self.attribute_range(FINGERPRINT).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_iso_hdlc_one() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace()
            .map(|byte| u8::from_str_radix(byte, 16).unwrap())
            .collect()
    }

    /// RFC 5769 2.1, the sample request: its MESSAGE-INTEGRITY (short-term: the password is
    /// the key) and FINGERPRINT check out.
    #[test]
    fn rfc_5769_sample_request() {
        let raw = hex("00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
             80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
             00 24 00 04 6e 00 01 ff 80 29 00 08 93 2f f9 b1 51 26 3b 36
             00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
             00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
             80 28 00 04 e5 7a 3b cf");
        let message = Message::decode(&raw).unwrap();
        assert_eq!((message.method(), message.class()), (BINDING, REQUEST));
        assert_eq!(message.text(USERNAME).as_deref(), Some("evtj:h6vY"));
        assert!(message.integrity_ok(b"VOkJxbRl1RmTxUk/WvJxBt"));
        assert!(!message.integrity_ok(b"VOkJxbRl1RmTxUk/WvJxBu"));
        assert!(message.fingerprint_ok());
        // One bit flipped anywhere breaks FINGERPRINT.
        let mut flipped = raw.clone();
        flipped[30] ^= 1;
        assert!(!Message::decode(&flipped).unwrap().fingerprint_ok());
    }

    /// RFC 5769 2.2 and 2.3: the XOR-MAPPED-ADDRESS of the sample responses, IPv4 and IPv6.
    #[test]
    fn rfc_5769_sample_responses() {
        let v4 = hex("01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
             80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
             00 20 00 08 00 01 a1 47 e1 12 a6 43
             00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
             80 28 00 04 c0 7d 4c 96");
        let v6 = hex("01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
             80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
             00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
             00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
             80 28 00 04 c8 fb 0b 4c");
        for (raw, expected) in [
            (v4, "192.0.2.1:32853"),
            (v6, "[2001:db8:1234:5678:11:2233:4455:6677]:32853"),
        ] {
            let message = Message::decode(&raw).unwrap();
            assert_eq!((message.method(), message.class()), (BINDING, SUCCESS));
            assert_eq!(
                message.xor_address(XOR_MAPPED_ADDRESS),
                Some(expected.parse().unwrap())
            );
            assert!(message.integrity_ok(b"VOkJxbRl1RmTxUk/WvJxBt"));
            assert!(message.fingerprint_ok());
            // What we encode for that address is what the RFC has.
            let value = xor_address(expected.parse().unwrap(), message.transaction_id());
            assert_eq!(Some(&value[..]), message.attribute(XOR_MAPPED_ADDRESS));
        }
    }

    #[test]
    fn encode_then_decode() {
        let id = transaction_id();
        let key = long_term_key("user", "realm", "pass");
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let message = encode(
            CREATE_PERMISSION | REQUEST,
            &id,
            &[
                (XOR_PEER_ADDRESS, &xor_address(peer, &id)),
                (XOR_RELAYED_ADDRESS, &xor_address(v6, &id)),
                (USERNAME, b"user"),
            ],
            Some(&key),
        )
        .unwrap();
        let decoded = Message::decode(&message).unwrap();
        assert_eq!(decoded.method(), CREATE_PERMISSION);
        assert_eq!(decoded.class(), REQUEST);
        assert_eq!(decoded.transaction_id(), &id);
        assert_eq!(decoded.xor_address(XOR_PEER_ADDRESS), Some(peer));
        assert_eq!(decoded.xor_address(XOR_RELAYED_ADDRESS), Some(v6));
        assert_eq!(decoded.text(USERNAME).as_deref(), Some("user"));
        assert!(decoded.integrity_ok(&key));
        assert!(!decoded.integrity_ok(b"other"));
        assert!(decoded.fingerprint_ok());
    }
}
