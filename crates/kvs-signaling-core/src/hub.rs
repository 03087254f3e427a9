//! The hub: live routing for a set of channels. Its behaviour is documented on [`Hub`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use kvs_signaling_proto::{Action, ChannelArn, DecodeOptions, PeerId, Role};

use crate::throttle::Bucket;

mod alexa;
mod channels;
mod config;
mod connections;
mod delivery;
mod handoff;
mod observe;
mod routing;
mod slab;
mod types;
mod viewers;

pub use config::{HubConfig, HubConfigError};
pub use delivery::Receipt;
use delivery::{Tracked, Tracking};
pub use handoff::{HeldChange, HeldMessage};
pub use observe::{ChannelView, ConnectionStanding, ConnectionView, HeldView, Observation};
use slab::Slab;
pub use types::{
    AlexaOffer, AlexaRequestId, CloseReason, ConnId, Counters, Frame, OpenConnection, Output,
    Refused,
};
use viewers::Viewers;

/// Whom a buffered message is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Recipient {
    Master,
    Viewer(PeerId),
}

/// A message waiting for its recipient.
#[derive(Debug)]
struct Pending {
    frame: Frame,
    /// The sender and action, which decide what a newer offer or answer replaces.
    sender: Option<PeerId>,
    action: Action,
    expires: Instant,
    /// When it was held.
    held_at: Instant,
    /// Whom to tell what becomes of it, when its sender asked.
    tracking: Option<Tracking>,
    /// A message held by another hub whose sender asked to be told what becomes of it: the
    /// correlation id its sender's connection takes the tracking up with when that connection
    /// moves here ([`Hub::restore_held`]).
    moved_tracking: Option<kvs_signaling_proto::CorrelationId>,
}

/// A channel's state. Declared in order, hot fields first: routing reads the master and the
/// viewers of a channel for every message, the rest only on connects, buffering and timers.
/// The messages waiting for one recipient, oldest first, and the key of their one expiry
/// timer (due when the oldest expires).
#[derive(Debug, Default)]
struct Queue {
    messages: VecDeque<Pending>,
    timer: Option<(Instant, u64)>,
}

#[derive(Debug)]
#[repr(C)]
struct Channel {
    /// The current master.
    master: Option<ConnId>,
    /// The current connection of each viewer id.
    viewers: Viewers,
    generation: u32,
    arn: ChannelArn,
    ttl: Duration,
    /// The configuration revision `ttl` was read at.
    ttl_revision: u64,
    /// Every connection attached to the channel, superseded and opening ones included.
    members: BTreeSet<u32>,
    pending: BTreeMap<Recipient, Queue>,
    master_connects: Bucket,
    viewer_connects: Bucket,
    alexa_calls: Bucket,
    alexa: BTreeMap<PeerId, AlexaRequestId>,
    /// The timer that forgets the channel once its rate buckets are full again.
    release_timer: Option<(Instant, u64)>,
}

impl Channel {
    /// Whether nothing but its rate buckets keeps the channel.
    fn is_idle(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty() && self.alexa.is_empty()
    }

    /// When forgetting the idle channel gives nobody a burst early: when its connect and
    /// Alexa buckets are full again.
    fn forgettable_at(&self, config: &HubConfig) -> Instant {
        self.master_connects
            .full_at(config.connect_rate)
            .max(self.viewer_connects.full_at(config.connect_rate))
            .max(self.alexa_calls.full_at(config.alexa_rate))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Accepted, but its socket is not up yet ([`Hub::handle_established`] not called): it
    /// takes nobody's place and gets nothing.
    Opening,
    /// The channel's master, or the current connection of its viewer id.
    Current,
    /// Replaced by a newer connection with the same identity at this time.
    Superseded(Instant),
}

#[derive(Debug)]
struct Conn {
    channel: u32,
    role: Role,
    /// The viewer's id, in the form recipients name it.
    client_id: Option<PeerId>,
    standing: Standing,
    /// The order of opening: of two connections with the same identity, the later opened
    /// wins, whichever is established first.
    seq: u64,
    /// Whether the client handles GO_AWAY and RECONNECT_ICE_SERVER.
    indications: bool,
    opened: Instant,
    last_activity: Instant,
    /// Where it connected from, when the caller said.
    remote_addr: Option<std::net::SocketAddr>,
    /// Whether it asked for DELIVERY_STATUS events.
    delivery_status: bool,
    /// Messages it sent that were relayed or held, and messages relayed to it.
    messages_in: u64,
    messages_out: u64,
    /// When GO_AWAY was sent, and the close is due.
    close_due: Option<(Instant, CloseReason)>,
    sdp: Bucket,
    ice: Bucket,
    /// The key of this connection's one timer.
    timer: Option<(Instant, u64)>,
}

/// What a timer is for. Timers are checked when they fire, so a stale one does nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    /// Check a connection's deadlines (idle, duration, GO_AWAY grace, lingering).
    Conn(ConnId),
    /// Drop the expired messages at the head of a recipient's buffer.
    Expiry {
        channel: u32,
        generation: u32,
        recipient: Recipient,
    },
    /// Forget an idle channel whose rate buckets are full again.
    Release { channel: u32, generation: u32 },
    /// Give up on an Alexa offer.
    Alexa {
        channel: u32,
        generation: u32,
        sender: PeerId,
        request: AlexaRequestId,
    },
}

