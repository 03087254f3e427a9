//! Redis: the connections, and the checks a Redis must pass.
//!
//! A node finds its Redis by the URL's scheme:
//! - `redis://` or `rediss://` (TLS): one server at a fixed address;
//! - `redis+sentinel://` or `rediss+sentinel://`: the primary that Redis Sentinel names, asked
//!   again whenever the primary is lost, so that the nodes follow a failover without a restart.
//!
//! [`Connector`] makes the connections of their own (the inbox's blocking reads) to the
//! primary of the moment; [`Redis`] is the shared multiplexed connection every command goes
//! through: redis-rs's connection manager, which mends a dropped connection, and under
//! Sentinel, a new one for the new primary once Sentinel names it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::IntoConnectionInfo as _;
use redis::aio::{ConnectionLike, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub(crate) use super::shared::{Dedicated, Redis};
use super::url::{URL_FORMS, parse_sentinel_url};
use super::{ClusterConfig, ClusterError};

/// The PEM file at `path`, for the option `option`.
fn read_pem(path: &Path, option: &str) -> Result<Vec<u8>, ClusterError> {
    std::fs::read(path)
        .map_err(|err| ClusterError::Config(format!("{option} {}: {err}", path.display())))
}

/// The certificates of `config` for TLS to Redis, if it names any.
fn tls_certificates(
    config: &ClusterConfig,
) -> Result<Option<redis::TlsCertificates>, ClusterError> {
    let bad = |option: &str, path: &Path, rule: &str| {
        ClusterError::Config(format!("{option} {}: {rule}", path.display()))
    };
    let root_cert = match &config.ca_file {
        None => None,
        Some(path) => {
            let option = "--redis-ca-file (KVS_REDIS_CA_FILE, [redis] ca_file)";
            let pem = read_pem(path, option)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| bad(option, path, &format!("not PEM certificates: {err}")))?;
            if certs.is_empty() {
                return Err(bad(
                    option,
                    path,
                    "holds no certificate (PEM: -----BEGIN CERTIFICATE-----)",
                ));
            }
            Some(pem)
        }
    };
    let client_tls = match (&config.client_cert_file, &config.client_key_file) {
        (None, None) => None,
        (Some(cert_path), Some(key_path)) => {
            let option = "--redis-client-cert (KVS_REDIS_CLIENT_CERT, [redis] client_cert)";
            let client_cert = read_pem(cert_path, option)?;
            let certs = CertificateDer::pem_slice_iter(&client_cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| bad(option, cert_path, &format!("not PEM certificates: {err}")))?;
            if certs.is_empty() {
                return Err(bad(
                    option,
                    cert_path,
                    "holds no certificate (PEM: -----BEGIN CERTIFICATE-----)",
                ));
            }
            let option = "--redis-client-key (KVS_REDIS_CLIENT_KEY, [redis] client_key)";
            let client_key = read_pem(key_path, option)?;
            if PrivateKeyDer::from_pem_slice(&client_key).is_err() {
                return Err(bad(
                    option,
                    key_path,
                    "holds no private key (PEM: -----BEGIN PRIVATE KEY-----, RSA or EC)",
                ));
            }
            Some(redis::ClientTlsConfig {
                client_cert,
                client_key,
            })
        }
        _ => {
            return Err(ClusterError::Config(
                "--redis-client-cert and --redis-client-key go together (mutual TLS needs both)"
                    .to_owned(),
            ));
        }
    };
    Ok(
        (root_cert.is_some() || client_tls.is_some()).then_some(redis::TlsCertificates {
            client_tls,
            root_cert,
        }),
    )
}

/// Where the primary is.
enum Source {
    /// One server, at a fixed address.
    Direct(redis::Client),
    /// The primary the Sentinels name; `sentinels` reach each Sentinel, for the checks at
    /// start.
    Sentinel {
        client: tokio::sync::Mutex<SentinelClient>,
        sentinels: Vec<redis::Client>,
        master: String,
    },
}

/// Makes connections to the cluster's Redis primary of the moment.
#[derive(Clone)]
pub(crate) struct Connector(Arc<ConnectorInner>);

struct ConnectorInner {
    source: Source,
    /// Where the URL points, for messages (no password).
    where_: String,
    /// The primary's ACL user, for messages.
    username: Option<String>,
    /// How long finding the primary through Sentinel may take.
    lookup_timeout: Duration,
    /// The primary of the moment: known from the start for one server, from the first
    /// lookup under Sentinel.
    primary: RwLock<Option<Primary>>,
    /// A task is looking for the primary.
    following: AtomicBool,
}

