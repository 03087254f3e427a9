//! [`Relay`]: the client side of one UDP allocation, sans IO.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use turn_types::message::CREATE_PERMISSION;
use turn_types::stun::attribute::{Nonce, Realm};
use turn_types::stun::message::{Message, TransactionId};

use super::{
    Challenge, LongTermCredential, TurnError, allocate_request, create_permission_request,
    read_allocate_response, read_challenge, read_data_indication, read_response, send_indication,
    transaction_id,
};

/// The first retransmission timeout of a request; it doubles after each retransmission.
const RTO: Duration = Duration::from_millis(250);
/// How many times a request is sent before it is given up.
const ATTEMPTS: u32 = 5;
/// How many Send indications are held for a peer whose permission is still being created;
/// the oldest goes first when more come.
const HELD: usize = 64;
/// How many 438 (Stale Nonce) answers one request is retried after.
const STALE_NONCE_RETRIES: u32 = 2;

/// Which way a datagram went, for [`Relay::allocate_observed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Direction {
    /// Sent to the address.
    Sent,
    /// Received from the address.
    Received,
}

/// Something a [`Relay`] reports, from [`Relay::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayEvent {
    /// The server installed a permission for `peer`'s IP address.
    PermissionCreated {
        /// The peer the permission was asked for.
        peer: SocketAddr,
        /// How many Send indications had been held for it and went out now.
        released: usize,
    },
    /// The server refused a permission for `peer`, or never answered; what was held for it is
    /// dropped, and so will be anything sent to it.
    PermissionFailed {
        /// The peer the permission was asked for.
        peer: SocketAddr,
        /// Why.
        error: String,
    },
    /// The server answered a 438 (Stale Nonce): the request goes again with the new nonce.
    StaleNonce,
    /// A datagram from the server that was no Data indication and answered no pending
    /// request: the late answer to a retransmitted request, say.
    Ignored(String),
}

/// What a [`Relay`] counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Send indications queued for the server.
    pub send_indications: u64,
    /// Data indications received from the server.
    pub data_indications: u64,
    /// CreatePermission requests queued for the server, retransmissions included.
    pub permission_requests: u64,
    /// Datagrams dropped: held too long, or for a peer without a permission.
    pub dropped: u64,
}

enum Permission {
    Pending {
        peer: SocketAddr,
        id: TransactionId,
        request: Vec<u8>,
        attempts: u32,
        stale_nonces: u32,
        resend_at: Instant,
        held: VecDeque<Vec<u8>>,
    },
    Installed,
    Failed,
}

/// An allocation on a TURN server, from the client's side and without IO: it builds the
/// datagrams to send to the server ([`Relay::poll_transmit`]), reads the ones that come from it
/// ([`Relay::handle_datagram`]), and keeps time ([`Relay::poll_timeout`],
/// [`Relay::handle_timeout`]), as str0m's `Rtc` does.
///
/// Data goes to peers in Send indications and comes back in Data indications (no ChannelBind):
/// 36 bytes more per datagram, and nothing to refresh but the permission. A Send indication
/// for a peer whose permission is still being created is held until the server has installed
/// it, since the server drops indications for peers without one; sending to a peer without a
/// permission asks for one.
pub struct Relay {
    server: SocketAddr,
    relayed: SocketAddr,
    credential: LongTermCredential,
    /// By the peer's IP address: TURN permissions ignore the port.
    permissions: BTreeMap<IpAddr, Permission>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<RelayEvent>,
    stats: RelayStats,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("server", &self.server)
            .field("relayed", &self.relayed)
            .field("credential", &self.credential)
            .field("permitted", &self.permitted())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Allocates a UDP relay on `server` with `username` and `password`, talking to it on
    /// `socket` (which then carries everything else to and from the server): an Allocate
    /// without credentials to learn the realm and nonce, then the authenticated one. Each is
    /// sent up to 4 times, 250 ms apart. Datagrams from elsewhere, or that answer nothing, are
    /// dropped meanwhile.
    pub async fn allocate(
        socket: &UdpSocket,
        server: SocketAddr,
        username: &str,
        password: &str,
    ) -> Result<Self, TurnError> {
        Self::allocate_observed(socket, server, username, password, |_, _| {}).await
    }

