//! The TURN credentials [`TurnConfig`] issues, tried against a real coturn on loopback UDP.
//!
//! Each test starts its own `turnserver` (install it with `scripts/install-test-deps.sh`) with
//! `use-auth-secret`, from the library's [`Coturn`], then speaks TURN to it with the library's
//! minimal TURN client (RFC 5389 and RFC 5766, messages encoded by `turn-types`), one blocking
//! transaction at a time, checking each answer here: an Allocate without credentials to learn the
//! realm and nonce, an Allocate with the long-term credential (MESSAGE-INTEGRITY keyed with
//! `MD5(username:realm:password)`), then CreatePermission for a loopback peer. Credentials are
//! issued at `SystemTime::now()`, since coturn compares the username's expiry with its own clock.

// Marks the helpers below as test code, for clippy's `allow-*-in-tests`.
#![cfg(test)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use kvs_ice_rest::{TurnConfig, TurnSecret};
use kvs_signaling_proto::{ChannelArn, IceServerTtl, IceUri};
use kvs_signaling_tests::turn::{
    Coturn, LongTermCredential, UdpClient, allocate_request, create_permission_request,
    read_allocate_response, read_challenge, read_data_indication, send_indication, transaction_id,
};
use turn_types::attribute::{Data, XorPeerAddress};
use turn_types::message::{ALLOCATE, CREATE_PERMISSION, DATA};
use turn_types::stun::attribute::{AttributeStaticType, ErrorCode, Fingerprint, Nonce, Realm};
use turn_types::stun::message::{LongTermKeyCredentials, Message, MessageClass};

const SECRET: &str = "kvs-test-shared-secret";
const OLD_SECRET: &str = "kvs-test-old-secret";
const NEW_SECRET: &str = "kvs-test-new-secret";

fn arn() -> ChannelArn {
    ChannelArn::new("arn:aws:kinesisvideo:us-west-2:123456789012:channel/mychannel/1657142193914")
        .unwrap()
}

/// Our configuration, pointing at `coturn`.
fn config(coturn: &Coturn, secrets: Vec<TurnSecret>) -> TurnConfig {
    let port = coturn.addr().port();
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
    let coturn = start(&[SECRET]);
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
    assert_eq!(server, coturn.addr());
    let username = turn.username.as_ref().unwrap().as_str();
    let password = turn.password.as_ref().unwrap().as_str();

    let allocation = allocate(&coturn, username, password).unwrap();
    assert_eq!(allocation.relayed.ip(), Ipv4Addr::LOCALHOST);
    assert!(
        coturn.relay_ports().contains(&allocation.relayed.port()),
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
    let coturn = start(&[SECRET]);
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
    let coturn = start(&[SECRET]);
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
    let coturn = start(&[NEW_SECRET]);
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
    let coturn = start(&[NEW_SECRET, OLD_SECRET]);
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
// TURN client: the library's, one blocking transaction at a time, with every check spelled out

/// coturn with `secrets`, from the library's launcher.
fn start(secrets: &[&str]) -> Coturn {
    Coturn::start(secrets).unwrap_or_else(|e| panic!("{e}"))
}

/// A live allocation, with what later requests need to authenticate.
#[derive(Debug)]
struct Allocation {
    client: UdpClient,
    relayed: SocketAddr,
    credential: LongTermCredential,
}

/// Allocates a UDP relay on `coturn` with a long-term credential, or returns the error code of
/// coturn's answer to the authenticated request.
fn allocate(coturn: &Coturn, username: &str, password: &str) -> Result<Allocation, u16> {
    let client = UdpClient::connect(coturn.addr(), Duration::from_millis(250)).unwrap();

    // The first Allocate has no credentials: coturn answers 401 with its realm and a nonce.
    let id = transaction_id();
    let challenge = client
        .transact(&allocate_request(id, None).unwrap(), id, 4)
        .unwrap();
    // Decoding checks FINGERPRINT, which coturn adds to every message.
    let challenge = Message::from_bytes(&challenge).unwrap();
    assert!(challenge.has_attribute(Fingerprint::TYPE), "{challenge}");
    assert!(
        challenge.has_method(ALLOCATE) && challenge.has_class(MessageClass::Error),
        "{challenge}"
    );
    assert_eq!(challenge.attribute::<ErrorCode>().unwrap().code(), 401);
    let realm = challenge.attribute::<Realm>().unwrap();
    assert_eq!(realm.realm(), coturn.realm());
    let nonce = challenge.attribute::<Nonce>().unwrap();
    let read = read_challenge(&challenge).unwrap();
    assert_eq!(
        (read.realm.as_str(), read.nonce.as_str()),
        (realm.realm(), nonce.nonce())
    );

    let credential = LongTermCredential::new(username, password, read);
    let id = transaction_id();
    let request = allocate_request(id, Some(&credential)).unwrap();
    let response = client.transact(&request, id, 4).unwrap();
    let response = Message::from_bytes(&response).unwrap();
    assert!(response.has_attribute(Fingerprint::TYPE), "{response}");
    assert!(response.has_method(ALLOCATE), "{response}");
    if response.has_class(MessageClass::Success) {
        // coturn signed its answer with MD5(username:realm:password): it derived our
        // password from the username and its secret too.
        let ours = LongTermKeyCredentials::new(
            username.to_owned(),
            password.to_owned(),
            coturn.realm().to_owned(),
        );
        assert!(
            response.validate_integrity(&ours.into()).is_ok(),
            "{response}"
        );
        let relayed = read_allocate_response(&response, &credential).unwrap();
        Ok(Allocation {
            client,
            relayed,
            credential,
        })
    } else {
        assert!(response.has_class(MessageClass::Error), "{response}");
        let code = response.attribute::<ErrorCode>().unwrap().code();
        assert_eq!(
            read_allocate_response(&response, &credential)
                .unwrap_err()
                .code(),
            Some(code)
        );
        Err(code)
    }
}

impl Allocation {
    /// Installs a permission for `peer`, or returns the error code of coturn's answer.
    fn create_permission(&self, peer: SocketAddr) -> Result<(), u16> {
        let id = transaction_id();
        let request = create_permission_request(id, peer, &self.credential).unwrap();
        let response = self.client.transact(&request, id, 4).unwrap();
        let response = Message::from_bytes(&response).unwrap();
        assert!(response.has_attribute(Fingerprint::TYPE), "{response}");
        assert!(response.has_method(CREATE_PERMISSION), "{response}");
        if response.has_class(MessageClass::Success) {
            assert!(
                response
                    .validate_integrity_with_key(self.credential.key())
                    .is_ok(),
                "{response}"
            );
            Ok(())
        } else {
            Err(response.attribute::<ErrorCode>().unwrap().code())
        }
    }

    /// Sends `data` to `peer` through the relay, in a Send indication.
    fn send(&self, peer: SocketAddr, data: &[u8]) {
        self.client
            .send(&send_indication(peer, data).unwrap())
            .unwrap();
    }

    /// The next Data indication: who sent it through the relay, and what.
    fn receive_data(&self) -> (SocketAddr, Vec<u8>) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let Ok(datagram) = self.client.receive() else {
                continue;
            };
            let message = Message::from_bytes(&datagram).unwrap();
            if message.has_method(DATA) && message.has_class(MessageClass::Indication) {
                let peer = message.attribute::<XorPeerAddress>().unwrap();
                let peer = peer.addr(message.transaction_id());
                let data = message.attribute::<Data<'_>>().unwrap().data().to_vec();
                assert_eq!(read_data_indication(&message), Some((peer, data.clone())));
                return (peer, data);
            }
        }
        panic!("no Data indication within 2 s");
    }
}
