//! Model-based checking of the hub: random sequences of opens, closes, frames and time steps,
//! decoded from bytes (so that proptest and a coverage-guided fuzzer drive the same code), run
//! against the hub and a plain reference model, with the invariants checked after every step:
//!
//! - every relayed message reaches exactly the connection it was meant for, and nothing else;
//! - nothing deliverable is lost while its TTL lasts: a message for a connected recipient is
//!   delivered at once, one for an absent recipient when it connects, in order;
//! - the hub buffers exactly what the model buffers, within the configured bounds;
//! - at most one current master per channel; no output names a closed connection;
//! - a connection takes its identity only once established, and only from one opened before
//!   it: the newest connect wins, whatever order the sockets come up in;
//! - GO_AWAY and RECONNECT_ICE_SERVER reach only connections that handle them;
//! - the hub's count of held bytes is the sum of what it holds, within its bound;
//! - timers move (checked by [`Sim::advance`]).
//!
//! Running the same sequence twice gives the same transcript (the determinism check).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kvs_signaling_proto::{Action, MessagePayload, MessageType, ServerEvent};

use super::{Sim, arn};
use crate::hub::{ConnId, HubConfig, Output};

/// One step of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// A master (`viewer: None`) or viewer connects to channel `channel`.
    Open {
        /// Channel 0 to 2.
        channel: u8,
        /// Viewer id 0 to 4.
        viewer: Option<u8>,
        /// Whether its socket is up at once; if not, [`Transition::Establish`] brings it up.
        established: bool,
        /// Whether it handles GO_AWAY and RECONNECT_ICE_SERVER.
        indications: bool,
    },
    /// The socket of one of the connections still opening comes up.
    Establish(u8),
    /// A client closes one of the open connections (chosen modulo their number).
    Close(u8),
    /// A connection sends a message.
    Send {
        /// The sender, modulo the open connections.
        conn: u8,
        /// 0: offer, 1: answer, 2: candidate.
        action: u8,
        /// The recipient viewer id a master names (0 to 4), or none.
        recipient: Option<u8>,
        /// Whether the message carries a correlation id.
        correlation: bool,
        /// Whether the frame is broken (a bad payload).
        broken: bool,
    },
    /// A ping on a connection.
    Keepalive(u8),
    /// Time passes.
    Advance(Duration),
    /// The hub drains.
    Drain,
    /// RECONNECT_ICE_SERVER to a channel.
    ReconnectIce(u8),
    /// A channel is deleted.
    Delete(u8),
}

impl Transition {
    /// Reads one transition from the head of `bytes`.
    pub fn decode(bytes: &mut &[u8]) -> Option<Self> {
        let mut next = || {
            let (&b, rest) = bytes.split_first()?;
            *bytes = rest;
            Some(b)
        };
        let kind = next()?;
        let a = next().unwrap_or(0);
        let b = next().unwrap_or(0);
        Some(match kind % 16 {
            0..=3 => Self::Open {
                channel: a % 3,
                viewer: (b % 6 != 5).then_some(b % 6),
                established: a & 0x30 != 0x30,
                indications: a & 0x40 != 0,
            },
            4 if a & 1 == 0 => Self::Close(a >> 1),
            4 => Self::Establish(a >> 1),
            5..=10 => Self::Send {
                conn: a,
                action: b % 3,
                recipient: (b / 3 % 6 != 5).then_some(b / 3 % 6),
                correlation: b & 0x40 != 0,
                broken: b & 0x80 != 0 && a & 1 == 0,
            },
            11 => Self::Keepalive(a),
            12 | 13 => Self::Advance(match a % 4 {
                0 => Duration::from_millis(u64::from(b) * 10),
                1 => Duration::from_secs(u64::from(b % 10)),
                2 => Duration::from_secs(u64::from(b) * 2),
                _ => Duration::from_secs(u64::from(b) * 30),
            }),
            14 if a % 64 == 0 => Self::Drain,
            14 => Self::ReconnectIce(b % 3),
            _ => Self::Delete(a % 3),
        })
    }

