//! The server's configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kvs_ice_rest::{Credentials, TurnConfig};
use kvs_signaling_core::{HubConfig, RegistryConfig};
use kvs_transport_tokio::{ShardConfig, TcpTuning, WebSocketLimits};

/// Whether requests must carry a valid SigV4 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMode {
    /// Every REST call and WebSocket connect is verified: the default.
    Verify,
    /// Nothing is verified. For throwaway local use only; the server says so loudly at start.
    DisabledInsecure,
}

/// Which WebSocket clients get GO_AWAY and RECONNECT_ICE_SERVER.
///
/// The official C SDK deadlocks on both (it handles them on the thread that holds its
/// connection's lock, and waits there for that thread to end), so a C SDK device would hang
/// for good at the first one. Clients that do not get them are closed with 1001 instead of
/// GO_AWAY (at the one-hour cap and on drain), which every official client recovers from, and
/// refresh their ICE servers on their own before the credentials expire instead of on
/// RECONNECT_ICE_SERVER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IndicationPolicy {
    /// Only clients that ask for them, with the signed connect parameter
    /// `X-Kvs-Indications=true` (this project's Rust client does): the default.
    #[default]
    OptIn,
    /// Every client but the official C SDK and the embedded signaling library, which offer
    /// the WebSocket sub-protocol `wss` (no other official client does).
    UnlessCSdk,
    /// Every client, as the real service does.
    Always,
    /// No client.
    Never,
}

impl IndicationPolicy {
    /// The names in the config file and on the command line.
    pub const NAMES: &str = "opt-in, unless-c-sdk, always, never";

    /// Whether a client gets the indications, given whether it asked for them and whether
    /// its upgrade request looks like the official C SDK's.
    pub fn applies(self, opted_in: bool, c_sdk: bool) -> bool {
        match self {
            Self::OptIn => opted_in,
            Self::UnlessCSdk => !c_sdk,
            Self::Always => true,
            Self::Never => false,
        }
    }
}

impl std::str::FromStr for IndicationPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "opt-in" => Ok(Self::OptIn),
            "unless-c-sdk" => Ok(Self::UnlessCSdk),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => Err(format!(
                "{other:?} is not a GO_AWAY policy; the policies are {}",
                Self::NAMES
            )),
        }
    }
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where to listen: `127.0.0.1:8080` by default.
    pub listen: SocketAddr,
    /// The URL clients reach this server at, as `scheme://host[:port]` without a trailing
    /// slash; the endpoints GetSignalingChannelEndpoint returns are built from it. Derived
    /// from [`ServerConfig::listen`] when absent (for deployments behind a proxy, set it).
    pub public_url: Option<String>,
    /// The region in ARNs and in SigV4 scopes: `us-west-2`.
    pub region: String,
    /// The access keys the server accepts.
    pub credentials: Vec<Credentials>,
    /// Whether signatures are verified.
    pub auth: AuthMode,
    /// The channels and roles an access key is limited to, by access key id; a key without
    /// an entry may do everything.
    pub scopes: BTreeMap<String, crate::Scope>,
    /// The hub's limits. [`HubConfig::max_held_bytes`] is the server's total, shared equally
    /// by its shards.
    pub hub: HubConfig,
    /// The shard's queues.
    pub shard: ShardConfig,
    /// How many shards (hubs, each its own task) share the channels: the number of CPUs.
    pub shards: usize,
    /// The registry's settings (account, limits). Its region follows
    /// [`ServerConfig::region`].
    pub registry: RegistryConfig,
    /// The ICE servers GetIceServerConfig hands out.
    pub ice: TurnConfig,
    /// The largest request body accepted, in bytes: 64 KiB.
    pub max_body_len: usize,
    /// Connects the kernel holds while they wait to be accepted: 4096 (capped by the
    /// system's `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// Which WebSocket clients get GO_AWAY and RECONNECT_ICE_SERVER: only those that ask.
    pub indications: IndicationPolicy,
    /// Open connections at most, HTTP and WebSocket alike: the process's descriptor limit
    /// less 64 (10,000 where it cannot be read). A connection past it is answered with 503
    /// and closed.
    pub max_connections: usize,
    /// How long a client may take to send a request's head, then its body, and how long an
    /// idle keep-alive connection stays open: 10 seconds each. A socket that sends nothing,
    /// or trickles its headers, is closed then; a body that does not come is answered 408.
    pub header_read_timeout: Duration,
    /// How long a TLS handshake may take: 10 seconds.
    pub tls_handshake_timeout: Duration,
    /// The deadlines of writes (WebSocket frames and HTTP answers alike) and of the closing
    /// handshake. The largest message follows the hub's largest payload.
    pub websocket: WebSocketLimits,
    /// The TCP options of accepted connections: no Nagle delay, keepalive probes and
    /// `TCP_USER_TIMEOUT`.
    pub tcp: TcpTuning,
    /// Where channels are kept across restarts; in memory only when absent.
    pub data_dir: Option<PathBuf>,
    /// The certificate and key to serve TLS with; plain HTTP when absent.
    pub tls: Option<crate::TlsFiles>,
    /// Which web origins may call the REST API from a browser: any, by default.
    pub cors: crate::CorsConfig,
    /// The live console at `/console/`: on, with a token made at start, by default.
    pub console: crate::ConsoleConfig,
    /// Cluster mode: the channels live in Redis and are served by every node; `None` (the
    /// default) is a single server with its own store.
    pub cluster: Option<crate::ClusterConfig>,
    /// A disk that fails or stalls, in place of the store, for the tests.
    #[cfg(test)]
    pub(crate) faulty_store: Option<crate::store::faulty::Faulty>,
}

