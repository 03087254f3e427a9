//! The hub: live routing for a set of channels.
//!
//! A [`Hub`] owns the connections of the channels of one shard. The caller tells it what
//! happened (a connection opened or closed, a text frame arrived, time passed, an Alexa offer
//! came in) and pulls out what to do: deliver these bytes to connection N, close connection N,
//! answer Alexa request R. Every rule of the service lives here:
//!
//! - A viewer's message always goes to the channel's master; a master's message goes only to
//!   the viewer it names. A viewer can never reach another viewer.
//! - One master per channel, one connection per viewer id: the newest connection wins. The
//!   superseded one gets nothing more and is not told: closing it or sending it GO_AWAY would
//!   make an official C SDK client reconnect and evict the newer one, and two such clients would
//!   take turns forever. It is closed after [`HubConfig::superseded_linger`], or earlier if its
//!   client closes it.
//! - Messages for a recipient that is not connected wait for the channel's message TTL and are
//!   delivered in order when it connects; a newer offer (or answer) from the same sender replaces
//!   an undelivered one.
//! - The service's limits, each configurable ([`HubConfig`]), with the errors it gives.
//! - A failure is answered with a STATUS_RESPONSE when the message carried a correlation id, and
//!   dropped (and counted) otherwise.
//!
//! # Driving it
//!
//! After every input, drain [`Hub::poll_output`] until it returns `None`, then wait until
//! [`Hub::poll_timeout`] and call [`Hub::handle_timeout`].
//!
//! ```
//! use std::time::{Duration, Instant};
//! use kvs_signaling_core::{Hub, HubConfig, OpenConnection, Output};
//! use kvs_signaling_proto::{ChannelArn, ClientId, MessageTtlSeconds};
//!
//! let mut hub = Hub::new(HubConfig::default())?;
//! # #[allow(clippy::disallowed_methods)]
//! let now = Instant::now(); // A runtime passes its clock's time; tests pass a simulated one.
//! let arn = ChannelArn::new("arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1")?;
//! let ttl = MessageTtlSeconds::default();
//! let master = hub.handle_open(now, OpenConnection::master(arn.clone(), ttl)).unwrap();
//! let viewer = hub
//!     .handle_open(now, OpenConnection::viewer(arn, ClientId::new("v1")?, ttl))
//!     .unwrap();
//! hub.handle_frame(now, viewer, r#"{"action":"SDP_OFFER","messagePayload":"e30="}"#);
//! while let Some(output) = hub.poll_output() {
//!     match output {
//!         Output::Deliver { conn, frame } => {
//!             assert_eq!(conn, master);
//!             assert_eq!(
//!                 frame.as_str(),
//!                 r#"{"messagePayload":"e30=","messageType":"SDP_OFFER","senderClientId":"v1"}"#
//!             );
//!         }
//!         other => panic!("unexpected {other:?}"),
//!     }
//! }
//! let next = hub.poll_timeout().unwrap(); // The viewer's idle timeout, ten minutes on.
//! assert_eq!(next, now + Duration::from_secs(600));
//! hub.handle_timeout(next);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use kvs_signaling_proto::{
    Action, ChannelArn, ClientId, ClientMessage, CorrelationId, ErrorType, MessagePayload,
    MessageTtlSeconds, MessageType, PeerId, Role, ServerEvent, StatusResponse, limits,
};

use crate::throttle::{Bucket, Rate};

/// The hub's limits. The defaults are the real service's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubConfig {
    /// Concurrent viewers (distinct client ids) per channel: 10.
    pub max_viewers_per_channel: usize,
    /// Longest `messagePayload`, in characters: 10,240 ("10K").
    pub max_payload_len: usize,
    /// SDP offers and answers per connection: 5 a second.
    pub sdp_rate: Rate,
    /// ICE candidates per connection: 20 a second.
    pub ice_candidate_rate: Rate,
    /// ConnectAsMaster, and separately ConnectAsViewer, per channel: 3 a second.
    pub connect_rate: Rate,
    /// SendAlexaOfferToMaster per channel: 5 a second.
    pub alexa_rate: Rate,
    /// A connection with no frame (ping and pong included) for this long is closed: 10 minutes.
    pub idle_timeout: Duration,
    /// A connection is closed this long after it opened: 1 hour. It gets GO_AWAY
    /// [`HubConfig::go_away_grace`] before.
    pub max_connection_duration: Duration,
    /// Time between GO_AWAY and the close: 1 minute.
    pub go_away_grace: Duration,
    /// How long a connection superseded by a newer one with the same identity may linger
    /// before it is closed: 10 minutes, the idle timeout.
    pub superseded_linger: Duration,
    /// Undelivered messages held per recipient: 64. More are refused with
    /// ClientLimitExceededException.
    pub max_pending_per_recipient: usize,
    /// Recipients with undelivered messages per channel: 32 (the master and up to 31 viewer
    /// ids). Messages for more are refused with ClientLimitExceededException.
    pub max_pending_recipients_per_channel: usize,
    /// How long SendAlexaOfferToMaster waits for the master's answer: 10 seconds.
    pub alexa_timeout: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_viewers_per_channel: 10,
            max_payload_len: limits::MAX_MESSAGE_PAYLOAD_LEN,
            sdp_rate: Rate::per_second(5),
            ice_candidate_rate: Rate::per_second(20),
            connect_rate: Rate::per_second(3),
            alexa_rate: Rate::per_second(5),
            idle_timeout: Duration::from_secs(600),
            max_connection_duration: Duration::from_secs(3600),
            go_away_grace: Duration::from_secs(60),
            superseded_linger: Duration::from_secs(600),
            max_pending_per_recipient: 64,
            max_pending_recipients_per_channel: 32,
            alexa_timeout: Duration::from_secs(10),
        }
    }
}

