//! The command line: `serve` and `connect`, their flags and environment variables (clap), and
//! the settings of `serve` as the config file, the environment and the flags give them,
//! flags winning over the environment, which wins over the file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kvs_ice_rest::Credentials;
use kvs_signaling_server::{FileConfig, IndicationPolicy, LimitsSection, Scope};

use crate::repl::ConnectOptions;

/// kvs-signaling: a self-hostable Amazon Kinesis Video Streams WebRTC signaling server, and a
/// client to try it (or AWS) with.
#[derive(Debug, Parser)]
#[command(name = "kvs-signaling", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serves the control plane, the HTTPS data plane and the WebSocket connects.
    Serve(Box<ServeArgs>),
    /// Joins a signaling channel as its master or a viewer: prints every event as a line of
    /// JSON and sends what you type.
    Connect(Box<ConnectOptions>),
}

/// The flags of `serve`. Each one wins over its environment variable, which wins over the
/// config file.
#[derive(Debug, Args)]
#[command(after_help = "Flags win over the environment variables, which win over the config file.")]
pub(crate) struct ServeArgs {
    /// A TOML file with any of these settings, several access keys limited to channels and
    /// roles, and the service's limits (see kvs-signaling.example.toml).
    #[arg(long, value_name = "FILE", env = "KVS_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Where to listen [default: 127.0.0.1:8443].
    #[arg(long, value_name = "ADDR", env = "KVS_LISTEN")]
    pub(crate) listen: Option<SocketAddr>,
    /// The URL clients reach this server at, such as a load balancer's [default: https://ADDR].
    #[arg(long, value_name = "URL", env = "KVS_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
    /// The certificate chain (PEM) to serve. Without it and --tls-key: a local development CA
    /// and certificate, made once in DATA_DIR/tls (trust DATA_DIR/tls/ca.pem).
    #[arg(long, value_name = "PATH", env = "KVS_TLS_CERT")]
    pub(crate) tls_cert: Option<String>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "PATH", env = "KVS_TLS_KEY")]
    pub(crate) tls_key: Option<String>,
    /// Serve plain HTTP.
    #[arg(long)]
    pub(crate) no_tls: bool,
    /// The region of ARNs and signatures [default: us-west-2].
    #[arg(long, value_name = "REGION", env = "KVS_REGION")]
    pub(crate) region: Option<String>,
    /// The access key clients sign with (generated and printed when no key is given anywhere).
    #[arg(long, value_name = "ID", env = "KVS_ACCESS_KEY_ID")]
    pub(crate) access_key_id: Option<String>,
    /// Its secret.
    #[arg(
        long,
        value_name = "KEY",
        env = "KVS_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub(crate) secret_access_key: Option<String>,
    /// A turn: or turns: URI to hand out (repeatable, at most 4).
    #[arg(long = "turn-uri", value_name = "URI")]
    pub(crate) turn_uris: Vec<String>,
    /// coturn's static-auth-secret (generated and printed when TURN URIs are given without it).
    #[arg(
        long,
        value_name = "SECRET",
        env = "KVS_TURN_SECRET",
        hide_env_values = true
    )]
    pub(crate) turn_secret: Option<String>,
    /// A stun: URI to hand out (repeatable) [default: stun:127.0.0.1:3478].
    #[arg(long = "stun-uri", value_name = "URI")]
    pub(crate) stun_uris: Vec<String>,
    /// Where channels are kept [default: .kvs-signaling].
    #[arg(long, value_name = "DIR", env = "KVS_DATA_DIR")]
    pub(crate) data_dir: Option<String>,
    /// Keep channels in memory only (lost when the server stops).
    #[arg(long)]
    pub(crate) in_memory: bool,
    /// Hubs sharing the channels [default: one per CPU].
    #[arg(long, value_name = "N")]
    pub(crate) shards: Option<usize>,
    /// Which WebSocket clients get GO_AWAY and RECONNECT_ICE_SERVER: opt-in (those connecting
    /// with X-Kvs-Indications=true), unless-c-sdk, always or never [default: opt-in].
    #[arg(long, value_name = "POLICY", env = "KVS_INDICATIONS", value_parser = parse_policy)]
    pub(crate) indications: Option<IndicationPolicy>,
    /// A web origin that may call the REST API from a browser, such as
    /// `https://app.example.com` (repeatable, or comma-separated in the variable; * for any)
    /// [default: *].
    #[arg(
        long = "cors-origin",
        value_name = "ORIGIN",
        env = "KVS_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub(crate) cors_origins: Vec<String>,
    /// Accept unsigned requests: throwaway local use only.
    #[arg(long)]
    pub(crate) insecure_no_auth: bool,
    /// The token of the live console's URL (at least 16 letters and digits) [default: a random
    /// one, printed at start].
    #[arg(
        long,
        value_name = "TOKEN",
        env = "KVS_CONSOLE_TOKEN",
        hide_env_values = true
    )]
    pub(crate) console_token: Option<String>,
    /// Serve no console at /console/.
    #[arg(long)]
    pub(crate) no_console: bool,
    /// Cluster mode: this node and others serve one set of channels kept in this Redis
    /// (`redis://HOST:PORT`, `rediss://HOST:PORT` for TLS, or through Sentinel
    /// `redis+sentinel://HOST:PORT[,HOST:PORT...]/PRIMARY-NAME`, `rediss+sentinel://` for TLS);
    /// --public-url is then required.
    #[arg(long, value_name = "URL", env = "KVS_CLUSTER")]
    pub(crate) cluster: Option<String>,
    /// The prefix of the cluster's Redis keys [default: kvs].
    #[arg(long, value_name = "PREFIX", env = "KVS_CLUSTER_PREFIX")]
    pub(crate) cluster_prefix: Option<String>,
    /// A file holding the Redis password (or set KVS_REDIS_PASSWORD; KVS_REDIS_USERNAME for an
    /// ACL user).
    #[arg(long, value_name = "PATH", env = "KVS_REDIS_PASSWORD_FILE")]
    pub(crate) redis_password_file: Option<PathBuf>,
    /// The CA certificates (PEM) Redis's certificate chains to, for rediss:// [default: the
    /// system's roots].
    #[arg(long, value_name = "PATH", env = "KVS_REDIS_CA_FILE")]
    pub(crate) redis_ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for a Redis that requires one (mutual TLS), with
    /// --redis-client-key.
    #[arg(long, value_name = "PATH", env = "KVS_REDIS_CLIENT_CERT")]
    pub(crate) redis_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "PATH", env = "KVS_REDIS_CLIENT_KEY")]
    pub(crate) redis_client_key: Option<PathBuf>,
    /// A file holding the Sentinels' password, under redis+sentinel:// (or set
    /// KVS_REDIS_SENTINEL_PASSWORD; KVS_REDIS_SENTINEL_USERNAME for an ACL user).
    #[arg(long, value_name = "PATH", env = "KVS_REDIS_SENTINEL_PASSWORD_FILE")]
    pub(crate) redis_sentinel_password_file: Option<PathBuf>,
}