    /// [`Relay::allocate`], telling `observe` of every datagram sent or received on `socket`
    /// meanwhile, and the address at the other end: for a caller that accounts for all of its
    /// socket's traffic.
    pub async fn allocate_observed(
        socket: &UdpSocket,
        server: SocketAddr,
        username: &str,
        password: &str,
        mut observe: impl FnMut(Direction, SocketAddr),
    ) -> Result<Self, TurnError> {
        let id = transaction_id();
        let request = allocate_request(id, None)?;
        let challenge = transact(socket, server, &request, id, &mut observe).await?;
        let challenge: Challenge = read_challenge(&decode(&challenge)?)?;
        let credential = LongTermCredential::new(username, password, challenge);
        let id = transaction_id();
        let request = allocate_request(id, Some(&credential))?;
        let response = transact(socket, server, &request, id, &mut observe).await?;
        let relayed = read_allocate_response(&decode(&response)?, &credential)?;
        Ok(Self::new(server, relayed, credential))
    }

    /// The client side of an allocation made on `server`, relayed on `relayed`, by
    /// `credential`.
    pub fn new(server: SocketAddr, relayed: SocketAddr, credential: LongTermCredential) -> Self {
        Self {
            server,
            relayed,
            credential,
            permissions: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: RelayStats::default(),
        }
    }

    /// The TURN server's address: where everything from [`Relay::poll_transmit`] goes.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The relayed transport address: the candidate to give peers.
    pub fn relayed(&self) -> SocketAddr {
        self.relayed
    }

    /// The credential, with the realm and current nonce.
    pub fn credential(&self) -> &LongTermCredential {
        &self.credential
    }

    /// What was counted so far.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// The IP addresses with an installed permission.
    pub fn permitted(&self) -> Vec<IpAddr> {
        self.permissions
            .iter()
            .filter(|(_, p)| matches!(p, Permission::Installed))
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// Asks for a permission for `peer`'s IP address, unless one is installed or on its way.
    /// Returns whether a request was queued.
    pub fn permit(&mut self, now: Instant, peer: SocketAddr) -> bool {
        if self.permissions.contains_key(&peer.ip()) {
            return false;
        }
        let id = transaction_id();
        match create_permission_request(id, peer, &self.credential) {
            Ok(request) => {
                self.transmits.push_back(request.clone());
                self.stats.permission_requests += 1;
                self.permissions.insert(
                    peer.ip(),
                    Permission::Pending {
                        peer,
                        id,
                        request,
                        attempts: 1,
                        stale_nonces: 0,
                        resend_at: now + RTO,
                        held: VecDeque::new(),
                    },
                );
                true
            }
            Err(err) => {
                self.fail(peer, err.to_string());
                false
            }
        }
    }

    /// Sends `data` to `peer` through the relay, in a Send indication: at once when the peer
    /// has a permission, once it has one when it is being created, after asking for one when
    /// it has none.
    pub fn send(&mut self, now: Instant, peer: SocketAddr, data: &[u8]) {
        let indication = match send_indication(peer, data) {
            Ok(indication) => indication,
            Err(_) => {
                self.stats.dropped += 1;
                return;
            }
        };
        self.permit(now, peer);
        match self.permissions.get_mut(&peer.ip()) {
            Some(Permission::Installed) => {
                self.transmits.push_back(indication);
                self.stats.send_indications += 1;
            }
            Some(Permission::Pending { held, .. }) => {
                if held.len() >= HELD {
                    held.pop_front();
                    self.stats.dropped += 1;
                }
                held.push_back(indication);
            }
            Some(Permission::Failed) | None => self.stats.dropped += 1,
        }
    }

    /// The next datagram to send to [`Relay::server`].
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next thing to report.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// When [`Relay::handle_timeout`] is next due: the earliest retransmission.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.permissions
            .values()
            .filter_map(|p| match p {
                Permission::Pending { resend_at, .. } => Some(*resend_at),
                _ => None,
            })
            .min()
    }

