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
//! - timers move (checked by [`Sim::advance`]);
//! - a connection that asked for delivery status hears, for each message it sends with a
//!   correlation id, exactly the true statuses: `HELD` while its message waits, then one
//!   final `DELIVERED` (once the harness, as the transport would, reports the frame
//!   written), `EXPIRED` or `OVERWRITTEN`; a frame reported unwritten (its connection ended
//!   first) is held again or goes to the recipient's newer connection. Nobody else hears a
//!   status.
//!
//! Running the same sequence twice gives the same transcript (the determinism check).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kvs_signaling_proto::{Action, DeliveryState, MessagePayload, MessageType, ServerEvent};

use super::{Sim, arn};
use crate::hub::{ConnId, Frame, HubConfig, Output, Receipt};

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
        /// Whether it asks for delivery status.
        delivery_status: bool,
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
    /// The transport reports one of the tracked frames in flight (chosen modulo their number)
    /// written to its socket.
    Written(u8),
    /// The socket a tracked frame in flight goes to fails: the connection ends, and what was
    /// in flight to it comes back unwritten.
    SocketFailed(u8),
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
                delivery_status: a & 0x80 != 0 || b & 0x40 != 0,
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
            11 => match a % 4 {
                0 => Self::Keepalive(a >> 2),
                3 => Self::SocketFailed(b),
                _ => Self::Written(b),
            },
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
    delivery_status: bool,
}

/// A tracked frame handed to a connection, not yet reported written or unwritten.
#[derive(Debug, Clone)]
struct InFlight {
    to: ConnId,
    receipt: Receipt,
    frame: Frame,
    message: Message,
}

/// A status a sender hears: (sender, correlation id, status).
type Status = (ConnId, String, DeliveryState);

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
    /// Messages whose sender asked for delivery status: id to (sender, correlation id), and
    /// the messages themselves.
    tracked: BTreeMap<u64, (ConnId, String)>,
    tracked_messages: BTreeMap<u64, Message>,
    in_flight: Vec<InFlight>,
    /// How often each delivery-status path was taken, for the coverage check.
    coverage: BTreeMap<&'static str, u64>,
}

impl Model {
    fn holder(&self, channel: u8, to: &To) -> Option<ConnId> {
        self.current.get(&(channel, to.clone())).copied()
    }

    /// `conn`'s socket came up: it takes its identity unless a later connect holds it, and
    /// gets what waits for it. Returns the deliveries this makes.
    fn establish(&mut self, now: Instant, conn: ConnId) -> (Vec<(ConnId, u64)>, Vec<Status>) {
        let Some(c) = self.open.iter_mut().find(|c| c.id == conn && c.opening) else {
            return (Vec::new(), Vec::new());
        };
        c.opening = false;
        let (channel, to, seq) = (c.channel, c.viewer.map_or(To::Master, To::Viewer), c.seq);
        let holder_seq = self
            .holder(channel, &to)
            .and_then(|h| self.open.iter().find(|c| c.id == h))
            .map(|h| h.seq);
        if holder_seq.is_some_and(|held| held > seq) {
            return (Vec::new(), Vec::new());
        }
        self.current.insert((channel, to.clone()), conn);
        let statuses = self.expire(now);
        let (mine, rest): (Vec<Message>, Vec<Message>) = self
            .pending
            .drain(..)
            .partition(|m| m.channel == channel && m.to == to);
        self.pending = rest;
        (mine.iter().map(|m| (conn, m.id)).collect(), statuses)
    }

    fn forget(&mut self, conn: ConnId) {
        self.open.retain(|c| c.id != conn);
        self.current.retain(|_, holder| *holder != conn);
    }

    /// Drops what expired by `now`, and returns the statuses that makes heard.
    fn expire(&mut self, now: Instant) -> Vec<Status> {
        let (gone, kept): (Vec<Message>, Vec<Message>) =
            self.pending.drain(..).partition(|m| m.expires <= now);
        self.pending = kept;
        gone.iter()
            .filter_map(|m| self.status(m.id, DeliveryState::Expired))
            .collect()
    }

