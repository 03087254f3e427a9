//! Redis: the connection, the names of the cluster's keys, and the checks a Redis must pass.

use redis::IntoConnectionInfo as _;

use super::{ClusterConfig, ClusterError};

/// The names of the cluster's keys, all under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// A channel's hash: its record (`rec`, JSON), version (`ver`), owner and epoch.
    pub(crate) fn channel(&self, arn: &str) -> String {
        format!("{}:chan:{arn}", self.prefix)
    }

    /// A channel name's key, holding its ARN: written with `SET NX`, so a name is taken once.
    pub(crate) fn name(&self, name: &str) -> String {
        format!("{}:name:{name}", self.prefix)
    }

    /// Every channel name, in a sorted set (for listing and the account's limit).
    pub(crate) fn names(&self) -> String {
        format!("{}:names", self.prefix)
    }

    /// The nodes, scored by their last heartbeat (Redis `TIME`, milliseconds).
    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// The nodes some node took for dead, until they heartbeat again.
    pub(crate) fn buried(&self) -> String {
        format!("{}:buried", self.prefix)
    }

    /// A node's inbox: the stream other nodes write its messages to.
    pub(crate) fn inbox(&self, node: &str) -> String {
        format!("{}:inbox:{node}", self.prefix)
    }

    /// A channel's held messages, for its next owner: one field per recipient.
    pub(crate) fn held(&self, arn: &str) -> String {
        format!("{}:held:{arn}", self.prefix)
    }

    /// The counter of ownership epochs.
    pub(crate) fn epochs(&self) -> String {
        format!("{}:epoch", self.prefix)
    }

    /// The prefix of every key, for scripts that build keys themselves.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// The Redis client for `config`, and where it points (for messages: no password).
pub(crate) fn client(config: &ClusterConfig) -> Result<(redis::Client, String), ClusterError> {
    let bad = |message: String| ClusterError::Config(message);
    let scheme_ok = config.url.starts_with("redis://") || config.url.starts_with("rediss://");
    if !scheme_ok {
        return Err(bad(format!(
            "--cluster: {:?} is not a Redis URL (redis://HOST:PORT or rediss://HOST:PORT)",
            config.url
        )));
    }
    if config.key_prefix.is_empty()
        || !config
            .key_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(bad(format!(
            "cluster key prefix: {:?} must be 1 or more letters, digits, '-', '_' or '.'",
            config.key_prefix
        )));
    }
    let info = config
        .url
        .as_str()
        .into_connection_info()
        .map_err(|err| bad(format!("--cluster: {err}")))?;
    let where_ = info.addr().to_string();
    let mut redis = info.redis_settings().clone();
    if let Some(user) = &config.username {
        redis = redis.set_username(user);
    }
    if let Some(password) = &config.password {
        redis = redis.set_password(password);
    }
    let info = info.set_redis_settings(redis);
    let client = redis::Client::open(info).map_err(|err| bad(format!("--cluster: {err}")))?;
    Ok((client, where_))
}

/// Checks that the Redis keeps what the cluster writes: version 6.2 or newer (streams trimmed
/// by id), and `maxmemory-policy noeviction` (managed defaults such as `volatile-lru` evict
/// exactly the keys with expiries, and `allkeys-*` any). Read from `INFO`, which managed
/// services allow, not `CONFIG`, which many refuse.
pub(crate) async fn check_server(
    redis: &mut redis::aio::ConnectionManager,
    where_: &str,
) -> Result<(), ClusterError> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .arg("memory")
        .query_async(redis)
        .await
        .map_err(|err| ClusterError::Redis {
            url: where_.to_owned(),
            message: err.to_string(),
        })?;
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let version = field("redis_version").unwrap_or("0");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (6, 2) {
        return Err(ClusterError::Unsafe {
            url: where_.to_owned(),
            message: format!("runs Redis {version}; the cluster needs 6.2 or newer (7 advised)"),
        });
    }
    match field("maxmemory_policy") {
        Some("noeviction") => Ok(()),
        other => Err(ClusterError::Unsafe {
            url: where_.to_owned(),
            message: format!(
                "has maxmemory-policy {}; the cluster needs noeviction, or Redis would drop \
                 channels and held messages when full (set `maxmemory-policy noeviction`)",
                other.unwrap_or("unknown")
            ),
        }),
    }
}
