//! The client side: [`ClientSession`], the state machine a KVS signaling client (master or
//! viewer) runs: Describe (and Create), GetEndpoints, GetIceConfig, connect, reconnect with
//! backoff, GO_AWAY, RECONNECT_ICE_SERVER and ICE configuration refresh. The module is private,
//! so the drive loop and the behaviour are documented on [`ClientSession`], where rustdoc shows
//! them.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use kvs_signaling_proto::{
    ChannelArn, ChannelInfo, ChannelStatus, IceServer, MessageType, ServerEvent,
};

use crate::rng::Rng;

mod config;
mod types;

pub use config::{BackoffJitter, ClientSessionConfig, SessionConfigError};
use types::ErrorClass;
pub use types::{
    Endpoints, FailureReason, RequestError, RequestKind, SessionEvent, SessionOutput,
    SessionRequestId, SessionState,
};

/// How many passes [`ClientSession::handle_timeout`] makes over due timers; each pass either
/// moves a timer past `now` or leaves a zero-length backoff that the next pass starts.
const TIMEOUT_PASSES: usize = 4;

/// The ICE configuration in hand.
#[derive(Debug, Clone)]
struct IceCache {
    servers: Vec<IceServer>,
    /// When it is due for refresh: `fetched + min(Ttl) − grace`.
    refresh_at: Instant,
}

/// What the session waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    New {
        start: Instant,
    },
    Request {
        kind: RequestKind,
        id: SessionRequestId,
        deadline: Instant,
    },
    Connected {
        socket: SessionRequestId,
        since: Instant,
    },
    Waiting {
        until: Instant,
    },
    Closed,
    Failed,
}

impl Phase {
    fn state(self) -> SessionState {
        match self {
            Self::New { .. } => SessionState::New,
            Self::Request { kind, .. } => match kind {
                RequestKind::Describe => SessionState::Describing,
                RequestKind::Create => SessionState::Creating,
                RequestKind::GetEndpoints => SessionState::GettingEndpoints,
                RequestKind::GetIceConfig => SessionState::GettingIceConfig,
                RequestKind::Connect => SessionState::Connecting,
            },
            Self::Connected { .. } => SessionState::Connected,
            Self::Waiting { .. } => SessionState::WaitingToRetry,
            Self::Closed => SessionState::Closed,
            Self::Failed => SessionState::Failed,
        }
    }
}

/// The background ICE refresh while connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresh {
    /// Next at the ICE cache's `refresh_at`.
    Idle,
    InFlight {
        id: SessionRequestId,
        deadline: Instant,
    },
    /// Retry after a failed refresh.
    RetryAt(Instant),
}