    /// Retransmits the requests that are due, and gives up on the ones sent often enough.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut failed = Vec::new();
        for permission in self.permissions.values_mut() {
            if let Permission::Pending {
                peer,
                request,
                attempts,
                resend_at,
                ..
            } = permission
                && *resend_at <= now
            {
                if *attempts >= ATTEMPTS {
                    failed.push((
                        *peer,
                        TurnError::Timeout {
                            attempts: *attempts,
                        },
                    ));
                } else {
                    self.transmits.push_back(request.clone());
                    self.stats.permission_requests += 1;
                    *resend_at = now + RTO * 2_u32.pow(*attempts);
                    *attempts += 1;
                }
            }
        }
        for (peer, error) in failed {
            self.fail(peer, format!("CreatePermission: {error}"));
        }
    }

    /// Reads a datagram that came from [`Relay::server`]: the peer and data of a Data
    /// indication, `None` for anything else (an answer to a request, reported through
    /// [`Relay::poll_event`]).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Option<(SocketAddr, Vec<u8>)> {
        let message = match Message::from_bytes(datagram) {
            Ok(message) => message,
            Err(err) => {
                self.events.push_back(RelayEvent::Ignored(format!(
                    "a {}-byte datagram that is no STUN message: {err}",
                    datagram.len()
                )));
                return None;
            }
        };
        if let Some((peer, data)) = read_data_indication(&message) {
            self.stats.data_indications += 1;
            return Some((peer, data));
        }
        let pending = self.permissions.iter().find_map(|(ip, p)| match p {
            Permission::Pending { id, .. } if *id == message.transaction_id() => Some(*ip),
            _ => None,
        });
        match pending {
            Some(ip) if message.has_method(CREATE_PERMISSION) => {
                self.on_permission_answer(now, ip, &message);
            }
            _ => self.events.push_back(RelayEvent::Ignored(format!(
                "{message}, answering no pending request"
            ))),
        }
        None
    }

    fn on_permission_answer(&mut self, now: Instant, ip: IpAddr, message: &Message<'_>) {
        let Some(Permission::Pending {
            peer, stale_nonces, ..
        }) = self.permissions.get(&ip)
        else {
            return;
        };
        let (peer, stale_nonces) = (*peer, *stale_nonces);
        match read_response(message, CREATE_PERMISSION, &self.credential) {
            Ok(()) => {
                let previous = self.permissions.insert(ip, Permission::Installed);
                let mut released = 0;
                if let Some(Permission::Pending { held, .. }) = previous {
                    released = held.len();
                    self.stats.send_indications += released as u64;
                    self.transmits.extend(held);
                }
                self.events
                    .push_back(RelayEvent::PermissionCreated { peer, released });
            }
            Err(TurnError::Refused { code: 438, .. }) if stale_nonces < STALE_NONCE_RETRIES => {
                if let Ok(nonce) = message.attribute::<Nonce>() {
                    self.credential.set_nonce(nonce.nonce().to_owned());
                }
                if let Ok(realm) = message.attribute::<Realm>()
                    && realm.realm() != self.credential.realm()
                {
                    self.fail(peer, format!("the realm changed to {:?}", realm.realm()));
                    return;
                }
                self.events.push_back(RelayEvent::StaleNonce);
                let held = match self.permissions.remove(&ip) {
                    Some(Permission::Pending { held, .. }) => held,
                    _ => VecDeque::new(),
                };
                if self.permit(now, peer)
                    && let Some(Permission::Pending {
                        held: new_held,
                        stale_nonces: count,
                        ..
                    }) = self.permissions.get_mut(&ip)
                {
                    *new_held = held;
                    *count = stale_nonces + 1;
                }
            }
            Err(err) => self.fail(peer, format!("CreatePermission: {err}")),
        }
    }

    fn fail(&mut self, peer: SocketAddr, error: String) {
        if let Some(Permission::Pending { held, .. }) =
            self.permissions.insert(peer.ip(), Permission::Failed)
        {
            self.stats.dropped += held.len() as u64;
        }
        self.events
            .push_back(RelayEvent::PermissionFailed { peer, error });
    }
}