/// The hub: live routing for a set of channels.
///
/// A [`Hub`] owns the connections of the channels of one shard. The caller tells it what
/// happened (a connection opened or closed, a text frame arrived, time passed, an Alexa offer
/// came in) and pulls out what to do: deliver these bytes to connection N, close connection N,
/// answer Alexa request R. Every rule of the service lives here:
///
/// - A viewer's message always goes to the channel's master; a master's message goes only to
///   the viewer it names. A viewer can never reach another viewer.
/// - One master per channel, one connection per viewer id: the newest connection wins, once
///   its socket is up ([`Hub::handle_established`]). The superseded one gets nothing more and
///   is not told: closing it or sending it GO_AWAY would
///   make an official C SDK client reconnect and evict the newer one, and two such clients would
///   take turns forever. It is closed after [`HubConfig::superseded_linger`], or earlier if its
///   client closes it. Its frames are dropped and counted, even those with a correlation id: a
///   STATUS_RESPONSE would tell an app its connection still matters, when the newer one is the
///   one relayed to.
/// - Messages for a recipient that is not connected wait for the channel's message TTL and are
///   delivered in order when it connects; a newer offer (or answer) from the same sender replaces
///   an undelivered one.
/// - The service's limits, each configurable ([`HubConfig`]), with the errors it gives; a
///   master's message rates allow the burst of answering its ten viewers at once.
/// - GO_AWAY and RECONNECT_ICE_SERVER only to connections that handle them
///   ([`OpenConnection::indications`]); any other is closed with 1001 at the duration cap and
///   on drain, and refreshes its ICE servers on its own.
/// - A failure is answered with a STATUS_RESPONSE when the message carried a correlation id, and
///   dropped (and counted) otherwise.
///
/// # Driving it
///
/// After every input, drain [`Hub::poll_output`] until it returns `None`, then wait until
/// [`Hub::poll_timeout`] and call [`Hub::handle_timeout`]. A connect is two inputs:
/// [`Hub::handle_open`] decides it (answer the upgrade request with its refusal, or with `101`),
/// and [`Hub::handle_established`] says the `101` is written and the socket is served.
///
/// ```
/// use std::time::{Duration, Instant};
/// use kvs_signaling_core::{Hub, HubConfig, OpenConnection, Output};
/// use kvs_signaling_proto::{ChannelArn, ClientId, MessageTtlSeconds};
///
/// let mut hub = Hub::new(HubConfig::default())?;
/// # #[allow(clippy::disallowed_methods)]
/// let now = Instant::now(); // A runtime passes its clock's time; tests pass a simulated one.
/// let arn = ChannelArn::new("arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1")?;
/// let ttl = MessageTtlSeconds::default();
/// let master = hub.handle_open(now, OpenConnection::master(arn.clone(), ttl)).unwrap();
/// hub.handle_established(now, master);
/// let viewer = hub
///     .handle_open(now, OpenConnection::viewer(arn, ClientId::new("v1")?, ttl))
///     .unwrap();
/// hub.handle_established(now, viewer);
/// hub.handle_frame(now, viewer, r#"{"action":"SDP_OFFER","messagePayload":"e30="}"#);
/// let mut delivered = 0;
/// while let Some(output) = hub.poll_output() {
///     match output {
///         Output::Deliver { conn, frame } => {
///             assert_eq!(conn, master);
///             assert_eq!(
///                 frame.as_str(),
///                 r#"{"messagePayload":"e30=","messageType":"SDP_OFFER","senderClientId":"v1"}"#
///             );
///             delivered += 1;
///         }
///         other => panic!("unexpected {other:?}"),
///     }
/// }
/// assert_eq!(delivered, 1);
/// let next = hub.poll_timeout().unwrap(); // The viewer's idle timeout, ten minutes on.
/// assert_eq!(next, now + Duration::from_secs(600));
/// hub.handle_timeout(next);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    /// How frames from masters, and from viewers, are decoded.
    master_decoding: DecodeOptions,
    viewer_decoding: DecodeOptions,
    conns: Slab<Conn>,
    channels: Slab<Channel>,
    by_arn: BTreeMap<ChannelArn, u32>,
    timers: BTreeMap<(Instant, u64), Timer>,
    timer_seq: u64,
    next_request: u64,
    /// The open order of the next connection.
    next_conn_seq: u64,
    /// Bytes of every buffered frame, over every channel.
    held_bytes: usize,
    outputs: VecDeque<Output>,
    draining: bool,
    /// Whether [`Output::Observed`] is on.
    observing: bool,
    /// Recipients whose held messages changed, when [`Hub::set_tracking_held`] is on.
    held_changes: Option<BTreeSet<(ChannelArn, Recipient)>>,
    counters: Counters,
}