/// The state machine of a KVS signaling client (master or viewer).
///
/// The session decides, the transport acts. It asks for the control-plane and data-plane calls
/// (DescribeSignalingChannel, CreateSignalingChannel, GetSignalingChannelEndpoint,
/// GetIceServerConfig) and for the WebSocket connect as [`SessionOutput`]s; the transport
/// performs them and feeds each result back through the matching `handle_*` method. Relayed
/// offers, answers and candidates are the application's business: the transport hands them to
/// the application directly, and [`ClientSession::handle_event`] ignores them.
///
/// # The drive loop
///
/// After every `handle_*` call or command, drain [`ClientSession::poll_output`] until it
/// returns `None`, then sleep until [`ClientSession::poll_timeout`] and call
/// [`ClientSession::handle_timeout`]. A new session starts on its first timeout, which is due at
/// once, so the ordinary loop also starts it.
///
/// ```
/// use std::time::Instant;
///
/// use kvs_signaling_core::{
///     ClientSession, ClientSessionConfig, Endpoints, SessionOutput, SessionState, SplitMix64,
/// };
/// use kvs_signaling_proto::{ChannelArn, ChannelInfo, ChannelName, ClientId, IceServer, Role};
///
/// let arn = ChannelArn::new("arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1")?;
/// let config = ClientSessionConfig::new(ChannelName::new("demo")?, Role::Viewer)
///     .client_id(ClientId::new("viewer-1")?);
/// // Only the runtime reads the clock; the session is handed the time.
/// let mut now = Instant::now();
/// let mut session = ClientSession::new(config, SplitMix64::new(7), now)?;
///
/// while session.state() != SessionState::Connected {
///     // Carry out what the session asks for; this fake transport answers at once.
///     while let Some(output) = session.poll_output() {
///         match output {
///             SessionOutput::DescribeChannel { id, .. } => {
///                 let mut info = ChannelInfo::new();
///                 info.channel_arn = Some(arn.clone());
///                 session.handle_describe(now, id, Ok(info));
///             }
///             SessionOutput::GetEndpoints { id, .. } => {
///                 let endpoints = Endpoints::new("wss://v-1.example", "https://r-1.example");
///                 session.handle_endpoints(now, id, Ok(endpoints));
///             }
///             SessionOutput::GetIceConfig { id, .. } => {
///                 session.handle_ice_config(now, id, Ok(vec![IceServer::new()]));
///             }
///             SessionOutput::Connect { id, .. } => session.handle_connected(now, id),
///             _ => {}
///         }
///     }
///     // Sleep until the next deadline, then tell the session.
///     let Some(deadline) = session.poll_timeout() else { break };
///     now = now.max(deadline);
///     session.handle_timeout(now);
/// }
/// assert_eq!(session.state(), SessionState::Connected);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Behaviour
///
/// The session follows the C SDK's state machine (spec §6.2): Describe (404 → Create →
/// Describe) → GetEndpoints → GetIceConfig → Connect → Connected.
///
/// - **Request ids.** Every request output carries a fresh [`SessionRequestId`] and its result
///   must come back with it. A result whose id is not the one the session waits for (it timed
///   out, the session moved on or was closed) is ignored, so late results are harmless. A socket
///   is named by the id of the `Connect` that opened it.
/// - **Failures** follow the C SDK: 401/403 → [`SessionEvent::CredentialsRejected`] (refreshing
///   credentials is the transport's business) and restart from Describe with every cache
///   dropped; 404 on Describe → Create when [`ClientSessionConfig::create_if_missing`] is set,
///   otherwise [`FailureReason::ChannelNotFound`]; 404 elsewhere → restart from Describe;
///   400, 5xx, network errors and timeouts → GetEndpoints again (Describe again when the ARN is
///   not known yet). Every retry waits for a backoff first.
/// - **Backoff**: the n-th consecutive failure waits `initial · multiplier^(n-1)`, capped at
///   `backoff_max`, with jitter drawn from the injected [`Rng`] ([`BackoffJitter::Equal`] by
///   default: between half and all of that delay). An unexpected socket close counts as a
///   failure. The count returns to zero when a connection ends after having been up for
///   `backoff_reset_after`; after `max_reconnect_attempts` retries the session gives up with
///   [`FailureReason::AttemptsExhausted`].
/// - **Endpoint cache**: the ARN and endpoints are kept, and a reconnect after a close or a
///   GO_AWAY skips Describe and GetEndpoints while they are cached; the error rules above drop
///   them. Turn it off with [`ClientSessionConfig::endpoint_cache`] to re-run Describe on
///   every reconnect, as the C SDK does without its cache. A reconnect also skips GetIceConfig
///   while the ICE configuration it has is fresh (not yet due for refresh); RECONNECT_ICE_SERVER
///   marks it stale.
/// - **GO_AWAY**: [`SessionEvent::GoAway`], close the socket and reconnect from Describe at
///   once, as the C SDK does (through the caches above). A connection that received GO_AWAY
///   sooner than `backoff_reset_after` after it opened counts as a failure and reconnects after
///   a backoff, so a server that keeps sending GO_AWAY cannot make the client spin.
/// - **RECONNECT_ICE_SERVER**: the relay (TURN) servers are going away, not the signaling
///   socket. The session emits [`SessionEvent::ReconnectIceServer`], keeps the socket up and
///   fetches a fresh ICE configuration in the background, then emits
///   [`SessionEvent::IceServersUpdated`] so the application can restart ICE. (The C SDK also
///   drops and reopens its socket, a side effect of its linear state machine that loses
///   messages in flight; we do not.)
/// - **ICE refresh**: while connected, the ICE configuration is fetched again in the background
///   at `fetched + min(Ttl) − ice_refresh_grace` (270 s for a 300 s Ttl, as in the C SDK), but
///   never sooner than half the Ttl. A failed background refresh is retried after a backoff and
///   never drops the socket.
/// - **Timeouts**: `request_timeout` on each REST call and `connect_timeout` on the connect;
///   a connect that times out is abandoned with [`SessionOutput::CloseSocket`].
///
/// The output queue only holds what one input produced: at most
/// [`ClientSession::MAX_QUEUED_OUTPUTS`] for a caller that drains after every input, which
/// debug builds assert.
pub struct ClientSession {
    config: ClientSessionConfig,
    rng: Box<dyn Rng>,
    phase: Phase,
    next_id: u64,
    outputs: VecDeque<SessionOutput>,
    arn: Option<ChannelArn>,
    endpoints: Option<Endpoints>,
    ice: Option<IceCache>,
    /// Consecutive failures on the way to a stable connection.
    failures: u32,
    /// Whether this attempt created the channel, so a second 404 is not answered by a second
    /// create.
    created: bool,
    refresh: Refresh,
    refresh_failures: u32,
}

