//! The hub's limits.

use std::time::Duration;

use kvs_signaling_proto::limits;

use crate::throttle::Rate;

/// The hub's limits. The defaults are the real service's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubConfig {
    /// Concurrent viewers (distinct client ids) per channel: 10.
    pub max_viewers_per_channel: usize,
    /// Longest `messagePayload`, in characters: 10,240 ("10K").
    pub max_payload_len: usize,
    /// SDP offers and answers per viewer connection: 5 a second.
    pub sdp_rate: Rate,
    /// ICE candidates per viewer connection: 20 a second.
    pub ice_candidate_rate: Rate,
    /// SDP offers and answers per master connection: 5 a second on average, in bursts of up
    /// to 50. A master answers every viewer that connects, and ten viewers may connect at
    /// once (a camera that was offline, a page opened by many), so its burst is sized for its
    /// ten viewers; the service's rate still holds over time.
    pub master_sdp_rate: Rate,
    /// ICE candidates per master connection: 20 a second on average, in bursts of up to 200
    /// (twenty for each of ten viewers answered at once: a GStreamer master serving three
    /// viewers sent 27 candidates within 10 ms).
    pub master_ice_candidate_rate: Rate,
    /// ConnectAsMaster, and separately ConnectAsViewer, per channel: 3 a second.
    pub connect_rate: Rate,
    /// SendAlexaOfferToMaster per channel: 5 a second.
    pub alexa_rate: Rate,
    /// A connection that sends no frame (its pings included; pongs, which answer the
    /// server's pings, are liveness and not activity) for this long is closed: 10 minutes.
    pub idle_timeout: Duration,
    /// A connection is closed (1001) this long after it opened: 1 hour. A connection that
    /// handles GO_AWAY ([`OpenConnection::indications`](crate::OpenConnection::indications))
    /// gets it [`HubConfig::go_away_grace`](crate::HubConfig::go_away_grace) before.
    pub max_connection_duration: Duration,
    /// Time between GO_AWAY and the close, for connections that handle GO_AWAY: 1 minute.
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
    /// Bytes of undelivered messages the hub holds over all its channels: 64 MiB. Messages
    /// beyond are refused with ClientLimitExceededException, so that many channels each
    /// within their own bounds cannot exhaust the server's memory together.
    pub max_held_bytes: usize,
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
            master_sdp_rate: Rate::per_second(5).with_burst(50),
            master_ice_candidate_rate: Rate::per_second(20).with_burst(200),
            connect_rate: Rate::per_second(3),
            alexa_rate: Rate::per_second(5),
            idle_timeout: Duration::from_secs(600),
            max_connection_duration: Duration::from_secs(3600),
            go_away_grace: Duration::from_secs(60),
            superseded_linger: Duration::from_secs(600),
            max_pending_per_recipient: 64,
            max_pending_recipients_per_channel: 32,
            max_held_bytes: 64 * 1024 * 1024,
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
    /// The longest duration any setting may have: a week. Longer ones are refused, so that
    /// adding them to a time never overflows.
    pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

    setter!(
        /// Sets [`HubConfig::max_viewers_per_channel`](crate::HubConfig::max_viewers_per_channel).
        max_viewers_per_channel: usize
    );
    setter!(
        /// Sets [`HubConfig::max_payload_len`](crate::HubConfig::max_payload_len).
        max_payload_len: usize
    );
    setter!(
        /// Sets [`HubConfig::sdp_rate`](crate::HubConfig::sdp_rate).
        sdp_rate: Rate
    );
    setter!(
        /// Sets [`HubConfig::ice_candidate_rate`](crate::HubConfig::ice_candidate_rate).
        ice_candidate_rate: Rate
    );
    setter!(
        /// Sets [`HubConfig::master_sdp_rate`](crate::HubConfig::master_sdp_rate).
        master_sdp_rate: Rate
    );
    setter!(
        /// Sets [`HubConfig::master_ice_candidate_rate`](crate::HubConfig::master_ice_candidate_rate).
        master_ice_candidate_rate: Rate
    );
    setter!(
        /// Sets [`HubConfig::max_held_bytes`](crate::HubConfig::max_held_bytes).
        max_held_bytes: usize
    );
    setter!(
        /// Sets [`HubConfig::connect_rate`](crate::HubConfig::connect_rate).
        connect_rate: Rate
    );
    setter!(
        /// Sets [`HubConfig::alexa_rate`](crate::HubConfig::alexa_rate).
        alexa_rate: Rate
    );
    setter!(
        /// Sets [`HubConfig::idle_timeout`](crate::HubConfig::idle_timeout).
        idle_timeout: Duration
    );
    setter!(
        /// Sets [`HubConfig::max_connection_duration`](crate::HubConfig::max_connection_duration).
        max_connection_duration: Duration
    );
    setter!(
        /// Sets [`HubConfig::go_away_grace`](crate::HubConfig::go_away_grace).
        go_away_grace: Duration
    );
    setter!(
        /// Sets [`HubConfig::superseded_linger`](crate::HubConfig::superseded_linger).
        superseded_linger: Duration
    );
    setter!(
        /// Sets [`HubConfig::max_pending_per_recipient`](crate::HubConfig::max_pending_per_recipient).
        max_pending_per_recipient: usize
    );
    setter!(
        /// Sets [`HubConfig::max_pending_recipients_per_channel`](crate::HubConfig::max_pending_recipients_per_channel).
        max_pending_recipients_per_channel: usize
    );
    setter!(
        /// Sets [`HubConfig::alexa_timeout`](crate::HubConfig::alexa_timeout).
        alexa_timeout: Duration
    );
}

/// A configuration the hub cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubConfigError {
    /// The GO_AWAY grace period must be shorter than the longest connection.
    #[error("go_away_grace ({grace:?}) must be shorter than max_connection_duration ({max:?})")]
    GraceNotShorterThanDuration {
        /// The grace period.
        grace: Duration,
        /// The longest connection.
        max: Duration,
    },
    /// A duration longer than [`HubConfig::MAX_DURATION`].
    #[error("{name} must be at most {max:?}")]
    TooLong {
        /// The setting.
        name: &'static str,
        /// The limit.
        max: Duration,
    },
    /// A limit that must be at least 1 is 0.
    #[error("{name} must be at least 1")]
    Zero {
        /// The setting.
        name: &'static str,
    },
}
