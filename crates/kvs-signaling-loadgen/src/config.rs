//! What a run does: [`RunConfig`], [`Mode`] and [`PayloadKind`].

use std::time::Duration;

use kvs_ice_rest::Credentials;
use serde::Serialize;

use crate::LoadError;

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Mode {
    /// Connect every master and viewer, probe each pair once at the start and once at the end
    /// (a message each way, which must arrive), hold the connections in between.
    Hold,
    /// A closed loop: each viewer keeps [`RunConfig::window`] messages in flight to its master,
    /// which answers each one; every answer triggers the next message.
    Saturate,
    /// An open loop at [`RunConfig::rate`] messages a second in total, half from viewers to
    /// masters and half back, each payload carrying its send time.
    Rate,
}

impl Mode {
    /// The name on the command line and in the report.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hold => "hold",
            Self::Saturate => "saturate",
            Self::Rate => "rate",
        }
    }
}

/// What the messages carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PayloadKind {
    /// A browser-like SDP offer (about 1 KB of JSON, `{"type":"offer","sdp":"v=0\r\n…"}`) from
    /// viewers, `SDP_OFFER`, and the matching answer from masters, `SDP_ANSWER`.
    Offer,
    /// An ICE candidate (about 300 bytes of JSON) both ways, `ICE_CANDIDATE`.
    Candidate,
    /// A large SDP offer and answer, as a browser offering many codecs and extensions
    /// writes it: a payload of about 9.5 KB, near the service's 10K limit.
    Large,
}

impl PayloadKind {
    /// The name on the command line and in the report.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Candidate => "candidate",
            Self::Large => "large",
        }
    }
}