macro_rules! setter {
    ($(#[$meta:meta])* $name:ident: $ty:ty) => {
        $(#[$meta])*
        #[must_use]
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

impl HubConfig {
    setter!(
        /// Sets [`HubConfig::max_viewers_per_channel`].
        max_viewers_per_channel: usize
    );
    setter!(
        /// Sets [`HubConfig::max_payload_len`].
        max_payload_len: usize
    );
    setter!(
        /// Sets [`HubConfig::sdp_rate`].
        sdp_rate: Rate
    );
    setter!(
        /// Sets [`HubConfig::ice_candidate_rate`].
        ice_candidate_rate: Rate
    );
    setter!(
        /// Sets [`HubConfig::connect_rate`].
        connect_rate: Rate
    );
    setter!(
        /// Sets [`HubConfig::alexa_rate`].
        alexa_rate: Rate
    );
    setter!(
        /// Sets [`HubConfig::idle_timeout`].
        idle_timeout: Duration
    );
    setter!(
        /// Sets [`HubConfig::max_connection_duration`].
        max_connection_duration: Duration
    );
    setter!(
        /// Sets [`HubConfig::go_away_grace`].
        go_away_grace: Duration
    );
    setter!(
        /// Sets [`HubConfig::superseded_linger`].
        superseded_linger: Duration
    );
    setter!(
        /// Sets [`HubConfig::max_pending_per_recipient`].
        max_pending_per_recipient: usize
    );
    setter!(
        /// Sets [`HubConfig::max_pending_recipients_per_channel`].
        max_pending_recipients_per_channel: usize
    );
    setter!(
        /// Sets [`HubConfig::alexa_timeout`].
        alexa_timeout: Duration
    );
}

/// A configuration the hub cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The GO_AWAY grace period must be shorter than the longest connection.
    #[error("go_away_grace ({grace:?}) must be shorter than max_connection_duration ({max:?})")]
    GraceNotShorterThanDuration {
        /// The grace period.
        grace: Duration,
        /// The longest connection.
        max: Duration,
    },
    /// A limit that must be at least 1 is 0.
    #[error("{name} must be at least 1")]
    Zero {
        /// The setting.
        name: &'static str,
    },
}

/// A connection, as the hub knows it. Ids of closed connections are never reused for the
/// hub's lifetime: an input for a closed connection is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    slot: u32,
    generation: u32,
}

/// A SendAlexaOfferToMaster call waiting for the master's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

/// A text frame to send, already encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(Cow<'static, str>);

impl Frame {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0.into_owned()
    }
}

/// Why the hub closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// No frame for [`HubConfig::idle_timeout`].
    IdleTimeout,
    /// Open for [`HubConfig::max_connection_duration`].
    MaxDuration,
    /// The hub is draining; GO_AWAY was sent a grace period before.
    Drained,
    /// A newer connection with the same identity took over, and the lingering time is over.
    Superseded,
    /// The channel was deleted.
    ChannelDeleted,
}

impl CloseReason {
    /// The WebSocket close code: 1001 (going away) when the client should reconnect at once,
    /// 1000 otherwise. Official clients only log it.
    pub const fn code(self) -> u16 {
        match self {
            Self::MaxDuration | Self::Drained => 1001,
            Self::IdleTimeout | Self::Superseded | Self::ChannelDeleted => 1000,
        }
    }

    /// A short text for the close frame.
    pub const fn description(self) -> &'static str {
        match self {
            Self::IdleTimeout => "idle timeout",
            Self::MaxDuration => "maximum connection duration reached",
            Self::Drained => "server going away",
            Self::Superseded => "replaced by a newer connection",
            Self::ChannelDeleted => "channel deleted",
        }
    }
}

