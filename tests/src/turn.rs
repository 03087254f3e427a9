//! TURN (RFC 5766) over UDP against a real coturn: a launcher for `turnserver` on loopback,
//! and a minimal TURN client that allocates a relay with long-term credentials (such as the
//! ones our GetIceServerConfig issues), installs permissions, sends through the relay in Send
//! indications and reads what comes back in Data indications.
//!
//! The client is sans-IO at its core, so that blocking tests and the tokio WebRTC peers share
//! it:
//!
//! - [`stun`] encodes and decodes the messages and checks MESSAGE-INTEGRITY and FINGERPRINT;
//! - the request builders here ([`allocate_request`], [`create_permission_request`],
//!   [`send_indication`], …) and the readers of the answers ([`read_challenge`],
//!   [`read_allocate_response`], [`read_response`], [`read_data_indication`]) are pure
//!   functions;
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
use std::time::{Duration, Instant};

mod coturn;
mod relay;
pub mod stun;

pub use coturn::{Coturn, turnserver_on_path};
pub use relay::{Direction, Relay, RelayEvent, RelayStats};
use stun::{
    ALLOCATE, CREATE_PERMISSION, DATA, DATA_METHOD, ERROR, INDICATION, Message, NONCE, REALM,
    REQUEST, REQUESTED_TRANSPORT, SEND, SUCCESS, TransactionId, USERNAME, XOR_PEER_ADDRESS,
    XOR_RELAYED_ADDRESS,
};

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
    pub nonce: Vec<u8>,
}

/// A long-term credential (RFC 5389 10.2) as a TURN client uses it after the challenge: the
/// username, the realm and nonce the server gave, and the key `MD5(username:realm:password)`.
#[derive(Clone, PartialEq, Eq)]
pub struct LongTermCredential {
    username: String,
    realm: String,
    nonce: Vec<u8>,
    key: [u8; 16],
}

impl fmt::Debug for LongTermCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LongTermCredential")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("nonce", &String::from_utf8_lossy(&self.nonce))
            .field("key", &"…")
            .finish()
    }
}