impl ServerConfig {
    /// A configuration listening on `listen`, accepting `credentials`, handing out `ice`.
    pub fn new(listen: SocketAddr, credentials: Vec<Credentials>, ice: TurnConfig) -> Self {
        Self {
            listen,
            public_url: None,
            region: "us-west-2".to_owned(),
            credentials,
            auth: AuthMode::Verify,
            scopes: BTreeMap::new(),
            hub: HubConfig::default(),
            shard: ShardConfig::default(),
            shards: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            registry: RegistryConfig::default(),
            ice,
            max_body_len: 64 * 1024,
            listen_backlog: kvs_transport_tokio::LISTEN_BACKLOG,
            indications: IndicationPolicy::default(),
            max_connections: default_max_connections(),
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            websocket: WebSocketLimits::default(),
            tcp: TcpTuning::default(),
            data_dir: None,
            tls: None,
            cors: crate::CorsConfig::default(),
            console: crate::ConsoleConfig::default(),
            cluster: None,
            #[cfg(test)]
            faulty_store: None,
        }
    }

    /// Sets [`ServerConfig::cluster`].
    #[must_use]
    pub fn cluster(mut self, cluster: crate::ClusterConfig) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Sets [`ServerConfig::console`].
    #[must_use]
    pub fn console(mut self, console: crate::ConsoleConfig) -> Self {
        self.console = console;
        self
    }

    /// Sets [`ServerConfig::public_url`].
    #[must_use]
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Sets [`ServerConfig::auth`].
    #[must_use]
    pub fn auth(mut self, auth: AuthMode) -> Self {
        self.auth = auth;
        self
    }

    /// Limits the access key `access_key_id` to `scope` (see [`ServerConfig::scopes`]).
    #[must_use]
    pub fn limit(mut self, access_key_id: impl Into<String>, scope: crate::Scope) -> Self {
        self.scopes.insert(access_key_id.into(), scope);
        self
    }

    /// Sets [`ServerConfig::hub`].
    #[must_use]
    pub fn hub(mut self, hub: HubConfig) -> Self {
        self.hub = hub;
        self
    }

    /// Sets [`ServerConfig::tls`].
    #[must_use]
    pub fn tls(mut self, files: crate::TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// Sets [`ServerConfig::data_dir`].
    #[must_use]
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Sets [`ServerConfig::indications`].
    #[must_use]
    pub fn indications(mut self, policy: IndicationPolicy) -> Self {
        self.indications = policy;
        self
    }

    /// Sets [`ServerConfig::max_connections`] (at least one).
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Sets [`ServerConfig::header_read_timeout`].
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`ServerConfig::tls_handshake_timeout`].
    #[must_use]
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.tls_handshake_timeout = timeout;
        self
    }

    /// Sets [`ServerConfig::websocket`].
    #[must_use]
    pub fn websocket(mut self, limits: WebSocketLimits) -> Self {
        self.websocket = limits;
        self
    }

    /// Sets [`ServerConfig::shards`] (at least one).
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// Sets [`ServerConfig::region`].
    #[must_use]
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }
}

/// Descriptors kept for what is not a client connection: the listener, the store, logs.
const DESCRIPTOR_RESERVE: usize = 64;

/// The default cap on open connections: the process's limit on open files less a reserve,
/// read from `/proc/self/limits` where there is one; 10,000 elsewhere.
fn default_max_connections() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits.lines().find_map(|line| {
                let soft = line
                    .strip_prefix("Max open files")?
                    .split_whitespace()
                    .next()?;
                soft.parse::<usize>().ok()
            })
        })
        .map_or(10_000, |soft| {
            soft.saturating_sub(DESCRIPTOR_RESERVE).max(1)
        })
}