impl fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSession")
            .field("phase", &self.phase)
            .field("failures", &self.failures)
            .field("refresh", &self.refresh)
            .field("queued", &self.outputs.len())
            .finish_non_exhaustive()
    }
}

impl ClientSession {
    /// The most outputs the queue holds when the caller drains it after every input: one input
    /// produces a handful at most (for example an event, a close, a state change and a request).
    pub const MAX_QUEUED_OUTPUTS: usize = 16;

    /// A session that starts at `now` (its first timeout), drawing jitter from `rng`.
    pub fn new(
        config: ClientSessionConfig,
        rng: impl Rng + 'static,
        now: Instant,
    ) -> Result<Self, SessionConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            rng: Box::new(rng),
            phase: Phase::New { start: now },
            next_id: 0,
            outputs: VecDeque::new(),
            arn: None,
            endpoints: None,
            ice: None,
            failures: 0,
            created: false,
            refresh: Refresh::Idle,
            refresh_failures: 0,
        })
    }

    /// Where the session is.
    pub fn state(&self) -> SessionState {
        self.phase.state()
    }

    /// The configuration.
    pub fn config(&self) -> &ClientSessionConfig {
        &self.config
    }

    /// The latest ICE servers, if any were fetched.
    pub fn ice_servers(&self) -> Option<&[IceServer]> {
        self.ice.as_ref().map(|ice| ice.servers.as_slice())
    }

    /// The next thing to do; drain until `None` after every input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<SessionOutput> {
        self.outputs.pop_front()
    }

    /// When [`ClientSession::handle_timeout`] is next due; `None` once closed or failed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::New { start } => Some(start),
            Phase::Request { deadline, .. } => Some(deadline),
            Phase::Waiting { until } => Some(until),
            Phase::Connected { .. } => match self.refresh {
                Refresh::Idle => self.ice.as_ref().map(|ice| ice.refresh_at),
                Refresh::InFlight { deadline, .. } => Some(deadline),
                Refresh::RetryAt(at) => Some(at),
            },
            Phase::Closed | Phase::Failed => None,
        }
    }

    /// Fires every timer due at `now`: starts the session, times out a request, ends a
    /// backoff, refreshes the ICE configuration. Afterwards [`ClientSession::poll_timeout`] is
    /// `None` or later than `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for _ in 0..TIMEOUT_PASSES {
            if self.poll_timeout().is_none_or(|at| at > now) {
                break;
            }
            self.fire(now);
        }
    }

    fn fire(&mut self, now: Instant) {
        match self.phase {
            Phase::New { .. } | Phase::Waiting { .. } => self.advance(now),
            Phase::Request { kind, id, .. } => {
                let after = match kind {
                    RequestKind::Connect => {
                        self.push(SessionOutput::CloseSocket { id });
                        self.config.connect_timeout
                    }
                    _ => self.config.request_timeout,
                };
                self.fail(now, kind, RequestError::timeout(after));
            }
            Phase::Connected { .. } => match self.refresh {
                Refresh::InFlight { .. } => {
                    let error = RequestError::timeout(self.config.request_timeout);
                    self.refresh_failed(now, error);
                }
                Refresh::Idle | Refresh::RetryAt(_) => self.start_refresh(now),
            },
            Phase::Closed | Phase::Failed => {}
        }
    }

    /// The result of `DescribeChannel { id }`.
    pub fn handle_describe(
        &mut self,
        now: Instant,
        id: SessionRequestId,
        result: Result<ChannelInfo, RequestError>,
    ) {
        if !self.waiting_for(RequestKind::Describe, id) {
            return;
        }
        let info = match result {
            Ok(info) => info,
            Err(error) => return self.fail(now, RequestKind::Describe, error),
        };
        let problem = match (&info.channel_arn, info.channel_status) {
            (None, _) => "DescribeSignalingChannel returned no ChannelARN",
            (Some(_), Some(ChannelStatus::Deleting)) => "the channel is being deleted",
            (Some(arn), _) => {
                self.arn = Some(arn.clone());
                self.created = false;
                return self.advance(now);
            }
        };
        self.fail(now, RequestKind::Describe, RequestError::new(problem));
    }

    /// The result of `CreateChannel { id }`. The ARN is read back by the Describe that follows,
    /// as the C SDK does.
    pub fn handle_create(
        &mut self,
        now: Instant,
        id: SessionRequestId,
        result: Result<(), RequestError>,
    ) {
        if !self.waiting_for(RequestKind::Create, id) {
            return;
        }
        match result {
            Ok(()) => {
                self.created = true;
                self.advance(now);
            }
            Err(error) => self.fail(now, RequestKind::Create, error),
        }
    }

    /// The result of `GetEndpoints { id }`.
    pub fn handle_endpoints(
        &mut self,
        now: Instant,
        id: SessionRequestId,
        result: Result<Endpoints, RequestError>,
    ) {
        if !self.waiting_for(RequestKind::GetEndpoints, id) {
            return;
        }
        match result {
            Ok(endpoints) => {
                self.endpoints = Some(endpoints);
                self.advance(now);
            }
            Err(error) => self.fail(now, RequestKind::GetEndpoints, error),
        }
    }

    /// The result of `GetIceConfig { id }`, on the way to a connect or a background refresh.
    pub fn handle_ice_config(
        &mut self,
        now: Instant,
        id: SessionRequestId,
        result: Result<Vec<IceServer>, RequestError>,
    ) {
        let background = matches!(self.refresh, Refresh::InFlight { id: current, .. } if current == id)
            && matches!(self.phase, Phase::Connected { .. });
        if !background && !self.waiting_for(RequestKind::GetIceConfig, id) {
            return;
        }
        match result {
            Ok(servers) => {
                self.store_ice(now, servers);
                if background {
                    self.refresh = Refresh::Idle;
                    self.refresh_failures = 0;
                } else {
                    self.advance(now);
                }
            }
            Err(error) if background => self.refresh_failed(now, error),
            Err(error) => self.fail(now, RequestKind::GetIceConfig, error),
        }
    }

    /// The socket of `Connect { id }` is open. A socket the session no longer waits for is
    /// closed again with [`SessionOutput::CloseSocket`].
    pub fn handle_connected(&mut self, now: Instant, id: SessionRequestId) {
        match self.phase {
            Phase::Request {
                kind: RequestKind::Connect,
                id: current,
                ..
            } if current == id => {
                self.enter(Phase::Connected {
                    socket: id,
                    since: now,
                });
                self.refresh = Refresh::Idle;
                self.refresh_failures = 0;
            }
            Phase::Connected { socket, .. } if socket == id => {}
            _ => self.push(SessionOutput::CloseSocket { id }),
        }
    }

    /// `Connect { id }` failed; `error.status` is the upgrade response's status, if any.
    pub fn handle_connect_failed(
        &mut self,
        now: Instant,
        id: SessionRequestId,
        error: RequestError,
    ) {
        if self.waiting_for(RequestKind::Connect, id) {
            self.fail(now, RequestKind::Connect, error);
        }
    }

    /// The socket of `Connect { id }` closed without the session asking (a peer or network
    /// close, any close code). The session reconnects after a backoff.
    pub fn handle_socket_closed(&mut self, now: Instant, id: SessionRequestId) {
        match self.phase {
            Phase::Connected { socket, since } if socket == id => {
                self.leave_connected(now, since);
                self.retry_later(now, RequestError::new("the socket closed unexpectedly"));
            }
            Phase::Request {
                kind: RequestKind::Connect,
                id: current,
                ..
            } if current == id => {
                let error = RequestError::new("the socket closed while connecting");
                self.fail(now, RequestKind::Connect, error);
            }
            _ => {}
        }
    }

    /// An event received on the open socket. GO_AWAY, RECONNECT_ICE_SERVER and STATUS_RESPONSE
    /// are acted on (see the type docs); relayed messages are the application's and are
    /// ignored, as is anything received while not connected.
    pub fn handle_event(&mut self, now: Instant, event: &ServerEvent<'_>) {
        let Phase::Connected { socket, since } = self.phase else {
            return;
        };
        match event.message_type {
            MessageType::GoAway => {
                self.push(SessionOutput::Event(SessionEvent::GoAway));
                self.push(SessionOutput::CloseSocket { id: socket });
                if self.leave_connected(now, since) {
                    self.advance(now);
                } else {
                    let error = RequestError::new("GO_AWAY soon after connecting");
                    self.retry_later(now, error);
                }
            }
            MessageType::ReconnectIceServer => {
                self.push(SessionOutput::Event(SessionEvent::ReconnectIceServer));
                // The relay servers are going: what we hold is stale for reconnects too.
                if let Some(ice) = &mut self.ice {
                    ice.refresh_at = now;
                }
                self.start_refresh(now);
            }
            MessageType::StatusResponse => {
                if let Some(status) = &event.status_response {
                    let event = SessionEvent::StatusResponse(status.clone());
                    self.push(SessionOutput::Event(event));
                }
            }
            _ => {}
        }
    }

    /// The application wants to stop: closes the socket (or abandons the connect) and ends the
    /// session. No outputs or timers follow, except closing a socket that opens late.
    pub fn close(&mut self, _now: Instant) {
        match self.phase {
            Phase::Closed | Phase::Failed => return,
            Phase::Request {
                kind: RequestKind::Connect,
                id,
                ..
            }
            | Phase::Connected { socket: id, .. } => self.push(SessionOutput::CloseSocket { id }),
            Phase::New { .. } | Phase::Request { .. } | Phase::Waiting { .. } => {}
        }
        self.refresh = Refresh::Idle;
        self.enter(Phase::Closed);
    }

    /// Whether the session waits for the result of request `id` of `kind`.
    fn waiting_for(&self, kind: RequestKind, id: SessionRequestId) -> bool {
        matches!(self.phase, Phase::Request { kind: k, id: current, .. } if k == kind && current == id)
    }

    /// Queues an output. Each input queues a handful, so a caller that drains after every
    /// input never holds more than [`ClientSession::MAX_QUEUED_OUTPUTS`]; one that feeds many
    /// events first (each STATUS_RESPONSE queues one) holds more, but never more than it fed.
    fn push(&mut self, output: SessionOutput) {
        self.outputs.push_back(output);
    }

    fn enter(&mut self, phase: Phase) {
        let before = self.phase.state();
        self.phase = phase;
        let after = phase.state();
        if before != after {
            self.push(SessionOutput::Event(SessionEvent::StateChanged(after)));
        }
    }

    fn next_id(&mut self) -> SessionRequestId {
        self.next_id = self.next_id.wrapping_add(1);
        SessionRequestId(self.next_id)
    }

    /// Sends `output` as request `id` of `kind`, with its deadline.
    fn issue(
        &mut self,
        now: Instant,
        kind: RequestKind,
        id: SessionRequestId,
        output: SessionOutput,
    ) {
        let timeout = match kind {
            RequestKind::Connect => self.config.connect_timeout,
            _ => self.config.request_timeout,
        };
        let deadline = later(now, timeout);
        self.enter(Phase::Request { kind, id, deadline });
        self.push(output);
    }

    /// Takes the first step whose result is not in hand: Describe without an ARN, GetEndpoints
    /// without endpoints, GetIceConfig without a fresh ICE configuration, else Connect.
    fn advance(&mut self, now: Instant) {
        let id = self.next_id();
        let ice_fresh = self.ice.as_ref().is_some_and(|ice| now < ice.refresh_at);
        let (kind, output) = match (&self.arn, &self.endpoints) {
            (None, _) => (
                RequestKind::Describe,
                SessionOutput::DescribeChannel {
                    id,
                    name: self.config.channel_name.clone(),
                },
            ),
            (Some(arn), None) => (
                RequestKind::GetEndpoints,
                SessionOutput::GetEndpoints {
                    id,
                    arn: arn.clone(),
                    role: self.config.role,
                },
            ),
            (Some(arn), Some(endpoints)) if !ice_fresh => (
                RequestKind::GetIceConfig,
                self.ice_request(id, arn, endpoints),
            ),
            (Some(arn), Some(endpoints)) => (
                RequestKind::Connect,
                SessionOutput::Connect {
                    id,
                    wss_endpoint: endpoints.wss.clone(),
                    arn: arn.clone(),
                    client_id: self.config.client_id.clone(),
                },
            ),
        };
        self.issue(now, kind, id, output);
    }

    fn ice_request(
        &self,
        id: SessionRequestId,
        arn: &ChannelArn,
        endpoints: &Endpoints,
    ) -> SessionOutput {
        SessionOutput::GetIceConfig {
            id,
            arn: arn.clone(),
            https_endpoint: endpoints.https.clone(),
            client_id: self.config.client_id.clone(),
        }
    }

    /// Applies the C SDK's rules to a failed request.
    fn fail(&mut self, now: Instant, kind: RequestKind, error: RequestError) {
        let event = SessionEvent::RequestFailed {
            request: kind,
            error: error.clone(),
        };
        self.push(SessionOutput::Event(event));
        match error.class() {
            ErrorClass::Credentials => {
                self.push(SessionOutput::Event(SessionEvent::CredentialsRejected));
                self.forget_channel();
            }
            ErrorClass::NotFound if kind == RequestKind::Describe => {
                if !self.config.create_if_missing {
                    let name = self.config.channel_name.clone();
                    return self.give_up(FailureReason::ChannelNotFound { name });
                }
                if !self.created {
                    let id = self.next_id();
                    let name = self.config.channel_name.clone();
                    let output = SessionOutput::CreateChannel { id, name };
                    return self.issue(now, RequestKind::Create, id, output);
                }
                // Created moments ago and not visible yet: describe again after a backoff.
            }
            ErrorClass::NotFound => self.forget_channel(),
            ErrorClass::Transient => self.endpoints = None,
        }
        self.retry_later(now, error);
    }

    /// Drops everything known about the channel, so the next attempt starts at Describe.
    fn forget_channel(&mut self) {
        self.arn = None;
        self.endpoints = None;
        self.ice = None;
        self.created = false;
    }

    /// Counts a failure and waits out a backoff, or gives up.
    fn retry_later(&mut self, now: Instant, cause: RequestError) {
        self.failures = self.failures.saturating_add(1);
        if self
            .config
            .max_reconnect_attempts
            .is_some_and(|max| self.failures > max)
        {
            let failures = self.failures;
            return self.give_up(FailureReason::AttemptsExhausted {
                failures,
                last: cause,
            });
        }
        let at = later(now, self.backoff(self.failures));
        self.enter(Phase::Waiting { until: at });
        let event = SessionEvent::RetryScheduled {
            attempt: self.failures,
            at,
        };
        self.push(SessionOutput::Event(event));
    }

    fn give_up(&mut self, reason: FailureReason) {
        self.refresh = Refresh::Idle;
        self.enter(Phase::Failed);
        self.push(SessionOutput::Event(SessionEvent::Failed(reason)));
    }

    /// The delay before retry number `attempt` (from 1): exponential, capped, jittered.
    fn backoff(&mut self, attempt: u32) -> Duration {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let max = millis(self.config.backoff_max);
        let mut base = millis(self.config.backoff_initial).min(max);
        // A multiplier of 1 never grows the delay, and one of 2 or more reaches any cap within
        // 64 steps: the loop is short whatever the attempt number.
        for _ in 1..attempt.min(64) {
            if base >= max || self.config.backoff_multiplier <= 1 {
                break;
            }
            base = base
                .saturating_mul(u64::from(self.config.backoff_multiplier))
                .min(max);
        }
        let delay = match self.config.jitter {
            BackoffJitter::None => base,
            BackoffJitter::Full => self.rng.below(base.saturating_add(1)),
            BackoffJitter::Equal => {
                let half = base / 2;
                half.saturating_add(self.rng.below(base.saturating_sub(half).saturating_add(1)))
            }
        };
        Duration::from_millis(delay)
    }

    /// Leaves the connected state; returns whether the connection had been up long enough to
    /// reset the failure count (it then is reset).
    fn leave_connected(&mut self, now: Instant, since: Instant) -> bool {
        self.refresh = Refresh::Idle;
        self.refresh_failures = 0;
        if !self.config.endpoint_cache {
            self.arn = None;
            self.endpoints = None;
        }
        let stable = now.saturating_duration_since(since) >= self.config.backoff_reset_after;
        if stable {
            self.failures = 0;
        }
        stable
    }

    fn store_ice(&mut self, now: Instant, servers: Vec<IceServer>) {
        // A server without a Ttl counts as the service's default, 300 s.
        let ttl = servers
            .iter()
            .filter_map(|server| server.ttl)
            .min()
            .unwrap_or_default();
        let ttl = Duration::from_secs(u64::from(ttl.get()));
        let lead = ttl
            .saturating_sub(self.config.ice_refresh_grace)
            .max(ttl / 2);
        let event = SessionEvent::IceServersUpdated(servers.clone());
        self.ice = Some(IceCache {
            servers,
            refresh_at: later(now, lead),
        });
        self.push(SessionOutput::Event(event));
    }

    /// Starts a background GetIceConfig while connected, superseding one in flight.
    fn start_refresh(&mut self, now: Instant) {
        let id = self.next_id();
        // Both are in hand while connected: the connect used them.
        let (Some(arn), Some(endpoints)) = (&self.arn, &self.endpoints) else {
            return;
        };
        let output = self.ice_request(id, arn, endpoints);
        self.refresh = Refresh::InFlight {
            id,
            deadline: later(now, self.config.request_timeout),
        };
        self.push(output);
    }

    fn refresh_failed(&mut self, now: Instant, error: RequestError) {
        let credentials = error.is_credentials();
        let event = SessionEvent::RequestFailed {
            request: RequestKind::GetIceConfig,
            error,
        };
        self.push(SessionOutput::Event(event));
        if credentials {
            self.push(SessionOutput::Event(SessionEvent::CredentialsRejected));
        }
        self.refresh_failures = self.refresh_failures.saturating_add(1);
        let at = later(now, self.backoff(self.refresh_failures));
        self.refresh = Refresh::RetryAt(at);
    }
}

/// `now + after`; the durations involved are bounded (config checks, Ttl at most a day), so
/// the fallback is never taken with a real clock.
fn later(now: Instant, after: Duration) -> Instant {
    now.checked_add(after).unwrap_or(now)
}

#[cfg(test)]
mod tests;
