//! TURN (RFC 5766) over UDP against a real coturn: a launcher for `turnserver` on loopback,
//! and a minimal TURN client that allocates a relay with long-term credentials (such as the
//! ones our GetIceServerConfig issues), installs permissions, sends through the relay in Send
//! indications and reads what comes back in Data indications.
//!
//! The client is sans-IO at its core, so that blocking tests and the tokio WebRTC peers share
//! it:
//!
//! - the `turn-types` crate (with `stun-types`, which it re-exports as `turn_types::stun`)
//!   encodes and decodes the messages: MESSAGE-INTEGRITY with the long-term key, FINGERPRINT
//!   (checked by `Message::from_bytes`), the XOR addresses;
//! - the request builders here ([`allocate_request`], [`create_permission_request`],
//!   [`send_indication`], …) and the readers of the answers ([`read_challenge`],
//!   [`read_allocate_response`], [`read_response`], [`read_data_indication`]) say which
//!   attributes the client sends and what it accepts back;
//! - [`Relay`] keeps an allocation's state (permissions, retransmissions, Send indications held
//!   until their permission is in) and says what to send, without doing any IO; its
//!   [`Relay::allocate`] runs the Allocate exchange on a tokio socket;
//! - [`UdpClient`] is a blocking socket for tests that run one transaction at a time;
//! - [`Coturn`] runs `turnserver` (installed by `scripts/install-test-deps.sh`) with
//!   `use-auth-secret`, as the README tells operators to.
//!
//! Only what the tests need is there: UDP, IPv4 relays (IPv6 addresses are encoded but
//! untested against coturn), no ChannelBind, and no Refresh of allocations (10 minutes) or
//! permissions (5 minutes), which outlive any test.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use turn_types::attribute::{Data, RequestedTransport, XorPeerAddress, XorRelayedAddress};
use turn_types::message::{ALLOCATE, CREATE_PERMISSION, DATA, SEND};
use turn_types::stun::attribute::{ErrorCode, Nonce, Realm, Username, XorMappedAddress};
use turn_types::stun::message::{
    BINDING, IntegrityAlgorithm, IntegrityKey, LongTermKeyCredentials, Message, MessageClass,
    MessageType, MessageWrite, MessageWriteExt, MessageWriteVec, Method, TransactionId,
};

mod coturn;
mod relay;

pub use coturn::{Coturn, turnserver_on_path};
pub use relay::{Direction, Relay, RelayEvent, RelayStats};

/// Why a TURN exchange failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TurnError {
    /// The server answered with an error response.
    Refused {
        /// The STUN error code, such as 401 or 438.
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// The server answered something that makes no sense for the request, or a message could
    /// not be built.
    Unexpected(String),
    /// No answer after every retransmission.
    Timeout {
        /// How many times the request was sent.
        attempts: u32,
    },
    /// The socket failed.
    Io(io::Error),
}

impl TurnError {
    /// The error code, for [`TurnError::Refused`].
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for TurnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { code, reason } => write!(f, "refused with {code} {reason:?}"),
            Self::Unexpected(what) => write!(f, "unexpected: {what}"),
            Self::Timeout { attempts } => write!(f, "no answer after {attempts} attempts"),
            Self::Io(err) => write!(f, "socket: {err}"),
        }
    }
}

impl std::error::Error for TurnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for TurnError {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

/// What an unauthenticated request is answered with: 401 and what to authenticate with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Challenge {
    /// The server's realm.
    pub realm: String,
    /// The nonce to send back.
    pub nonce: String,
}

/// A long-term credential (RFC 5389 10.2) as a TURN client uses it after the challenge: the
/// username, the realm and nonce the server gave, and the MESSAGE-INTEGRITY key
/// `MD5(username:realm:password)`, derived once.
#[derive(Clone)]
pub struct LongTermCredential {
    credentials: LongTermKeyCredentials,
    nonce: String,
    key: IntegrityKey,
}

impl fmt::Debug for LongTermCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LongTermCredential")
            .field("username", &self.username())
            .field("realm", &self.realm())
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