/// Decodes a datagram that [`transact`] found to be a STUN message.
fn decode(datagram: &[u8]) -> Result<Message<'_>, TurnError> {
    Message::from_bytes(datagram)
        .map_err(|err| TurnError::Unexpected(format!("a STUN message that fails to decode: {err}")))
}

/// Sends `request` to `server` on `socket` up to 4 times, 250 ms apart, until the answer with
/// transaction `id` comes, and returns its bytes.
async fn transact(
    socket: &UdpSocket,
    server: SocketAddr,
    request: &[u8],
    id: TransactionId,
    observe: &mut impl FnMut(Direction, SocketAddr),
) -> Result<Vec<u8>, TurnError> {
    const TRIES: u32 = 4;
    let mut buf = vec![0; 2048];
    for _ in 0..TRIES {
        socket.send_to(request, server).await?;
        observe(Direction::Sent, server);
        let deadline = tokio::time::Instant::now() + RTO;
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
            let Ok(received) = received else {
                break;
            };
            let (len, from) = received?;
            observe(Direction::Received, from);
            if from != server {
                continue;
            }
            if let Some(datagram) = buf.get(..len)
                && Message::from_bytes(datagram).is_ok_and(|m| m.transaction_id() == id)
            {
                return Ok(datagram.to_vec());
            }
        }
    }
    Err(TurnError::Timeout { attempts: TRIES })
}

#[cfg(test)]
mod tests {
    use turn_types::attribute::{Data, XorPeerAddress};
    use turn_types::stun::attribute::ErrorCode;
    use turn_types::stun::message::{
        IntegrityAlgorithm, IntegrityKey, LongTermKeyCredentials, MessageClass, MessageWrite,
        MessageWriteExt, MessageWriteVec,
    };

    use super::*;

    fn relay() -> Relay {
        let challenge = Challenge {
            realm: "realm".to_owned(),
            nonce: "nonce".to_owned(),
        };
        Relay::new(
            "127.0.0.1:3478".parse().unwrap(),
            "127.0.0.1:61000".parse().unwrap(),
            LongTermCredential::new("user", "pass", challenge),
        )
    }

    /// The server's answer to `request`: a success signed with `key`, or an error.
    fn answer(request: &Message<'_>, key: &IntegrityKey, error: Option<(u16, &str)>) -> Vec<u8> {
        let mut answer = match error {
            None => Message::builder_success(request, MessageWriteVec::new()),
            Some((code, nonce)) => {
                let mut answer = Message::builder_error(request, MessageWriteVec::new());
                let error = ErrorCode::new(code, "Stale Nonce").unwrap();
                answer.add_attribute(&error).unwrap();
                answer.add_attribute(&Realm::new("realm").unwrap()).unwrap();
                answer.add_attribute(&Nonce::new(nonce).unwrap()).unwrap();
                answer
            }
        };
        answer
            .add_message_integrity_with_key(key, IntegrityAlgorithm::Sha1)
            .unwrap();
        answer.add_fingerprint().unwrap();
        answer.finish()
    }