/// A connect, or an Alexa offer, that the hub refuses, with the service's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
#[non_exhaustive]
pub struct Refused {
    /// The service's error.
    pub error_type: ErrorType,
    /// What happened.
    pub message: String,
}

impl Refused {
    fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        Self {
            error_type,
            message: message.into(),
        }
    }
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send `frame` as a text frame on `conn`.
    Deliver {
        /// The connection.
        conn: ConnId,
        /// The frame.
        frame: Frame,
    },
    /// Close `conn` with `reason`. The hub has forgotten it already.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// Complete the SendAlexaOfferToMaster call `request`: with the master's answer payload,
    /// or with the error to answer.
    AlexaAnswer {
        /// The call.
        request: RequestId,
        /// The answer or the error.
        result: Result<MessagePayload<'static>, Refused>,
    },
}

/// A connection that opened, with its identity as the connect URL gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenConnection {
    /// The channel.
    pub channel_arn: ChannelArn,
    /// Master or viewer.
    pub role: Role,
    /// The viewer's client id; masters have none.
    pub client_id: Option<ClientId>,
    /// The channel's message TTL now.
    pub message_ttl: MessageTtlSeconds,
}

impl OpenConnection {
    /// The channel's master.
    pub fn master(channel_arn: ChannelArn, message_ttl: MessageTtlSeconds) -> Self {
        Self {
            channel_arn,
            role: Role::Master,
            client_id: None,
            message_ttl,
        }
    }

    /// A viewer with `client_id`.
    pub fn viewer(
        channel_arn: ChannelArn,
        client_id: ClientId,
        message_ttl: MessageTtlSeconds,
    ) -> Self {
        Self {
            channel_arn,
            role: Role::Viewer,
            client_id: Some(client_id),
            message_ttl,
        }
    }
}

/// A SendAlexaOfferToMaster call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlexaOffer {
    /// The channel.
    pub channel_arn: ChannelArn,
    /// The sender, which the master answers to.
    pub sender_client_id: PeerId,
    /// The base64 SDP offer.
    pub payload: MessagePayload<'static>,
    /// The channel's message TTL now.
    pub message_ttl: MessageTtlSeconds,
}

impl AlexaOffer {
    /// An offer from `sender_client_id`.
    pub fn new(
        channel_arn: ChannelArn,
        sender_client_id: PeerId,
        payload: MessagePayload<'static>,
        message_ttl: MessageTtlSeconds,
    ) -> Self {
        Self {
            channel_arn,
            sender_client_id,
            payload,
            message_ttl,
        }
    }
}

/// What the hub has done, counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Connections opened.
    pub opened: u64,
    /// Connects refused (limits, rates, draining, bad identity).
    pub refused: u64,
    /// Connections closed by their client.
    pub closed_by_client: u64,
    /// Connections closed by the hub.
    pub closed_by_hub: u64,
    /// Connections superseded by a newer one with the same identity.
    pub superseded: u64,
    /// Relayed messages delivered to a connection (at once or from the buffer).
    pub delivered: u64,
    /// Messages buffered for a recipient that was not connected.
    pub buffered: u64,
    /// Undelivered messages replaced by a newer offer or answer from the same sender.
    pub overwritten: u64,
    /// Buffered messages dropped when their TTL ran out.
    pub expired: u64,
    /// Buffered messages dropped because their channel was deleted.
    pub dropped_channel_deleted: u64,
    /// Messages refused because a rate limit was exceeded.
    pub throttled: u64,
    /// Messages refused because a recipient's buffer was full.
    pub buffer_full: u64,
    /// Messages refused as invalid (malformed, wrong field, no recipient).
    pub invalid: u64,
    /// Refused messages answered with a STATUS_RESPONSE.
    pub status_responses: u64,
    /// Refused messages dropped silently, having no correlation id.
    pub rejected_silently: u64,
    /// Frames from superseded connections, dropped.
    pub dropped_from_superseded: u64,
    /// GO_AWAY events sent.
    pub go_aways: u64,
    /// RECONNECT_ICE_SERVER events sent.
    pub reconnect_ice_servers: u64,
    /// SendAlexaOfferToMaster calls answered by the master.
    pub alexa_answered: u64,
    /// SendAlexaOfferToMaster calls that failed (timeout, superseded, channel deleted).
    pub alexa_failed: u64,
}

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
}

