//! The TOML configuration file of `kvs-signaling serve --config FILE`.
//!
//! Every key is optional; what the file leaves out comes from the environment, the flags or
//! the defaults (flags win over the environment, which wins over the file). Unknown keys are
//! refused, so that a misspelt limit is an error and not a silent default. The annotated
//! example, `kvs-signaling.example.toml` at the root of the repository, is parsed by this
//! module's tests.

use std::time::Duration;

use kvs_signaling_core::{HubConfig, Rate, RegistryConfig};
use serde::Deserialize;

use crate::{Grant, Scope, ServerConfig};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FileConfig {
    /// Where to listen, such as `127.0.0.1:8443`.
    pub listen: Option<String>,
    /// The URL clients reach the server at.
    pub public_url: Option<String>,
    /// The region of ARNs and signatures.
    pub region: Option<String>,
    /// Where channels are kept.
    pub data_dir: Option<String>,
    /// Keep channels in memory only.
    pub in_memory: Option<bool>,
    /// How many hubs share the channels.
    pub shards: Option<usize>,
    /// Accept unsigned requests (throwaway local use only).
    pub insecure_no_auth: Option<bool>,
    /// Which WebSocket clients get GO_AWAY and RECONNECT_ICE_SERVER: `opt-in` (the default),
    /// `unless-c-sdk`, `always` or `never` (see [`IndicationPolicy`](crate::IndicationPolicy)).
    pub indications: Option<String>,
    /// TLS.
    pub tls: Option<TlsSection>,
    /// The access keys accepted, each optionally limited.
    #[serde(default)]
    pub credentials: Vec<CredentialEntry>,
    /// The ICE servers handed out.
    pub ice: Option<IceSection>,
    /// The service limits.
    pub limits: Option<LimitsSection>,
    /// Browser access to the REST API.
    pub cors: Option<CorsSection>,
    /// The live console.
    pub console: Option<ConsoleSection>,
    /// Cluster mode: the Redis URL (`redis://HOST:PORT`, `rediss://` for TLS, or
    /// `redis+sentinel://HOST:PORT[,HOST:PORT...]/PRIMARY-NAME`), as `--cluster`.
    pub cluster: Option<String>,
    /// The cluster's Redis settings.
    pub redis: Option<RedisSection>,
}

/// `[redis]`: how a cluster node reaches Redis, beyond its URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisSection {
    /// The prefix of the cluster's keys: `kvs`.
    pub key_prefix: Option<String>,
    /// The ACL user.
    pub username: Option<String>,
    /// A file whose first line is the password (never the password itself in this file).
    pub password_file: Option<String>,
    /// The CA certificates (PEM) that Redis's certificate chains to, for `rediss://`: the
    /// system's roots when absent.
    pub ca_file: Option<String>,
    /// A client certificate (PEM), for a Redis that requires one (`tls-auth-clients yes`).
    pub client_cert: Option<String>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<String>,
    /// The Sentinels' ACL user, under `redis+sentinel://`.
    pub sentinel_username: Option<String>,
    /// A file whose first line is the Sentinels' password.
    pub sentinel_password_file: Option<String>,
}

/// `[console]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ConsoleSection {
    /// Whether `/console/` is served: true.
    pub enabled: Option<bool>,
    /// The token of the console's URL (at least 16 letters and digits); a random one, printed
    /// at start, when absent.
    pub token: Option<String>,
}

/// `[cors]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CorsSection {
    /// The web origins that may call the REST API from a browser, such as
    /// `["https://app.example.com"]`; `["*"]` (the default) for any.
    pub allowed_origins: Option<Vec<String>>,
    /// How long a browser may cache a preflight's answer: 7200 seconds.
    pub max_age_seconds: Option<u64>,
}

/// `[tls]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsSection {
    /// The certificate chain, PEM.
    pub cert: Option<String>,
    /// Its private key, PEM.
    pub key: Option<String>,
    /// Serve plain HTTP.
    pub disabled: Option<bool>,
}

/// One `[[credentials]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CredentialEntry {
    /// The access key id.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
    /// The session token that must come with it, for temporary credentials.
    pub session_token: Option<String>,
    /// Channel names it may touch (exact, or a prefix ending in `*`): every channel when
    /// absent.
    pub channels: Option<Vec<String>>,
    /// Roles it may act in (`master`, `viewer`, `admin`): all when absent.
    pub roles: Option<Vec<String>>,
}

