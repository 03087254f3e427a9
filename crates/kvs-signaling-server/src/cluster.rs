//! Cluster mode: several `kvs-signaling serve --cluster redis://...` processes serve one set of
//! channels, with Redis as the only shared part (the project's `CLUSTER.md` is the design).
//!
//! - `keys.rs`: the connection's settings, the key names, and the checks of the server.
//! - `store.rs`: the control plane in Redis: a channel is a hash, its name a key written with
//!   `SET NX`, every write a Lua compare-and-set, so that nodes racing answer as one server.
//! - `node.rs`: this node's identity, its heartbeat, and which nodes are alive.
//! - `wire.rs`: the messages between nodes, through one Redis stream per node (its inbox).
//! - `route.rs`: which node's hub serves a channel, and the bridging of sockets to it.
//! - `moving.rs`: channels moving when their owner dies, shuts down or loses its claim.
//! - `held.rs`: the copy of the held messages in Redis, which a channel's next owner loads.

use std::sync::Arc;
use std::time::Duration;

mod held;
mod keys;
mod moving;
mod node;
mod route;
mod store;
mod wire;

pub(crate) use node::Liveness;
pub(crate) use route::{Router, Unrouted};

/// How a node joins a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// Redis: `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
    /// The ACL user, when not in the URL.
    pub username: Option<String>,
    /// The password, when not in the URL (from the environment or a file: never a flag).
    pub password: Option<String>,
    /// The prefix of every key, so that several clusters (or other programs) share a Redis:
    /// `kvs`.
    pub key_prefix: String,
    /// How often a node heartbeats: every second.
    pub heartbeat_interval: Duration,
    /// A node whose last heartbeat is this much older than the observer's own is dead: 5
    /// seconds.
    pub node_ttl: Duration,
    /// How long a Redis command may take before it is taken as failed: 2 seconds.
    pub command_timeout: Duration,
}

impl ClusterConfig {
    /// A cluster on the Redis at `url`, with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            username: None,
            password: None,
            key_prefix: "kvs".to_owned(),
            heartbeat_interval: Duration::from_secs(1),
            node_ttl: Duration::from_secs(5),
            command_timeout: Duration::from_secs(2),
        }
    }

    /// [`ClusterConfig::url`] without its credentials, for logs and messages.
    pub fn redacted_url(&self) -> String {
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return self.url.clone();
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
    pub(crate) redis: redis::aio::ConnectionManager,
    /// For connections of their own (the inbox's blocking reads).
    pub(crate) client: redis::Client,
    /// This node.
    pub(crate) node: String,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) registry_config: kvs_signaling_core::RegistryConfig,
    /// Where the URL points, for messages (no password).
    pub(crate) where_: String,
}

impl Cluster {
    /// Runs `command` on the shared connection; once more after a short pause when the
    /// connection had dropped (Redis restarted, or the connection was killed), which the
    /// connection manager mends meanwhile. Only for commands that may run twice: reads, and
    /// scripts that check before they write.
    pub(crate) async fn retrying<T, F, Fut>(&self, command: F) -> redis::RedisResult<T>
    where
        F: Fn(redis::aio::ConnectionManager) -> Fut,
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
    ) -> Result<Arc<Self>, ClusterError> {
        let (client, where_) = keys::client(config)?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.command_timeout))
            .set_connection_timeout(Some(config.command_timeout));
        let mut redis = client
            .get_connection_manager_with_config(manager_config)
            .await
            .map_err(|err| ClusterError::Redis {
                url: where_.clone(),
                message: err.to_string(),
            })?;
        keys::check_server(&mut redis, &where_).await?;
        let node = node::fresh_id();
        let keys = keys::Keys::new(&config.key_prefix);
        let liveness = Liveness::start(
            redis.clone(),
            keys.clone(),
            node.clone(),
            config.heartbeat_interval,
            config.node_ttl,
        )
        .await
        .map_err(|message| ClusterError::Redis {
            url: where_.clone(),
            message,
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
    }
}