/// The primary of the moment.
#[derive(Clone)]
pub(super) struct Primary {
    /// One more at each move: connections made to an older one are done with.
    pub(super) generation: u64,
    /// Its address, as Sentinel names it.
    addr: String,
    pub(super) client: redis::Client,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("where", &self.0.where_)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// The connector of `config`: its URL, credentials and certificates checked (and the
    /// certificate files read), no connection made yet.
    pub(crate) fn new(config: &ClusterConfig) -> Result<Self, ClusterError> {
        let bad = |message: String| ClusterError::Config(message);
        let shown = config.redacted_url();
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
        let sentinel = config.url.starts_with("redis+sentinel://")
            || config.url.starts_with("rediss+sentinel://");
        let plain = config.url.starts_with("redis://") || config.url.starts_with("redis+");
        if !sentinel && !config.url.starts_with("redis://") && !config.url.starts_with("rediss://")
        {
            return Err(bad(format!(
                "--cluster: {shown:?} is not a Redis URL ({URL_FORMS})"
            )));
        }
        let certs = tls_certificates(config)?;
        if plain && certs.is_some() {
            return Err(bad(format!(
                "--redis-ca-file and --redis-client-cert are for TLS, but --cluster {shown} is \
                 plain TCP: use rediss:// (or rediss+sentinel://)"
            )));
        }
        let sentinel_credentials =
            config.sentinel_username.is_some() || config.sentinel_password.is_some();
        if sentinel_credentials && !sentinel {
            return Err(bad(format!(
                "Sentinel credentials (KVS_REDIS_SENTINEL_USERNAME, KVS_REDIS_SENTINEL_PASSWORD \
                 or --redis-sentinel-password-file) are set, but --cluster {shown} is not a \
                 redis+sentinel:// URL"
            )));
        }
        let lookup_timeout = config.command_timeout.saturating_mul(2);
        if sentinel {
            let url = parse_sentinel_url(&config.url, &shown).map_err(bad)?;
            let username = config.username.clone().or(url.username.clone());
            let password = config.password.clone().or(url.password.clone());
            let addr = |host: &str, port: u16| match url.tls {
                true => redis::ConnectionAddr::TcpTls {
                    host: host.to_owned(),
                    port,
                    insecure: false,
                    tls_params: None,
                },
                false => redis::ConnectionAddr::Tcp(host.to_owned(), port),
            };
            let redis_error = |err: redis::RedisError| bad(format!("--cluster {shown}: {err}"));
            let mut builder = SentinelClientBuilder::new(
                url.sentinels.iter().map(|(host, port)| addr(host, *port)),
                &url.master,
                SentinelServerType::Master,
            )
            .map_err(redis_error)?
            .set_client_to_redis_db(url.db);
            if url.tls {
                builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
            }
            if let Some(certs) = &certs {
                builder = builder
                    .set_client_to_redis_certificates(certs.clone())
                    .set_client_to_sentinel_certificates(certs.clone());
            }
            if let Some(user) = &username {
                builder = builder.set_client_to_redis_username(user);
            }
            if let Some(password) = &password {
                builder = builder.set_client_to_redis_password(password);
            }
            if let Some(user) = &config.sentinel_username {
                builder = builder.set_client_to_sentinel_username(user);
            }
            if let Some(password) = &config.sentinel_password {
                builder = builder.set_client_to_sentinel_password(password);
            }
            let client = builder.build().map_err(redis_error)?;
            // Each Sentinel on its own, to tell at start which of them answers.
            let mut sentinels = Vec::new();
            for (host, port) in &url.sentinels {
                let mut settings = redis::RedisConnectionInfo::default();
                if let Some(user) = &config.sentinel_username {
                    settings = settings.set_username(user);
                }
                if let Some(password) = &config.sentinel_password {
                    settings = settings.set_password(password);
                }
                let info = addr(host, *port)
                    .into_connection_info()
                    .map_err(redis_error)?
                    .set_redis_settings(settings);
                let one = match &certs {
                    Some(certs) => redis::Client::build_with_tls(info, certs.clone()),
                    None => redis::Client::open(info),
                }
                .map_err(redis_error)?;
                sentinels.push(one);
            }
            let hosts: Vec<String> = url
                .sentinels
                .iter()
                .map(|(host, port)| match host.contains(':') {
                    true => format!("[{host}]:{port}"),
                    false => format!("{host}:{port}"),
                })
                .collect();
            return Ok(Self(Arc::new(ConnectorInner {
                where_: format!(
                    "the primary {:?} of Sentinel {}",
                    url.master,
                    hosts.join(",")
                ),
                source: Source::Sentinel {
                    client: tokio::sync::Mutex::new(client),
                    sentinels,
                    master: url.master,
                },
                username,
                lookup_timeout,
                primary: RwLock::new(None),
                following: AtomicBool::new(false),
            })));
        }
        let info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(|err| bad(format!("--cluster {shown}: {err}")))?;
        let where_ = info.addr().to_string();
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &config.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &config.password {
            settings = settings.set_password(password);
        }
        let username = settings.username().map(str::to_owned);
        let info = info.set_redis_settings(settings);
        let client = match certs {
            Some(certs) => redis::Client::build_with_tls(info, certs),
            None => redis::Client::open(info),
        }
        .map_err(|err| bad(format!("--cluster {shown}: {err}")))?;
        let primary = Primary {
            generation: 0,
            addr: where_.clone(),
            client: client.clone(),
        };
        Ok(Self(Arc::new(ConnectorInner {
            source: Source::Direct(client),
            where_,
            username,
            lookup_timeout,
            primary: RwLock::new(Some(primary)),
            following: AtomicBool::new(false),
        })))
    }

