//! How a [`ClientSession`](super::ClientSession) behaves: backoff, timeouts, caching.

use std::time::Duration;

use kvs_signaling_proto::{ChannelName, ClientId, Role};

/// How a retry delay is randomized, drawing from the session's [`Rng`](crate::Rng).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BackoffJitter {
    /// No randomness: exactly the exponential delay.
    None,
    /// "Full jitter": uniform between zero and the delay.
    Full,
    /// "Equal jitter": half the delay plus a uniform part up to the other half, so a client
    /// never retries sooner than half the delay yet a fleet still spreads out.
    #[default]
    Equal,
}

/// The configuration of a [`ClientSession`](super::ClientSession); checked once, by [`ClientSession::new`](super::ClientSession::new).
///
/// Start from [`ClientSessionConfig::new`] and chain the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientSessionConfig {
    /// The channel to join.
    pub channel_name: ChannelName,
    /// Master or viewer.
    pub role: Role,
    /// The viewer's client id: required for a viewer, forbidden for the master.
    pub client_id: Option<ClientId>,
    /// Create the channel when Describe answers 404 (default off).
    pub create_if_missing: bool,
    /// The delay before the first retry (default 1 s); at least 1 ms.
    pub backoff_initial: Duration,
    /// The longest delay between retries (default 30 s).
    pub backoff_max: Duration,
    /// The factor between consecutive delays (default 2); at least 1.
    pub backoff_multiplier: u32,
    /// How delays are randomized (default [`BackoffJitter::Equal`]).
    pub jitter: BackoffJitter,
    /// How long a connection must have been up for its end to reset the failure count (default
    /// 10 s).
    pub backoff_reset_after: Duration,
    /// How long before the smallest ICE server Ttl runs out the configuration is fetched again
    /// (default 30 s, the C SDK's grace period).
    pub ice_refresh_grace: Duration,
    /// How many retries after consecutive failures before giving up; `None` retries forever
    /// (the default).
    pub max_reconnect_attempts: Option<u32>,
    /// The deadline of each REST call (default 15 s, the C SDK's limit on each call).
    pub request_timeout: Duration,
    /// The deadline of the WebSocket connect (default 5 s, as the C SDK waits).
    pub connect_timeout: Duration,
    /// Keep the ARN and endpoints so a reconnect skips Describe and GetEndpoints (default on).
    pub endpoint_cache: bool,
}

impl ClientSessionConfig {
    /// The longest duration a setting accepts, so deadlines never overflow.
    pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

    /// The defaults for joining `channel_name` as `role`. A viewer also needs
    /// [`ClientSessionConfig::client_id`].
    pub fn new(channel_name: ChannelName, role: Role) -> Self {
        Self {
            channel_name,
            role,
            client_id: None,
            create_if_missing: false,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            backoff_multiplier: 2,
            jitter: BackoffJitter::default(),
            backoff_reset_after: Duration::from_secs(10),
            ice_refresh_grace: Duration::from_secs(30),
            max_reconnect_attempts: None,
            request_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            endpoint_cache: true,
        }
    }

    /// Sets the viewer's client id.
    #[must_use]
    pub fn client_id(mut self, client_id: ClientId) -> Self {
        self.client_id = Some(client_id);
        self
    }

    /// Sets whether a missing channel is created.
    #[must_use]
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Sets the first retry delay.
    #[must_use]
    pub fn backoff_initial(mut self, delay: Duration) -> Self {
        self.backoff_initial = delay;
        self
    }

    /// Sets the longest retry delay.
    #[must_use]
    pub fn backoff_max(mut self, delay: Duration) -> Self {
        self.backoff_max = delay;
        self
    }

    /// Sets the factor between consecutive retry delays.
    #[must_use]
    pub fn backoff_multiplier(mut self, multiplier: u32) -> Self {
        self.backoff_multiplier = multiplier;
        self
    }

    /// Sets how retry delays are randomized.
    #[must_use]
    pub fn jitter(mut self, jitter: BackoffJitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets how long a connection must last for its end to reset the failure count.
    #[must_use]
    pub fn backoff_reset_after(mut self, uptime: Duration) -> Self {
        self.backoff_reset_after = uptime;
        self
    }

    /// Sets how long before expiry the ICE configuration is refreshed.
    #[must_use]
    pub fn ice_refresh_grace(mut self, grace: Duration) -> Self {
        self.ice_refresh_grace = grace;
        self
    }

    /// Sets how many retries are made before giving up (`None`: forever).
    #[must_use]
    pub fn max_reconnect_attempts(mut self, attempts: Option<u32>) -> Self {
        self.max_reconnect_attempts = attempts;
        self
    }

    /// Sets the deadline of each REST call.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the deadline of the WebSocket connect.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets whether the ARN and endpoints are reused across reconnects.
    #[must_use]
    pub fn endpoint_cache(mut self, enabled: bool) -> Self {
        self.endpoint_cache = enabled;
        self
    }

    pub(super) fn validate(&self) -> Result<(), SessionConfigError> {
        match (self.role, &self.client_id) {
            (Role::Viewer, None) => return Err(SessionConfigError::MissingClientId),
            (Role::Master, Some(client_id)) => {
                return Err(SessionConfigError::MasterClientId {
                    client_id: client_id.clone(),
                });
            }
            _ => {}
        }
        let durations = [
            (
                "backoff_initial",
                self.backoff_initial,
                Duration::from_millis(1),
            ),
            ("backoff_max", self.backoff_max, Duration::from_millis(1)),
            (
                "backoff_reset_after",
                self.backoff_reset_after,
                Duration::ZERO,
            ),
            ("ice_refresh_grace", self.ice_refresh_grace, Duration::ZERO),
            (
                "request_timeout",
                self.request_timeout,
                Duration::from_millis(1),
            ),
            (
                "connect_timeout",
                self.connect_timeout,
                Duration::from_millis(1),
            ),
        ];
        for (field, value, min) in durations {
            if value < min || value > Self::MAX_DURATION {
                return Err(SessionConfigError::DurationOutOfRange { field, value, min });
            }
        }
        if self.backoff_max < self.backoff_initial {
            return Err(SessionConfigError::BackoffMaxBelowInitial {
                initial: self.backoff_initial,
                max: self.backoff_max,
            });
        }
        if self.backoff_multiplier == 0 {
            return Err(SessionConfigError::ZeroMultiplier);
        }
        Ok(())
    }
}

/// A [`ClientSessionConfig`] that [`ClientSession::new`](super::ClientSession::new) refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionConfigError {
    /// A viewer connects with a client id, and none was given.
    #[error("client_id: a viewer needs a client id")]
    MissingClientId,
    /// The master connects without a client id, and one was given.
    #[error("client_id: the master connects without a client id, found {client_id}")]
    MasterClientId {
        /// The id given.
        client_id: ClientId,
    },
    /// A duration is below its minimum or above [`ClientSessionConfig::MAX_DURATION`].
    #[error("{field}: must be {min:?} to 24 h, found {value:?}")]
    DurationOutOfRange {
        /// The setting.
        field: &'static str,
        /// The value given.
        value: Duration,
        /// Its minimum.
        min: Duration,
    },
    /// `backoff_max` is shorter than `backoff_initial`.
    #[error("backoff_max: must be at least backoff_initial ({initial:?}), found {max:?}")]
    BackoffMaxBelowInitial {
        /// The first delay.
        initial: Duration,
        /// The cap given.
        max: Duration,
    },
    /// `backoff_multiplier` is zero.
    #[error("backoff_multiplier: must be at least 1, found 0")]
    ZeroMultiplier,
}
