//! The values that cross the hub's boundary: connection and request ids, frames, outputs,
//! inputs, refusals and counters.

use std::borrow::Cow;

use kvs_signaling_proto::{
    ChannelArn, ClientId, ErrorType, MessagePayload, MessageTtlSeconds, PeerId, Role,
};

/// A connection, as the hub knows it. An id carries its slot's generation, so an input for a
/// closed connection is ignored, not applied to the slot's next connection (until the
/// generation wraps after 2^32 connections in the same slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(super) slot: u32,
    pub(super) generation: u32,
}

impl ConnId {
    /// The id as one number, to carry it across a process boundary (a cluster's nodes name
    /// an owner's connections this way).
    pub const fn to_raw(self) -> u64 {
        ((self.generation as u64) << 32) | self.slot as u64
    }

    /// The id [`ConnId::to_raw`] gave. An id that names no connection of a hub is ignored by
    /// it like any closed one; a transport may also mint ids of its own this way for
    /// connections no hub of its own holds.
    pub const fn from_raw(raw: u64) -> Self {
        Self {
            slot: raw as u32,
            generation: (raw >> 32) as u32,
        }
    }
}

/// A SendAlexaOfferToMaster call waiting for the master's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlexaRequestId(pub(super) u64);

/// A text frame to send, already encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(pub(super) Cow<'static, str>);

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

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Self(Cow::Owned(text))
    }
}

/// Why the hub closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// No frame for [`HubConfig::idle_timeout`](crate::HubConfig::idle_timeout).
    IdleTimeout,
    /// Open for [`HubConfig::max_connection_duration`](crate::HubConfig::max_connection_duration).
    MaxDuration,
    /// The hub is draining (GO_AWAY was sent a grace period before, to a client that
    /// handles it).
    Drained,
    /// A newer connection with the same identity took over, and the lingering time is over.
    Superseded,
    /// The channel was deleted.
    ChannelDeleted,
    /// Another hub decides for the channel now ([`Hub::evict_channel`](crate::Hub::evict_channel)).
    Moved,
}

impl CloseReason {
    /// The WebSocket close code: 1001 (going away) when the client should reconnect at once,
    /// 1000 otherwise. Official clients only log it.
    pub const fn code(self) -> u16 {
        match self {
            Self::MaxDuration | Self::Drained | Self::Moved => 1001,
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
            Self::Moved => "channel moved to another server",
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
    /// A refusal with the service's `error_type` and `message`.
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
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
        request: AlexaRequestId,
        /// The answer or the error.
        result: Result<MessagePayload<'static>, Refused>,
    },
    /// Send `frame` as a text frame on `conn`, as [`Output::Deliver`], then hand `receipt`
    /// back: to [`Hub::handle_written`](crate::Hub::handle_written) once the frame is written
    /// to the socket, or with the frame to
    /// [`Hub::handle_unwritten`](crate::Hub::handle_unwritten) if the connection ends first.
    /// Only messages whose sender asked for delivery status come this way.
    DeliverTracked {
        /// The connection.
        conn: ConnId,
        /// The frame.
        frame: Frame,
        /// What to hand back.
        receipt: super::Receipt,
    },
    /// Something the hub did, for a console or a log: only while
    /// [`Hub::set_observing`](crate::Hub::set_observing) is on. Nothing to carry out.
    Observed(super::Observation),
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
    /// The revision of the channel's configuration that `message_ttl` was read at: the hub
    /// keeps the TTL of the highest revision it was given, so that a connect that read the
    /// channel before an UpdateSignalingChannel cannot put the old TTL back. 0 when the caller
    /// does not track revisions.
    pub ttl_revision: u64,
    /// Whether the client handles GO_AWAY and RECONNECT_ICE_SERVER. Only such connections
    /// get them: the official C SDK deadlocks on both (it holds a lock in the thread that
    /// delivers them and takes it again to reconnect), so a connection that does not is closed
    /// with 1001 instead of GO_AWAY, and relies on its own refresh instead of
    /// RECONNECT_ICE_SERVER. `false` unless set.
    pub indications: bool,
    /// Whether the client asked for DELIVERY_STATUS events (an extension of this project:
    /// [`DELIVERY_STATUS_PARAM`](kvs_signaling_proto::DELIVERY_STATUS_PARAM)): for each
    /// message it sends with a correlation id, it hears what became of it. `false` unless set.
    pub delivery_status: bool,
    /// Where the connection comes from, for [`Hub::channel_views`](crate::Hub::channel_views)
    /// and observations; the hub decides nothing by it.
    pub remote_addr: Option<std::net::SocketAddr>,
    /// A connection that was open at another hub for this long, restored here when that hub
    /// gave up the channel (a cluster moving it): it takes no connect-rate token, its
    /// duration cap counts from when it first opened, and any connection of its identity
    /// opened here wins over it. `None` for a new connection.
    pub restored: Option<std::time::Duration>,
}

impl OpenConnection {
    /// The channel's master.
    pub fn master(channel_arn: ChannelArn, message_ttl: MessageTtlSeconds) -> Self {
        Self {
            channel_arn,
            role: Role::Master,
            client_id: None,
            message_ttl,
            ttl_revision: 0,
            indications: false,
            delivery_status: false,
            remote_addr: None,
            restored: None,
        }
    }