impl CredentialEntry {
    /// The credentials, and the scope when the entry limits them.
    pub fn resolve(&self) -> Result<(kvs_ice_rest::Credentials, Option<Scope>), String> {
        let field = |name: &str| format!("credentials {:?}: {name}", self.access_key_id);
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            return Err(field(
                "access_key_id and secret_access_key must not be empty",
            ));
        }
        let mut credentials =
            kvs_ice_rest::Credentials::new(&self.access_key_id, &self.secret_access_key);
        if let Some(token) = &self.session_token {
            credentials = credentials.with_session_token(token);
        }
        if self.channels.is_none() && self.roles.is_none() {
            return Ok((credentials, None));
        }
        let channels = self
            .channels
            .clone()
            .unwrap_or_else(|| vec!["*".to_owned()]);
        let grants = match &self.roles {
            None => Grant::ALL.to_vec(),
            Some(roles) => roles
                .iter()
                .map(|role| role.parse::<Grant>())
                .collect::<Result<_, _>>()
                .map_err(|err| format!("{}: {err}", field("roles")))?,
        };
        let scope =
            Scope::new(channels, grants).map_err(|err| format!("{}: {err}", field("channels")))?;
        Ok((credentials, Some(scope)))
    }
}

/// `[ice]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IceSection {
    /// `stun:` URIs.
    pub stun_uris: Option<Vec<String>>,
    /// `turn:`/`turns:` URIs, at most 4.
    pub turn_uris: Option<Vec<String>>,
    /// coturn's `static-auth-secret`s, newest first: the first signs, all verify.
    pub turn_secrets: Option<Vec<String>>,
    /// How long TURN credentials last, in seconds (60 to 86,400; 300 by default).
    pub ttl_seconds: Option<u32>,
}

/// `[limits]`: the real service's values when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LimitsSection {
    /// Channels per account: 10,000.
    pub max_channels: Option<usize>,
    /// Concurrent viewers per channel: 10.
    pub max_viewers_per_channel: Option<usize>,
    /// Longest message payload, in characters: 10,240.
    pub max_payload_len: Option<usize>,
    /// SDP offers and answers per connection per second: 5.
    pub sdp_per_second: Option<u32>,
    /// ICE candidates per connection per second: 20.
    pub ice_candidates_per_second: Option<u32>,
    /// SDP offers and answers a master may send at once, at the same average rate: 50 (an
    /// answer to each of its ten viewers connecting at once).
    pub master_sdp_burst: Option<u32>,
    /// ICE candidates a master may send at once, at the same average rate: 200.
    pub master_ice_candidates_burst: Option<u32>,
    /// Connects per channel and role per second: 3.
    pub connects_per_second: Option<u32>,
    /// SendAlexaOfferToMaster per channel per second: 5.
    pub alexa_offers_per_second: Option<u32>,
    /// Seconds without a frame before a connection is closed: 600.
    pub idle_timeout_seconds: Option<u64>,
    /// Longest life of a connection, in seconds: 3,600.
    pub max_connection_seconds: Option<u64>,
    /// Seconds between GO_AWAY and the close: 60.
    pub go_away_grace_seconds: Option<u64>,
    /// Seconds a connection replaced by a newer one with the same identity lingers before
    /// it is closed: 600.
    pub superseded_linger_seconds: Option<u64>,
    /// Undelivered messages held per recipient: 64.
    pub max_pending_per_recipient: Option<usize>,
    /// Recipients with undelivered messages per channel: 32.
    pub max_pending_recipients_per_channel: Option<usize>,
    /// Bytes of undelivered messages the server holds over all its channels: 64 MiB.
    pub max_held_bytes: Option<usize>,
    /// Seconds SendAlexaOfferToMaster waits for the answer: 10.
    pub alexa_timeout_seconds: Option<u64>,
    /// Largest REST request body, in bytes: 65,536.
    pub max_body_len: Option<usize>,
    /// Open connections at most: the descriptor limit less 64.
    pub max_connections: Option<usize>,
    /// Seconds a client may take to send a request's head, and then its body (also the idle
    /// keep-alive time): 10.
    pub header_read_timeout_seconds: Option<u64>,
    /// Seconds a TLS handshake may take: 10.
    pub tls_handshake_timeout_seconds: Option<u64>,
    /// Seconds one write (an HTTP answer or a WebSocket frame) may take before the
    /// connection is dropped: 10.
    pub write_timeout_seconds: Option<u64>,
    /// Seconds the closing handshake may take: 5.
    pub close_timeout_seconds: Option<u64>,
    /// Seconds a WebSocket may be silent before the server pings it: 20 (0: no pings).
    pub ping_interval_seconds: Option<u64>,
    /// Seconds the server waits for any frame after its ping before it closes the
    /// connection: 10.
    pub pong_timeout_seconds: Option<u64>,
    /// The kernel's send buffer of each connection, in bytes (`SO_SNDBUF`): the system's
    /// when absent.
    pub tcp_send_buffer_bytes: Option<usize>,
    /// Seconds without traffic before TCP keepalive probes start: 30 (0: no keepalive).
    pub tcp_keepalive_seconds: Option<u64>,
    /// Seconds data may go unacknowledged before the connection is dropped
    /// (`TCP_USER_TIMEOUT`, Linux): 30 (0: the system's default).
    pub tcp_user_timeout_seconds: Option<u64>,
    /// Cluster mode: seconds between a node's heartbeats: 1.
    pub cluster_heartbeat_seconds: Option<u64>,
    /// Cluster mode: seconds after which a silent node is dead (its channels move, its
    /// clients' slots are freed): 5; at least three heartbeats and 3 s, at most an hour.
    pub cluster_node_ttl_seconds: Option<u64>,
    /// Cluster mode: the entries a node's inbox keeps at most (what is trimmed past it is lost,
    /// and counted): 100,000.
    pub cluster_inbox_max_entries: Option<usize>,
    /// Cluster mode: the entries waiting unread in a node's inbox past which it has fallen
    /// behind (at two heartbeats in a row), and the other nodes close the sockets they hold
    /// for its channels (1008): 10,000, or half the cap if the cap is not above it (0: never).
    pub cluster_inbox_high_water: Option<usize>,
    /// Cluster mode: milliseconds a node's writer waits, once it has a message for other
    /// nodes, for more to join it: 0 (at most 100). Fewer Redis commands per message, for
    /// that much more latency between nodes.
    pub cluster_batch_linger_ms: Option<u64>,
}