    #[test]
    fn sends_wait_for_the_permission_then_go_out() {
        let mut relay = relay();
        let now = Instant::now();
        let peer: SocketAddr = "127.0.0.1:61001".parse().unwrap();
        relay.send(now, peer, b"one");
        relay.send(now, peer, b"two");
        let request = relay.poll_transmit().unwrap();
        let request = Message::from_bytes(&request).unwrap();
        assert!(request.has_method(CREATE_PERMISSION));
        assert_eq!(relay.poll_transmit(), None);

        // Lost: it goes again.
        relay.handle_timeout(relay.poll_timeout().unwrap());
        let again = relay.poll_transmit().unwrap();
        let again = Message::from_bytes(&again).unwrap();
        assert_eq!(again.transaction_id(), request.transaction_id());

        let success = answer(&request, &relay.credential().key().clone(), None);
        assert_eq!(relay.handle_datagram(now, &success), None);
        assert_eq!(
            relay.poll_event(),
            Some(RelayEvent::PermissionCreated { peer, released: 2 })
        );
        for expected in [b"one", b"two"] {
            let sent = relay.poll_transmit().unwrap();
            let sent = Message::from_bytes(&sent).unwrap();
            let to = sent.attribute::<XorPeerAddress>().unwrap();
            assert_eq!(to.addr(sent.transaction_id()), peer);
            assert_eq!(sent.attribute::<Data<'_>>().unwrap().data(), expected);
        }
        assert_eq!(relay.poll_timeout(), None);
        assert_eq!(relay.permitted(), vec![peer.ip()]);
        assert_eq!(relay.stats().send_indications, 2);
    }

    #[test]
    fn an_unsigned_success_is_not_a_permission() {
        let mut relay = relay();
        let now = Instant::now();
        let peer: SocketAddr = "127.0.0.1:61001".parse().unwrap();
        relay.permit(now, peer);
        let request = relay.poll_transmit().unwrap();
        let request = Message::from_bytes(&request).unwrap();
        // Signed with the key of another password.
        let forger = LongTermKeyCredentials::new("user".into(), "guess".into(), "realm".into());
        let forged = answer(&request, &forger.make_key(IntegrityAlgorithm::Sha1), None);
        relay.handle_datagram(now, &forged);
        assert!(matches!(
            relay.poll_event(),
            Some(RelayEvent::PermissionFailed { .. })
        ));
        assert!(relay.permitted().is_empty());
    }

    /// A datagram whose FINGERPRINT fails (the codec refuses to decode it) answers nothing:
    /// the request stays pending and is sent again.
    #[test]
    fn a_corrupted_answer_is_ignored() {
        let mut relay = relay();
        let now = Instant::now();
        let peer: SocketAddr = "127.0.0.1:61001".parse().unwrap();
        relay.permit(now, peer);
        let request = relay.poll_transmit().unwrap();
        let request = Message::from_bytes(&request).unwrap();
        let mut success = answer(&request, &relay.credential().key().clone(), None);
        // A bit of MESSAGE-INTEGRITY's value: only FINGERPRINT (the last 8 bytes) tells it
        // before the HMAC would, which would fail the permission instead.
        let at = success.len() - 12;
        success[at] ^= 1;
        assert_eq!(relay.handle_datagram(now, &success), None);
        assert!(matches!(relay.poll_event(), Some(RelayEvent::Ignored(_))));
        assert!(relay.permitted().is_empty());
        relay.handle_timeout(relay.poll_timeout().unwrap());
        let again = relay.poll_transmit().unwrap();
        let again = Message::from_bytes(&again).unwrap();
        assert_eq!(again.transaction_id(), request.transaction_id());
    }

    #[test]
    fn a_stale_nonce_is_replaced_and_the_request_sent_again() {
        let mut relay = relay();
        let now = Instant::now();
        let peer: SocketAddr = "127.0.0.1:61001".parse().unwrap();
        relay.send(now, peer, b"held");
        let request = relay.poll_transmit().unwrap();
        let request = Message::from_bytes(&request).unwrap();
        let key = relay.credential().key().clone();
        let stale = answer(&request, &key, Some((438, "fresh")));
        assert_eq!(relay.handle_datagram(now, &stale), None);
        assert_eq!(relay.poll_event(), Some(RelayEvent::StaleNonce));
        assert_eq!(relay.credential().nonce(), "fresh");

        let again = relay.poll_transmit().unwrap();
        let again = Message::from_bytes(&again).unwrap();
        assert_ne!(again.transaction_id(), request.transaction_id());
        assert_eq!(again.attribute::<Nonce>().unwrap().nonce(), "fresh");
        relay.handle_datagram(now, &answer(&again, &key, None));
        assert_eq!(
            relay.poll_event(),
            Some(RelayEvent::PermissionCreated { peer, released: 1 })
        );
        let sent = relay.poll_transmit().unwrap();
        let sent = Message::from_bytes(&sent).unwrap();
        assert!(sent.has_class(MessageClass::Indication));
    }
}
