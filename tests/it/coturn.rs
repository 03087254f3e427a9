//! The TURN credentials [`TurnConfig`] issues, tried against a real coturn on loopback UDP.
//!
//! Each test starts its own `turnserver` (install it with `scripts/install-test-deps.sh`) with
//! `use-auth-secret`, then speaks TURN to it with the minimal STUN/TURN client below (RFC 5389
//! and RFC 5766): an Allocate without credentials to learn the realm and nonce, an Allocate with
//! the long-term credential (MESSAGE-INTEGRITY keyed with `MD5(username:realm:password)`), then
//! CreatePermission for a loopback peer. Credentials are issued at `SystemTime::now()`, since
//! coturn compares the username's expiry with its own clock.

// Marks the helpers below as test code, for clippy's `allow-*-in-tests`.
#![cfg(test)]

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::ops::Range;
use std::path::PathBuf;
use std::process::{self, Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use kvs_ice_rest::{TurnConfig, TurnSecret};
use kvs_signaling_proto::{ChannelArn, IceServerTtl, IceUri};
use md5::{Digest, Md5};
use sha1::Sha1;

const SECRET: &str = "kvs-test-shared-secret";
const OLD_SECRET: &str = "kvs-test-old-secret";
const NEW_SECRET: &str = "kvs-test-new-secret";

fn arn() -> ChannelArn {
    ChannelArn::new("arn:aws:kinesisvideo:us-west-2:123456789012:channel/mychannel/1657142193914")
        .unwrap()
}

/// Our configuration, pointing at `coturn`.
fn config(coturn: &Coturn, secrets: Vec<TurnSecret>) -> TurnConfig {
    let port = coturn.addr.port();
    TurnConfig::new(
        vec![IceUri::new(format!("turn:127.0.0.1:{port}?transport=udp")).unwrap()],
        vec![IceUri::new(format!("stun:127.0.0.1:{port}")).unwrap()],
        secrets,
        IceServerTtl::default(),
    )
    .unwrap()
}

#[test]
fn issued_credentials_allocate_and_relay_through_coturn() {
    let coturn = Coturn::start(&[SECRET]);
    let config = config(&coturn, vec![TurnSecret::new(SECRET)]);

    // What a client gets from GetIceServerConfig, used as a client would use it.
    let response = config.ice_server_config(SystemTime::now(), &arn());
    let list = response.ice_server_list.unwrap();
    let turn = &list[0];
    let uri = turn.uris.as_ref().unwrap()[0].as_str();
    let server: SocketAddr = uri
        .strip_prefix("turn:")
        .and_then(|rest| rest.strip_suffix("?transport=udp"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(server, coturn.addr);
    let username = turn.username.as_ref().unwrap().as_str();
    let password = turn.password.as_ref().unwrap().as_str();

    let allocation = allocate(&coturn, username, password).unwrap();
    assert_eq!(allocation.relayed.ip(), Ipv4Addr::LOCALHOST);
    assert!(
        coturn.relay_ports.contains(&allocation.relayed.port()),
        "{allocation:?}"
    );

    let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let peer_addr = peer.local_addr().unwrap();
    assert_eq!(allocation.create_permission(peer_addr), Ok(()));

    // The permission is real: data flows through the relay both ways.
    allocation.send(peer_addr, b"offer through coturn");
    let mut buf = [0; 1500];
    let (len, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"offer through coturn");
    assert_eq!(from, allocation.relayed);
    peer.send_to(b"answer through coturn", allocation.relayed)
        .unwrap();
    assert_eq!(
        allocation.receive_data(),
        (peer_addr, b"answer through coturn".to_vec())
    );
}

#[test]
fn expired_credentials_are_refused_with_401() {
    let coturn = Coturn::start(&[SECRET]);
    let config = config(&coturn, vec![TurnSecret::new(SECRET)]);
    let now = SystemTime::now();

    let expired = config
        .issue(now - Duration::from_secs(3600), &arn())
        .unwrap();
    assert!(expired.expires_at < now);
    assert_eq!(
        allocate(&coturn, &expired.username, &expired.password).unwrap_err(),
        401
    );

    // The same server and secret take fresh ones: the expiry is what was refused.
    let fresh = config.issue(now, &arn()).unwrap();
    allocate(&coturn, &fresh.username, &fresh.password).unwrap();
}

#[test]
fn a_forged_password_is_refused_with_401() {
    let coturn = Coturn::start(&[SECRET]);
    let now = SystemTime::now();
    let right = config(&coturn, vec![TurnSecret::new(SECRET)])
        .issue(now, &arn())
        .unwrap();
    let forged = config(&coturn, vec![TurnSecret::new("not-the-secret")])
        .issue(now, &arn())
        .unwrap();
    assert_eq!(forged.username, right.username);
    assert_ne!(forged.password, right.password);

    assert_eq!(
        allocate(&coturn, &right.username, &forged.password).unwrap_err(),
        401
    );
    allocate(&coturn, &right.username, &right.password).unwrap();
}

#[test]
fn after_rotation_coturn_with_only_the_new_secret_refuses_the_old_ones() {
    let coturn = Coturn::start(&[NEW_SECRET]);
    let now = SystemTime::now();
    let before = config(&coturn, vec![TurnSecret::new(OLD_SECRET)]);
    let rotated = config(
        &coturn,
        vec![
            TurnSecret::new(NEW_SECRET),
            TurnSecret::new(OLD_SECRET).retired_at(now + Duration::from_secs(300)),
        ],
    );

    let old = before.issue(now, &arn()).unwrap();
    assert_eq!(
        allocate(&coturn, &old.username, &old.password).unwrap_err(),
        401
    );

    let new = rotated.issue(now, &arn()).unwrap();
    let allocation = allocate(&coturn, &new.username, &new.password).unwrap();
    let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
    assert_eq!(allocation.create_permission(peer), Ok(()));
}

#[test]
fn during_rotation_coturn_with_both_secrets_takes_old_and_new_credentials() {
    // What the README asks for while the old secret is being retired: coturn lists both.
    let coturn = Coturn::start(&[NEW_SECRET, OLD_SECRET]);
    let now = SystemTime::now();
    let before = config(&coturn, vec![TurnSecret::new(OLD_SECRET)]);
    let rotated = config(
        &coturn,
        vec![
            TurnSecret::new(NEW_SECRET),
            TurnSecret::new(OLD_SECRET).retired_at(now + Duration::from_secs(300)),
        ],
    );
    let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
    for creds in [
        before.issue(now, &arn()).unwrap(),
        rotated.issue(now, &arn()).unwrap(),
    ] {
        let allocation = allocate(&coturn, &creds.username, &creds.password).unwrap();
        assert_eq!(allocation.create_permission(peer), Ok(()));
    }
}

// ---------------------------------------------------------------------------------------------
// coturn

/// A `turnserver` on 127.0.0.1, killed and cleaned up on drop.
#[derive(Debug)]
struct Coturn {
    child: Child,
    addr: SocketAddr,
    /// Unique per instance, so a client that reached some other server would notice.
    realm: String,
    relay_ports: Range<u16>,
    dir: PathBuf,
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);
/// Listening ports handed out in this process: each is used once, so two tests never race
/// for the same one (coturn binds with SO_REUSEPORT, and two would share it silently).
static PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

impl Coturn {
    /// Starts coturn with `secrets` as its `static-auth-secret`s, and waits until it answers.
    fn start(secrets: &[&str]) -> Self {
        for _ in 0..3 {
            let mut coturn = Self::spawn(secrets);
            if coturn.wait_until_ready(Duration::from_secs(3)) {
                return coturn;
            }
            eprintln!("coturn did not come up, retrying:\n{}", coturn.log());
        }
        panic!("coturn did not come up in three attempts");
    }

    fn spawn(secrets: &[&str]) -> Self {
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let port = free_udp_port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let realm = format!("kvs-test-{}-{n}", process::id());
        // Relay ports from 61000, above Linux's ephemeral range, 16 per instance.
        let first = 61_000 + u16::try_from(n % 200).unwrap() * 16;
        let relay_ports = first..first + 16;
        let dir = std::env::temp_dir().join(format!("kvs-coturn-{}-{n}", process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = File::create(dir.join("turnserver.log")).unwrap();

        let mut command = Command::new("turnserver");
        command
            .arg("-n") // no configuration file: /etc/turnserver.conf stays out of it
            .arg("--use-auth-secret")
            .args(secrets.iter().map(|s| format!("--static-auth-secret={s}")))
            .arg(format!("--realm={realm}"))
            .arg("--listening-ip=127.0.0.1")
            .arg("--relay-ip=127.0.0.1")
            .arg(format!("--listening-port={port}"))
            .arg(format!("--min-port={}", relay_ports.start))
            .arg(format!("--max-port={}", relay_ports.end - 1))
            .arg("--allow-loopback-peers")
            .arg("--fingerprint")
            .args([
                "--no-tcp",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--no-rfc5780",
            ])
            .arg(format!(
                "--pidfile={}",
                dir.join("turnserver.pid").display()
            ))
            .arg(format!("--db={}", dir.join("turndb").display()))
            .args(["--log-file=stdout", "--simple-log"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = command.spawn().unwrap_or_else(|e| {
            let _ = fs::remove_dir_all(&dir);
            panic!("cannot run turnserver ({e}): install it with scripts/install-test-deps.sh")
        });
        Self {
            child,
            addr,
            realm,
            relay_ports,
            dir,
        }
    }

    /// Polls with STUN Binding requests until coturn answers, it exits, or `limit` passes.
    /// coturn keeps retrying a listening port someone else holds, so a port lost to a race
    /// shows as silence until `limit`.
    fn wait_until_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let client = Client::connect(self.addr, Duration::from_millis(50));
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                eprintln!("turnserver exited with {status}");
                return false;
            }
            let id = transaction_id();
            match client.transact(&encode(BINDING | REQUEST, &id, &[], None), &id, 1) {
                Ok(response) if response.kind == BINDING | SUCCESS => {
                    assert_eq!(
                        response.xor_address(XOR_MAPPED_ADDRESS),
                        Some(client.local_addr())
                    );
                    return true;
                }
                Ok(response) => panic!("unexpected answer to Binding: {response:?}"),
                // Not listening yet: the ICMP port unreachable comes back as a refusal.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(_) => {}
            }
        }
        false
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("coturn log ({}):\n{}", self.addr, self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago and that no other test got.
fn free_udp_port() -> u16 {
    loop {
        let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
        if ports.insert(port) {
            return port;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TURN client

/// A live allocation, with what later requests need to authenticate.
#[derive(Debug)]
struct Allocation {
    client: Client,
    relayed: SocketAddr,
    username: String,
    realm: String,
    nonce: Vec<u8>,
    key: [u8; 16],
}

/// Allocates a UDP relay on `coturn` with a long-term credential, or returns the error code of
/// coturn's answer to the authenticated request.
fn allocate(coturn: &Coturn, username: &str, password: &str) -> Result<Allocation, u16> {
    let client = Client::connect(coturn.addr, Duration::from_millis(250));
    let transport = [17, 0, 0, 0]; // UDP

    // The first Allocate has no credentials: coturn answers 401 with its realm and a nonce.
    let id = transaction_id();
    let challenge = client
        .transact(
            &encode(
                ALLOCATE | REQUEST,
                &id,
                &[(REQUESTED_TRANSPORT, &transport)],
                None,
            ),
            &id,
            4,
        )
        .unwrap();
    assert_eq!(challenge.kind, ALLOCATE | ERROR, "{challenge:?}");
    assert_eq!(challenge.error_code(), Some(401), "{challenge:?}");
    assert!(challenge.fingerprint_ok(), "{challenge:?}");
    let realm = challenge.text(REALM).unwrap();
    assert_eq!(realm, coturn.realm);
    let nonce = challenge.attribute(NONCE).unwrap().to_vec();

    let key: [u8; 16] = Md5::digest(format!("{username}:{realm}:{password}")).into();
    let id = transaction_id();
    let request = encode(
        ALLOCATE | REQUEST,
        &id,
        &[
            (USERNAME, username.as_bytes()),
            (REALM, realm.as_bytes()),
            (NONCE, &nonce),
            (REQUESTED_TRANSPORT, &transport),
        ],
        Some(&key),
    );
    let response = client.transact(&request, &id, 4).unwrap();
    assert!(response.fingerprint_ok(), "{response:?}");
    match response.kind {
        k if k == ALLOCATE | SUCCESS => {
            // coturn signed its answer with the same key: it derived our password too.
            assert!(response.integrity_ok(&key), "{response:?}");
            let relayed = response.xor_address(XOR_RELAYED_ADDRESS).unwrap();
            Ok(Allocation {
                client,
                relayed,
                username: username.to_owned(),
                realm,
                nonce,
                key,
            })
        }
        k if k == ALLOCATE | ERROR => Err(response.error_code().unwrap()),
        _ => panic!("unexpected answer to Allocate: {response:?}"),
    }
}

impl Allocation {
    /// Installs a permission for `peer`, or returns the error code of coturn's answer.
    fn create_permission(&self, peer: SocketAddr) -> Result<(), u16> {
        let id = transaction_id();
        let request = encode(
            CREATE_PERMISSION | REQUEST,
            &id,
            &[
                (XOR_PEER_ADDRESS, &xor_address(peer)),
                (USERNAME, self.username.as_bytes()),
                (REALM, self.realm.as_bytes()),
                (NONCE, &self.nonce),
            ],
            Some(&self.key),
        );
        let response = self.client.transact(&request, &id, 4).unwrap();
        assert!(response.fingerprint_ok(), "{response:?}");
        match response.kind {
            k if k == CREATE_PERMISSION | SUCCESS => {
                assert!(response.integrity_ok(&self.key), "{response:?}");
                Ok(())
            }
            k if k == CREATE_PERMISSION | ERROR => Err(response.error_code().unwrap()),
            _ => panic!("unexpected answer to CreatePermission: {response:?}"),
        }
    }

    /// Sends `data` to `peer` through the relay, in a Send indication.
    fn send(&self, peer: SocketAddr, data: &[u8]) {
        let id = transaction_id();
        let indication = encode(
            SEND | INDICATION,
            &id,
            &[(XOR_PEER_ADDRESS, &xor_address(peer)), (DATA, data)],
            None,
        );
        self.client.socket.send(&indication).unwrap();
    }

    /// The next Data indication: who sent it through the relay, and what.
    fn receive_data(&self) -> (SocketAddr, Vec<u8>) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(message) = self.client.receive()
                && message.kind == DATA_METHOD | INDICATION
            {
                let peer = message.xor_address(XOR_PEER_ADDRESS).unwrap();
                return (peer, message.attribute(DATA).unwrap().to_vec());
            }
        }
        panic!("no Data indication within 2 s");
    }
}

/// A UDP socket connected to the server, so that only its answers (and ICMP errors) arrive.
#[derive(Debug)]
struct Client {
    socket: UdpSocket,
}

impl Client {
    fn connect(server: SocketAddr, timeout: Duration) -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket.connect(server).unwrap();
        socket.set_read_timeout(Some(timeout)).unwrap();
        Self { socket }
    }

    fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// Sends `request` up to `attempts` times, one read timeout apart, until the answer with
    /// transaction `id` arrives.
    fn transact(&self, request: &[u8], id: &[u8; 12], attempts: u32) -> io::Result<Message> {
        for _ in 0..attempts {
            self.socket.send(request)?;
            let deadline = Instant::now() + self.socket.read_timeout()?.unwrap_or_default();
            while Instant::now() < deadline {
                match self.receive() {
                    Ok(message) if message.transaction_id == *id => return Ok(message),
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

    /// The next STUN message from the server; other datagrams are skipped.
    fn receive(&self) -> io::Result<Message> {
        let mut buf = [0; 2048];
        loop {
            let len = self.socket.recv(&mut buf)?;
            if let Some(message) = Message::decode(&buf[..len]) {
                return Ok(message);
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn transaction_id() -> [u8; 12] {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut id = [0; 12];
    id[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    id[8..].copy_from_slice(&process::id().to_be_bytes());
    id
}

// ---------------------------------------------------------------------------------------------
// STUN messages (RFC 5389) with the TURN methods and attributes (RFC 5766)

const MAGIC_COOKIE: u32 = 0x2112_A442;

// Methods; for these small values the message type is method | class.
const BINDING: u16 = 0x001;
const ALLOCATE: u16 = 0x003;
const SEND: u16 = 0x006;
const DATA_METHOD: u16 = 0x007;
const CREATE_PERMISSION: u16 = 0x008;

// Classes.
const REQUEST: u16 = 0x0000;
const INDICATION: u16 = 0x0010;
const SUCCESS: u16 = 0x0100;
const ERROR: u16 = 0x0110;

// Attributes.
const USERNAME: u16 = 0x0006;
const MESSAGE_INTEGRITY: u16 = 0x0008;
const ERROR_CODE: u16 = 0x0009;
const XOR_PEER_ADDRESS: u16 = 0x0012;
const DATA: u16 = 0x0013;
const REALM: u16 = 0x0014;
const NONCE: u16 = 0x0015;
const XOR_RELAYED_ADDRESS: u16 = 0x0016;
const REQUESTED_TRANSPORT: u16 = 0x0019;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const FINGERPRINT: u16 = 0x8028;

const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// A message of type `kind`, with `attributes`, then MESSAGE-INTEGRITY when `key` is given,
/// then FINGERPRINT.
fn encode(kind: u16, id: &[u8; 12], attributes: &[(u16, &[u8])], key: Option<&[u8]>) -> Vec<u8> {
    let mut message = Vec::with_capacity(512);
    message.extend_from_slice(&kind.to_be_bytes());
    message.extend_from_slice(&[0, 0]); // length, set below
    message.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    message.extend_from_slice(id);
    for &(kind, value) in attributes {
        push_attribute(&mut message, kind, value);
    }
    if let Some(key) = key {
        // The HMAC covers the header with a length that already counts MESSAGE-INTEGRITY.
        set_length(&mut message, 24);
        let mac = hmac_sha1(key, &message);
        push_attribute(&mut message, MESSAGE_INTEGRITY, &mac);
    }
    // The CRC covers the header with a length that already counts FINGERPRINT.
    set_length(&mut message, 8);
    let crc = crc32(&message) ^ FINGERPRINT_XOR;
    push_attribute(&mut message, FINGERPRINT, &crc.to_be_bytes());
    message
}

fn push_attribute(message: &mut Vec<u8>, kind: u16, value: &[u8]) {
    message.extend_from_slice(&kind.to_be_bytes());
    message.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    message.extend_from_slice(value);
    message.resize(message.len().next_multiple_of(4), 0);
}

/// Sets the header's length to the attributes so far plus `extra` bytes still to come.
fn set_length(message: &mut [u8], extra: usize) {
    let length = u16::try_from(message.len() - 20 + extra).unwrap();
    message[2..4].copy_from_slice(&length.to_be_bytes());
}

/// The XOR-PEER-ADDRESS value for an IPv4 address.
fn xor_address(addr: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(addr) = addr else {
        panic!("IPv4 only: {addr}");
    };
    let mut value = vec![0, 0x01];
    value.extend_from_slice(&(addr.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
    value.extend_from_slice(&(u32::from(*addr.ip()) ^ MAGIC_COOKIE).to_be_bytes());
    value
}

/// A decoded message, with its bytes so that MESSAGE-INTEGRITY and FINGERPRINT can be checked.
#[derive(Debug)]
struct Message {
    kind: u16,
    transaction_id: [u8; 12],
    /// Each attribute's type and the range of the whole attribute (header included) in `raw`.
    attributes: Vec<(u16, Range<usize>)>,
    raw: Vec<u8>,
}

impl Message {
    fn decode(raw: &[u8]) -> Option<Self> {
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

    fn attribute_range(&self, kind: u16) -> Option<Range<usize>> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, range)| range.clone())
    }

    fn attribute(&self, kind: u16) -> Option<&[u8]> {
        let range = self.attribute_range(kind)?;
        self.raw.get(range.start + 4..range.end)
    }

    fn text(&self, kind: u16) -> Option<String> {
        String::from_utf8(self.attribute(kind)?.to_vec()).ok()
    }

    /// ERROR-CODE as a number: class * 100 + number.
    fn error_code(&self) -> Option<u16> {
        let value = self.attribute(ERROR_CODE)?;
        Some(u16::from(value.get(2)? & 0x07) * 100 + u16::from(*value.get(3)?))
    }

    /// An IPv4 XOR-…-ADDRESS attribute.
    fn xor_address(&self, kind: u16) -> Option<SocketAddr> {
        let value = self.attribute(kind)?;
        if value.len() != 8 || value[1] != 0x01 {
            return None;
        }
        let port = u16::from_be_bytes([value[2], value[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
        let ip = u32::from_be_bytes(value[4..8].try_into().ok()?) ^ MAGIC_COOKIE;
        Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
    }

    /// Whether MESSAGE-INTEGRITY is there and is the HMAC of what precedes it under `key`.
    fn integrity_ok(&self, key: &[u8]) -> bool {
        let Some(range) = self.attribute_range(MESSAGE_INTEGRITY) else {
            return false;
        };
        let mut signed = self.raw[..range.start].to_vec();
        set_length(&mut signed, 24);
        self.raw[range.start + 4..range.end] == hmac_sha1(key, &signed)
    }

    /// Whether FINGERPRINT is there, last, and right.
    fn fingerprint_ok(&self) -> bool {
        let Some(range) = self.attribute_range(FINGERPRINT) else {
            return false;
        };
        range.end == self.raw.len()
            && self.raw[range.start + 4..range.end]
                == (crc32(&self.raw[..range.start]) ^ FINGERPRINT_XOR).to_be_bytes()
    }
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// CRC-32 (ISO-HDLC, as in zlib), which FINGERPRINT uses.
fn crc32(data: &[u8]) -> u32 {
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

#[test]
fn crc32_is_the_iso_hdlc_one() {
    // The standard check value.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}
