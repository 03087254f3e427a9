//! Cluster mode: several `kvs-signaling serve --cluster redis://...` processes serve one set of
//! channels, with Redis as the only shared part (the project's `CLUSTER.md` is the design).
//!
//! - `keys.rs`: the connections (one server, or the primary Sentinel names, followed through
//!   failovers; TLS and ACL credentials), the key names, and the checks of the server.
//! - `store.rs`: the control plane in Redis: a channel is a hash, its name a key written with
//!   `SET NX`, every write a Lua compare-and-set, so that nodes racing answer as one server.
//! - `node.rs`: this node's identity, its heartbeat, and which nodes are alive.
//! - `wire.rs`: the messages between nodes, through one Redis stream per node (its inbox).
//! - `route.rs`: which node's hub serves a channel, and the bridging of sockets to it;
//!   `inbound.rs` what a node hears (its bridged sockets, its hubs' remote connections, other
//!   nodes), `remotes.rs` its hubs' remote connections, `status.rs` what it says of itself.
//! - `moving.rs`: channels moving when their owner dies, shuts down or loses its claim.
//! - `held.rs`: the copy of the held messages in Redis, which a channel's next owner loads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod connection;
mod events;
mod format;
mod held;
mod inbound;
mod keys;
mod moving;
mod node;
mod remotes;
mod route;
mod shared;
mod status;
mod store;
mod url;
mod wire;

pub(crate) use events::RemoteEvent;
pub(crate) use node::Liveness;
pub(crate) use route::{Router, Unrouted};

/// How a node joins a cluster.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// Where Redis is:
    /// - `redis://[USER[:PASSWORD]@]HOST:PORT[/DB]`, or `rediss://` for TLS;
    /// - `redis+sentinel://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]...]/PRIMARY[/DB]`: the
    ///   primary named `PRIMARY` that these Sentinels watch (port 26379 when absent; an IPv6
    ///   host in brackets), followed through failovers; `rediss+sentinel://` for TLS to the
    ///   Sentinels and the primary. The user and password are the primary's (the Sentinels'
    ///   are [`ClusterConfig::sentinel_username`] and [`ClusterConfig::sentinel_password`]).
    pub url: String,
    /// The ACL user, when not in the URL (wins over the URL's).
    pub username: Option<String>,
    /// The password, when not in the URL (from the environment or a file: never a flag; wins
    /// over the URL's).
    pub password: Option<String>,
    /// The CA certificates (PEM) that Redis's certificate must chain to, for `rediss://`: the
    /// system's roots when absent. For managed Redis with a private CA, or a self-signed one.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM), for a Redis that requires one (`tls-auth-clients
    /// yes`); with [`ClusterConfig::client_key_file`].
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key_file: Option<PathBuf>,
    /// The Sentinels' ACL user, under `redis+sentinel://`.
    pub sentinel_username: Option<String>,
    /// The Sentinels' password (`requirepass` of the Sentinels), under `redis+sentinel://`.
    pub sentinel_password: Option<String>,
    /// The prefix of every key, so that several clusters (or other programs) share a Redis:
    /// `kvs`. Letters, digits, `-`, `_` and `.`; every key is `PREFIX:...`.
    pub key_prefix: String,
    /// How often a node heartbeats: every second.
    pub heartbeat_interval: Duration,
    /// A node whose last heartbeat is this much older than the observer's own is dead: 5
    /// seconds.
    pub node_ttl: Duration,
    /// How long a Redis command may take before it is taken as failed: 2 seconds.
    pub command_timeout: Duration,
    /// The entries a node's inbox keeps at most, whatever its reader does (a node that fell
    /// far behind, or died and is not yet taken for dead): 100,000. What is trimmed past it is
    /// lost, and counted by the node (`kvs_cluster_inbox_entries_missing_total`); a dead
    /// node's trimmed entries are missing from the replay to its channels' next owners. It
    /// bounds what one node can make Redis hold: size it above the entries a node receives
    /// in a TTL and a heartbeat (about one per message at low rates, far fewer at load).
    pub inbox_max_entries: usize,
    /// The entries waiting unread in a node's inbox past which it has fallen behind: 10,000
    /// (0: never). A node with this many unread at two heartbeats in a row (not one that
    /// catches up after a pause) says so with its heartbeat, and the other nodes close, with 1008, the
    /// sockets they hold for channels it owns, instead of making it later still and, past
    /// [`ClusterConfig::inbox_max_entries`], losing messages; their clients connect again. At
    /// or above that cap, half the cap.
    pub inbox_high_water: usize,
    /// How long a node's writer waits, once it has a message for other nodes, for more to
    /// join the same inbox entries: none. A linger makes fewer, larger entries (fewer Redis
    /// commands per message, the cluster's first bottleneck) at the cost of that much latency
    /// on every message between nodes (twice for a connect through a node that does not own
    /// the channel: the open, then its verdict); tokio's timers round it up to whole
    /// milliseconds.
    pub batch_linger: Duration,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("ClusterConfig")
            .field("url", &self.redacted_url())
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field("sentinel_username", &self.sentinel_username)
            .field("sentinel_password", &redacted(&self.sentinel_password))
            .field("key_prefix", &self.key_prefix)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("node_ttl", &self.node_ttl)
            .field("command_timeout", &self.command_timeout)
            .field("inbox_max_entries", &self.inbox_max_entries)
            .field("inbox_high_water", &self.inbox_high_water)
            .field("batch_linger", &self.batch_linger)
            .finish()
    }
}