impl Hub {
    /// A hub with no channels.
    pub fn new(config: HubConfig) -> Result<Self, HubConfigError> {
        for (name, value) in [
            ("idle_timeout", config.idle_timeout),
            ("max_connection_duration", config.max_connection_duration),
            ("go_away_grace", config.go_away_grace),
            ("superseded_linger", config.superseded_linger),
            ("alexa_timeout", config.alexa_timeout),
        ] {
            if value > HubConfig::MAX_DURATION {
                return Err(HubConfigError::TooLong {
                    name,
                    max: HubConfig::MAX_DURATION,
                });
            }
        }
        if config.go_away_grace >= config.max_connection_duration {
            return Err(HubConfigError::GraceNotShorterThanDuration {
                grace: config.go_away_grace,
                max: config.max_connection_duration,
            });
        }
        for (name, value) in [
            ("max_payload_len", config.max_payload_len),
            (
                "max_pending_per_recipient",
                config.max_pending_per_recipient,
            ),
            (
                "max_pending_recipients_per_channel",
                config.max_pending_recipients_per_channel,
            ),
        ] {
            if value == 0 {
                return Err(HubConfigError::Zero { name });
            }
        }
        let master_decoding = DecodeOptions::default().max_payload_len(config.max_payload_len);
        let viewer_decoding = master_decoding.clone().ignore_recipient(true);
        Ok(Self {
            config,
            master_decoding,
            viewer_decoding,
            conns: Slab::new(),
            channels: Slab::new(),
            by_arn: BTreeMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            next_request: 0,
            next_conn_seq: 0,
            held_bytes: 0,
            outputs: VecDeque::new(),
            draining: false,
            observing: false,
            held_changes: None,
            counters: Counters::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// What the hub has done so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Open connections, superseded ones included.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Channels with connections, buffered messages or Alexa calls.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Bytes of buffered messages, over every channel (bounded by
    /// [`HubConfig::max_held_bytes`]).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The bytes of every buffered frame, counted afresh: what [`Hub::held_bytes`] must equal.
    #[cfg(any(test, fuzzing))]
    #[doc(hidden)]
    pub fn recount_held_bytes(&self) -> usize {
        self.channels
            .slots
            .iter()
            .filter_map(|slot| slot.value.as_ref())
            .flat_map(|channel| channel.pending.values())
            .flat_map(|queue| &queue.messages)
            .map(|pending| pending.frame.as_str().len())
            .sum()
    }

    /// Buffered messages, over every channel.
    pub fn buffered_count(&self) -> usize {
        self.channels
            .slots
            .iter()
            .filter_map(|slot| slot.value.as_ref())
            .flat_map(|channel| channel.pending.values())
            .map(|queue| queue.messages.len())
            .sum()
    }

    /// Pending timers: one per connection, one per recipient with buffered messages, one per
    /// Alexa call (and transiently a few that fired early and are rescheduled). For
    /// diagnostics and tests.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Whether `conn` is open and is its identity's current connection.
    pub fn is_current(&self, conn: ConnId) -> bool {
        self.conns
            .get(conn.slot, conn.generation)
            .is_some_and(|c| c.standing == Standing::Current)
    }

    /// The next output, if any. Drain it until `None` after every input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`Hub::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.keys().next().map(|&(at, _)| at)
    }

    /// Time passed: fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            match timer {
                Timer::Conn(conn) => self.check_conn(now, conn),
                Timer::Expiry {
                    channel,
                    generation,
                    recipient,
                } => self.expire(now, channel, generation, recipient),
                Timer::Alexa {
                    channel,
                    generation,
                    sender,
                    request,
                } => self.alexa_timeout(now, channel, generation, &sender, request),
                Timer::Release {
                    channel,
                    generation,
                } => {
                    if let Some(ch) = self.channels.get_mut(channel, generation) {
                        ch.release_timer = None; // It just fired.
                        self.release_channel_if_unused(now, channel);
                    }
                }
            }
        }
    }

    fn schedule(&mut self, at: Instant, timer: Timer) -> (Instant, u64) {
        self.timer_seq += 1;
        let key = (at, self.timer_seq);
        self.timers.insert(key, timer);
        key
    }
}

#[cfg(test)]
mod tests;