/// The password in the file at `path` (its first line), the error naming `source`.
fn read_password(path: &str, source: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("{source}: {path}: {err}"))?;
    let password = text.lines().next().unwrap_or("").trim_end();
    if password.is_empty() {
        return Err(format!("{source}: {path} holds no password"));
    }
    Ok(password.to_owned())
}

fn parse_policy(text: &str) -> Result<IndicationPolicy, String> {
    text.parse()
}

/// The settings of `serve`, merged from the config file, the environment and the flags.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) listen: SocketAddr,
    pub(crate) public_url: Option<String>,
    pub(crate) region: String,
    /// Keys from the config file, each with its limits.
    pub(crate) file_credentials: Vec<(Credentials, Option<Scope>)>,
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key: Option<String>,
    pub(crate) turn_uris: Vec<String>,
    pub(crate) turn_secrets: Vec<String>,
    pub(crate) stun_uris: Vec<String>,
    pub(crate) ice_ttl: Option<u32>,
    pub(crate) data_dir: String,
    /// Keep channels in memory only; the data directory still holds the development TLS files.
    pub(crate) in_memory: bool,
    pub(crate) shards: Option<usize>,
    pub(crate) indications: IndicationPolicy,
    /// The web origins allowed; any when absent.
    pub(crate) cors_origins: Option<Vec<String>>,
    pub(crate) cors_max_age: Option<u64>,
    pub(crate) tls_cert: Option<String>,
    pub(crate) tls_key: Option<String>,
    pub(crate) no_tls: bool,
    pub(crate) insecure: bool,
    pub(crate) limits: LimitsSection,
    pub(crate) console_token: Option<String>,
    pub(crate) no_console: bool,
    /// Cluster mode's Redis URL, key prefix, ACL user and password, TLS files, and the
    /// Sentinels' user and password.
    pub(crate) cluster: Option<String>,
    pub(crate) cluster_prefix: Option<String>,
    pub(crate) redis_username: Option<String>,
    pub(crate) redis_password: Option<String>,
    pub(crate) redis_ca_file: Option<PathBuf>,
    pub(crate) redis_client_cert: Option<PathBuf>,
    pub(crate) redis_client_key: Option<PathBuf>,
    pub(crate) redis_sentinel_username: Option<String>,
    pub(crate) redis_sentinel_password: Option<String>,
    /// The config file, read again on SIGHUP for new TURN secrets.
    pub(crate) config_path: Option<PathBuf>,
}