    /// Where the URL points, for messages (no password).
    pub(crate) fn where_(&self) -> &str {
        &self.0.where_
    }

    fn is_sentinel(&self) -> bool {
        matches!(self.0.source, Source::Sentinel { .. })
    }

    /// A client for the primary, looked up now: under Sentinel, the one the Sentinels name
    /// now (and that answers as a primary).
    async fn lookup(&self) -> redis::RedisResult<redis::Client> {
        match &self.0.source {
            Source::Direct(client) => Ok(client.clone()),
            Source::Sentinel { client, .. } => {
                let lookup = async { client.lock().await.async_get_client().await };
                match tokio::time::timeout(self.0.lookup_timeout, lookup).await {
                    Ok(found) => found,
                    Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "Sentinel named no primary within {:?}",
                            self.0.lookup_timeout
                        ),
                    ))),
                }
            }
        }
    }

    /// The primary of the moment.
    pub(super) fn current(&self) -> redis::RedisResult<Primary> {
        self.0
            .primary
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "the cluster's Redis primary is not known yet",
                ))
            })
    }

    /// The generation of the primary of the moment.
    pub(super) fn generation(&self) -> u64 {
        self.current().map_or(0, |primary| primary.generation)
    }

    /// A connection of its own to the primary of the moment, for blocking reads. Once the
    /// primary moves, its commands fail, so that its user connects again.
    pub(crate) async fn dedicated(
        &self,
        config: &redis::AsyncConnectionConfig,
    ) -> redis::RedisResult<Dedicated> {
        let primary = self.current()?;
        match primary
            .client
            .get_multiplexed_async_connection_with_config(config)
            .await
        {
            Ok(conn) => Ok(Dedicated {
                conn,
                generation: primary.generation,
                connector: self.clone(),
            }),
            Err(err) => {
                self.lost(&err);
                Err(err)
            }
        }
    }

    /// A command or a connection failed with `err`: under Sentinel, when it says the primary
    /// is lost (or no longer a primary), Sentinel is asked again.
    pub(super) fn lost(&self, err: &redis::RedisError) {
        if primary_lost(err) {
            self.check_primary();
        }
    }

    /// Under Sentinel, a task asks the Sentinels for the primary until they name one that
    /// answers as a primary, and makes it the primary of the moment; one such task at a time.
    fn check_primary(&self) {
        if self.is_sentinel() && !self.0.following.swap(true, Ordering::AcqRel) {
            tokio::spawn(follow_primary(Arc::downgrade(&self.0)));
        }
    }

    /// The primary's client, at start: under Sentinel, first that some Sentinel answers as
    /// one, so that the error says which part failed.
    async fn primary_at_start(&self) -> Result<redis::Client, ClusterError> {
        let failed = |message: String| ClusterError::Redis {
            url: self.0.where_.clone(),
            message,
        };
        if let Source::Sentinel {
            sentinels, master, ..
        } = &self.0.source
        {
            let mut last = String::new();
            let mut answered = false;
            for sentinel in sentinels {
                let addr = sentinel.get_connection_info().addr().to_string();
                match self.sentinel_role(sentinel).await {
                    Ok(true) => {
                        answered = true;
                        break;
                    }
                    Ok(false) => last = format!("{addr} is not a Sentinel (ROLE)"),
                    Err(err) => last = format!("{addr}: {}", self.describe_sentinel(&err)),
                }
            }
            if !answered {
                return Err(failed(format!("no Sentinel answered; the last: {last}")));
            }
            let client = self.lookup().await.map_err(|err| {
                failed(format!(
                    "the Sentinels name no reachable primary {master:?}: {}",
                    self.describe(&err)
                ))
            })?;
            *self
                .0
                .primary
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Primary {
                generation: 0,
                addr: client.get_connection_info().addr().to_string(),
                client: client.clone(),
            });
            return Ok(client);
        }
        self.lookup()
            .await
            .map_err(|err| failed(self.describe(&err)))
    }

    /// Whether `sentinel` answers `ROLE` as a Sentinel.
    async fn sentinel_role(&self, sentinel: &redis::Client) -> redis::RedisResult<bool> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.0.lookup_timeout))
            .set_response_timeout(Some(self.0.lookup_timeout));
        let mut conn = sentinel
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let role: redis::Value = redis::cmd("ROLE").query_async(&mut conn).await?;
        Ok(matches!(role, redis::Value::Array(items)
            if matches!(items.first(), Some(redis::Value::BulkString(b)) if b == b"sentinel")))
    }

    /// A Sentinel's error, for the operator.
    fn describe_sentinel(&self, err: &redis::RedisError) -> String {
        match classify(err) {
            Problem::WrongCredentials => format!(
                "authentication failed: the Sentinel refused the user and password (set \
                 KVS_REDIS_SENTINEL_USERNAME, and KVS_REDIS_SENTINEL_PASSWORD or \
                 --redis-sentinel-password-file) ({err})"
            ),
            Problem::NoCredentials => format!(
                "authentication required: the Sentinel asks for a password (set \
                 KVS_REDIS_SENTINEL_PASSWORD or --redis-sentinel-password-file) ({err})"
            ),
            _ => self.describe(err),
        }
    }

    /// An error reaching the primary, for the operator: the kind of problem first, never a
    /// password.
    pub(crate) fn describe(&self, err: &redis::RedisError) -> String {
        let user = self.0.username.as_deref().unwrap_or("default");
        match classify(err) {
            Problem::WrongCredentials => format!(
                "authentication failed: Redis refused user {user:?} with the password given \
                 (check KVS_REDIS_USERNAME, and KVS_REDIS_PASSWORD or --redis-password-file) \
                 ({err})"
            ),
            Problem::NoCredentials => format!(
                "authentication required: Redis asks for a password and none was given (set \
                 KVS_REDIS_PASSWORD or --redis-password-file, and KVS_REDIS_USERNAME for an ACL \
                 user) ({err})"
            ),
            Problem::NoPermission => format!(
                "permission denied: the ACL user {user:?} may not run a command the cluster \
                 needs ({err}); grant what the README's ACL line grants"
            ),
            Problem::UntrustedCertificate => format!(
                "TLS: Redis's certificate is not trusted ({err}); give the CA that signed it \
                 with --redis-ca-file (KVS_REDIS_CA_FILE, [redis] ca_file)"
            ),
            Problem::Tls => format!(
                "TLS handshake failed ({err}); if Redis requires a client certificate \
                 (tls-auth-clients yes), give one with --redis-client-cert and \
                 --redis-client-key"
            ),
            Problem::Other => err.to_string(),
        }
    }
}