    /// Reads every transition in `bytes`.
    pub fn decode_all(mut bytes: &[u8]) -> Vec<Self> {
        std::iter::from_fn(|| Self::decode(&mut bytes)).collect()
    }
}

/// Whom a message is for, in the model.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum To {
    Master,
    Viewer(u8),
}

#[derive(Debug, Clone)]
struct Message {
    id: u64,
    channel: u8,
    to: To,
    sender: Option<u8>,
    action: Action,
    expires: Instant,
}

#[derive(Debug, Clone)]
struct ModelConn {
    id: ConnId,
    channel: u8,
    viewer: Option<u8>,
    /// The order of its connect.
    seq: u64,
    /// Its socket is not up yet.
    opening: bool,
    indications: bool,
}

/// The reference model: who holds which identity, and what waits for whom.
#[derive(Debug, Default)]
struct Model {
    open: Vec<ModelConn>,
    /// The current connection of each (channel, identity).
    current: BTreeMap<(u8, To), ConnId>,
    pending: Vec<Message>,
    ttl: BTreeMap<u8, Duration>,
    draining: bool,
    next_message: u64,
    next_seq: u64,
}

impl Model {
    fn holder(&self, channel: u8, to: &To) -> Option<ConnId> {
        self.current.get(&(channel, to.clone())).copied()
    }

    /// `conn`'s socket came up: it takes its identity unless a later connect holds it, and
    /// gets what waits for it. Returns the deliveries this makes.
    fn establish(&mut self, now: Instant, conn: ConnId) -> Vec<(ConnId, u64)> {
        let Some(c) = self.open.iter_mut().find(|c| c.id == conn && c.opening) else {
            return Vec::new();
        };
        c.opening = false;
        let (channel, to, seq) = (c.channel, c.viewer.map_or(To::Master, To::Viewer), c.seq);
        let holder_seq = self
            .holder(channel, &to)
            .and_then(|h| self.open.iter().find(|c| c.id == h))
            .map(|h| h.seq);
        if holder_seq.is_some_and(|held| held > seq) {
            return Vec::new();
        }
        self.current.insert((channel, to.clone()), conn);
        self.expire(now);
        let (mine, rest): (Vec<Message>, Vec<Message>) = self
            .pending
            .drain(..)
            .partition(|m| m.channel == channel && m.to == to);
        self.pending = rest;
        mine.iter().map(|m| (conn, m.id)).collect()
    }

    fn forget(&mut self, conn: ConnId) {
        self.open.retain(|c| c.id != conn);
        self.current.retain(|_, holder| *holder != conn);
    }

    fn expire(&mut self, now: Instant) {
        self.pending.retain(|m| m.expires > now);
    }
}

/// The configuration the model runs the hub with: the service's limits, with buffers small
/// enough that sequences reach them.
pub fn config() -> HubConfig {
    HubConfig::default()
        .max_pending_per_recipient(4)
        .max_pending_recipients_per_channel(3)
        .max_viewers_per_channel(3)
        .max_held_bytes(1000)
}

/// The payload that carries message `id`.
fn payload(id: u64) -> String {
    MessagePayload::encode(format!("m{id}").as_bytes())
        .as_str()
        .to_owned()
}

/// The message id a relayed frame carries.
fn message_id(frame: &str) -> Option<(u64, ServerEvent<'_>)> {
    let event = ServerEvent::decode(frame).ok()?;
    let bytes = event.message_payload.as_ref()?.decode().ok()?;
    let id = std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix('m')?
        .parse()
        .ok()?;
    Some((id, event))
}

/// Runs `transitions` against a hub and the model, checking every invariant after every step,
/// and returns the transcript.
pub fn run(transitions: &[Transition]) -> String {
    run_counted(transitions).0
}