/// Everything a run needs. [`RunConfig::new`] gives the defaults; the setters change them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunConfig {
    /// The control-plane endpoint: `http://host:port` (or `ws://host:port` for a server
    /// without a control plane, with [`RunConfig::no_create`]). The WebSocket endpoint is the
    /// one GetSignalingChannelEndpoint returns, or this one with `ws` for `http`.
    pub endpoint: String,
    /// The region signatures and synthesized ARNs use: `us-west-2`.
    pub region: String,
    /// The access key every request and connect URL is signed with.
    pub credentials: Credentials,
    /// What to measure.
    pub mode: Mode,
    /// What the messages carry: [`PayloadKind::Offer`].
    pub payload: PayloadKind,
    /// Channels, named `<channel_prefix><i>`: 100.
    pub channels: usize,
    /// The prefix of channel names: `load-`.
    pub channel_prefix: String,
    /// Viewers per channel, with client ids `v0`, `v1`, …: 1.
    pub viewers: usize,
    /// The WebSocket endpoint to connect to (`ws://host:port` or `wss://…`) instead of the one
    /// GetSignalingChannelEndpoint returns (or the one derived from `endpoint` with
    /// [`RunConfig::no_create`]): a cluster node's own address, say, when the nodes hand out
    /// their balancer's URL. The masters connect here, and the viewers too unless
    /// [`RunConfig::viewer_ws_endpoint`] is set; `/metrics` is read here: `None`.
    pub ws_endpoint: Option<String>,
    /// Where the viewers connect, when not where the masters do: to put each channel's master
    /// on one cluster node and its viewers on another. `None`: with the masters.
    pub viewer_ws_endpoint: Option<String>,
    /// Do not create channels: synthesize their ARNs as
    /// `arn:aws:kinesisvideo:<region>:123456789012:channel/<name>/1` (for the reference
    /// relay, which has no control plane).
    pub no_create: bool,
    /// A CA certificate (PEM) to trust for `https://` and `wss://` endpoints, beside the
    /// public roots: a kvs-signaling development CA, say.
    pub ca_pem: Option<Vec<u8>>,
    /// Whether to read the server's relay-latency histogram from its `/metrics` at both ends
    /// of the measurement window (a kvs-signaling server exports one).
    pub server_metrics: bool,
    /// Channel creations (REST calls) in flight at once: 32.
    pub setup_concurrency: usize,
    /// WebSocket connects in flight at once: 256.
    pub connect_concurrency: usize,
    /// How long one connect (TCP, upgrade) may take: 10 s.
    pub connect_timeout: Duration,
    /// How often a connect refused for the connect rate limit (HTTP 429, or
    /// ClientLimitExceededException) is tried again, 400 ms later: 3.
    pub connect_retries: u32,
    /// Bind each connection's source address round-robin over 127.0.0.1 … 127.0.0.K, so that
    /// more connections than one address's ephemeral ports fit (loopback targets only); 0 lets
    /// the system choose: 0.
    pub source_ips: u8,
    /// How long [`Mode::Hold`] holds, or [`Mode::Saturate`] and [`Mode::Rate`] measure: 10 s.
    pub duration: Duration,
    /// How long [`Mode::Saturate`] and [`Mode::Rate`] run before measuring: 1 s.
    pub warmup: Duration,
    /// Messages in flight per pair in [`Mode::Saturate`]: 8.
    pub window: usize,
    /// Messages a second, in total, in [`Mode::Rate`]: 1,000.
    pub rate: u64,
    /// A message of [`Mode::Rate`] slower than this counts as late: 1 s.
    pub late_threshold: Duration,
    /// How long a probe of [`Mode::Hold`] may take: 10 s.
    pub probe_timeout: Duration,
    /// The hard cap on the whole run, setup included: 120 s. The run stops by itself when it
    /// passes, whatever the server does, and reports what it measured.
    pub deadline: Duration,
    /// The server's process id, to read its memory and CPU time from `/proc` (same host).
    pub server_pid: Option<u32>,
    /// Other processes to measure as [`RunConfig::server_pid`] is (the other nodes of a
    /// cluster, say), reported in [`Report::extra_processes`](crate::Report::extra_processes)
    /// in this order: none.
    pub extra_pids: Vec<u32>,
    /// A Redis server (`host:port` or `redis://host:port`, no password) whose `INFO` counters
    /// are read at both ends of the measurement (`saturate` and `rate`: the window; `hold`:
    /// the connecting), reported in [`Report::redis`](crate::Report::redis): the commands it
    /// ran and its CPU time, per message or per connect. `None`.
    pub redis_stats: Option<String>,
    /// Put a `correlationId` on every message, so that the server answers a refused one with
    /// a STATUS_RESPONSE rather than dropping it silently (the JavaScript SDK sends none).
    pub correlation_ids: bool,
    /// Print a progress line to stderr every second: true.
    pub progress: bool,
}