impl LongTermCredential {
    /// The credential for `username` and `password` under `challenge`.
    pub fn new(username: &str, password: &str, challenge: Challenge) -> Self {
        let credentials =
            LongTermKeyCredentials::new(username.to_owned(), password.to_owned(), challenge.realm);
        Self {
            key: credentials.make_key(IntegrityAlgorithm::Sha1),
            credentials,
            nonce: challenge.nonce,
        }
    }

    /// The username.
    pub fn username(&self) -> &str {
        self.credentials.username()
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        self.credentials.realm()
    }

    /// The nonce the next request carries.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Replaces the nonce, after a 438 (Stale Nonce) that came with a new one.
    pub fn set_nonce(&mut self, nonce: String) {
        self.nonce = nonce;
    }

    /// The MESSAGE-INTEGRITY key.
    pub fn key(&self) -> &IntegrityKey {
        &self.key
    }

    /// Adds USERNAME, REALM and NONCE, which every authenticated request carries.
    fn add_attributes(&self, message: &mut MessageWriteVec) -> Result<(), TurnError> {
        message
            .add_attribute(&Username::new(self.username()).map_err(unencodable)?)
            .map_err(unencodable)?;
        message
            .add_attribute(&Realm::new(self.realm()).map_err(unencodable)?)
            .map_err(unencodable)?;
        message
            .add_attribute(&Nonce::new(&self.nonce).map_err(unencodable)?)
            .map_err(unencodable)
    }
}

/// A transaction id no other message of this process has: a counter, the process id.
pub fn transaction_id() -> TransactionId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let next = NEXT.fetch_add(1, Ordering::Relaxed);
    TransactionId::from((u128::from(next) << 32) | u128::from(process::id()))
}

fn unencodable(err: impl fmt::Display) -> TurnError {
    TurnError::Unexpected(format!("a message that cannot be encoded: {err}"))
}

/// The header of a message of `method` and `class` in transaction `id`.
fn start(method: Method, class: MessageClass, id: TransactionId) -> MessageWriteVec {
    let kind = MessageType::from_class_method(class, method);
    Message::builder(kind, id, MessageWriteVec::new())
}

/// MESSAGE-INTEGRITY when `key` is given, then FINGERPRINT, and the bytes.
fn finish(mut message: MessageWriteVec, key: Option<&IntegrityKey>) -> Result<Vec<u8>, TurnError> {
    if let Some(key) = key {
        message
            .add_message_integrity_with_key(key, IntegrityAlgorithm::Sha1)
            .map_err(unencodable)?;
    }
    message.add_fingerprint().map_err(unencodable)?;
    Ok(message.finish())
}

/// A STUN Binding request.
pub fn binding_request(id: TransactionId) -> Result<Vec<u8>, TurnError> {
    finish(start(BINDING, MessageClass::Request, id), None)
}

/// An Allocate request for a UDP relay: without a credential, the one that draws the 401
/// challenge; with one, the authenticated request.
pub fn allocate_request(
    id: TransactionId,
    credential: Option<&LongTermCredential>,
) -> Result<Vec<u8>, TurnError> {
    let mut message = start(ALLOCATE, MessageClass::Request, id);
    message
        .add_attribute(&RequestedTransport::new(RequestedTransport::UDP))
        .map_err(unencodable)?;
    if let Some(credential) = credential {
        credential.add_attributes(&mut message)?;
    }
    finish(message, credential.map(LongTermCredential::key))
}

/// A CreatePermission request for `peer`'s IP address (TURN permissions ignore the port).
pub fn create_permission_request(
    id: TransactionId,
    peer: SocketAddr,
    credential: &LongTermCredential,
) -> Result<Vec<u8>, TurnError> {
    let mut message = start(CREATE_PERMISSION, MessageClass::Request, id);
    message
        .add_attribute(&XorPeerAddress::new(peer, id))
        .map_err(unencodable)?;
    credential.add_attributes(&mut message)?;
    finish(message, Some(credential.key()))
}

/// The most `data` a Send indication carries in one UDP datagram (65,507 bytes), beside its
/// header, an IPv6 XOR-PEER-ADDRESS, DATA's header and padding and FINGERPRINT.
const MAX_DATA: usize = 65_507 - 20 - 24 - 4 - 3 - 8;