impl LimitsSection {
    /// `cluster` with the cluster limits this section sets, or which one is wrong and why.
    pub fn apply_to_cluster(
        &self,
        mut cluster: crate::ClusterConfig,
    ) -> Result<crate::ClusterConfig, String> {
        match self.cluster_heartbeat_seconds {
            Some(seconds) if !(1..=60).contains(&seconds) => {
                return Err(format!(
                    "limits.cluster_heartbeat_seconds: must be 1 to 60 seconds; got {seconds}"
                ));
            }
            Some(seconds) => cluster.heartbeat_interval = Duration::from_secs(seconds),
            None => {}
        }
        match self.cluster_node_ttl_seconds {
            Some(seconds) if seconds > 3600 => {
                return Err(format!(
                    "limits.cluster_node_ttl_seconds: must be at most 3600 seconds; got \
                     {seconds}"
                ));
            }
            Some(seconds) => cluster.node_ttl = Duration::from_secs(seconds),
            None => {}
        }
        // A heartbeat answered late (a command may take 2 s before it fails), or a jittery
        // one, must not make a node lapse or be judged by a stalled round.
        let least = (cluster.heartbeat_interval * 3).max(Duration::from_secs(3));
        if cluster.node_ttl < least {
            return Err(format!(
                "limits.cluster_node_ttl_seconds: must be at least three heartbeats \
                 (limits.cluster_heartbeat_seconds, {} s) and 3 s; got {} s",
                cluster.heartbeat_interval.as_secs(),
                cluster.node_ttl.as_secs()
            ));
        }
        match self.cluster_inbox_max_entries {
            Some(max) if max < 100 => {
                return Err(format!(
                    "limits.cluster_inbox_max_entries: must be at least 100; got {max}"
                ));
            }
            Some(max) => cluster.inbox_max_entries = max,
            None => {}
        }
        match self.cluster_inbox_high_water {
            Some(high) if high != 0 && (high < 100 || high >= cluster.inbox_max_entries) => {
                return Err(format!(
                    "limits.cluster_inbox_high_water: must be 0 (never) or from 100 to below \
                     limits.cluster_inbox_max_entries ({}); got {high}",
                    cluster.inbox_max_entries
                ));
            }
            Some(high) => cluster.inbox_high_water = high,
            None => {}
        }
        match self.cluster_batch_linger_ms {
            Some(ms) if ms > 100 => {
                return Err(format!(
                    "limits.cluster_batch_linger_ms: must be at most 100; got {ms}"
                ));
            }
            Some(ms) => cluster.batch_linger = Duration::from_millis(ms),
            None => {}
        }
        Ok(cluster)
    }