impl RunConfig {
    /// The defaults, against `endpoint` with the access key `access_key_id`.
    pub fn new(
        endpoint: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        mode: Mode,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            region: "us-west-2".to_owned(),
            credentials: Credentials::new(access_key_id, secret_access_key),
            mode,
            payload: PayloadKind::Offer,
            channels: 100,
            channel_prefix: "load-".to_owned(),
            viewers: 1,
            ws_endpoint: None,
            viewer_ws_endpoint: None,
            no_create: false,
            ca_pem: None,
            server_metrics: false,
            setup_concurrency: 32,
            connect_concurrency: 256,
            connect_timeout: Duration::from_secs(10),
            connect_retries: 3,
            source_ips: 0,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            window: 8,
            rate: 1_000,
            late_threshold: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(120),
            server_pid: None,
            extra_pids: Vec::new(),
            redis_stats: None,
            correlation_ids: false,
            progress: true,
        }
    }

    /// Master–viewer pairs: channels × viewers.
    pub fn pairs(&self) -> usize {
        self.channels.saturating_mul(self.viewers)
    }

    /// WebSocket connections: a master and the viewers per channel.
    pub fn connections(&self) -> usize {
        self.channels.saturating_mul(self.viewers.saturating_add(1))
    }

    /// Checks the settings against each other.
    pub(crate) fn validate(&self) -> Result<(), LoadError> {
        let positive = |name, value: usize| {
            if value == 0 {
                Err(LoadError::config(name, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive("--channels", self.channels)?;
        positive("--viewers", self.viewers)?;
        positive("--connect-concurrency", self.connect_concurrency)?;
        positive("--setup-concurrency", self.setup_concurrency)?;
        if self.mode == Mode::Saturate {
            positive("--window", self.window)?;
        }
        if self.mode == Mode::Rate && self.rate == 0 {
            return Err(LoadError::config("--rate", "must be at least 1"));
        }
        if self.deadline.is_zero() {
            return Err(LoadError::config("--deadline", "must be more than 0"));
        }
        if self.source_ips > 254 {
            return Err(LoadError::config(
                "--source-ips",
                "at most 254 (127.0.0.1 to 127.0.0.254)",
            ));
        }
        if let Some(addr) = &self.redis_stats {
            crate::redis_info::address(addr)
                .map_err(|reason| LoadError::config("--redis-stats", reason))?;
        }
        // Client ids `v<j>` and names `<prefix><i>` must be valid ids.
        if self.channel_prefix.is_empty()
            || !self
                .channel_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(LoadError::config(
                "--channel-prefix",
                "must be non-empty and hold only [a-zA-Z0-9_.-]",
            ));
        }
        Ok(())
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

impl RunConfig {
    setter!(
        /// Sets [`RunConfig::region`].
        region: String
    );
    setter!(
        /// Sets [`RunConfig::payload`].
        payload: PayloadKind
    );
    setter!(
        /// Sets [`RunConfig::channels`].
        channels: usize
    );
    setter!(
        /// Sets [`RunConfig::channel_prefix`].
        channel_prefix: String
    );
    setter!(
        /// Sets [`RunConfig::viewers`].
        viewers: usize
    );
    setter!(
        /// Sets [`RunConfig::ws_endpoint`].
        ws_endpoint: Option<String>
    );
    setter!(
        /// Sets [`RunConfig::viewer_ws_endpoint`].
        viewer_ws_endpoint: Option<String>
    );
    setter!(
        /// Sets [`RunConfig::no_create`].
        no_create: bool
    );
    setter!(
        /// Sets [`RunConfig::setup_concurrency`].
        setup_concurrency: usize
    );
    setter!(
        /// Sets [`RunConfig::connect_concurrency`].
        connect_concurrency: usize
    );
    setter!(
        /// Sets [`RunConfig::connect_timeout`].
        connect_timeout: Duration
    );
    setter!(
        /// Sets [`RunConfig::connect_retries`].
        connect_retries: u32
    );
    setter!(
        /// Sets [`RunConfig::source_ips`].
        source_ips: u8
    );
    setter!(
        /// Sets [`RunConfig::duration`].
        duration: Duration
    );
    setter!(
        /// Sets [`RunConfig::warmup`].
        warmup: Duration
    );
    setter!(
        /// Sets [`RunConfig::window`].
        window: usize
    );
    setter!(
        /// Sets [`RunConfig::rate`].
        rate: u64
    );
    setter!(
        /// Sets [`RunConfig::late_threshold`].
        late_threshold: Duration
    );
    setter!(
        /// Sets [`RunConfig::probe_timeout`].
        probe_timeout: Duration
    );
    setter!(
        /// Sets [`RunConfig::deadline`].
        deadline: Duration
    );
    setter!(
        /// Sets [`RunConfig::server_pid`].
        server_pid: Option<u32>
    );
    setter!(
        /// Sets [`RunConfig::extra_pids`].
        extra_pids: Vec<u32>
    );
    setter!(
        /// Sets [`RunConfig::redis_stats`].
        redis_stats: Option<String>
    );
    setter!(
        /// Sets [`RunConfig::correlation_ids`].
        correlation_ids: bool
    );
    setter!(
        /// Sets [`RunConfig::progress`].
        progress: bool
    );
}
