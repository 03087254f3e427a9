//! The hub: live routing for a set of channels. Its behaviour is documented on [`Hub`].

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use kvs_signaling_proto::{
    Action, ChannelArn, DecodeOptions, ErrorType, MessageTtlSeconds, PeerId, Role,
};

use crate::throttle::Bucket;

mod alexa;
mod config;
mod observe;
mod routing;
mod slab;
mod types;
mod viewers;

pub use config::{HubConfig, HubConfigError};
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
    counters: Counters,
}

const GO_AWAY: &str = r#"{"messageType":"GO_AWAY"}"#;
const RECONNECT_ICE_SERVER: &str = r#"{"messageType":"RECONNECT_ICE_SERVER"}"#;

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

    /// A connection opened. Refused connects get the service's error, which the caller sends
    /// as the HTTP answer to the upgrade request.
    pub fn handle_open(&mut self, now: Instant, open: OpenConnection) -> Result<ConnId, Refused> {
        let observed = self
            .observing
            .then(|| (open.channel_arn.clone(), open.role, open.client_id.clone()));
        let result = self.open(now, open);
        match &result {
            Ok(_) => self.counters.opened += 1,
            Err(error) => {
                self.counters.refused += 1;
                if let Some((channel, role, client_id)) = observed {
                    let error = error.clone();
                    self.observe(|_| {
                        Some(Observation::ConnectRefused {
                            channel,
                            role,
                            client_id: client_id.map(PeerId::from),
                            error,
                        })
                    });
                }
            }
        }
        result
    }

    fn open(&mut self, now: Instant, open: OpenConnection) -> Result<ConnId, Refused> {
        if self.draining {
            return Err(Refused::new(
                ErrorType::InternalFailure,
                "the server is shutting down; connect again",
            ));
        }
        let client_id = match (open.role, open.client_id) {
            (Role::Master, None) => None,
            (Role::Viewer, Some(id)) => Some(PeerId::from(id)),
            (Role::Master, Some(_)) => {
                return Err(Refused::new(
                    ErrorType::InvalidArgumentException,
                    "X-Amz-ClientId: a master connects without a client id",
                ));
            }
            (Role::Viewer, None) => {
                return Err(Refused::new(
                    ErrorType::InvalidArgumentException,
                    "X-Amz-ClientId: a viewer must give its client id",
                ));
            }
        };
        let channel_index =
            self.channel_for(now, &open.channel_arn, open.message_ttl, open.ttl_revision);
        let new_viewer = client_id
            .as_ref()
            .is_some_and(|id| !self.viewer_known(channel_index, id));
        let viewers = self.viewer_count(channel_index);
        let config = &self.config;
        let Some(channel) = self.channels.at_mut(channel_index) else {
            return Err(Refused::new(ErrorType::InternalFailure, "channel lost"));
        };
        let refusal = match open.role {
            Role::Master if !channel.master_connects.try_take(config.connect_rate, now) => {
                Some(format!(
                    "ConnectAsMaster: more than {} connects per second on this channel",
                    config.connect_rate.per_second
                ))
            }
            Role::Viewer if !channel.viewer_connects.try_take(config.connect_rate, now) => {
                Some(format!(
                    "ConnectAsViewer: more than {} connects per second on this channel",
                    config.connect_rate.per_second
                ))
            }
            Role::Viewer if new_viewer && viewers >= config.max_viewers_per_channel => {
                Some(format!(
                    "ConnectAsViewer: the channel already has {} viewers",
                    config.max_viewers_per_channel
                ))
            }
            _ => None,
        };
        if let Some(message) = refusal {
            self.release_channel_if_unused(now, channel_index);
            return Err(Refused::new(
                ErrorType::ClientLimitExceededException,
                message,
            ));
        }

        let config = &self.config;
        let (sdp_rate, ice_rate) = match open.role {
            Role::Master => (config.master_sdp_rate, config.master_ice_candidate_rate),
            Role::Viewer => (config.sdp_rate, config.ice_candidate_rate),
        };
        self.next_conn_seq += 1;
        let conn = Conn {
            channel: channel_index,
            role: open.role,
            client_id,
            standing: Standing::Opening,
            seq: self.next_conn_seq,
            indications: open.indications,
            opened: now,
            last_activity: now,
            remote_addr: open.remote_addr,
            messages_in: 0,
            messages_out: 0,
            close_due: None,
            sdp: Bucket::full(sdp_rate, now),
            ice: Bucket::full(ice_rate, now),
            timer: None,
        };
        let (slot, generation) = self.conns.insert(conn);
        let id = ConnId { slot, generation };
        let Some(channel) = self.channels.at_mut(channel_index) else {
            return Err(Refused::new(ErrorType::InternalFailure, "channel lost"));
        };
        channel.members.insert(slot);
        self.schedule_conn(id);
        Ok(id)
    }

    /// Whether `id` is a viewer of the channel already, connected or opening: its connect
    /// takes no new viewer slot.
    fn viewer_known(&self, channel_index: u32, id: &PeerId) -> bool {
        let Some(channel) = self.channels.at(channel_index) else {
            return false;
        };
        channel.viewers.contains(id.as_str())
            || self.opening_viewers(channel).any(|opening| opening == id)
    }

    /// Distinct viewer ids of the channel, connected or opening.
    fn viewer_count(&self, channel_index: u32) -> usize {
        let Some(channel) = self.channels.at(channel_index) else {
            return 0;
        };
        let mut extra: Vec<&PeerId> = self
            .opening_viewers(channel)
            .filter(|id| !channel.viewers.contains(id.as_str()))
            .collect();
        extra.sort();
        extra.dedup();
        channel.viewers.len() + extra.len()
    }

    /// The ids of the channel's viewers whose sockets are not up yet.
    fn opening_viewers<'a>(&'a self, channel: &'a Channel) -> impl Iterator<Item = &'a PeerId> {
        channel.members.iter().filter_map(|&slot| {
            let c = self.conns.at(slot)?;
            match c.standing {
                Standing::Opening => c.client_id.as_ref(),
                Standing::Current | Standing::Superseded(_) => None,
            }
        })
    }

    /// The socket of `conn`, which [`Hub::handle_open`] accepted, is up: the `101` is on the
    /// wire. It now takes the place of the older connection with the same identity (master,
    /// or viewer id), which gets nothing more and is closed after
    /// [`HubConfig::superseded_linger`], and receives what was held for it. A connection whose
    /// identity was taken meanwhile by one opened later is superseded at once. Until this
    /// call, a new connection displaces nobody: a client that drops in the middle of its
    /// handshake cannot evict a healthy connection. Unknown, closed or already established
    /// connections are ignored.
    pub fn handle_established(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.get(conn.slot, conn.generation) else {
            return;
        };
        if c.standing != Standing::Opening {
            return;
        }
        let (channel_index, seq) = (c.channel, c.seq);
        let client_id = c.client_id.clone();
        let Some(channel) = self.channels.at(channel_index) else {
            return;
        };
        let current = match &client_id {
            None => channel.master,
            Some(id) => channel.viewers.get(id.as_str()),
        };
        let current_seq = current
            .and_then(|cur| self.conns.get(cur.slot, cur.generation))
            .map(|cur| cur.seq);
        if current_seq.is_some_and(|newer| newer > seq) {
            // A later connect with the same identity is up already: this one lost.
            if let Some(c) = self.conns.get_mut(conn.slot, conn.generation) {
                c.standing = Standing::Superseded(now);
            }
            self.counters.superseded += 1;
            self.observe(|hub| {
                Some(Observation::Superseded {
                    channel: hub.arn_of(channel_index)?,
                    conn,
                    client_id: client_id.clone(),
                })
            });
            self.schedule_conn(conn);
            return;
        }
        let Some(channel) = self.channels.at_mut(channel_index) else {
            return;
        };
        let (previous, recipient) = match &client_id {
            None => (channel.master.replace(conn), Recipient::Master),
            Some(peer) => (
                channel.viewers.insert(peer.clone(), conn),
                Recipient::Viewer(peer.clone()),
            ),
        };
        // A viewer now owns its id: a SendAlexaOfferToMaster call waiting under the same id
        // would take its answers.
        let alexa = client_id
            .as_ref()
            .and_then(|peer| channel.alexa.remove(peer));
        if let Some(c) = self.conns.get_mut(conn.slot, conn.generation) {
            c.standing = Standing::Current;
        }
        self.observe(|hub| {
            let c = hub.conns.get(conn.slot, conn.generation)?;
            Some(Observation::Connected {
                channel: hub.arn_of(channel_index)?,
                conn,
                role: c.role,
                client_id: client_id.clone(),
                remote_addr: c.remote_addr,
            })
        });
        if let Some(previous) = previous
            && let Some(old) = self.conns.get_mut(previous.slot, previous.generation)
        {
            old.standing = Standing::Superseded(now);
            self.counters.superseded += 1;
            self.observe(|hub| {
                Some(Observation::Superseded {
                    channel: hub.arn_of(channel_index)?,
                    conn: previous,
                    client_id: client_id.clone(),
                })
            });
            self.schedule_conn(previous);
        }
        if let Some(request) = alexa {
            self.counters.alexa_failed += 1;
            self.outputs.push_back(Output::AlexaAnswer {
                request,
                result: Err(Refused::new(
                    ErrorType::InvalidArgumentException,
                    "SenderClientId: a viewer connected to the channel with this client id, \
                     and the master's messages to it are the viewer's",
                )),
            });
        }
        self.schedule_conn(conn);
        self.flush_pending(now, channel_index, &recipient, conn);
    }

    /// The channel's index, created when new; its TTL is refreshed unless the hub knows a
    /// later revision of it.
    fn channel_for(
        &mut self,
        now: Instant,
        arn: &ChannelArn,
        ttl: MessageTtlSeconds,
        revision: u64,
    ) -> u32 {
        let ttl = Duration::from_secs(u64::from(ttl.get()));
        if let Some(&index) = self.by_arn.get(arn)
            && let Some(channel) = self.channels.at_mut(index)
        {
            if revision >= channel.ttl_revision {
                channel.ttl = ttl;
                channel.ttl_revision = revision;
            }
            return index;
        }
        let config = &self.config;
        let (index, generation) = self.channels.insert(Channel {
            generation: 0,
            arn: arn.clone(),
            ttl,
            ttl_revision: revision,
            master: None,
            viewers: Viewers::default(),
            members: BTreeSet::new(),
            pending: BTreeMap::new(),
            master_connects: Bucket::full(config.connect_rate, now),
            viewer_connects: Bucket::full(config.connect_rate, now),
            alexa_calls: Bucket::full(config.alexa_rate, now),
            alexa: BTreeMap::new(),
            release_timer: None,
        });
        if let Some(channel) = self.channels.at_mut(index) {
            channel.generation = generation;
        }
        self.by_arn.insert(arn.clone(), index);
        index
    }

    /// Forgets the channel at `index` if nothing uses it: no connection, held message or
    /// Alexa call, and rate buckets that are full again. A channel kept only by its buckets
    /// is forgotten when they are full, so that connecting and closing in a loop cannot reset
    /// the channel's connect rate.
    fn release_channel_if_unused(&mut self, now: Instant, index: u32) {
        let Some(channel) = self.channels.at(index) else {
            return;
        };
        if !channel.is_idle() {
            return;
        }
        let at = channel.forgettable_at(&self.config);
        if at <= now {
            if let Some(channel) = self.channels.remove(index) {
                if let Some(key) = channel.release_timer {
                    self.timers.remove(&key);
                }
                self.by_arn.remove(&channel.arn);
            }
            return;
        }
        let generation = channel.generation;
        if channel.release_timer.is_some_and(|(due, _)| due <= at) {
            return;
        }
        let old = channel.release_timer;
        let key = self.schedule(
            at,
            Timer::Release {
                channel: index,
                generation,
            },
        );
        if let Some(old) = old {
            self.timers.remove(&old);
        }
        if let Some(channel) = self.channels.at_mut(index) {
            channel.release_timer = Some(key);
        }
    }

    /// A connection's client closed it (or the socket failed, or its upgrade never
    /// finished). Unknown or already closed connections are ignored.
    pub fn handle_close(&mut self, now: Instant, conn: ConnId) {
        if self.detach(now, conn, None).is_some() {
            self.counters.closed_by_client += 1;
        }
    }

    /// A ping, pong or other control frame arrived: the connection is active.
    pub fn handle_keepalive(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(conn.slot, conn.generation) {
            c.last_activity = now;
        }
    }

    /// Forgets `conn`, releasing its identity if it still held it; the hub closes it for
    /// `reason`, or its client did when `None`.
    fn detach(&mut self, now: Instant, conn: ConnId, reason: Option<CloseReason>) -> Option<Conn> {
        self.conns.get(conn.slot, conn.generation)?;
        let removed = self.conns.remove(conn.slot)?;
        self.observe(|hub| {
            Some(Observation::Closed {
                channel: hub.arn_of(removed.channel)?,
                conn,
                client_id: removed.client_id.clone(),
                reason,
            })
        });
        if let Some(key) = removed.timer {
            self.timers.remove(&key);
        }
        if let Some(channel) = self.channels.at_mut(removed.channel) {
            channel.members.remove(&conn.slot);
            if removed.standing == Standing::Current {
                match &removed.client_id {
                    None => {
                        if channel.master == Some(conn) {
                            channel.master = None;
                        }
                    }
                    Some(id) => channel.viewers.remove_if(id.as_str(), conn),
                }
            }
        }
        self.release_channel_if_unused(now, removed.channel);
        Some(removed)
    }

    /// Closes `conn` from the hub's side.
    fn close(&mut self, now: Instant, conn: ConnId, reason: CloseReason) {
        if self.detach(now, conn, Some(reason)).is_some() {
            self.counters.closed_by_hub += 1;
            self.outputs.push_back(Output::Close { conn, reason });
        }
    }

    fn schedule(&mut self, at: Instant, timer: Timer) -> (Instant, u64) {
        self.timer_seq += 1;
        let key = (at, self.timer_seq);
        self.timers.insert(key, timer);
        key
    }

    /// Schedules the one check of `conn`, at its earliest deadline.
    fn schedule_conn(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get(conn.slot, conn.generation) else {
            return;
        };
        let (at, _) = self.deadline(c);
        if let Some(old) = c.timer {
            self.timers.remove(&old);
        }
        let key = self.schedule(at, Timer::Conn(conn));
        if let Some(c) = self.conns.get_mut(conn.slot, conn.generation) {
            c.timer = Some(key);
        }
    }

    /// A connection's earliest deadline and what happens then. A superseded connection has
    /// only its lingering time (or an earlier close already due, as when draining).
    fn deadline(&self, c: &Conn) -> (Instant, Deadline) {
        let config = &self.config;
        let mut best = match c.standing {
            Standing::Superseded(since) => (
                since + config.superseded_linger,
                Deadline::Close(CloseReason::Superseded),
            ),
            Standing::Current | Standing::Opening => {
                (c.last_activity + config.idle_timeout, Deadline::Idle)
            }
        };
        let mut consider = |at: Instant, what: Deadline| {
            if at < best.0 {
                best = (at, what);
            }
        };
        match (c.close_due, c.standing) {
            (Some((at, reason)), _) => consider(at, Deadline::Close(reason)),
            // A client that handles GO_AWAY hears it a grace period before the cap; any
            // other is closed at the cap (1001), which every official client reconnects after.
            (None, Standing::Current) if c.indications => consider(
                c.opened + (config.max_connection_duration - config.go_away_grace),
                Deadline::GoAway,
            ),
            (None, Standing::Current | Standing::Opening) => consider(
                c.opened + config.max_connection_duration,
                Deadline::Close(CloseReason::MaxDuration),
            ),
            (None, Standing::Superseded(_)) => {}
        }
        best
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

    fn check_conn(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn.slot, conn.generation) else {
            return;
        };
        c.timer = None; // It just fired.
        let Some(c) = self.conns.get(conn.slot, conn.generation) else {
            return;
        };
        let (at, what) = self.deadline(c);
        if at > now {
            // Activity moved the deadline: check again then.
            self.schedule_conn(conn);
            return;
        }
        match what {
            Deadline::Idle => self.close(now, conn, CloseReason::IdleTimeout),
            Deadline::Close(reason) => {
                if reason == CloseReason::MaxDuration && c.close_due.is_none() {
                    self.counters.closed_without_go_away += 1;
                }
                self.close(now, conn, reason);
            }
            Deadline::GoAway => {
                self.go_away(now, conn, CloseReason::MaxDuration);
            }
        }
    }

    /// Sends GO_AWAY to `conn` and closes it a grace period later.
    fn go_away(&mut self, now: Instant, conn: ConnId, reason: CloseReason) {
        let grace = self.config.go_away_grace;
        let Some(c) = self.conns.get_mut(conn.slot, conn.generation) else {
            return;
        };
        let due = now + grace;
        match c.close_due {
            Some((at, _)) if at <= due => return,
            _ => c.close_due = Some((due, reason)),
        }
        if c.standing == Standing::Current {
            self.counters.go_aways += 1;
            self.outputs.push_back(Output::Deliver {
                conn,
                frame: Frame(Cow::Borrowed(GO_AWAY)),
            });
        }
        self.schedule_conn(conn);
    }

    /// Stops taking connections and closes every connection: one that handles GO_AWAY
    /// ([`OpenConnection::indications`]) gets it and is closed a grace period later; any other
    /// is closed at once with 1001 (going away), which every official client reconnects after.
    pub fn drain(&mut self, now: Instant) {
        self.draining = true;
        let conns: Vec<ConnId> = self
            .conns
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.value.is_some())
            .map(|(index, slot)| ConnId {
                slot: u32::try_from(index).unwrap_or(u32::MAX),
                generation: slot.generation,
            })
            .collect();
        for conn in conns {
            let handles = self
                .conns
                .get(conn.slot, conn.generation)
                .is_some_and(|c| c.indications && c.standing == Standing::Current);
            if handles {
                self.go_away(now, conn, CloseReason::Drained);
            } else {
                self.counters.closed_without_go_away += 1;
                self.close(now, conn, CloseReason::Drained);
            }
        }
    }

    /// Whether [`Hub::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Sends RECONNECT_ICE_SERVER to the current connections of `channel_arn` that handle it
    /// ([`OpenConnection::indications`]), so that they fetch fresh ICE servers; the others
    /// refresh on their own before their credentials expire.
    pub fn reconnect_ice_servers(&mut self, _now: Instant, channel_arn: &ChannelArn) {
        if let Some(&index) = self.by_arn.get(channel_arn) {
            self.reconnect_ice_servers_of(index);
        }
    }

    /// Sends RECONNECT_ICE_SERVER to every current connection that handles it, on every
    /// channel, as after a TURN secret rotation.
    pub fn reconnect_ice_servers_all(&mut self, _now: Instant) {
        let indexes: Vec<u32> = self.by_arn.values().copied().collect();
        for index in indexes {
            self.reconnect_ice_servers_of(index);
        }
    }

    fn reconnect_ice_servers_of(&mut self, index: u32) {
        let Some(channel) = self.channels.at(index) else {
            return;
        };
        let targets: Vec<ConnId> = channel
            .master
            .iter()
            .copied()
            .chain(channel.viewers.conns())
            .filter(|conn| {
                self.conns
                    .get(conn.slot, conn.generation)
                    .is_some_and(|c| c.indications)
            })
            .collect();
        for conn in targets {
            self.counters.reconnect_ice_servers += 1;
            self.outputs.push_back(Output::Deliver {
                conn,
                frame: Frame(Cow::Borrowed(RECONNECT_ICE_SERVER)),
            });
        }
    }

    /// The channel's TTL changed at configuration revision `revision` (see
    /// [`OpenConnection::ttl_revision`]); messages already buffered keep their expiry. An
    /// older revision than the hub knows is ignored.
    pub fn handle_channel_updated(
        &mut self,
        _now: Instant,
        channel_arn: &ChannelArn,
        message_ttl: MessageTtlSeconds,
        revision: u64,
    ) {
        if let Some(channel) = self
            .by_arn
            .get(channel_arn)
            .and_then(|&index| self.channels.at_mut(index))
            && revision >= channel.ttl_revision
        {
            channel.ttl = Duration::from_secs(u64::from(message_ttl.get()));
            channel.ttl_revision = revision;
        }
    }

    /// The channel was deleted: its connections are closed, its buffered messages dropped and
    /// its Alexa calls failed.
    pub fn handle_channel_deleted(&mut self, now: Instant, channel_arn: &ChannelArn) {
        let Some(&index) = self.by_arn.get(channel_arn) else {
            return;
        };
        let Some(channel) = self.channels.at_mut(index) else {
            return;
        };
        let dropped: usize = channel.pending.values().map(|q| q.messages.len()).sum();
        let bytes: usize = channel
            .pending
            .values()
            .flat_map(|q| &q.messages)
            .map(|p| p.frame.as_str().len())
            .sum();
        self.held_bytes = self.held_bytes.saturating_sub(bytes);
        let timers: Vec<(Instant, u64)> =
            channel.pending.values().filter_map(|q| q.timer).collect();
        channel.pending.clear();
        let alexa = std::mem::take(&mut channel.alexa);
        let members: Vec<u32> = channel.members.iter().copied().collect();
        self.counters.dropped_channel_deleted += dropped as u64;
        for key in timers {
            self.timers.remove(&key);
        }
        for (_, request) in alexa {
            self.counters.alexa_failed += 1;
            self.outputs.push_back(Output::AlexaAnswer {
                request,
                result: Err(Refused::new(
                    ErrorType::ResourceNotFoundException,
                    "the channel was deleted",
                )),
            });
        }
        for slot in members {
            let conn = ConnId {
                slot,
                generation: self.conns.generation(slot),
            };
            self.close(now, conn, CloseReason::ChannelDeleted);
        }
        self.release_channel_if_unused(now, index);
    }
}

/// What happens at a connection's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    Idle,
    GoAway,
    Close(CloseReason),
}

#[cfg(test)]
mod tests;