impl Options {
    fn defaults() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            public_url: None,
            region: "us-west-2".to_owned(),
            file_credentials: Vec::new(),
            access_key_id: None,
            secret_access_key: None,
            turn_uris: Vec::new(),
            turn_secrets: Vec::new(),
            stun_uris: vec!["stun:127.0.0.1:3478".to_owned()],
            ice_ttl: None,
            data_dir: ".kvs-signaling".to_owned(),
            in_memory: false,
            shards: None,
            indications: IndicationPolicy::default(),
            cors_origins: None,
            cors_max_age: None,
            tls_cert: None,
            tls_key: None,
            no_tls: false,
            insecure: false,
            limits: LimitsSection::default(),
            console_token: None,
            no_console: false,
            cluster: None,
            cluster_prefix: None,
            redis_username: None,
            redis_password: None,
            redis_ca_file: None,
            redis_client_cert: None,
            redis_client_key: None,
            redis_sentinel_username: None,
            redis_sentinel_password: None,
            config_path: None,
        }
    }

    /// The defaults, under the config file (when one is named), under the environment and the
    /// flags (which clap has already merged, flags first).
    pub(crate) fn resolve(args: ServeArgs) -> Result<Self, String> {
        let mut options = Self::defaults();
        if let Some(path) = &args.config {
            options.apply_file(FileConfig::load(path)?)?;
            options.config_path = Some(path.clone());
        }
        options.apply_args(args)?;
        Ok(options)
    }

    /// What the config file sets.
    fn apply_file(&mut self, file: FileConfig) -> Result<(), String> {
        if let Some(listen) = &file.listen {
            self.listen = listen
                .parse()
                .map_err(|_| format!("listen: {listen:?} is not an address like 127.0.0.1:8080"))?;
        }
        self.public_url = file.public_url.or(self.public_url.take());
        if let Some(region) = file.region {
            self.region = region;
        }
        if let Some(dir) = file.data_dir {
            self.data_dir = dir;
        }
        self.in_memory |= file.in_memory == Some(true);
        self.shards = file.shards.or(self.shards);
        if let Some(policy) = &file.indications {
            self.indications = policy
                .parse()
                .map_err(|err| format!("indications: {err}"))?;
        }
        self.insecure |= file.insecure_no_auth == Some(true);
        if let Some(cors) = file.cors {
            self.cors_origins = cors.allowed_origins.or(self.cors_origins.take());
            self.cors_max_age = cors.max_age_seconds.or(self.cors_max_age);
        }
        if let Some(tls) = file.tls {
            self.tls_cert = tls.cert.or(self.tls_cert.take());
            self.tls_key = tls.key.or(self.tls_key.take());
            self.no_tls |= tls.disabled == Some(true);
        }
        for entry in &file.credentials {
            self.file_credentials.push(entry.resolve()?);
        }
        if let Some(ice) = file.ice {
            if let Some(uris) = ice.stun_uris {
                self.stun_uris = uris;
            }
            if let Some(uris) = ice.turn_uris {
                self.turn_uris = uris;
            }
            if let Some(secrets) = ice.turn_secrets {
                self.turn_secrets = secrets;
            }
            self.ice_ttl = ice.ttl_seconds.or(self.ice_ttl);
        }
        if let Some(limits) = file.limits {
            self.limits = limits;
        }
        if let Some(console) = file.console {
            self.console_token = console.token.or(self.console_token.take());
            self.no_console |= console.enabled == Some(false);
        }
        self.cluster = file.cluster.or(self.cluster.take());
        if let Some(redis) = file.redis {
            self.cluster_prefix = redis.key_prefix.or(self.cluster_prefix.take());
            self.redis_username = redis.username.or(self.redis_username.take());
            if let Some(path) = redis.password_file {
                self.redis_password = Some(read_password(&path, "redis.password_file")?);
            }
            self.redis_ca_file = redis
                .ca_file
                .map(PathBuf::from)
                .or(self.redis_ca_file.take());
            self.redis_client_cert = redis
                .client_cert
                .map(PathBuf::from)
                .or(self.redis_client_cert.take());
            self.redis_client_key = redis
                .client_key
                .map(PathBuf::from)
                .or(self.redis_client_key.take());
            self.redis_sentinel_username = redis
                .sentinel_username
                .or(self.redis_sentinel_username.take());
            if let Some(path) = redis.sentinel_password_file {
                self.redis_sentinel_password =
                    Some(read_password(&path, "redis.sentinel_password_file")?);
            }
        }
        Ok(())
    }

    /// What the flags and the environment set.
    fn apply_args(&mut self, args: ServeArgs) -> Result<(), String> {
        let ServeArgs {
            config: _,
            listen,
            public_url,
            tls_cert,
            tls_key,
            no_tls,
            region,
            access_key_id,
            secret_access_key,
            turn_uris,
            turn_secret,
            stun_uris,
            data_dir,
            in_memory,
            shards,
            indications,
            cors_origins,
            insecure_no_auth,
            console_token,
            no_console,
            cluster,
            cluster_prefix,
            redis_password_file,
            redis_ca_file,
            redis_client_cert,
            redis_client_key,
            redis_sentinel_password_file,
        } = args;
        if let Some(listen) = listen {
            self.listen = listen;
        }
        self.public_url = public_url.or(self.public_url.take());
        self.tls_cert = tls_cert.or(self.tls_cert.take());
        self.tls_key = tls_key.or(self.tls_key.take());
        self.no_tls |= no_tls;
        if let Some(region) = region {
            self.region = region;
        }
        self.access_key_id = access_key_id.or(self.access_key_id.take());
        self.secret_access_key = secret_access_key.or(self.secret_access_key.take());
        if !turn_uris.is_empty() {
            self.turn_uris = turn_uris;
        }
        if let Some(secret) = turn_secret {
            self.turn_secrets = vec![secret];
        }
        if !stun_uris.is_empty() {
            self.stun_uris = stun_uris;
        }
        if let Some(dir) = data_dir {
            self.data_dir = dir;
        }
        self.in_memory |= in_memory;
        self.shards = shards.or(self.shards);
        if let Some(policy) = indications {
            self.indications = policy;
        }
        let cors_origins: Vec<String> = cors_origins
            .into_iter()
            .map(|origin| origin.trim().to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        if !cors_origins.is_empty() {
            self.cors_origins = Some(cors_origins);
        }
        self.insecure |= insecure_no_auth;
        self.console_token = console_token.or(self.console_token.take());
        self.no_console |= no_console;
        self.cluster = cluster.or(self.cluster.take());
        self.cluster_prefix = cluster_prefix.or(self.cluster_prefix.take());
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        self.redis_username = env("KVS_REDIS_USERNAME").or(self.redis_username.take());
        if let Some(password) = env("KVS_REDIS_PASSWORD") {
            self.redis_password = Some(password);
        }
        if let Some(path) = redis_password_file {
            self.redis_password = Some(read_password(
                &path.to_string_lossy(),
                "--redis-password-file",
            )?);
        }
        self.redis_ca_file = redis_ca_file.or(self.redis_ca_file.take());
        self.redis_client_cert = redis_client_cert.or(self.redis_client_cert.take());
        self.redis_client_key = redis_client_key.or(self.redis_client_key.take());
        self.redis_sentinel_username =
            env("KVS_REDIS_SENTINEL_USERNAME").or(self.redis_sentinel_username.take());
        if let Some(password) = env("KVS_REDIS_SENTINEL_PASSWORD") {
            self.redis_sentinel_password = Some(password);
        }
        if let Some(path) = redis_sentinel_password_file {
            self.redis_sentinel_password = Some(read_password(
                &path.to_string_lossy(),
                "--redis-sentinel-password-file",
            )?);
        }
        Ok(())
    }
}

/// The settings `serve` resolves from `list`, its flags (tests).
#[cfg(test)]
pub(crate) fn serve_options(list: &[&str]) -> Result<Options, String> {
    let mut all = vec!["kvs-signaling", "serve"];
    all.extend_from_slice(list);
    let cli = Cli::try_parse_from(all).map_err(|err| err.to_string())?;
    let Command::Serve(args) = cli.command else {
        unreachable!("serve parses as serve")
    };
    Options::resolve(*args)
}
