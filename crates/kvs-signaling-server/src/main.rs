//! The `kvs-signaling` binary.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use kvs_ice_rest::{Credentials, TurnConfig, TurnSecret};
use kvs_signaling_proto::{IceServerTtl, IceUri};
use std::path::{Path, PathBuf};

mod repl;
use kvs_signaling_server::{
    AllowedOrigins, AuthMode, FileConfig, IndicationPolicy, LimitsSection, Scope, Server,
    ServerConfig, TlsFiles, dev_certificate,
};

/// The policy `text` names, the error naming where it came from.
fn indication_policy(source: &str, text: &str) -> Result<IndicationPolicy, String> {
    text.parse().map_err(|err| format!("{source}: {err}"))
}

const USAGE: &str = "\
kvs-signaling: a self-hostable Amazon Kinesis Video Streams WebRTC signaling server

usage:
  kvs-signaling serve [options]
  kvs-signaling connect --channel NAME --role master|viewer [options]
                             an interactive client (connect --help tells more)

Flags win over the environment variables in brackets, which win over the config file.

options:
  --config FILE              a TOML file with any of the settings below, several access
                             keys limited to channels and roles, and the service's limits
                             (see kvs-signaling.example.toml)      [KVS_CONFIG]
  --listen ADDR              where to listen                      [KVS_LISTEN] (127.0.0.1:8443)
  --public-url URL           the URL clients reach this server at [KVS_PUBLIC_URL]
                             (https://ADDR; set it behind a proxy)
  --tls-cert PATH            certificate chain (PEM) to serve     [KVS_TLS_CERT]
  --tls-key PATH             its private key (PEM)                [KVS_TLS_KEY]
                             (without them: a local development CA and certificate,
                             made once in DATA_DIR/tls; trust DATA_DIR/tls/ca.pem)
  --no-tls                   serve plain HTTP
  --region REGION            region of ARNs and signatures        [KVS_REGION] (us-west-2)
  --access-key-id ID         the access key clients sign with     [KVS_ACCESS_KEY_ID]
  --secret-access-key KEY    its secret                           [KVS_SECRET_ACCESS_KEY]
                             (both generated and printed when absent)
  --turn-uri URI             a turn:/turns: URI to hand out (repeatable, at most 4)
  --turn-secret SECRET       coturn's static-auth-secret          [KVS_TURN_SECRET]
                             (generated and printed when absent)
  --stun-uri URI             a stun: URI to hand out (repeatable) (stun:127.0.0.1:3478)
  --data-dir DIR             where channels are kept              [KVS_DATA_DIR] (.kvs-signaling)
  --in-memory                keep channels in memory only (lost when the server stops)
  --shards N                 hubs sharing the channels            (one per CPU)
  --indications POLICY       which WebSocket clients get GO_AWAY and RECONNECT_ICE_SERVER:
                             opt-in (those connecting with X-Kvs-Indications=true),
                             unless-c-sdk, always or never        [KVS_INDICATIONS] (opt-in)
  --cors-origin ORIGIN       a web origin that may call the REST API from a browser,
                             such as https://app.example.com (repeatable; * for any)
                                                [KVS_CORS_ORIGINS, comma-separated] (*)
  --insecure-no-auth         accept unsigned requests: throwaway local use only
  -h, --help                 this text
";

#[derive(Debug)]
struct Options {
    listen: SocketAddr,
    public_url: Option<String>,
    region: String,
    /// Keys from the config file, each with its limits.
    file_credentials: Vec<(Credentials, Option<Scope>)>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    turn_uris: Vec<String>,
    turn_secrets: Vec<String>,
    stun_uris: Vec<String>,
    ice_ttl: Option<u32>,
    data_dir: String,
    /// Keep channels in memory only; the data directory still holds the development TLS files.
    in_memory: bool,
    shards: Option<usize>,
    indications: IndicationPolicy,
    /// The web origins allowed; any when absent.
    cors_origins: Option<Vec<String>>,
    cors_max_age: Option<u64>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    no_tls: bool,
    insecure: bool,
    limits: LimitsSection,
    /// The config file, read again on SIGHUP for new TURN secrets.
    config_path: Option<PathBuf>,
}

fn parse_listen(source: &str, text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{source}: {text:?} is not an address like 127.0.0.1:8080"))
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
            config_path: None,
        }
    }

    /// What the config file sets.
    fn apply_file(&mut self, file: FileConfig) -> Result<(), String> {
        if let Some(listen) = &file.listen {
            self.listen = parse_listen("listen", listen)?;
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
            self.indications = indication_policy("indications", policy)?;
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
        Ok(())
    }

    /// What the environment sets.
    fn apply_env(&mut self) -> Result<(), String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(listen) = env("KVS_LISTEN") {
            self.listen = parse_listen("KVS_LISTEN", &listen)?;
        }
        self.public_url = env("KVS_PUBLIC_URL").or(self.public_url.take());
        if let Some(region) = env("KVS_REGION") {
            self.region = region;
        }
        self.access_key_id = env("KVS_ACCESS_KEY_ID").or(self.access_key_id.take());
        self.secret_access_key = env("KVS_SECRET_ACCESS_KEY").or(self.secret_access_key.take());
        if let Some(secret) = env("KVS_TURN_SECRET") {
            self.turn_secrets = vec![secret];
        }
        if let Some(policy) = env("KVS_INDICATIONS") {
            self.indications = indication_policy("KVS_INDICATIONS", &policy)?;
        }
        if let Some(origins) = env("KVS_CORS_ORIGINS") {
            self.cors_origins = Some(origins.split(',').map(|o| o.trim().to_owned()).collect());
        }
        if let Some(dir) = env("KVS_DATA_DIR") {
            self.data_dir = dir;
        }
        self.tls_cert = env("KVS_TLS_CERT").or(self.tls_cert.take());
        self.tls_key = env("KVS_TLS_KEY").or(self.tls_key.take());
        Ok(())
    }

    /// What the flags set.
    fn apply_flags(&mut self, args: &[String]) -> Result<(), String> {
        let mut args = args.iter();
        let mut turn_uris = Vec::new();
        let mut stun_uris = Vec::new();
        let mut cors_origins = Vec::new();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--config" => {
                    value()?; // read before the other flags
                }
                "--listen" => self.listen = parse_listen("--listen", &value()?)?,
                "--public-url" => self.public_url = Some(value()?),
                "--region" => self.region = value()?,
                "--access-key-id" => self.access_key_id = Some(value()?),
                "--secret-access-key" => self.secret_access_key = Some(value()?),
                "--turn-uri" => turn_uris.push(value()?),
                "--turn-secret" => self.turn_secrets = vec![value()?],
                "--stun-uri" => stun_uris.push(value()?),
                "--data-dir" => self.data_dir = value()?,
                "--in-memory" => self.in_memory = true,
                "--shards" => {
                    let text = value()?;
                    self.shards = Some(text.parse().map_err(|_| {
                        format!("--shards: {text:?} is not a number of hubs such as 2")
                    })?);
                }
                "--indications" => {
                    self.indications = indication_policy("--indications", &value()?)?;
                }
                "--tls-cert" => self.tls_cert = Some(value()?),
                "--tls-key" => self.tls_key = Some(value()?),
                "--no-tls" => self.no_tls = true,
                "--insecure-no-auth" => self.insecure = true,
                "--cors-origin" => cors_origins.push(value()?),
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        if !turn_uris.is_empty() {
            self.turn_uris = turn_uris;
        }
        if !stun_uris.is_empty() {
            self.stun_uris = stun_uris;
        }
        if !cors_origins.is_empty() {
            self.cors_origins = Some(cors_origins);
        }
        Ok(())
    }
}