    /// `hub` with the limits this section sets.
    pub fn apply_to_hub(&self, mut hub: HubConfig) -> HubConfig {
        let secs = Duration::from_secs;
        if let Some(v) = self.max_viewers_per_channel {
            hub.max_viewers_per_channel = v;
        }
        if let Some(v) = self.max_payload_len {
            hub.max_payload_len = v;
        }
        if let Some(v) = self.sdp_per_second {
            hub.sdp_rate = Rate::per_second(v);
            hub.master_sdp_rate = Rate::per_second(v).with_burst(hub.master_sdp_rate.burst.max(v));
        }
        if let Some(v) = self.ice_candidates_per_second {
            hub.ice_candidate_rate = Rate::per_second(v);
            hub.master_ice_candidate_rate =
                Rate::per_second(v).with_burst(hub.master_ice_candidate_rate.burst.max(v));
        }
        if let Some(v) = self.master_sdp_burst {
            hub.master_sdp_rate = hub.master_sdp_rate.with_burst(v);
        }
        if let Some(v) = self.master_ice_candidates_burst {
            hub.master_ice_candidate_rate = hub.master_ice_candidate_rate.with_burst(v);
        }
        if let Some(v) = self.connects_per_second {
            hub.connect_rate = Rate::per_second(v);
        }
        if let Some(v) = self.alexa_offers_per_second {
            hub.alexa_rate = Rate::per_second(v);
        }
        if let Some(v) = self.idle_timeout_seconds {
            hub.idle_timeout = secs(v);
        }
        if let Some(v) = self.max_connection_seconds {
            hub.max_connection_duration = secs(v);
        }
        if let Some(v) = self.go_away_grace_seconds {
            hub.go_away_grace = secs(v);
        }
        if let Some(v) = self.superseded_linger_seconds {
            hub.superseded_linger = secs(v);
        }
        if let Some(v) = self.max_pending_per_recipient {
            hub.max_pending_per_recipient = v;
        }
        if let Some(v) = self.max_pending_recipients_per_channel {
            hub.max_pending_recipients_per_channel = v;
        }
        if let Some(v) = self.max_held_bytes {
            hub.max_held_bytes = v;
        }
        if let Some(v) = self.alexa_timeout_seconds {
            hub.alexa_timeout = secs(v);
        }
        hub
    }

    /// `registry` with the limits this section sets.
    pub fn apply_to_registry(&self, registry: RegistryConfig) -> RegistryConfig {
        match self.max_channels {
            Some(max) => registry.max_channels(max),
            None => registry,
        }
    }