impl ClusterConfig {
    /// A cluster on the Redis at `url`, with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            username: None,
            password: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            sentinel_username: None,
            sentinel_password: None,
            key_prefix: "kvs".to_owned(),
            heartbeat_interval: Duration::from_secs(1),
            node_ttl: Duration::from_secs(5),
            command_timeout: Duration::from_secs(2),
            inbox_max_entries: 100_000,
            inbox_high_water: 10_000,
            batch_linger: Duration::ZERO,
        }
    }

    /// [`ClusterConfig::inbox_high_water`] as it applies: below the inbox's cap.
    pub(crate) fn high_water(&self) -> usize {
        let cap = self.inbox_max_entries.max(1);
        if self.inbox_high_water >= cap {
            cap / 2
        } else {
            self.inbox_high_water
        }
    }

    /// [`ClusterConfig::url`] without its credentials, for logs and messages.
    pub fn redacted_url(&self) -> String {
        let Some((scheme, rest)) = self.url.split_once("://") else {
            // Not a URL: whatever precedes an '@' may be a password.
            return match self.url.rsplit_once('@') {
                Some((_, host)) => format!("<redacted>@{host}"),
                None => self.url.clone(),
            };
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        match rest[..authority_end].rfind('@') {
            Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
            None => self.url.clone(),
        }
    }

    /// Sets [`ClusterConfig::key_prefix`].
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`ClusterConfig::username`] and [`ClusterConfig::password`].
    #[must_use]
    pub fn credentials(mut self, username: Option<String>, password: Option<String>) -> Self {
        self.username = username;
        self.password = password;
        self
    }

    /// Sets [`ClusterConfig::ca_file`].
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Sets [`ClusterConfig::client_cert_file`] and [`ClusterConfig::client_key_file`], for
    /// mutual TLS.
    #[must_use]
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert_file = Some(cert.into());
        self.client_key_file = Some(key.into());
        self
    }

    /// Sets [`ClusterConfig::sentinel_username`] and [`ClusterConfig::sentinel_password`].
    #[must_use]
    pub fn sentinel_credentials(
        mut self,
        username: Option<String>,
        password: Option<String>,
    ) -> Self {
        self.sentinel_username = username;
        self.sentinel_password = password;
        self
    }

    /// Sets [`ClusterConfig::heartbeat_interval`] and [`ClusterConfig::node_ttl`].
    #[must_use]
    pub fn heartbeat(mut self, interval: Duration, ttl: Duration) -> Self {
        self.heartbeat_interval = interval;
        self.node_ttl = ttl;
        self
    }
}

/// Why a node cannot join its cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The URL, the credentials or the settings cannot be used.
    #[error("cluster: {0}")]
    Config(String),
    /// Redis cannot be reached or refused.
    #[error("cluster: Redis at {url}: {message}")]
    Redis {
        /// Where.
        url: String,
        /// What happened.
        message: String,
    },
    /// Redis is set up in a way that would lose the cluster's state.
    #[error("cluster: Redis at {url} {message}")]
    Unsafe {
        /// Where.
        url: String,
        /// What is wrong, and what to set.
        message: String,
    },
}