fn parse(args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let args: Vec<String> = args.collect();
    match args.first().map(String::as_str) {
        Some("serve") => {}
        Some("-h" | "--help") | None => return Ok(None),
        Some("--version" | "-V") => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stdout(),
                "kvs-signaling {}",
                env!("CARGO_PKG_VERSION")
            );
            return Ok(None);
        }
        Some(other) => return Err(format!("unknown command {other:?}")),
    }
    let flags = &args[1..];
    if flags.iter().any(|f| f == "-h" || f == "--help") {
        return Ok(None);
    }
    let config_path = flags
        .iter()
        .position(|f| f == "--config")
        .map(|i| {
            flags
                .get(i + 1)
                .cloned()
                .ok_or_else(|| "--config needs a value".to_owned())
        })
        .transpose()?
        .or_else(|| std::env::var("KVS_CONFIG").ok().filter(|v| !v.is_empty()));
    let mut options = Options::defaults();
    if let Some(path) = config_path {
        options.apply_file(FileConfig::load(Path::new(&path))?)?;
        options.config_path = Some(PathBuf::from(path));
    }
    options.apply_env()?;
    options.apply_flags(flags)?;
    Ok(Some(options))
}

/// Random text from the OS random source, read here at the binary's edge.
fn random_text(len: usize, alphabet: &[u8]) -> String {
    use std::io::Read as _;
    let mut bytes = vec![0u8; len];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No OS random source: fall back to the clock, which is weaker but unique enough for
        // a local default that the user can replace.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
    bytes
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect()
}