    /// `config` with every limit this section sets: the hub's, the registry's and the
    /// server's own. A timeout of zero, or a cap of zero connections, is refused with its key.
    pub fn apply(&self, mut config: ServerConfig) -> Result<ServerConfig, String> {
        let positive = |name: &str, value: Option<u64>| -> Result<Option<Duration>, String> {
            match value {
                Some(0) => Err(format!("limits.{name}: must be at least 1 second")),
                other => Ok(other.map(Duration::from_secs)),
            }
        };
        config.hub = self.apply_to_hub(config.hub);
        config.registry = self.apply_to_registry(config.registry);
        if let Some(max) = self.max_body_len {
            config.max_body_len = max;
        }
        match self.max_connections {
            Some(0) => return Err("limits.max_connections: must be at least 1".to_owned()),
            Some(max) => config.max_connections = max,
            None => {}
        }
        if let Some(t) = positive(
            "header_read_timeout_seconds",
            self.header_read_timeout_seconds,
        )? {
            config.header_read_timeout = t;
        }
        if let Some(t) = positive(
            "tls_handshake_timeout_seconds",
            self.tls_handshake_timeout_seconds,
        )? {
            config.tls_handshake_timeout = t;
        }
        if let Some(t) = positive("write_timeout_seconds", self.write_timeout_seconds)? {
            config.websocket = config.websocket.write_timeout(t);
        }
        if let Some(t) = positive("close_timeout_seconds", self.close_timeout_seconds)? {
            config.websocket = config.websocket.close_timeout(t);
        }
        if let Some(seconds) = self.ping_interval_seconds {
            config.websocket = config
                .websocket
                .ping_interval((seconds > 0).then(|| Duration::from_secs(seconds)));
        }
        if let Some(t) = positive("pong_timeout_seconds", self.pong_timeout_seconds)? {
            config.websocket = config.websocket.pong_timeout(t);
        }
        if let Some(bytes) = self.tcp_send_buffer_bytes {
            if bytes < 4096 {
                return Err(format!(
                    "limits.tcp_send_buffer_bytes: must be at least 4096; got {bytes}"
                ));
            }
            config.tcp.send_buffer = Some(bytes);
        }
        if let Some(seconds) = self.tcp_keepalive_seconds {
            config.tcp.keepalive_idle = (seconds > 0).then(|| Duration::from_secs(seconds));
        }
        if let Some(seconds) = self.tcp_user_timeout_seconds {
            config.tcp.user_timeout = (seconds > 0).then(|| Duration::from_secs(seconds));
        }
        Ok(config)
    }
}
impl FileConfig {
    /// Parses a file's text; the error names the line and the key.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|err| err.to_string())
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("config file {}: {err}", path.display()))?;
        Self::parse(&text).map_err(|err| format!("config file {}: {err}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_means_what_it_says() {
        let file = FileConfig::parse(include_str!("../../../kvs-signaling.example.toml")).unwrap();
        assert_eq!(file.listen.as_deref(), Some("0.0.0.0:443"));
        assert_eq!(file.credentials.len(), 3);
        let (admin, scope) = file.credentials[0].resolve().unwrap();
        assert_eq!(admin.access_key_id, "AKIDADMINEXAMPLE");
        assert_eq!(scope, None);
        let (_, scope) = file.credentials[1].resolve().unwrap();
        let scope = scope.unwrap();
        assert_eq!(scope.grants, vec![Grant::Master]);
        assert!(scope.covers("camera-1") && !scope.covers("doorbell"));
        let ice = file.ice.unwrap();
        assert_eq!(ice.turn_secrets.map(|s| s.len()), Some(2));
        // The [cors] section shows the defaults.
        let cors = file.cors.unwrap();
        let defaults = crate::CorsConfig::default();
        assert_eq!(
            crate::AllowedOrigins::parse(&cors.allowed_origins.unwrap()),
            Ok(defaults.allowed_origins)
        );
        assert_eq!(cors.max_age_seconds, Some(defaults.max_age.as_secs()));
        let limits = file.limits.unwrap();
        let hub = limits.apply_to_hub(HubConfig::default());
        assert_eq!(hub.max_viewers_per_channel, 10);
        assert_eq!(hub.go_away_grace, Duration::from_secs(60));
        // The example shows the defaults.
        assert_eq!(hub, HubConfig::default());
        assert_eq!(file.indications.as_deref(), Some("opt-in"));
        let defaults = crate::tests_support::config();
        let applied = limits.apply(defaults.clone()).unwrap();
        assert_eq!(applied.header_read_timeout, defaults.header_read_timeout);
        assert_eq!(applied.websocket, defaults.websocket);
        assert_eq!(applied.tcp, defaults.tcp);
        let cluster = crate::ClusterConfig::new("redis://127.0.0.1:6379");
        let applied = limits.apply_to_cluster(cluster.clone()).unwrap();
        assert_eq!(
            (
                applied.heartbeat_interval,
                applied.node_ttl,
                applied.inbox_max_entries,
                applied.inbox_high_water,
                applied.batch_linger
            ),
            (
                cluster.heartbeat_interval,
                cluster.node_ttl,
                cluster.inbox_max_entries,
                cluster.inbox_high_water,
                cluster.batch_linger
            )
        );
    }

    #[test]
    fn cluster_limits_are_checked_and_name_the_key() {
        let cluster = || crate::ClusterConfig::new("redis://127.0.0.1:6379");
        let limits = |text: &str| FileConfig::parse(text).unwrap().limits.unwrap();
        let applied = limits(
            "[limits]\ncluster_heartbeat_seconds = 2\ncluster_node_ttl_seconds = 6\n\
             cluster_inbox_max_entries = 500\ncluster_batch_linger_ms = 2\n\
             cluster_inbox_high_water = 499\n",
        )
        .apply_to_cluster(cluster())
        .unwrap();
        assert_eq!(applied.inbox_high_water, 499);
        assert_eq!(applied.high_water(), 499);
        assert_eq!(applied.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(applied.node_ttl, Duration::from_secs(6));
        assert_eq!(applied.inbox_max_entries, 500);
        assert_eq!(applied.batch_linger, Duration::from_millis(2));
        for (text, key) in [
            ("cluster_heartbeat_seconds = 0", "cluster_heartbeat_seconds"),
            ("cluster_node_ttl_seconds = 1", "cluster_node_ttl_seconds"),
            (
                "cluster_heartbeat_seconds = 2\ncluster_node_ttl_seconds = 5",
                "cluster_node_ttl_seconds",
            ),
            ("cluster_node_ttl_seconds = 2", "cluster_node_ttl_seconds"),
            (
                "cluster_node_ttl_seconds = 3601",
                "cluster_node_ttl_seconds",
            ),
            (
                "cluster_heartbeat_seconds = 61",
                "cluster_heartbeat_seconds",
            ),
            (
                "cluster_inbox_max_entries = 99",
                "cluster_inbox_max_entries",
            ),
            ("cluster_batch_linger_ms = 101", "cluster_batch_linger_ms"),
            ("cluster_inbox_high_water = 99", "cluster_inbox_high_water"),
            (
                "cluster_inbox_high_water = 100000",
                "cluster_inbox_high_water",
            ),
            (
                "cluster_inbox_max_entries = 500\ncluster_inbox_high_water = 500",
                "cluster_inbox_high_water",
            ),
        ] {
            let err = limits(&format!("[limits]\n{text}\n"))
                .apply_to_cluster(cluster())
                .unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
        // A cap at or below the default high-water mark, alone, halves it; 0 stays never.
        let high = |text: &str| {
            limits(text)
                .apply_to_cluster(cluster())
                .unwrap()
                .high_water()
        };
        assert_eq!(high("[limits]\n"), 10_000);
        assert_eq!(high("[limits]\ncluster_inbox_max_entries = 500\n"), 250);
        assert_eq!(
            high("[limits]\ncluster_inbox_max_entries = 500\ncluster_inbox_high_water = 0\n"),
            0
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = FileConfig::parse("listen = \"127.0.0.1:1\"\nlistne = 3\n").unwrap_err();
        assert!(err.contains("listne"), "{err}");
        let err = FileConfig::parse("[limits]\nmax_viewers = 3\n").unwrap_err();
        assert!(err.contains("max_viewers"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let err = FileConfig::parse("shards = \"two\"\n").unwrap_err();
        assert!(err.contains("shards"), "{err}");
    }

    #[test]
    fn bad_roles_and_patterns_name_the_credential() {
        let file = FileConfig::parse(
            "[[credentials]]\naccess_key_id = \"K\"\nsecret_access_key = \"S\"\nroles = [\"root\"]\n",
        )
        .unwrap();
        let err = file.credentials[0].resolve().unwrap_err();
        assert!(
            err.contains("credentials \"K\": roles") && err.contains("\"root\""),
            "{err}"
        );
        let file = FileConfig::parse(
            "[[credentials]]\naccess_key_id = \"K\"\nsecret_access_key = \"S\"\nchannels = [\"a*b\"]\n",
        )
        .unwrap();
        let err = file.credentials[0].resolve().unwrap_err();
        assert!(err.contains("channels") && err.contains("a*b"), "{err}");
        let file =
            FileConfig::parse("[[credentials]]\naccess_key_id = \"K\"\nsecret_access_key = \"\"\n")
                .unwrap();
        assert!(file.credentials[0].resolve().is_err());
    }

    #[test]
    fn zero_timeouts_and_caps_are_refused_with_their_key() {
        for (text, key) in [
            (
                "header_read_timeout_seconds = 0",
                "limits.header_read_timeout_seconds",
            ),
            ("close_timeout_seconds = 0", "limits.close_timeout_seconds"),
            ("pong_timeout_seconds = 0", "limits.pong_timeout_seconds"),
            ("max_connections = 0", "limits.max_connections"),
        ] {
            let file = FileConfig::parse(&format!("[limits]\n{text}\n")).unwrap();
            let err = file
                .limits
                .unwrap()
                .apply(crate::tests_support::config())
                .unwrap_err();
            assert!(err.starts_with(key), "{err}");
        }
    }

    #[test]
    fn limits_override_only_what_they_name() {
        let limits = LimitsSection {
            max_viewers_per_channel: Some(3),
            sdp_per_second: Some(9),
            ..LimitsSection::default()
        };
        let hub = limits.apply_to_hub(HubConfig::default());
        assert_eq!(hub.max_viewers_per_channel, 3);
        assert_eq!(hub.sdp_rate, Rate::per_second(9));
        assert_eq!(
            hub.ice_candidate_rate,
            HubConfig::default().ice_candidate_rate
        );
    }
}