/// A Send indication carrying `data` to `peer` through the relay. Indications are not
/// authenticated; the server drops them unless a permission for `peer` is installed.
pub fn send_indication(peer: SocketAddr, data: &[u8]) -> Result<Vec<u8>, TurnError> {
    if data.len() > MAX_DATA {
        return Err(TurnError::Unexpected(format!(
            "{} bytes to send, more than a Send indication carries ({MAX_DATA})",
            data.len()
        )));
    }
    let id = transaction_id();
    let mut message = start(SEND, MessageClass::Indication, id);
    message
        .add_attribute(&XorPeerAddress::new(peer, id))
        .map_err(unencodable)?;
    message
        .add_attribute(&Data::new(data))
        .map_err(unencodable)?;
    finish(message, None)
}

/// Reads the answer to a Binding request: the reflexive address.
pub fn read_binding_response(response: &Message<'_>) -> Result<SocketAddr, TurnError> {
    if response.get_type() != MessageType::from_class_method(MessageClass::Success, BINDING) {
        return Err(TurnError::Unexpected(format!(
            "a Binding request answered with {response}"
        )));
    }
    let mapped = response.attribute::<XorMappedAddress>().map_err(|err| {
        TurnError::Unexpected(format!("XOR-MAPPED-ADDRESS: {err}, in {response}"))
    })?;
    Ok(mapped.addr(response.transaction_id()))
}

/// Reads the answer to an unauthenticated Allocate: a 401 with REALM and NONCE.
pub fn read_challenge(response: &Message<'_>) -> Result<Challenge, TurnError> {
    let code = response.attribute::<ErrorCode>().map(|error| error.code());
    if !response.has_method(ALLOCATE) || !response.has_class(MessageClass::Error) || code != Ok(401)
    {
        return Err(TurnError::Unexpected(format!(
            "the unauthenticated Allocate got {response}, not a 401 challenge"
        )));
    }
    let realm = response
        .attribute::<Realm>()
        .map_err(|err| TurnError::Unexpected(format!("a 401 without REALM: {err}")))?;
    let nonce = response
        .attribute::<Nonce>()
        .map_err(|err| TurnError::Unexpected(format!("a 401 without NONCE: {err}")))?;
    Ok(Challenge {
        realm: realm.realm().to_owned(),
        nonce: nonce.nonce().to_owned(),
    })
}

/// Reads the answer to an authenticated request of `method`: `Ok` for a success response
/// signed with the credential's key, [`TurnError::Refused`] for an error response.
pub fn read_response(
    response: &Message<'_>,
    method: Method,
    credential: &LongTermCredential,
) -> Result<(), TurnError> {
    if !response.has_method(method) || !response.is_response() {
        return Err(TurnError::Unexpected(format!(
            "{response} answering method {method}"
        )));
    }
    if response.has_class(MessageClass::Error) {
        return Err(match response.attribute::<ErrorCode>() {
            Ok(error) => TurnError::Refused {
                code: error.code(),
                reason: error.reason().to_owned(),
            },
            Err(err) => TurnError::Unexpected(format!("ERROR-CODE: {err}, in {response}")),
        });
    }
    match response.validate_integrity_with_key(credential.key()) {
        Ok(IntegrityAlgorithm::Sha1) => Ok(()),
        Ok(other) => Err(TurnError::Unexpected(format!(
            "a success response signed with {other:?}, not the SHA-1 that was asked: {response}"
        ))),
        Err(err) => Err(TurnError::Unexpected(format!(
            "a success response without the right MESSAGE-INTEGRITY ({err}): {response}"
        ))),
    }
}

/// Reads the answer to an authenticated Allocate: the relayed address.
pub fn read_allocate_response(
    response: &Message<'_>,
    credential: &LongTermCredential,
) -> Result<SocketAddr, TurnError> {
    read_response(response, ALLOCATE, credential)?;
    let relayed = response.attribute::<XorRelayedAddress>().map_err(|err| {
        TurnError::Unexpected(format!(
            "an Allocate success without XOR-RELAYED-ADDRESS: {err}"
        ))
    })?;
    Ok(relayed.addr(response.transaction_id()))
}

/// Reads a Data indication: who sent the data to the relay, and the data. `None` for any
/// other message.
pub fn read_data_indication(message: &Message<'_>) -> Option<(SocketAddr, Vec<u8>)> {
    if !message.has_method(DATA) || !message.has_class(MessageClass::Indication) {
        return None;
    }
    let peer = message.attribute::<XorPeerAddress>().ok()?;
    let data = message.attribute::<Data<'_>>().ok()?;
    Some((peer.addr(message.transaction_id()), data.data().to_vec()))
}