#[derive(Debug)]
struct Channel {
    generation: u32,
    arn: ChannelArn,
    ttl: Duration,
    /// The current master's slot.
    master: Option<u32>,
    /// The current connection of each viewer id.
    viewers: BTreeMap<PeerId, u32>,
    /// Every connection attached to the channel, superseded ones included.
    members: BTreeSet<u32>,
    pending: BTreeMap<Recipient, VecDeque<Pending>>,
    master_connects: Bucket,
    viewer_connects: Bucket,
    alexa_calls: Bucket,
    alexa: BTreeMap<PeerId, RequestId>,
}

impl Channel {
    fn is_unused(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty() && self.alexa.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
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
    opened: Instant,
    last_activity: Instant,
    /// When GO_AWAY was sent, and the close is due.
    close_due: Option<(Instant, CloseReason)>,
    sdp: Bucket,
    ice: Bucket,
    /// The key of this connection's one timer.
    timer: Option<(Instant, u64)>,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// A slab whose ids carry a generation, so that an id of a freed entry never finds its
/// successor.
#[derive(Debug)]
struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    const fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    fn insert(&mut self, value: T) -> (u32, u32) {
        if let Some(index) = self.free.pop()
            && let Some(slot) = self.slots.get_mut(index as usize)
        {
            slot.generation = slot.generation.wrapping_add(1);
            slot.value = Some(value);
            return (index, slot.generation);
        }
        let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            generation: 0,
            value: Some(value),
        });
        (index, 0)
    }

    fn get(&self, index: u32, generation: u32) -> Option<&T> {
        self.slots
            .get(index as usize)
            .filter(|slot| slot.generation == generation)
            .and_then(|slot| slot.value.as_ref())
    }

    fn get_mut(&mut self, index: u32, generation: u32) -> Option<&mut T> {
        self.slots
            .get_mut(index as usize)
            .filter(|slot| slot.generation == generation)
            .and_then(|slot| slot.value.as_mut())
    }

    /// The live entry at `index`, whatever its generation.
    fn at(&self, index: u32) -> Option<&T> {
        self.slots.get(index as usize)?.value.as_ref()
    }

    fn at_mut(&mut self, index: u32) -> Option<&mut T> {
        self.slots.get_mut(index as usize)?.value.as_mut()
    }

    fn generation(&self, index: u32) -> u32 {
        self.slots
            .get(index as usize)
            .map_or(0, |slot| slot.generation)
    }

    fn remove(&mut self, index: u32) -> Option<T> {
        let value = self.slots.get_mut(index as usize)?.value.take()?;
        self.free.push(index);
        Some(value)
    }

    fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
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
    /// Give up on an Alexa offer.
    Alexa {
        channel: u32,
        generation: u32,
        sender: PeerId,
        request: RequestId,
    },
}

/// Live routing for a set of channels. See the [module docs](self).
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    conns: Slab<Conn>,
    channels: Slab<Channel>,
    by_arn: BTreeMap<ChannelArn, u32>,
    timers: BTreeMap<(Instant, u64), Timer>,
    timer_seq: u64,
    next_request: u64,
    outputs: VecDeque<Output>,
    draining: bool,
    counters: Counters,
}

const GO_AWAY: &str = r#"{"messageType":"GO_AWAY"}"#;
const RECONNECT_ICE_SERVER: &str = r#"{"messageType":"RECONNECT_ICE_SERVER"}"#;