/// What kind of problem an error is, for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    WrongCredentials,
    NoCredentials,
    NoPermission,
    UntrustedCertificate,
    Tls,
    Other,
}

fn classify(err: &redis::RedisError) -> Problem {
    let text = err.to_string();
    match (err.kind(), err.code()) {
        (redis::ErrorKind::AuthenticationFailed, _) | (_, Some("WRONGPASS")) => {
            Problem::WrongCredentials
        }
        (_, Some("NOAUTH")) => Problem::NoCredentials,
        (redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm), _) | (_, Some("NOPERM")) => {
            Problem::NoPermission
        }
        (redis::ErrorKind::Io, _)
            if text.contains("invalid peer certificate") || text.contains("UnknownIssuer") =>
        {
            Problem::UntrustedCertificate
        }
        (redis::ErrorKind::Io, _)
            if text.contains("alert")
                || text.contains("certificate")
                || text.contains("TLS")
                || text.contains("tls")
                || text.contains("handshake") =>
        {
            Problem::Tls
        }
        _ => Problem::Other,
    }
}

/// Whether `err` says the connection to the primary is lost, or no longer to a primary (a
/// failover demoted it): then Sentinel is asked again.
fn primary_lost(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
        || matches!(err.code(), Some("READONLY" | "MASTERDOWN"))
}