/// The TLS files to serve with, and the development CA to trust when they are the defaults.
fn tls(options: &Options) -> Result<Option<(TlsFiles, Option<PathBuf>)>, String> {
    if options.no_tls {
        return Ok(None);
    }
    match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => Ok(Some((TlsFiles::new(cert, key), None))),
        (None, None) => {
            let dev =
                dev_certificate(Path::new(&options.data_dir)).map_err(|err| err.to_string())?;
            Ok(Some((dev.files, Some(dev.ca))))
        }
        _ => Err("--tls-cert and --tls-key go together".to_owned()),
    }
}

/// What `serve` prints about the keys: the one to use, when it came from flags, the
/// environment or was generated, and the ids of the file's.
struct Setup {
    config: ServerConfig,
    printed_key: Option<Credentials>,
    file_keys: Vec<String>,
    turn_secret: Option<String>,
    dev_ca: Option<PathBuf>,
}

fn config(options: &Options) -> Result<Setup, String> {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const ANY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut credentials: Vec<Credentials> = Vec::new();
    let mut scopes = Vec::new();
    for (key, scope) in &options.file_credentials {
        if let Some(scope) = scope {
            scopes.push((key.access_key_id.clone(), scope.clone()));
        }
        credentials.push(key.clone());
    }
    let file_keys = credentials
        .iter()
        .map(|c| c.access_key_id.clone())
        .collect();
    let printed_key = match (&options.access_key_id, &options.secret_access_key) {
        (Some(id), Some(secret)) => Some(Credentials::new(id, secret)),
        (Some(_), None) | (None, Some(_)) => {
            return Err("the access key id and its secret go together".to_owned());
        }
        (None, None) if credentials.is_empty() => Some(Credentials::new(
            format!("AKIA{}", random_text(16, UPPER)),
            random_text(40, ANY),
        )),
        (None, None) => None,
    };
    if let Some(key) = &printed_key {
        // A key from the flags or the environment replaces the file's entry of the same id.
        credentials.retain(|c| c.access_key_id != key.access_key_id);
        scopes.retain(|(id, _)| *id != key.access_key_id);
        credentials.insert(0, key.clone());
    }
    let uri = |text: &str| IceUri::new(text).map_err(|err| format!("{text:?}: {err}"));
    let turn_uris = options
        .turn_uris
        .iter()
        .map(|u| uri(u))
        .collect::<Result<Vec<_>, _>>()?;
    let stun_uris = options
        .stun_uris
        .iter()
        .map(|u| uri(u))
        .collect::<Result<Vec<_>, _>>()?;
    let mut turn_secrets = options.turn_secrets.clone();
    let mut turn_secret = None;
    if turn_secrets.is_empty() && !turn_uris.is_empty() {
        let secret = random_text(32, ANY);
        turn_secret = Some(secret.clone());
        turn_secrets.push(secret);
    }
    let ttl = match options.ice_ttl {
        Some(seconds) => IceServerTtl::new(seconds).map_err(|err| format!("ice ttl: {err}"))?,
        None => IceServerTtl::default(),
    };
    let ice = TurnConfig::new(
        turn_uris,
        stun_uris,
        turn_secrets.iter().map(TurnSecret::new).collect(),
        ttl,
    )
    .map_err(|err| err.to_string())?;
    let config = ServerConfig::new(options.listen, credentials, ice)
        .region(options.region.clone())
        .indications(options.indications);
    let mut config = options.limits.apply(config)?;
    for (id, scope) in scopes {
        config = config.limit(id, scope);
    }
    if let Some(shards) = options.shards {
        config = config.shards(shards);
    }
    if let Some(url) = &options.public_url {
        config = config.public_url(url.clone());
    }
    if options.insecure {
        config = config.auth(AuthMode::DisabledInsecure);
    }
    if let Some(origins) = &options.cors_origins {
        config.cors.allowed_origins =
            AllowedOrigins::parse(origins).map_err(|err| format!("cors origins: {err}"))?;
    }
    match options.cors_max_age {
        Some(0) => return Err("cors.max_age_seconds: must be at least 1 second".to_owned()),
        Some(seconds) => config.cors.max_age = Duration::from_secs(seconds),
        None => {}
    }
    if !options.in_memory {
        config = config.data_dir(options.data_dir.clone());
    }
    let mut dev_ca = None;
    if let Some((files, ca)) = tls(options)? {
        config = config.tls(files);
        dev_ca = ca;
    }
    Ok(Setup {
        config,
        printed_key,
        file_keys,
        turn_secret,
        dev_ca,
    })
}