/// A `turn:` URI over UDP (RFC 7065): `turn:host[:port][?transport=udp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnUri {
    /// The host: a name, an IPv4 address or a bracketless IPv6 address.
    pub host: String,
    /// The port: 3478 unless given.
    pub port: u16,
}

impl TurnUri {
    /// Parses `uri`; `turns:` and transports other than UDP are refused.
    pub fn parse(uri: &str) -> Result<Self, String> {
        let rest = uri
            .strip_prefix("turn:")
            .ok_or_else(|| format!("{uri:?}: not a turn: URI"))?;
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        for parameter in query.split('&').filter(|p| !p.is_empty()) {
            match parameter.split_once('=') {
                Some(("transport", "udp")) => {}
                Some(("transport", other)) => {
                    return Err(format!("{uri:?}: transport {other}, not udp"));
                }
                _ => {}
            }
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{uri:?}: an unclosed ["))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{uri:?}: no host"));
        }
        let port = match port {
            Some(port) => port
                .parse()
                .map_err(|err| format!("{uri:?}: port {port:?}: {err}"))?,
            None => 3478,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// The address, when the host is an IP address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }
}

/// A blocking UDP socket connected to a STUN/TURN server, so that only its answers (and ICMP
/// errors) arrive.
#[derive(Debug)]
pub struct UdpClient {
    socket: UdpSocket,
}

impl UdpClient {
    /// A socket on the server's loopback or unspecified counterpart, connected to `server`,
    /// whose reads give up after `timeout`.
    pub fn connect(server: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let local = if server.ip().is_loopback() {
            SocketAddr::new(server.ip(), 0)
        } else if server.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0_u16; 8], 0))
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(server)?;
        socket.set_read_timeout(Some(timeout))?;
        Ok(Self { socket })
    }

    /// The socket's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends a datagram to the server.
    pub fn send(&self, datagram: &[u8]) -> io::Result<()> {
        self.socket.send(datagram).map(|_| ())
    }

    /// Sends `request` up to `attempts` times, one read timeout apart, until the answer with
    /// transaction `id` arrives, and returns its bytes (a STUN message, FINGERPRINT checked).
    /// Other messages that arrive meanwhile are dropped.
    pub fn transact(
        &self,
        request: &[u8],
        id: TransactionId,
        attempts: u32,
    ) -> io::Result<Vec<u8>> {
        for _ in 0..attempts {
            self.socket.send(request)?;
            let deadline = Instant::now() + self.socket.read_timeout()?.unwrap_or_default();
            while Instant::now() < deadline {
                match self.receive() {
                    Ok(datagram) if transaction_of(&datagram) == Some(id) => return Ok(datagram),
                    Ok(_) => {}
                    Err(e) if is_timeout(&e) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer after {attempts} attempts"),
        ))
    }

    /// The next STUN message from the server, as bytes that `Message::from_bytes` takes;
    /// other datagrams are skipped. Fails with `WouldBlock` or `TimedOut` after the read
    /// timeout.
    pub fn receive(&self) -> io::Result<Vec<u8>> {
        let mut buf = [0; 2048];
        loop {
            let len = self.socket.recv(&mut buf)?;
            if let Some(datagram) = buf.get(..len)
                && Message::from_bytes(datagram).is_ok()
            {
                return Ok(datagram.to_vec());
            }
        }
    }
}

/// The transaction of `datagram`, when it is a STUN message.
fn transaction_of(datagram: &[u8]) -> Option<TransactionId> {
    Message::from_bytes(datagram)
        .ok()
        .map(|message| message.transaction_id())
}

