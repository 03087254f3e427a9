//! The server's configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use kvs_ice_rest::{Credentials, TurnConfig};
use kvs_signaling_core::{HubConfig, RegistryConfig};
use kvs_transport_tokio::ShardConfig;

/// Whether requests must carry a valid SigV4 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMode {
    /// Every REST call and WebSocket connect is verified: the default.
    Verify,
    /// Nothing is verified. For throwaway local use only; the server says so loudly at start.
    DisabledInsecure,
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
    /// The hub's limits.
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
    /// Where channels are kept across restarts; in memory only when absent.
    pub data_dir: Option<PathBuf>,
    /// The certificate and key to serve TLS with; plain HTTP when absent.
    pub tls: Option<crate::TlsFiles>,
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
            data_dir: None,
            tls: None,
        }
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