    /// The status a sender hears of message `id`, if it asked and still holds its place.
    fn status(&self, id: u64, state: DeliveryState) -> Option<Status> {
        let (sender, correlation) = self.tracked.get(&id)?;
        let c = self.open.iter().find(|c| c.id == *sender)?;
        let identity = c.viewer.map_or(To::Master, To::Viewer);
        (c.delivery_status && !c.opening && self.holder(c.channel, &identity) == Some(*sender))
            .then(|| (*sender, correlation.clone(), state))
    }

    /// Holds `message` for its recipient, replacing an older offer or answer from the same
    /// sender; returns the statuses that makes heard.
    fn hold(&mut self, message: Message) -> Vec<Status> {
        let mut statuses = Vec::new();
        if matches!(message.action, Action::SdpOffer | Action::SdpAnswer) {
            let (replaced, kept): (Vec<Message>, Vec<Message>) =
                self.pending.drain(..).partition(|m| {
                    m.channel == message.channel
                        && m.to == message.to
                        && m.sender == message.sender
                        && m.action == message.action
                });
            self.pending = kept;
            statuses.extend(
                replaced
                    .iter()
                    .filter_map(|m| self.status(m.id, DeliveryState::Overwritten)),
            );
        }
        statuses.extend(self.status(message.id, DeliveryState::Held));
        self.pending.push(message);
        statuses
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

/// Like [`run`], also returning the hub's counters at the end, and how often each
/// delivery-status path was taken (statuses heard by state, frames reported written, and
/// unwritten frames held again or sent to a newer connection).
pub fn run_counted(
    transitions: &[Transition],
) -> (String, crate::Counters, BTreeMap<&'static str, u64>) {
    let mut sim = Sim::new(config());
    let mut model = Model::default();
    let mut transcript = String::new();
    for transition in transitions {
        step(&mut sim, &mut model, transition, &mut transcript);
        check_state(&sim, &model);
    }
    (transcript, sim.hub.counters().clone(), model.coverage)
}

fn step(sim: &mut Sim, model: &mut Model, transition: &Transition, transcript: &mut String) {
    let now = sim.now;
    let before = sim.hub.counters().clone();
    // What this step must deliver: (connection, message id), in order per connection.
    let mut expected: Vec<(ConnId, u64)> = Vec::new();
    // The message sent, and its tracking if its sender asked for delivery status.
    let mut sent: Option<(Message, Option<(ConnId, String)>)> = None;
    let mut expected_statuses: Vec<Status> = Vec::new();
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
            delivery_status,
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
            let open = open
                .indications(*indications)
                .delivery_status(*delivery_status);
            match sim.hub.handle_open(now, open) {
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
                        delivery_status: *delivery_status,
                    });
                    transcript.push_str(&format!("open c{channel} {viewer:?} -> {id:?}\n"));
                    if *established {
                        sim.hub.handle_established(now, id);
                        let (delivered, statuses) = model.establish(now, id);
                        expected.extend(delivered);
                        expected_statuses.extend(statuses);
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
                settle(sim, model, conn.id, &mut expected, &mut expected_statuses);
            }
        }
        Transition::Written(n) => {
            if !model.in_flight.is_empty() {
                let index = usize::from(*n) % model.in_flight.len();
                let done = model.in_flight.remove(index);
                transcript.push_str(&format!("written {:?} m{}\n", done.to, done.message.id));
                sim.hub.handle_written(now, done.receipt);
                *model.coverage.entry("written").or_default() += 1;
                expected_statuses.extend(model.status(done.message.id, DeliveryState::Delivered));
            }
        }
        Transition::SocketFailed(n) => {
            if !model.in_flight.is_empty() {
                let conn = model.in_flight[usize::from(*n) % model.in_flight.len()].to;
                sim.hub.handle_close(now, conn);
                model.forget(conn);
                transcript.push_str(&format!("socket of {conn:?} failed\n"));
                settle(sim, model, conn, &mut expected, &mut expected_statuses);
            }
        }
        Transition::Establish(n) => {
            let opening: Vec<ModelConn> =
                model.open.iter().filter(|c| c.opening).cloned().collect();
            if let Some(conn) =
                (!opening.is_empty()).then(|| opening[usize::from(*n) % opening.len()].clone())
            {
                sim.hub.handle_established(now, conn.id);
                let (delivered, statuses) = model.establish(now, conn.id);
                expected.extend(delivered);
                expected_statuses.extend(statuses);
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
                let tracked =
                    (from.delivery_status && *correlation).then(|| (from.id, format!("k{id}")));
                sent = Some((
                    Message {
                        id,
                        channel: from.channel,
                        to,
                        sender: from.viewer,
                        action,
                        expires: now + ttl,
                    },
                    tracked,
                ));
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
                let mut expected_statuses = model.expire(at);
                transcript.push_str(&format!("[{:?}]\n", at - sim.start));
                // Time alone relays nothing, but for tracked frames that come back unwritten
                // from connections the hub closed, which go to a newer connection.
                let mut expected = Vec::new();
                let (relayed, mut heard, closed) = drain_outputs(
                    sim,
                    model,
                    transcript,
                    &mut expected,
                    &mut expected_statuses,
                );
                assert_eq!(relayed, expected, "time alone relayed {relayed:?}");
                // A message that expires at the instant its sender's connection is closed
                // is reported or not as the two timers fall: either is true.
                heard.retain(|(sender, ..)| !closed.contains(sender));
                expected_statuses.retain(|(sender, ..)| !closed.contains(sender));
                check_statuses(model, heard, expected_statuses, transcript);
            }
            sim.now = end;
            let statuses = model.expire(end);
            assert!(statuses.is_empty(), "expired without a timer: {statuses:?}");
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
    if let Some((message, tracked)) = sent.filter(|_| !refused) {
        if let Some(tracking) = tracked {
            model.tracked.insert(message.id, tracking);
            model.tracked_messages.insert(message.id, message.clone());
        }
        match model.holder(message.channel, &message.to) {
            Some(holder) => expected.push((holder, message.id)),
            None => expected_statuses.extend(model.hold(message)),
        }
    }
    let (delivered, heard, _) = drain_outputs(
        sim,
        model,
        transcript,
        &mut expected,
        &mut expected_statuses,
    );
    assert_eq!(
        delivered, expected,
        "after {transition:?}: delivered (left) differs from what the model expects (right)"
    );
    check_statuses(model, heard, expected_statuses, transcript);
}

/// The statuses heard are exactly those expected, whatever their order.
fn check_statuses(
    model: &mut Model,
    mut heard: Vec<Status>,
    mut expected: Vec<Status>,
    transcript: &str,
) {
    for (_, _, state) in &heard {
        *model.coverage.entry(state.as_str()).or_default() += 1;
    }
    heard.sort();
    expected.sort();
    assert_eq!(
        heard, expected,
        "delivery statuses heard (left) differ from what the model expects (right)\n{transcript}"
    );
}

/// Takes every output, and what the connections the hub closed had in flight (back
/// unwritten, as the transport reports it), until there is nothing more: the relays
/// delivered, the statuses heard and the connections the hub closed.
fn drain_outputs(
    sim: &mut Sim,
    model: &mut Model,
    transcript: &mut String,
    expected: &mut Vec<(ConnId, u64)>,
    expected_statuses: &mut Vec<Status>,
) -> (Vec<(ConnId, u64)>, Vec<Status>, Vec<ConnId>) {
    let mut delivered = Vec::new();
    let mut heard = Vec::new();
    let mut all_closed = Vec::new();
    loop {
        let outcome = handle_outputs(sim, model, transcript);
        delivered.extend(outcome.delivered);
        heard.extend(outcome.statuses);
        if outcome.closed.is_empty() {
            return (delivered, heard, all_closed);
        }
        for conn in outcome.closed {
            settle(sim, model, conn, expected, expected_statuses);
            all_closed.push(conn);
        }
    }
}

/// What was in flight to `conn`, which just ended, comes back unwritten: it goes to the
/// recipient's newer connection, or is held again.
fn settle(
    sim: &mut Sim,
    model: &mut Model,
    conn: ConnId,
    expected: &mut Vec<(ConnId, u64)>,
    expected_statuses: &mut Vec<Status>,
) {
    let now = sim.now;
    let (back, rest): (Vec<InFlight>, Vec<InFlight>) =
        model.in_flight.drain(..).partition(|f| f.to == conn);
    model.in_flight = rest;
    for InFlight {
        to,
        receipt,
        frame,
        mut message,
    } in back
    {
        let before = sim.hub.counters().buffer_full;
        sim.hub.handle_unwritten(now, receipt, frame);
        match model
            .holder(message.channel, &message.to)
            .filter(|&h| h != to)
        {
            Some(newer) => {
                *model
                    .coverage
                    .entry("unwritten to a newer connection")
                    .or_default() += 1;
                expected.push((newer, message.id));
            }
            None if sim.hub.counters().buffer_full > before => {}
            None => {
                *model
                    .coverage
                    .entry("unwritten and held again")
                    .or_default() += 1;
                let ttl = model
                    .ttl
                    .get(&message.channel)
                    .copied()
                    .unwrap_or(Duration::from_secs(60));
                message.expires = now + ttl;
                expected_statuses.extend(model.hold(message));
            }
        }
    }
}

/// What one round of outputs did.
struct Outcome {
    /// Relayed messages delivered, in order: (connection, message id).
    delivered: Vec<(ConnId, u64)>,
    /// DELIVERY_STATUS events heard.
    statuses: Vec<Status>,
    /// Connections the hub closed.
    closed: Vec<ConnId>,
}

/// Takes every output, checks it against the model, applies closes to the model, and returns
/// what was delivered, heard and closed.
fn handle_outputs(sim: &mut Sim, model: &mut Model, transcript: &mut String) -> Outcome {
    let mut outcome = Outcome {
        delivered: Vec::new(),
        statuses: Vec::new(),
        closed: Vec::new(),
    };
    while let Some(output) = sim.hub.poll_output() {
        let (conn, frame, receipt) = match output {
            Output::Deliver { conn, frame } => (conn, frame, None),
            Output::DeliverTracked {
                conn,
                frame,
                receipt,
            } => (conn, frame, Some(receipt)),
            Output::Close { conn, reason } => {
                assert!(
                    model.open.iter().any(|c| c.id == conn),
                    "close of a closed connection {conn:?}"
                );
                model.forget(conn);
                outcome.closed.push(conn);
                transcript.push_str(&format!("  close {conn:?} {reason:?}\n"));
                continue;
            }
            Output::AlexaAnswer { .. } => panic!("no Alexa offer was made"),
            Output::Observed(_) => continue,
        };
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
            // Exactly the messages of senders that asked are tracked.
            assert_eq!(
                receipt.is_some(),
                model.tracked.contains_key(&id),
                "tracking of m{id}"
            );
            outcome.delivered.push((conn, id));
            if let (Some(receipt), Some(message)) = (receipt, model.tracked_messages.get(&id)) {
                assert_eq!(receipt.conn(), conn);
                model.in_flight.push(InFlight {
                    to: conn,
                    receipt,
                    frame: frame.clone(),
                    message: message.clone(),
                });
            }
        } else {
            assert!(receipt.is_none(), "a tracked frame that relays nothing");
            let event = ServerEvent::decode(frame.as_str())
                .unwrap_or_else(|err| panic!("undecodable frame {}: {err}", frame.as_str()));
            assert!(
                matches!(
                    event.message_type,
                    MessageType::StatusResponse
                        | MessageType::GoAway
                        | MessageType::ReconnectIceServer
                        | MessageType::DeliveryStatus
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
            if let Some(status) = event.delivery_status {
                outcome.statuses.push((
                    conn,
                    status.correlation_id.as_str().to_owned(),
                    status.status,
                ));
            }
        }
        transcript.push_str(&format!(
            "  deliver {conn:?} {}\n",
            super::shorten(frame.as_str())
        ));
    }
    outcome
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