/// Whether `e` is a read timeout (which is `WouldBlock` on Unix).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use turn_types::stun::attribute::{AttributeStaticType, Fingerprint, MessageIntegrity};

    use super::*;

    #[test]
    fn turn_uris() {
        let parsed = TurnUri::parse("turn:127.0.0.1:3478?transport=udp").unwrap();
        assert_eq!(
            parsed.socket_addr(),
            Some("127.0.0.1:3478".parse().unwrap())
        );
        let parsed = TurnUri::parse("turn:turn.example.com").unwrap();
        assert_eq!(
            (parsed.host.as_str(), parsed.port),
            ("turn.example.com", 3478)
        );
        let parsed = TurnUri::parse("turn:[::1]:5349").unwrap();
        assert_eq!(parsed.socket_addr(), Some("[::1]:5349".parse().unwrap()));
        assert!(TurnUri::parse("turn:host:443?transport=tcp").is_err());
        assert!(TurnUri::parse("turns:host:443").is_err());
        assert!(TurnUri::parse("stun:host").is_err());
    }

    fn credential() -> LongTermCredential {
        let challenge = Challenge {
            realm: "realm".to_owned(),
            nonce: "nonce".to_owned(),
        };
        LongTermCredential::new("user", "pass", challenge)
    }

    #[test]
    fn an_authenticated_allocate_is_signed() {
        let credential = credential();
        let id = transaction_id();
        let request = allocate_request(id, Some(&credential)).unwrap();
        let request = Message::from_bytes(&request).unwrap();
        assert!(request.has_method(ALLOCATE) && request.has_class(MessageClass::Request));
        assert_eq!(request.transaction_id(), id);
        let transport = request.attribute::<RequestedTransport>().unwrap();
        assert_eq!(transport.protocol(), RequestedTransport::UDP);
        let username = request.attribute::<Username>().unwrap();
        assert_eq!(username.username(), "user");
        assert_eq!(request.attribute::<Realm>().unwrap().realm(), "realm");
        assert_eq!(request.attribute::<Nonce>().unwrap().nonce(), "nonce");
        // Signed with MD5("user:realm:pass"), as a server that knows the password derives it.
        let server = LongTermKeyCredentials::new("user".into(), "pass".into(), "realm".into());
        assert!(request.validate_integrity(&server.into()).is_ok());
        let wrong = LongTermKeyCredentials::new("user".into(), "pass".into(), "other".into());
        assert!(request.validate_integrity(&wrong.into()).is_err());
        assert!(request.has_attribute(Fingerprint::TYPE));
    }

    #[test]
    fn the_challenge_is_unsigned() {
        let request = allocate_request(transaction_id(), None).unwrap();
        let request = Message::from_bytes(&request).unwrap();
        assert!(request.has_attribute(RequestedTransport::TYPE));
        assert!(!request.has_attribute(Username::TYPE));
        assert!(!request.has_attribute(MessageIntegrity::TYPE));
    }

    /// XOR-PEER-ADDRESS is XORed with the transaction id for IPv6: what we send decodes back,
    /// for both families.
    #[test]
    fn permissions_and_sends_carry_the_peer() {
        let credential = credential();
        for peer in ["127.0.0.1:5000", "[2001:db8::1]:443"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let id = transaction_id();
            let request = create_permission_request(id, peer, &credential).unwrap();
            let request = Message::from_bytes(&request).unwrap();
            assert!(request.has_method(CREATE_PERMISSION));
            let addr = request.attribute::<XorPeerAddress>().unwrap();
            assert_eq!(addr.addr(id), peer);

            // A Data indication as the server would send, read back.
            let send = send_indication(peer, b"hello").unwrap();
            let send = Message::from_bytes(&send).unwrap();
            assert!(send.has_method(SEND) && send.has_class(MessageClass::Indication));
            let mut data = start(DATA, MessageClass::Indication, transaction_id());
            let id = data.transaction_id();
            data.add_attribute(&XorPeerAddress::new(peer, id)).unwrap();
            data.add_attribute(&Data::new(b"hello")).unwrap();
            let data = finish(data, None).unwrap();
            let data = Message::from_bytes(&data).unwrap();
            assert_eq!(read_data_indication(&data), Some((peer, b"hello".to_vec())));
            assert_eq!(read_data_indication(&send), None);
        }
    }

    #[test]
    fn a_send_too_large_for_a_datagram_is_refused() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let largest = send_indication(peer, &vec![0; MAX_DATA]).unwrap();
        assert!(largest.len() <= 65_507, "{}", largest.len());
        assert!(send_indication(peer, &vec![0; MAX_DATA + 1]).is_err());
    }
}