/// A node of the cluster: its Redis connection, identity and liveness.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) keys: keys::Keys,
    /// The shared connection for commands, to the primary of the moment.
    pub(crate) redis: keys::Redis,
    /// For connections of their own (the inbox's blocking reads), to the primary of the
    /// moment.
    pub(crate) client: keys::Connector,
    /// This node.
    pub(crate) node: String,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) registry_config: kvs_signaling_core::RegistryConfig,
    /// Where the URL points, for messages (no password).
    pub(crate) where_: String,
    /// The digest of the settings every node must share, as this node published it.
    pub(crate) settings: String,
    /// [`ClusterConfig::inbox_max_entries`].
    pub(crate) inbox_max_entries: usize,
    /// [`ClusterConfig::batch_linger`].
    pub(crate) batch_linger: Duration,
}

impl Cluster {
    /// Runs `command` on the shared connection; once more after a short pause when the
    /// connection had dropped (Redis restarted, or the connection was killed), which the
    /// connection manager mends meanwhile. Only for commands that may run twice: reads, and
    /// scripts that check before they write.
    pub(crate) async fn retrying<T, F, Fut>(&self, command: F) -> redis::RedisResult<T>
    where
        F: Fn(keys::Redis) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match command(self.redis.clone()).await {
            Err(err) if err.is_io_error() || err.is_connection_dropped() || err.is_timeout() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                command(self.redis.clone()).await
            }
            result => result,
        }
    }

    /// Connects to Redis, checks that it keeps what the cluster writes, and starts this
    /// node's heartbeat.
    pub(crate) async fn join(
        config: &ClusterConfig,
        registry_config: kvs_signaling_core::RegistryConfig,
        settings: String,
    ) -> Result<Arc<Self>, ClusterError> {
        let (redis, client) = keys::connect(config).await?;
        let where_ = client.where_().to_owned();
        let node = node::fresh_id();
        let keys = keys::Keys::new(&config.key_prefix);
        let liveness = Liveness::start(
            redis.clone(),
            keys.clone(),
            node.clone(),
            config.heartbeat_interval,
            config.node_ttl,
            config.high_water(),
        )
        .await
        .map_err(|message| ClusterError::Redis {
            url: where_.clone(),
            message,
        })?;
        let mut publish = redis.clone();
        redis::cmd("HSET")
            .arg(keys.settings())
            .arg(&node)
            .arg(&settings)
            .query_async::<()>(&mut publish)
            .await
            .map_err(|err| ClusterError::Redis {
                url: where_.clone(),
                message: err.to_string(),
            })?;
        tracing::info!(%node, redis = %where_, "joined the cluster");
        Ok(Arc::new(Self {
            keys,
            redis,
            client,
            node,
            liveness,
            registry_config,
            where_,
            settings,
            inbox_max_entries: config.inbox_max_entries.max(1),
            batch_linger: config.batch_linger,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::ClusterConfig;

    #[test]
    fn a_redacted_url_has_no_credentials() {
        let redacted = |url: &str| ClusterConfig::new(url).redacted_url();
        assert_eq!(
            redacted("redis://user:secret@cache:6379/2"),
            "redis://cache:6379/2"
        );
        assert_eq!(redacted("rediss://:p%40ss@cache"), "rediss://cache");
        assert_eq!(redacted("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(redacted("redis://cache/a@b"), "redis://cache/a@b");
        assert_eq!(redacted("redis:u:secret@cache"), "<redacted>@cache");
        assert_eq!(
            redacted("redis+sentinel://u:secret@s1:26379,s2/main"),
            "redis+sentinel://s1:26379,s2/main"
        );
        let debug = format!(
            "{:?}",
            ClusterConfig::new("redis://u:pw-alpha@cache")
                .credentials(None, Some("pw-bravo".to_owned()))
                .sentinel_credentials(None, Some("pw-charlie".to_owned()))
        );
        assert!(
            !debug.contains("pw-alpha")
                && !debug.contains("pw-bravo")
                && !debug.contains("pw-charlie"),
            "{debug}"
        );
    }
}