impl LongTermCredential {
    /// The credential for `username` and `password` under `challenge`.
    pub fn new(username: &str, password: &str, challenge: Challenge) -> Self {
        Self {
            key: stun::long_term_key(username, &challenge.realm, password),
            username: username.to_owned(),
            realm: challenge.realm,
            nonce: challenge.nonce,
        }
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The nonce the next request carries.
    pub fn nonce(&self) -> &[u8] {
        &self.nonce
    }

    /// Replaces the nonce, after a 438 (Stale Nonce) that came with a new one.
    pub fn set_nonce(&mut self, nonce: Vec<u8>) {
        self.nonce = nonce;
    }

    /// The MESSAGE-INTEGRITY key.
    pub fn key(&self) -> &[u8; 16] {
        &self.key
    }

    /// USERNAME, REALM and NONCE, which every authenticated request carries.
    fn attributes(&self) -> [(u16, &[u8]); 3] {
        [
            (USERNAME, self.username.as_bytes()),
            (REALM, self.realm.as_bytes()),
            (NONCE, &self.nonce),
        ]
    }
}

/// REQUESTED-TRANSPORT for UDP.
const UDP_TRANSPORT: [u8; 4] = [17, 0, 0, 0];

/// A STUN Binding request.
pub fn binding_request(id: &TransactionId) -> Result<Vec<u8>, TurnError> {
    stun::encode(stun::BINDING | REQUEST, id, &[], None)
}

/// An Allocate request for a UDP relay: without a credential, the one that draws the 401
/// challenge; with one, the authenticated request.
pub fn allocate_request(
    id: &TransactionId,
    credential: Option<&LongTermCredential>,
) -> Result<Vec<u8>, TurnError> {
    let kind = ALLOCATE | REQUEST;
    match credential {
        None => stun::encode(kind, id, &[(REQUESTED_TRANSPORT, &UDP_TRANSPORT)], None),
        Some(credential) => {
            let [username, realm, nonce] = credential.attributes();
            let attributes = [
                username,
                realm,
                nonce,
                (REQUESTED_TRANSPORT, &UDP_TRANSPORT),
            ];
            stun::encode(kind, id, &attributes, Some(credential.key()))
        }
    }
}

/// A CreatePermission request for `peer`'s IP address (TURN permissions ignore the port).
pub fn create_permission_request(
    id: &TransactionId,
    peer: SocketAddr,
    credential: &LongTermCredential,
) -> Result<Vec<u8>, TurnError> {
    let peer = stun::xor_address(peer, id);
    let [username, realm, nonce] = credential.attributes();
    let attributes = [(XOR_PEER_ADDRESS, &peer[..]), username, realm, nonce];
    stun::encode(
        CREATE_PERMISSION | REQUEST,
        id,
        &attributes,
        Some(credential.key()),
    )
}

/// A Send indication carrying `data` to `peer` through the relay. Indications are not
/// authenticated; the server drops them unless a permission for `peer` is installed.
pub fn send_indication(peer: SocketAddr, data: &[u8]) -> Result<Vec<u8>, TurnError> {
    let id = stun::transaction_id();
    let peer = stun::xor_address(peer, &id);
    stun::encode(
        SEND | INDICATION,
        &id,
        &[(XOR_PEER_ADDRESS, &peer), (DATA, data)],
        None,
    )
}

/// Checks FINGERPRINT when there is one.
fn check_fingerprint(message: &Message) -> Result<(), TurnError> {
    if message.has_fingerprint() && !message.fingerprint_ok() {
        return Err(TurnError::Unexpected(format!(
            "a wrong FINGERPRINT: {message:?}"
        )));
    }
    Ok(())
}

/// Reads the answer to an unauthenticated Allocate: a 401 with REALM and NONCE.
pub fn read_challenge(response: &Message) -> Result<Challenge, TurnError> {
    check_fingerprint(response)?;
    if response.kind() != ALLOCATE | ERROR || response.error_code() != Some(401) {
        return Err(TurnError::Unexpected(format!(
            "the unauthenticated Allocate got {:#06x} (error {:?}), not a 401 challenge",
            response.kind(),
            response.error_code()
        )));
    }
    let realm = response
        .text(REALM)
        .ok_or_else(|| TurnError::Unexpected("a 401 without REALM".to_owned()))?;
    let nonce = response
        .attribute(NONCE)
        .ok_or_else(|| TurnError::Unexpected("a 401 without NONCE".to_owned()))?
        .to_vec();
    Ok(Challenge { realm, nonce })
}

/// Reads the answer to an authenticated request of `method`: `Ok` for a success response
/// signed with the credential's key, [`TurnError::Refused`] for an error response.
pub fn read_response(
    response: &Message,
    method: u16,
    credential: &LongTermCredential,
) -> Result<(), TurnError> {
    check_fingerprint(response)?;
    match response.class() {
        SUCCESS if response.method() == method => {
            if response.integrity_ok(credential.key()) {
                Ok(())
            } else {
                Err(TurnError::Unexpected(format!(
                    "a success response without the right MESSAGE-INTEGRITY: {response:?}"
                )))
            }
        }
        ERROR if response.method() == method => Err(TurnError::Refused {
            code: response.error_code().unwrap_or(0),
            reason: response.error_reason().unwrap_or_default(),
        }),
        _ => Err(TurnError::Unexpected(format!(
            "a {:#06x} answering method {method:#05x}",
            response.kind()
        ))),
    }
}

/// Reads the answer to an authenticated Allocate: the relayed address.
pub fn read_allocate_response(
    response: &Message,
    credential: &LongTermCredential,
) -> Result<SocketAddr, TurnError> {
    read_response(response, ALLOCATE, credential)?;
    response.xor_address(XOR_RELAYED_ADDRESS).ok_or_else(|| {
        TurnError::Unexpected("an Allocate success without XOR-RELAYED-ADDRESS".to_owned())
    })
}

/// Reads a Data indication: who sent the data to the relay, and the data. `None` for any
/// other message.
pub fn read_data_indication(message: &Message) -> Option<(SocketAddr, &[u8])> {
    if message.kind() != DATA_METHOD | INDICATION {
        return None;
    }
    Some((
        message.xor_address(XOR_PEER_ADDRESS)?,
        message.attribute(DATA)?,
    ))
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
    /// transaction `id` arrives. Other messages that arrive meanwhile are dropped.
    pub fn transact(
        &self,
        request: &[u8],
        id: &TransactionId,
        attempts: u32,
    ) -> io::Result<Message> {
        for _ in 0..attempts {
            self.socket.send(request)?;
            let deadline = Instant::now() + self.socket.read_timeout()?.unwrap_or_default();
            while Instant::now() < deadline {
                match self.receive() {
                    Ok(message) if message.transaction_id() == id => return Ok(message),
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

    /// The next STUN message from the server; other datagrams are skipped. Fails with
    /// `WouldBlock` or `TimedOut` after the read timeout.
    pub fn receive(&self) -> io::Result<Message> {
        let mut buf = [0; 2048];
        loop {
            let len = self.socket.recv(&mut buf)?;
            if let Some(message) = buf.get(..len).and_then(Message::decode) {
                return Ok(message);
            }
        }
    }
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

    #[test]
    fn an_authenticated_allocate_is_signed() {
        let challenge = Challenge {
            realm: "realm".to_owned(),
            nonce: b"nonce".to_vec(),
        };
        let credential = LongTermCredential::new("user", "pass", challenge);
        let id = stun::transaction_id();
        let request = Message::decode(&allocate_request(&id, Some(&credential)).unwrap()).unwrap();
        assert!(request.integrity_ok(credential.key()));
        assert!(request.fingerprint_ok());
        assert_eq!(request.text(USERNAME).as_deref(), Some("user"));
    }
}