/// Writes a line to standard output for the user, as `println!` does, except that a closed
/// output (a supervisor that stopped reading) is not an error: the server goes on serving.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

async fn serve(options: Options) -> Result<(), String> {
    let Setup {
        config,
        printed_key,
        file_keys,
        turn_secret,
        dev_ca,
    } = config(&options)?;
    let grace = config.hub.go_away_grace;
    // After the grace period, the closing handshakes the hub starts then may take this long.
    let closing = config.websocket.close_timeout + config.websocket.write_timeout;
    let region = config.region.clone();
    let data_dir = config.data_dir.clone();
    let server = Server::start(config).await.map_err(|err| err.to_string())?;
    say!(
        "kvs-signaling {} is serving on {}",
        env!("CARGO_PKG_VERSION"),
        server.public_url()
    );
    say!();
    say!("Point an AWS or KVS SDK at it with:");
    say!("  endpoint:               {}", server.public_url());
    say!("  region:                 {region}");
    if let Some(key) = printed_key {
        say!("  AWS_ACCESS_KEY_ID:      {}", key.access_key_id);
        say!("  AWS_SECRET_ACCESS_KEY:  {}", key.secret_access_key);
    }
    if !file_keys.is_empty() {
        say!(
            "  access keys from the config file: {}",
            file_keys.join(", ")
        );
    }
    if let Some(ca) = dev_ca {
        say!(
            "  TLS: a local development certificate; trust its CA, {} (for Node: \
             NODE_EXTRA_CA_CERTS={})",
            ca.display(),
            ca.display()
        );
    }
    if let Some(secret) = turn_secret {
        say!("  TURN static-auth-secret (for coturn): {secret}");
    }
    say!();
    match data_dir {
        Some(dir) => say!(
            "Channels are kept in {}. Ctrl-C or SIGTERM drains and stops.",
            dir.display()
        ),
        None => say!(
            "Channels live in memory and are lost when the server stops. Ctrl-C or SIGTERM drains and stops."
        ),
    }
    let reload = options.config_path.clone();
    tokio::select! {
        result = shutdown_signal() => result?,
        () = reload_on_hangup(&server, reload) => {}
    }
    say!(
        "Draining: {} connections open; those that handle GO_AWAY get it and {} s, the others \
         are closed now.",
        server.open_connections(),
        grace.as_secs()
    );
    server.drain().await;
    // Exit once the last connection is closed, its close frame written and answered (or its
    // closing handshake timed out), and never later than the grace period allows.
    let left = server.wait_closed(grace + closing).await;
    if left > 0 {
        tracing::warn!(left, "connections still open at the end of the drain");
    }
    server.abort();
    Ok(())
}

/// On every SIGHUP, reads the config file again and puts its `[ice] turn_secrets` in force:
/// when the signing secret changed, every connection gets RECONNECT_ICE_SERVER. Never returns.
async fn reload_on_hangup(server: &Server, config_path: Option<PathBuf>) {
    #[cfg(unix)]
    {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return std::future::pending().await;
        };
        while hangup.recv().await.is_some() {
            let Some(path) = &config_path else {
                tracing::warn!("SIGHUP: no --config file to read TURN secrets from");
                continue;
            };
            let secrets = FileConfig::load(path).map(|file| {
                file.ice
                    .and_then(|ice| ice.turn_secrets)
                    .unwrap_or_default()
            });
            match secrets {
                Ok(secrets) => {
                    let secrets = secrets.iter().map(TurnSecret::new).collect();
                    match server.set_turn_secrets(secrets).await {
                        Ok(changed) => {
                            tracing::info!(changed, "SIGHUP: TURN secrets read again");
                        }
                        Err(err) => tracing::error!(%err, "SIGHUP: TURN secrets not changed"),
                    }
                }
                Err(err) => tracing::error!(%err, "SIGHUP: the config file cannot be read"),
            }
        }
    }
    std::future::pending().await
}

/// Waits for Ctrl-C, or SIGTERM where there are signals (as service managers stop a server).
async fn shutdown_signal() -> Result<(), String> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|err| format!("listening for SIGTERM: {err}"))?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map_err(|err| format!("waiting for Ctrl-C: {err}")),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map_err(|err| format!("waiting for Ctrl-C: {err}"))
    }
}