impl Hub {
    /// A hub with no channels.
    pub fn new(config: HubConfig) -> Result<Self, ConfigError> {
        if config.go_away_grace >= config.max_connection_duration {
            return Err(ConfigError::GraceNotShorterThanDuration {
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
                return Err(ConfigError::Zero { name });
            }
        }
        Ok(Self {
            config,
            conns: Slab::new(),
            channels: Slab::new(),
            by_arn: BTreeMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            next_request: 0,
            outputs: VecDeque::new(),
            draining: false,
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

    /// Buffered messages, over every channel.
    pub fn buffered_count(&self) -> usize {
        self.channels
            .slots
            .iter()
            .filter_map(|slot| slot.value.as_ref())
            .flat_map(|channel| channel.pending.values())
            .map(VecDeque::len)
            .sum()
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
        let result = self.open(now, open);
        match &result {
            Ok(_) => self.counters.opened += 1,
            Err(_) => self.counters.refused += 1,
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
        let channel_index = self.channel_for(now, &open.channel_arn, open.message_ttl);
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
            Role::Viewer
                if client_id
                    .as_ref()
                    .is_some_and(|id| !channel.viewers.contains_key(id))
                    && channel.viewers.len() >= config.max_viewers_per_channel =>
            {
                Some(format!(
                    "ConnectAsViewer: the channel already has {} viewers",
                    config.max_viewers_per_channel
                ))
            }
            _ => None,
        };
        if let Some(message) = refusal {
            self.release_channel_if_unused(channel_index);
            return Err(Refused::new(
                ErrorType::ClientLimitExceededException,
                message,
            ));
        }

        let conn = Conn {
            channel: channel_index,
            role: open.role,
            client_id: client_id.clone(),
            standing: Standing::Current,
            opened: now,
            last_activity: now,
            close_due: None,
            sdp: Bucket::full(self.config.sdp_rate, now),
            ice: Bucket::full(self.config.ice_candidate_rate, now),
            timer: None,
        };
        let (slot, generation) = self.conns.insert(conn);
        let id = ConnId { slot, generation };
        let Some(channel) = self.channels.at_mut(channel_index) else {
            return Err(Refused::new(ErrorType::InternalFailure, "channel lost"));
        };
        channel.members.insert(slot);
        let (previous, recipient) = match client_id {
            None => (channel.master.replace(slot), Recipient::Master),
            Some(id) => (
                channel.viewers.insert(id.clone(), slot),
                Recipient::Viewer(id),
            ),
        };
        if let Some(previous) = previous
            && let Some(old) = self.conns.at_mut(previous)
        {
            old.standing = Standing::Superseded(now);
            self.counters.superseded += 1;
            let old_id = ConnId {
                slot: previous,
                generation: self.conns.generation(previous),
            };
            self.schedule_conn(old_id);
        }
        self.schedule_conn(id);
        self.flush_pending(now, channel_index, &recipient, id);
        Ok(id)
    }

    /// The channel's index, created when new; its TTL is refreshed either way.
    fn channel_for(&mut self, now: Instant, arn: &ChannelArn, ttl: MessageTtlSeconds) -> u32 {
        let ttl = Duration::from_secs(u64::from(ttl.get()));
        if let Some(&index) = self.by_arn.get(arn)
            && let Some(channel) = self.channels.at_mut(index)
        {
            channel.ttl = ttl;
            return index;
        }
        let config = &self.config;
        let (index, generation) = self.channels.insert(Channel {
            generation: 0,
            arn: arn.clone(),
            ttl,
            master: None,
            viewers: BTreeMap::new(),
            members: BTreeSet::new(),
            pending: BTreeMap::new(),
            master_connects: Bucket::full(config.connect_rate, now),
            viewer_connects: Bucket::full(config.connect_rate, now),
            alexa_calls: Bucket::full(config.alexa_rate, now),
            alexa: BTreeMap::new(),
        });
        if let Some(channel) = self.channels.at_mut(index) {
            channel.generation = generation;
        }
        self.by_arn.insert(arn.clone(), index);
        index
    }

    fn release_channel_if_unused(&mut self, index: u32) {
        if self.channels.at(index).is_some_and(Channel::is_unused)
            && let Some(channel) = self.channels.remove(index)
        {
            self.by_arn.remove(&channel.arn);
        }
    }

    /// A connection's client closed it (or the socket failed). Unknown or already closed
    /// connections are ignored.
    pub fn handle_close(&mut self, _now: Instant, conn: ConnId) {
        if self.detach(conn).is_some() {
            self.counters.closed_by_client += 1;
        }
    }

    /// A ping, pong or other control frame arrived: the connection is active.
    pub fn handle_keepalive(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(conn.slot, conn.generation) {
            c.last_activity = now;
        }
    }

    /// A text frame arrived on `conn`.
    pub fn handle_frame(&mut self, now: Instant, conn: ConnId, text: &str) {
        let Some(c) = self.conns.get_mut(conn.slot, conn.generation) else {
            return;
        };
        c.last_activity = now;
        if c.standing != Standing::Current {
            self.counters.dropped_from_superseded += 1;
            return;
        }
        let message =
            match ClientMessage::decode_with_max_payload(text, self.config.max_payload_len) {
                Ok(message) => message,
                Err(err) => {
                    self.counters.invalid += 1;
                    let (error_type, description) = (err.error.error_type(), err.error.to_string());
                    self.reject(conn, err.correlation_id, error_type, description);
                    return;
                }
            };
        let (rate, bucket) = match message.action {
            Action::SdpOffer | Action::SdpAnswer => (self.config.sdp_rate, &mut c.sdp),
            Action::IceCandidate => (self.config.ice_candidate_rate, &mut c.ice),
        };
        if !bucket.try_take(rate, now) {
            self.counters.throttled += 1;
            let description = format!(
                "{}: more than {} per second on this connection",
                message.action, rate.per_second
            );
            self.reject(
                conn,
                message.correlation_id,
                ErrorType::ClientLimitExceededException,
                description,
            );
            return;
        }
        let (channel_index, role, sender) = (c.channel, c.role, c.client_id.clone());
        match role {
            Role::Viewer => self.route_to_master(now, conn, channel_index, sender, message),
            Role::Master => self.route_to_viewer(now, conn, channel_index, message),
        }
    }

    fn route_to_master(
        &mut self,
        now: Instant,
        from: ConnId,
        channel_index: u32,
        sender: Option<PeerId>,
        message: ClientMessage<'_>,
    ) {
        let frame = ServerEvent::relay(
            message.action.message_type(),
            sender.as_ref(),
            message.message_payload,
        )
        .encode();
        let master = self.channels.at(channel_index).and_then(|ch| ch.master);
        match master {
            Some(slot) => {
                let to = ConnId {
                    slot,
                    generation: self.conns.generation(slot),
                };
                self.deliver(to, Frame(Cow::Owned(frame)));
            }
            None => self.buffer(
                now,
                from,
                channel_index,
                Recipient::Master,
                Pending {
                    frame: Frame(Cow::Owned(frame)),
                    sender,
                    action: message.action,
                    expires: now,
                },
                message.correlation_id,
            ),
        }
    }

    fn route_to_viewer(
        &mut self,
        now: Instant,
        from: ConnId,
        channel_index: u32,
        message: ClientMessage<'_>,
    ) {
        let Some(recipient) = message.recipient_client_id else {
            self.counters.invalid += 1;
            self.reject(
                from,
                message.correlation_id,
                ErrorType::InvalidArgumentException,
                "recipientClientId: is required on messages from the master".to_owned(),
            );
            return;
        };
        let Some(channel) = self.channels.at_mut(channel_index) else {
            return;
        };
        if message.action == Action::SdpAnswer
            && let Some(request) = channel.alexa.remove(&recipient)
        {
            self.counters.alexa_answered += 1;
            self.outputs.push_back(Output::AlexaAnswer {
                request,
                result: Ok(message.message_payload.into_normalized().into_owned()),
            });
            self.release_channel_if_unused(channel_index);
            return;
        }
        let frame = Frame(Cow::Owned(
            ServerEvent::relay(message.action.message_type(), None, message.message_payload)
                .encode(),
        ));
        match channel.viewers.get(&recipient) {
            Some(&slot) => {
                let to = ConnId {
                    slot,
                    generation: self.conns.generation(slot),
                };
                self.deliver(to, frame);
            }
            None => self.buffer(
                now,
                from,
                channel_index,
                Recipient::Viewer(recipient),
                Pending {
                    frame,
                    sender: None,
                    action: message.action,
                    expires: now,
                },
                message.correlation_id,
            ),
        }
    }

    fn deliver(&mut self, to: ConnId, frame: Frame) {
        self.counters.delivered += 1;
        self.outputs.push_back(Output::Deliver { conn: to, frame });
    }

    /// Keeps `pending` for `recipient` for the channel's TTL; `pending.expires` is set here.
    fn buffer(
        &mut self,
        now: Instant,
        from: ConnId,
        channel_index: u32,
        recipient: Recipient,
        mut pending: Pending,
        correlation_id: Option<CorrelationId>,
    ) {
        let config = &self.config;
        let Some(channel) = self.channels.at_mut(channel_index) else {
            return;
        };
        pending.expires = now + channel.ttl;
        let known = channel.pending.contains_key(&recipient);
        if !known && channel.pending.len() >= config.max_pending_recipients_per_channel {
            self.counters.buffer_full += 1;
            let description = format!(
                "too many recipients with undelivered messages on this channel (at most {})",
                config.max_pending_recipients_per_channel
            );
            self.reject(
                from,
                correlation_id,
                ErrorType::ClientLimitExceededException,
                description,
            );
            return;
        }
        let queue = channel.pending.entry(recipient.clone()).or_default();
        // A newer offer (or answer) from the same sender replaces an undelivered one.
        if matches!(pending.action, Action::SdpOffer | Action::SdpAnswer)
            && let Some(at) = queue
                .iter()
                .position(|p| p.action == pending.action && p.sender == pending.sender)
        {
            queue.remove(at);
            self.counters.overwritten += 1;
        }
        if queue.len() >= config.max_pending_per_recipient {
            self.counters.buffer_full += 1;
            let description = format!(
                "the recipient has {} undelivered messages, the most that are kept",
                config.max_pending_per_recipient
            );
            if queue.is_empty() {
                channel.pending.remove(&recipient);
            }
            self.reject(
                from,
                correlation_id,
                ErrorType::ClientLimitExceededException,
                description,
            );
            return;
        }
        let first = queue.is_empty();
        let expires = pending.expires;
        queue.push_back(pending);
        self.counters.buffered += 1;
        if first {
            let generation = channel.generation;
            self.schedule(
                expires,
                Timer::Expiry {
                    channel: channel_index,
                    generation,
                    recipient,
                },
            );
        }
    }

    /// Delivers what waits for `recipient`, in order, to `to`.
    fn flush_pending(
        &mut self,
        now: Instant,
        channel_index: u32,
        recipient: &Recipient,
        to: ConnId,
    ) {
        let Some(queue) = self
            .channels
            .at_mut(channel_index)
            .and_then(|ch| ch.pending.remove(recipient))
        else {
            return;
        };
        for pending in queue {
            if pending.expires > now {
                self.deliver(to, pending.frame);
            } else {
                self.counters.expired += 1;
            }
        }
    }

    /// Answers a refused message with a STATUS_RESPONSE when it had a correlation id.
    fn reject(
        &mut self,
        conn: ConnId,
        correlation_id: Option<CorrelationId>,
        error_type: ErrorType,
        description: String,
    ) {
        match correlation_id {
            Some(id) => {
                self.counters.status_responses += 1;
                let event =
                    ServerEvent::status_response(StatusResponse::new(id, error_type, description));
                self.outputs.push_back(Output::Deliver {
                    conn,
                    frame: Frame(Cow::Owned(event.encode())),
                });
            }
            None => self.counters.rejected_silently += 1,
        }
    }

    /// Forgets `conn`, releasing its identity if it still held it.
    fn detach(&mut self, conn: ConnId) -> Option<Conn> {
        self.conns.get(conn.slot, conn.generation)?;
        let removed = self.conns.remove(conn.slot)?;
        if let Some(key) = removed.timer {
            self.timers.remove(&key);
        }
        if let Some(channel) = self.channels.at_mut(removed.channel) {
            channel.members.remove(&conn.slot);
            if removed.standing == Standing::Current {
                match &removed.client_id {
                    None => {
                        if channel.master == Some(conn.slot) {
                            channel.master = None;
                        }
                    }
                    Some(id) => {
                        if channel.viewers.get(id) == Some(&conn.slot) {
                            channel.viewers.remove(id);
                        }
                    }
                }
            }
        }
        self.release_channel_if_unused(removed.channel);
        Some(removed)
    }

    /// Closes `conn` from the hub's side.
    fn close(&mut self, conn: ConnId, reason: CloseReason) {
        if self.detach(conn).is_some() {
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
            Standing::Current => (c.last_activity + config.idle_timeout, Deadline::Idle),
        };
        let mut consider = |at: Instant, what: Deadline| {
            if at < best.0 {
                best = (at, what);
            }
        };
        match (c.close_due, c.standing) {
            (Some((at, reason)), _) => consider(at, Deadline::Close(reason)),
            (None, Standing::Current) => consider(
                c.opened + config.max_connection_duration - config.go_away_grace,
                Deadline::GoAway,
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
                } => self.alexa_timeout(channel, generation, &sender, request),
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
            Deadline::Idle => self.close(conn, CloseReason::IdleTimeout),
            Deadline::Close(reason) => self.close(conn, reason),
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

    fn expire(&mut self, now: Instant, channel_index: u32, generation: u32, recipient: Recipient) {
        let Some(channel) = self.channels.get_mut(channel_index, generation) else {
            return;
        };
        let Some(queue) = channel.pending.get_mut(&recipient) else {
            return;
        };
        while queue.front().is_some_and(|p| p.expires <= now) {
            queue.pop_front();
            self.counters.expired += 1;
        }
        match queue.front().map(|p| p.expires) {
            Some(next) => {
                self.schedule(
                    next,
                    Timer::Expiry {
                        channel: channel_index,
                        generation,
                        recipient,
                    },
                );
            }
            None => {
                channel.pending.remove(&recipient);
                self.release_channel_if_unused(channel_index);
            }
        }
    }

    /// Stops taking connections, sends GO_AWAY to every connection and closes each a grace
    /// period later.
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
            self.go_away(now, conn, CloseReason::Drained);
        }
    }

    /// Whether [`Hub::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Sends RECONNECT_ICE_SERVER to the current connections of `channel_arn`, so that they
    /// fetch fresh ICE servers.
    pub fn reconnect_ice_servers(&mut self, _now: Instant, channel_arn: &ChannelArn) {
        if let Some(&index) = self.by_arn.get(channel_arn) {
            self.reconnect_ice_servers_of(index);
        }
    }

    /// Sends RECONNECT_ICE_SERVER to every current connection of every channel, as after a
    /// TURN secret rotation.
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
            .chain(channel.viewers.values())
            .map(|&slot| ConnId {
                slot,
                generation: self.conns.generation(slot),
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

    /// The channel's TTL changed; messages already buffered keep their expiry.
    pub fn handle_channel_updated(
        &mut self,
        _now: Instant,
        channel_arn: &ChannelArn,
        message_ttl: MessageTtlSeconds,
    ) {
        if let Some(channel) = self
            .by_arn
            .get(channel_arn)
            .and_then(|&index| self.channels.at_mut(index))
        {
            channel.ttl = Duration::from_secs(u64::from(message_ttl.get()));
        }
    }

    /// The channel was deleted: its connections are closed, its buffered messages dropped and
    /// its Alexa calls failed.
    pub fn handle_channel_deleted(&mut self, _now: Instant, channel_arn: &ChannelArn) {
        let Some(&index) = self.by_arn.get(channel_arn) else {
            return;
        };
        let Some(channel) = self.channels.at_mut(index) else {
            return;
        };
        let dropped: usize = channel.pending.values().map(VecDeque::len).sum();
        channel.pending.clear();
        let alexa = std::mem::take(&mut channel.alexa);
        let members: Vec<u32> = channel.members.iter().copied().collect();
        self.counters.dropped_channel_deleted += dropped as u64;
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
            self.close(conn, CloseReason::ChannelDeleted);
        }
        self.release_channel_if_unused(index);
    }

    /// A SendAlexaOfferToMaster call: the offer goes to the master (or waits for it for the
    /// channel's TTL), and the call completes with the master's answer to the sender, or with
    /// an error after [`HubConfig::alexa_timeout`].
    pub fn handle_alexa_offer(
        &mut self,
        now: Instant,
        offer: AlexaOffer,
    ) -> Result<RequestId, Refused> {
        if self.draining {
            return Err(Refused::new(
                ErrorType::InternalFailure,
                "the server is shutting down; call again",
            ));
        }
        let index = self.channel_for(now, &offer.channel_arn, offer.message_ttl);
        let config = &self.config;
        let Some(channel) = self.channels.at_mut(index) else {
            return Err(Refused::new(ErrorType::InternalFailure, "channel lost"));
        };
        if !channel.alexa_calls.try_take(config.alexa_rate, now) {
            self.counters.throttled += 1;
            let message = format!(
                "SendAlexaOfferToMaster: more than {} calls per second on this channel",
                config.alexa_rate.per_second
            );
            self.release_channel_if_unused(index);
            return Err(Refused::new(
                ErrorType::ClientLimitExceededException,
                message,
            ));
        }
        self.next_request += 1;
        let request = RequestId(self.next_request);
        if let Some(older) = channel
            .alexa
            .insert(offer.sender_client_id.clone(), request)
        {
            self.counters.alexa_failed += 1;
            self.outputs.push_back(Output::AlexaAnswer {
                request: older,
                result: Err(Refused::new(
                    ErrorType::ClientLimitExceededException,
                    "superseded by a newer offer from the same sender",
                )),
            });
        }
        let generation = channel.generation;
        let deadline = now + config.alexa_timeout;
        let master = channel.master;
        let frame = Frame(Cow::Owned(
            ServerEvent::relay(
                MessageType::SdpOffer,
                Some(&offer.sender_client_id),
                offer.payload,
            )
            .encode(),
        ));
        self.schedule(
            deadline,
            Timer::Alexa {
                channel: index,
                generation,
                sender: offer.sender_client_id.clone(),
                request,
            },
        );
        match master {
            Some(slot) => {
                let to = ConnId {
                    slot,
                    generation: self.conns.generation(slot),
                };
                self.deliver(to, frame);
            }
            None => {
                // Nobody to answer a refusal to: the call's own timeout reports it.
                let nobody = ConnId {
                    slot: u32::MAX,
                    generation: u32::MAX,
                };
                self.buffer(
                    now,
                    nobody,
                    index,
                    Recipient::Master,
                    Pending {
                        frame,
                        sender: Some(offer.sender_client_id),
                        action: Action::SdpOffer,
                        expires: now,
                    },
                    None,
                );
            }
        }
        Ok(request)
    }

    fn alexa_timeout(&mut self, index: u32, generation: u32, sender: &PeerId, request: RequestId) {
        let Some(channel) = self.channels.get_mut(index, generation) else {
            return;
        };
        if channel.alexa.get(sender) != Some(&request) {
            return;
        }
        channel.alexa.remove(sender);
        let message = if channel.master.is_some() {
            "the channel's master did not answer in time"
        } else {
            "no master is connected to the channel"
        };
        self.counters.alexa_failed += 1;
        self.outputs.push_back(Output::AlexaAnswer {
            request,
            result: Err(Refused::new(ErrorType::ResourceNotFoundException, message)),
        });
        self.release_channel_if_unused(index);
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