/// Asks the Sentinels for the primary until they name one that answers as a primary, and
/// makes it the primary of the moment if it moved: the shared connection and the connections
/// of their own go to it from then on.
async fn follow_primary(inner: Weak<ConnectorInner>) {
    let mut pause = Duration::from_millis(100);
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let connector = Connector(inner);
        match connector.lookup().await {
            Ok(client) => {
                let addr = client.get_connection_info().addr().to_string();
                let mut primary = connector
                    .0
                    .primary
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (generation, old) = primary
                    .as_ref()
                    .map_or((0, String::new()), |p| (p.generation, p.addr.clone()));
                if addr != old {
                    *primary = Some(Primary {
                        generation: generation + 1,
                        addr: addr.clone(),
                        client,
                    });
                    tracing::warn!(
                        from = %old,
                        to = %addr,
                        "the cluster's Redis primary moved (a Sentinel failover): commands go \
                         to the new primary"
                    );
                }
                connector.0.following.store(false, Ordering::Release);
                return;
            }
            Err(err) => {
                if let Some(suppressed) = PRIMARY_LOST.check() {
                    tracing::warn!(
                        err = %connector.describe(&err),
                        suppressed,
                        "the cluster's Redis primary is lost; asking Sentinel again"
                    );
                }
            }
        }
        drop(connector);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Asks a Sentinel every `interval` which primary it names: after a switchover the old
/// primary goes on taking writes until Sentinel demotes it (seconds later), so that an
/// error alone would come too late. One connection to one Sentinel at a time, the next one
/// after a failure.
async fn watch_sentinels(inner: Weak<ConnectorInner>, interval: Duration) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut next = 0usize;
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let connector = Connector(inner);
        let Source::Sentinel {
            sentinels, master, ..
        } = &connector.0.source
        else {
            return;
        };
        let mut sentinel = match conn.take() {
            Some(sentinel) => sentinel,
            None => {
                let Some(client) = sentinels.get(next % sentinels.len().max(1)) else {
                    return;
                };
                next = next.wrapping_add(1);
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connector.0.lookup_timeout))
                    .set_response_timeout(Some(connector.0.lookup_timeout));
                match client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                {
                    Ok(sentinel) => sentinel,
                    Err(_) => continue,
                }
            }
        };
        let named: redis::RedisResult<Option<(String, String)>> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(master)
            .query_async(&mut sentinel)
            .await;
        match named {
            Ok(Some((host, port))) => {
                conn = Some(sentinel);
                let current = connector.current().map(|primary| primary.addr);
                if current.as_deref() != Ok(&format!("{host}:{port}")) {
                    connector.check_primary();
                }
            }
            Ok(None) => conn = Some(sentinel),
            Err(_) => {}
        }
    }
}

static PRIMARY_LOST: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(Duration::from_secs(10));

/// Connects to the cluster's Redis as `config` says, and checks it: the shared connection,
/// and the connector for connections of their own. Under Sentinel, a task watches which
/// primary the Sentinels name from then on.
pub(crate) async fn connect(config: &ClusterConfig) -> Result<(Redis, Connector), ClusterError> {
    let connector = Connector::new(config)?;
    let where_ = connector.where_().to_owned();
    let failed = |message: String| ClusterError::Redis {
        url: where_.clone(),
        message,
    };
    let primary = connector.primary_at_start().await?;
    // One connection first, without the manager's retries, so that a refusal (credentials,
    // TLS, ACL) is told at once and plainly.
    let probe_config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.command_timeout))
        .set_response_timeout(Some(config.command_timeout));
    let mut probe = primary
        .get_multiplexed_async_connection_with_config(&probe_config)
        .await
        .map_err(|err| failed(connector.describe(&err)))?;
    check_server(&mut probe, &connector).await?;
    drop(probe);
    let mut manager_config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(config.command_timeout))
        .set_connection_timeout(Some(config.command_timeout));
    if connector.is_sentinel() {
        // The manager retries the address it has; under Sentinel, asking the Sentinels again
        // is the better retry, so the manager gives up soon.
        manager_config = manager_config.set_number_of_retries(1);
        tokio::spawn(watch_sentinels(
            Arc::downgrade(&connector.0),
            config.heartbeat_interval,
        ));
    }
    let redis = Redis::connect(connector.clone(), manager_config)
        .await
        .map_err(|err| failed(connector.describe(&err)))?;
    Ok((redis, connector))
}