/// Like [`run`], also returning the hub's counters at the end.
pub fn run_counted(transitions: &[Transition]) -> (String, crate::Counters) {
    let mut sim = Sim::new(config());
    let mut model = Model::default();
    let mut transcript = String::new();
    for transition in transitions {
        step(&mut sim, &mut model, transition, &mut transcript);
        check_state(&sim, &model);
    }
    (transcript, sim.hub.counters().clone())
}

fn step(sim: &mut Sim, model: &mut Model, transition: &Transition, transcript: &mut String) {
    let now = sim.now;
    let before = sim.hub.counters().clone();
    // What this step must deliver: (connection, message id), in order per connection.
    let mut expected: Vec<(ConnId, u64)> = Vec::new();
    let mut sent: Option<Message> = None;
    let pick = |model: &Model, n: u8| -> Option<ModelConn> {
        let len = model.open.len();
        (len > 0).then(|| model.open[usize::from(n) % len].clone())
    };
    match transition {
        Transition::Open {
            channel,
            viewer,
            established,
            indications,
        } => {
            let name = format!("c{channel}");
            let open = match viewer {
                None => crate::OpenConnection::master(arn(&name), Default::default()),
                Some(v) => crate::OpenConnection::viewer(
                    arn(&name),
                    kvs_signaling_proto::ClientId::new(format!("v{v}"))
                        .unwrap_or_else(|e| panic!("{e}")),
                    Default::default(),
                ),
            };
            match sim.hub.handle_open(now, open.indications(*indications)) {
                Ok(id) => {
                    assert!(!model.draining, "a draining hub accepted a connection");
                    model.next_seq += 1;
                    model.open.push(ModelConn {
                        id,
                        channel: *channel,
                        viewer: *viewer,
                        seq: model.next_seq,
                        opening: true,
                        indications: *indications,
                    });
                    transcript.push_str(&format!("open c{channel} {viewer:?} -> {id:?}\n"));
                    if *established {
                        sim.hub.handle_established(now, id);
                        expected.extend(model.establish(now, id));
                    }
                }
                Err(refused) => {
                    transcript.push_str(&format!("open c{channel} {viewer:?} refused {refused}\n"));
                }
            }
        }
        Transition::Close(n) => {
            if let Some(conn) = pick(model, *n) {
                sim.hub.handle_close(now, conn.id);
                model.forget(conn.id);
                transcript.push_str(&format!("close {:?}\n", conn.id));
            }
        }
        Transition::Establish(n) => {
            let opening: Vec<ModelConn> =
                model.open.iter().filter(|c| c.opening).cloned().collect();
            if let Some(conn) =
                (!opening.is_empty()).then(|| opening[usize::from(*n) % opening.len()].clone())
            {
                sim.hub.handle_established(now, conn.id);
                expected.extend(model.establish(now, conn.id));
                transcript.push_str(&format!("establish {:?}\n", conn.id));
            }
        }
        Transition::Keepalive(n) => {
            if let Some(conn) = pick(model, *n) {
                sim.hub.handle_keepalive(now, conn.id);
            }
        }
        Transition::Send {
            conn,
            action,
            recipient,
            correlation,
            broken,
        } => {
            let Some(from) = pick(model, *conn) else {
                return;
            };
            model.next_message += 1;
            let id = model.next_message;
            let action = match action {
                0 => Action::SdpOffer,
                1 => Action::SdpAnswer,
                _ => Action::IceCandidate,
            };
            let mut frame = format!(
                r#"{{"action":"{action}","messagePayload":"{}""#,
                if *broken {
                    "a$b".to_owned()
                } else {
                    payload(id)
                }
            );
            if let Some(r) = recipient {
                frame.push_str(&format!(r#","recipientClientId":"v{r}""#));
            }
            if *correlation {
                frame.push_str(&format!(r#","correlationId":"k{id}""#));
            }
            frame.push('}');
            sim.hub.handle_frame(now, from.id, &frame);
            transcript.push_str(&format!("send {:?} {frame}\n", from.id));
            let is_current = model
                .holder(from.channel, &from.viewer.map_or(To::Master, To::Viewer))
                == Some(from.id);
            let to = match (from.viewer, recipient) {
                (Some(_), _) => Some(To::Master),
                (None, Some(r)) => Some(To::Viewer(*r)),
                (None, None) => None,
            };
            if let (true, false, Some(to)) = (is_current, *broken, to) {
                let ttl = model
                    .ttl
                    .get(&from.channel)
                    .copied()
                    .unwrap_or(Duration::from_secs(60));
                sent = Some(Message {
                    id,
                    channel: from.channel,
                    to,
                    sender: from.viewer,
                    action,
                    expires: now + ttl,
                });
            }
        }
        Transition::Advance(by) => {
            let end = now + *by;
            while let Some(at) = sim.hub.poll_timeout().filter(|&at| at <= end) {
                sim.now = at;
                sim.hub.handle_timeout(at);
                assert!(
                    sim.hub.poll_timeout().is_none_or(|next| next > at),
                    "timers did not move"
                );
                model.expire(at);
                transcript.push_str(&format!("[{:?}]\n", at - sim.start));
                let relayed = handle_outputs(sim, model, transcript);
                assert!(relayed.is_empty(), "time alone relayed {relayed:?}");
            }
            sim.now = end;
            model.expire(end);
            return;
        }
        Transition::Drain => {
            sim.hub.drain(now);
            model.draining = true;
            transcript.push_str("drain\n");
        }
        Transition::ReconnectIce(channel) => {
            sim.hub
                .reconnect_ice_servers(now, &arn(&format!("c{channel}")));
        }
        Transition::Delete(channel) => {
            sim.hub
                .handle_channel_deleted(now, &arn(&format!("c{channel}")));
            model.pending.retain(|m| m.channel != *channel);
            transcript.push_str(&format!("delete c{channel}\n"));
        }
    }

    let after = sim.hub.counters().clone();
    let refused = after.throttled + after.buffer_full + after.invalid
        > before.throttled + before.buffer_full + before.invalid;
    if let Some(message) = sent.filter(|_| !refused) {
        match model.holder(message.channel, &message.to) {
            Some(holder) => expected.push((holder, message.id)),
            None => {
                // A newer offer or answer from the same sender replaces an undelivered one.
                if matches!(message.action, Action::SdpOffer | Action::SdpAnswer) {
                    model.pending.retain(|m| {
                        !(m.channel == message.channel
                            && m.to == message.to
                            && m.sender == message.sender
                            && m.action == message.action)
                    });
                }
                model.pending.push(message);
            }
        }
    }
    let delivered = handle_outputs(sim, model, transcript);
    assert_eq!(
        delivered, expected,
        "after {transition:?}: delivered (left) differs from what the model expects (right)"
    );
}

/// Takes every output, checks it against the model, applies closes to the model, and returns
/// the relayed messages delivered, in order.
fn handle_outputs(sim: &mut Sim, model: &mut Model, transcript: &mut String) -> Vec<(ConnId, u64)> {
    let mut delivered: Vec<(ConnId, u64)> = Vec::new();
    while let Some(output) = sim.hub.poll_output() {
        match output {
            Output::Deliver { conn, frame } => {
                assert!(
                    model.open.iter().any(|c| c.id == conn),
                    "delivery to a closed connection {conn:?}: {}\n{transcript}",
                    frame.as_str()
                );
                if let Some((id, event)) = message_id(frame.as_str()) {
                    // The sender's identity is stamped on deliveries to the master only.
                    let target = model.open.iter().find(|c| c.id == conn);
                    let to_master = target.is_some_and(|c| c.viewer.is_none());
                    assert_eq!(
                        event.sender_client_id.is_some(),
                        to_master,
                        "senderClientId on {}",
                        frame.as_str()
                    );
                    delivered.push((conn, id));
                } else {
                    let event = ServerEvent::decode(frame.as_str()).unwrap_or_else(|err| {
                        panic!("undecodable frame {}: {err}", frame.as_str())
                    });
                    assert!(
                        matches!(
                            event.message_type,
                            MessageType::StatusResponse
                                | MessageType::GoAway
                                | MessageType::ReconnectIceServer
                        ),
                        "unexpected frame {}",
                        frame.as_str()
                    );
                    if matches!(
                        event.message_type,
                        MessageType::GoAway | MessageType::ReconnectIceServer
                    ) {
                        let target = model.open.iter().find(|c| c.id == conn);
                        assert!(
                            target.is_some_and(|c| c.indications && !c.opening),
                            "{} to {target:?}, which does not handle it",
                            frame.as_str()
                        );
                    }
                }
                transcript.push_str(&format!(
                    "  deliver {conn:?} {}\n",
                    super::shorten(frame.as_str())
                ));
            }
            Output::Close { conn, reason } => {
                assert!(
                    model.open.iter().any(|c| c.id == conn),
                    "close of a closed connection {conn:?}"
                );
                model.forget(conn);
                transcript.push_str(&format!("  close {conn:?} {reason:?}\n"));
            }
            Output::AlexaAnswer { .. } => panic!("no Alexa offer was made"),
            Output::Observed(_) => {}
        }
    }
    delivered
}

fn check_state(sim: &Sim, model: &Model) {
    // The hub holds exactly the connections and buffered messages the model holds.
    assert_eq!(
        sim.hub.connection_count(),
        model.open.len(),
        "open connections"
    );
    assert_eq!(
        sim.hub.buffered_count(),
        model.pending.len(),
        "buffered messages"
    );
    // One timer per connection, per recipient with buffered messages and per channel kept
    // for its rate buckets, at most.
    assert!(
        sim.hub.timer_count()
            <= sim.hub.connection_count() + sim.hub.buffered_count() + sim.hub.channel_count(),
        "{} timers for {} connections, {} buffered messages and {} channels",
        sim.hub.timer_count(),
        sim.hub.connection_count(),
        sim.hub.buffered_count(),
        sim.hub.channel_count()
    );
    assert_eq!(
        sim.hub.held_bytes(),
        sim.hub.recount_held_bytes(),
        "held bytes drifted from what is held"
    );
    assert!(sim.hub.held_bytes() <= sim.hub.config().max_held_bytes);
    let config = sim.hub.config();
    let mut per_recipient: BTreeMap<(u8, To), usize> = BTreeMap::new();
    for m in &model.pending {
        *per_recipient.entry((m.channel, m.to.clone())).or_default() += 1;
    }
    assert!(
        per_recipient
            .values()
            .all(|&n| n <= config.max_pending_per_recipient)
    );
    // At most one current master per channel, and the hub agrees on who holds each identity.
    let mut masters: BTreeSet<u8> = BTreeSet::new();
    for conn in &model.open {
        let current = sim.hub.is_current(conn.id);
        let holder = model.holder(conn.channel, &conn.viewer.map_or(To::Master, To::Viewer));
        assert_eq!(current, holder == Some(conn.id), "standing of {conn:?}");
        if current && conn.viewer.is_none() {
            assert!(
                masters.insert(conn.channel),
                "two current masters on c{}",
                conn.channel
            );
        }
    }
}

/// Every committed input of the `hub_sequence` fuzz target, and every crash turned into a
/// regression input, run through the model by `cargo test`, without the fuzzer.
#[cfg(test)]
mod corpus {
    #[test]
    fn the_committed_corpus_replays() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/hub_sequence");
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{} holds no input", dir.display());
        for input in inputs {
            let transitions = super::Transition::decode_all(&std::fs::read(&input).unwrap());
            assert_eq!(
                super::run(&transitions),
                super::run(&transitions),
                "{} ran differently twice",
                input.display()
            );
        }
    }
}