    /// Sets [`OpenConnection::ttl_revision`].
    #[must_use]
    pub fn ttl_revision(mut self, revision: u64) -> Self {
        self.ttl_revision = revision;
        self
    }

    /// Sets [`OpenConnection::delivery_status`].
    #[must_use]
    pub fn delivery_status(mut self, asked: bool) -> Self {
        self.delivery_status = asked;
        self
    }

    /// Sets [`OpenConnection::remote_addr`].
    #[must_use]
    pub fn remote_addr(mut self, addr: Option<std::net::SocketAddr>) -> Self {
        self.remote_addr = addr;
        self
    }

    /// Sets [`OpenConnection::restored`].
    #[must_use]
    pub fn restored(mut self, open_for: Option<std::time::Duration>) -> Self {
        self.restored = open_for;
        self
    }

    /// Sets [`OpenConnection::indications`].
    #[must_use]
    pub fn indications(mut self, handles: bool) -> Self {
        self.indications = handles;
        self
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
            ttl_revision: 0,
            indications: false,
            delivery_status: false,
            remote_addr: None,
            restored: None,
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
    /// The revision `message_ttl` was read at (see [`OpenConnection::ttl_revision`]).
    pub ttl_revision: u64,
}

impl AlexaOffer {
    /// Sets [`AlexaOffer::ttl_revision`].
    #[must_use]
    pub fn ttl_revision(mut self, revision: u64) -> Self {
        self.ttl_revision = revision;
        self
    }

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
            ttl_revision: 0,
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
    /// Messages refused because a recipient's buffer, the channel's recipients or the hub's
    /// held bytes were at their limit.
    pub buffer_full: u64,
    /// Messages refused as invalid (malformed, wrong field, no recipient).
    pub invalid: u64,
    /// Refused messages answered with a STATUS_RESPONSE.
    pub status_responses: u64,
    /// Refused messages dropped silently, having no correlation id.
    pub rejected_silently: u64,
    /// Frames from superseded connections, dropped.
    pub dropped_from_superseded: u64,
    /// Frames from connections not yet established ([`Hub::handle_established`]), dropped.
    ///
    /// [`Hub::handle_established`]: crate::Hub::handle_established
    pub dropped_before_established: u64,
    /// Connections closed at the duration cap or on drain without GO_AWAY, since their
    /// client does not handle it.
    pub closed_without_go_away: u64,
    /// DELIVERY_STATUS events sent.
    pub delivery_statuses: u64,
    /// GO_AWAY events sent.
    pub go_aways: u64,
    /// RECONNECT_ICE_SERVER events sent.
    pub reconnect_ice_servers: u64,
    /// Messages from the master to the sender of a pending SendAlexaOfferToMaster call, other
    /// than its answer (ICE candidates, which the HTTP call cannot carry), dropped.
    pub dropped_for_alexa: u64,
    /// SendAlexaOfferToMaster calls answered by the master.
    pub alexa_answered: u64,
    /// SendAlexaOfferToMaster calls that failed (timeout, superseded, channel deleted).
    pub alexa_failed: u64,
}