/// Checks that the Redis keeps what the cluster writes: version 6.2 or newer (streams trimmed
/// by id), and `maxmemory-policy noeviction` (managed defaults such as `volatile-lru` evict
/// exactly the keys with expiries, and `allkeys-*` any). Read from `INFO`, which managed
/// services allow, not `CONFIG`, which many refuse; an ACL user needs `+info`.
async fn check_server(
    redis: &mut impl ConnectionLike,
    connector: &Connector,
) -> Result<(), ClusterError> {
    let where_ = connector.where_();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .arg("memory")
        .query_async(redis)
        .await
        .map_err(|err| ClusterError::Redis {
            url: where_.to_owned(),
            message: match classify(&err) {
                Problem::NoPermission => format!(
                    "permission denied: the ACL user {:?} may not run INFO ({err}), which the \
                     cluster reads at start to check the Redis version and \
                     maxmemory-policy: grant it (+info)",
                    connector.0.username.as_deref().unwrap_or("default")
                ),
                _ => connector.describe(&err),
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused_with_the_option_and_never_the_password() {
        let err = |config: ClusterConfig| match Connector::new(&config) {
            Err(ClusterError::Config(message)) => message,
            other => panic!("{other:?}"),
        };
        let message = err(ClusterConfig::new("http://u:hunter2@cache:6379"));
        assert!(
            message.contains("not a Redis URL") && !message.contains("hunter2"),
            "{message}"
        );
        let message = err(ClusterConfig::new("redis://cache").key_prefix("a:b"));
        assert!(message.contains("key prefix"), "{message}");
        let message =
            err(ClusterConfig::new("redis://u:hunter2@cache").ca_file("/nonexistent/ca.pem"));
        assert!(
            message.starts_with("--redis-ca-file") && message.contains("/nonexistent/ca.pem: "),
            "{message}"
        );
        let dir = std::env::temp_dir().join(format!("kvs-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no PEM here\n").unwrap();
        let message = err(ClusterConfig::new("rediss://cache").ca_file(&empty));
        assert!(
            message.contains("--redis-ca-file") && message.contains("holds no certificate"),
            "{message}"
        );
        let ca = rcgen::generate_simple_self_signed(vec!["cache".to_owned()]).unwrap();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.cert.pem()).unwrap();
        let message = err(ClusterConfig::new("redis://u:hunter2@cache").ca_file(&ca_path));
        assert!(
            message.contains("use rediss://") && !message.contains("hunter2"),
            "{message}"
        );
        let message =
            err(ClusterConfig::new("rediss://cache").client_certificate(&ca_path, &empty));
        assert!(
            message.contains("--redis-client-key") && message.contains("holds no private key"),
            "{message}"
        );
        let mut half = ClusterConfig::new("rediss://cache");
        half.client_cert_file = Some(ca_path.clone());
        assert!(err(half).contains("go together"));
        let message =
            err(ClusterConfig::new("redis://cache")
                .sentinel_credentials(None, Some("x".to_owned())));
        assert!(message.contains("not a redis+sentinel:// URL"), "{message}");
        // A good TLS setting builds.
        let key_path = dir.join("key.pem");
        std::fs::write(&key_path, ca.signing_key.serialize_pem()).unwrap();
        assert!(
            Connector::new(
                &ClusterConfig::new("rediss://cache:6380")
                    .ca_file(&ca_path)
                    .client_certificate(&ca_path, &key_path)
            )
            .is_ok()
        );
        assert!(
            Connector::new(
                &ClusterConfig::new("rediss+sentinel://s1,s2:26380/main")
                    .ca_file(&ca_path)
                    .sentinel_credentials(Some("sentinel".to_owned()), Some("x".to_owned()))
            )
            .is_ok()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