/// `kvs-signaling connect`.
fn connect(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        eprint!("{}", repl::USAGE);
        return ExitCode::SUCCESS;
    }
    let options = match repl::parse(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("kvs-signaling connect: {message}\n\n{}", repl::USAGE);
            return ExitCode::from(2);
        }
    };
    run_logged(
        "kvs-signaling connect",
        "warn",
        tokio::runtime::Builder::new_current_thread(),
        repl::run(options),
    )
}

/// Starts logging at `default_level` (`RUST_LOG` overrides it), runs `task` on a runtime from
/// `builder`, and turns its outcome into the exit code, naming `what` failed.
fn run_logged(
    what: &str,
    default_level: &str,
    mut builder: tokio::runtime::Builder,
    task: impl Future<Output = Result<(), String>>,
) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kvs-signaling: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{what}: {message}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("connect") {
        return connect(&args[1..]);
    }
    let options = match parse(args.into_iter()) {
        Ok(Some(options)) => options,
        Ok(None) => {
            eprint!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("kvs-signaling: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    run_logged(
        "kvs-signaling",
        "info",
        tokio::runtime::Builder::new_multi_thread(),
        serve(options),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = std::env::temp_dir().join(format!("kvs-main-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nregion = \"eu-west-1\"\nin_memory = true\n\
             [tls]\ndisabled = true\n\
             [[credentials]]\naccess_key_id = \"AKIDFILE\"\nsecret_access_key = \"s\"\n\
             channels = [\"cam-*\"]\nroles = [\"master\"]\n\
             [limits]\nmax_viewers_per_channel = 4\n",
        )
        .unwrap();
        let path = path.to_str().unwrap();
        let options =
            parse(args(&["serve", "--config", path, "--region", "eu-central-1"]).into_iter())
                .unwrap()
                .unwrap();
        let setup = config(&options).unwrap();
        assert_eq!(setup.config.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(setup.config.region, "eu-central-1");
        assert_eq!(setup.config.data_dir, None);
        assert!(setup.config.tls.is_none());
        assert_eq!(setup.config.hub.max_viewers_per_channel, 4);
        assert_eq!(setup.file_keys, vec!["AKIDFILE".to_owned()]);
        assert!(setup.printed_key.is_none(), "the file's keys are enough");
        assert!(setup.config.scopes["AKIDFILE"].covers("cam-1"));

        // A key from the flags is added beside the file's, unlimited.
        let options = parse(
            args(&[
                "serve",
                "--config",
                path,
                "--access-key-id",
                "AKIDFLAG",
                "--secret-access-key",
                "x",
            ])
            .into_iter(),
        )
        .unwrap()
        .unwrap();
        let setup = config(&options).unwrap();
        let ids: Vec<_> = setup
            .config
            .credentials
            .iter()
            .map(|c| c.access_key_id.as_str())
            .collect();
        assert_eq!(ids, ["AKIDFLAG", "AKIDFILE"]);
        assert!(!setup.config.scopes.contains_key("AKIDFLAG"));
    }

    #[test]
    fn errors_name_the_source() {
        let err = parse(args(&["serve", "--listen", "nowhere"]).into_iter()).unwrap_err();
        assert!(err.contains("--listen") && err.contains("nowhere"), "{err}");
        let err =
            parse(args(&["serve", "--config", "/nonexistent/k.toml"]).into_iter()).unwrap_err();
        assert!(err.contains("/nonexistent/k.toml"), "{err}");
        let err = parse(args(&["serve", "--shards", "many"]).into_iter()).unwrap_err();
        assert!(err.contains("--shards"), "{err}");
        let err = parse(args(&["serve", "--bogus"]).into_iter()).unwrap_err();
        assert!(err.contains("--bogus"), "{err}");
        let options = parse(args(&["serve", "--no-tls", "--access-key-id", "A"]).into_iter())
            .unwrap()
            .unwrap();
        let err = config(&options).err().unwrap();
        assert!(err.contains("go together"), "{err}");
    }

    #[test]
    fn no_keys_anywhere_makes_one_to_print() {
        let options = parse(args(&["serve", "--no-tls", "--in-memory"]).into_iter())
            .unwrap()
            .unwrap();
        let setup = config(&options).unwrap();
        let key = setup.printed_key.unwrap();
        assert!(key.access_key_id.starts_with("AKIA") && key.access_key_id.len() == 20);
        assert_eq!(setup.config.credentials, vec![key]);
    }
}
