//! `kvs-signaling serve`: the server configured from the resolved options, started, its
//! settings printed for the user, then drained and stopped on SIGTERM or Ctrl-C; the TURN
//! secrets read again on SIGHUP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kvs_ice_rest::{Credentials, TurnConfig, TurnSecret};
use kvs_signaling_proto::{IceServerTtl, IceUri};
use kvs_signaling_server::{
    AllowedOrigins, AuthMode, FileConfig, Server, ServerConfig, TlsFiles, dev_certificate,
};

use crate::cli::Options;

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
pub(crate) struct Setup {
    config: ServerConfig,
    printed_key: Option<Credentials>,
    file_keys: Vec<String>,
    turn_secret: Option<String>,
    dev_ca: Option<PathBuf>,
}

pub(crate) fn config(options: &Options) -> Result<Setup, String> {
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
    let mut console = kvs_signaling_server::ConsoleConfig::default().enabled(!options.no_console);
    if let Some(token) = &options.console_token {
        console = console.token(token.clone());
    }
    config = config.console(console);
    if let Some(url) = &options.cluster {
        let mut cluster = kvs_signaling_server::ClusterConfig::new(url.clone()).credentials(
            options.redis_username.clone(),
            options.redis_password.clone(),
        );
        if let Some(prefix) = &options.cluster_prefix {
            cluster = cluster.key_prefix(prefix.clone());
        }
        if let Some(ca) = &options.redis_ca_file {
            cluster = cluster.ca_file(ca.clone());
        }
        cluster.client_cert_file = options.redis_client_cert.clone();
        cluster.client_key_file = options.redis_client_key.clone();
        cluster = cluster.sentinel_credentials(
            options.redis_sentinel_username.clone(),
            options.redis_sentinel_password.clone(),
        );
        config = config.cluster(options.limits.apply_to_cluster(cluster)?);
    } else {
        // Checked all the same: a mistake in the file is said at once, not when the node
        // joins a cluster.
        options
            .limits
            .apply_to_cluster(kvs_signaling_server::ClusterConfig::new(String::new()))?;
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

pub(crate) async fn serve(options: Options) -> Result<(), String> {
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
    let cluster = config.cluster.as_ref().map(|cluster| {
        let tls = cluster.url.starts_with("rediss").then(|| {
            let ca = cluster.ca_file.as_ref().map_or_else(
                || "the system's roots".to_owned(),
                |ca| ca.display().to_string(),
            );
            match &cluster.client_cert_file {
                Some(cert) => format!("CA {ca}, client certificate {}", cert.display()),
                None => format!("CA {ca}"),
            }
        });
        (cluster.redacted_url(), cluster.key_prefix.clone(), tls)
    });
    let server = Server::start(config).await.map_err(|err| err.to_string())?;
    say!(
        "kvs-signaling {} is serving on {}",
        env!("CARGO_PKG_VERSION"),
        server.public_url()
    );
    say!("  listening on {}", server.local_addr());
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
    if let Some(url) = server.console_url() {
        say!();
        say!("The live console (channels, connections, events, test calls):");
        say!("  {url}");
    }
    say!();
    match (cluster, data_dir) {
        (Some((url, prefix, tls)), _) => {
            say!(
                "Cluster mode: channels are kept in Redis at {url} (keys {prefix}:*), shared \
                 by every node. Ctrl-C or SIGTERM drains and stops this node."
            );
            if let Some(tls) = tls {
                say!("  Redis over TLS: {tls}");
            }
            if url.contains("+sentinel://") {
                say!("  Redis's primary is the one Sentinel names, followed through failovers.");
            }
        }
        (None, Some(dir)) => say!(
            "Channels are kept in {}. Ctrl-C or SIGTERM drains and stops.",
            dir.display()
        ),
        (None, None) => say!(
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
    server.leave().await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::serve_options as parse;

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
        let options = parse(&["--config", path, "--region", "eu-central-1"]).unwrap();
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
        let options = parse(&[
            "--config",
            path,
            "--access-key-id",
            "AKIDFLAG",
            "--secret-access-key",
            "x",
        ])
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

        // Repeated and comma-separated values.
        let options = parse(&[
            "--config",
            path,
            "--cors-origin",
            "https://a.example",
            "--cors-origin",
            "https://b.example,https://c.example",
            "--stun-uri",
            "stun:s.example:3478",
            "--indications",
            "always",
        ])
        .unwrap();
        assert_eq!(
            options.cors_origins.unwrap(),
            [
                "https://a.example",
                "https://b.example",
                "https://c.example"
            ]
        );
        assert_eq!(options.stun_uris, ["stun:s.example:3478"]);
        assert_eq!(
            options.indications,
            kvs_signaling_server::IndicationPolicy::Always
        );
    }

    #[test]
    fn errors_name_the_source() {
        let err = parse(&["--listen", "nowhere"]).unwrap_err();
        assert!(err.contains("--listen") && err.contains("nowhere"), "{err}");
        let err = parse(&["--config", "/nonexistent/k.toml"]).unwrap_err();
        assert!(err.contains("/nonexistent/k.toml"), "{err}");
        let err = parse(&["--shards", "many"]).unwrap_err();
        assert!(err.contains("--shards"), "{err}");
        let err = parse(&["--indications", "sometimes"]).unwrap_err();
        assert!(
            err.contains("--indications") && err.contains("sometimes"),
            "{err}"
        );
        let err = parse(&["--bogus"]).unwrap_err();
        assert!(err.contains("--bogus"), "{err}");
        let options = parse(&["--no-tls", "--access-key-id", "A"]).unwrap();
        let err = config(&options).err().unwrap();
        assert!(err.contains("go together"), "{err}");
    }

    #[test]
    fn the_redis_section_and_flags_reach_the_cluster_config() {
        let dir = std::env::temp_dir().join(format!("kvs-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let password = dir.join("password");
        std::fs::write(&password, "data-secret\n").unwrap();
        let sentinel_password = dir.join("sentinel-password");
        std::fs::write(&sentinel_password, "sentinel-secret\n").unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            format!(
                "cluster = \"rediss+sentinel://s1,s2:26380/main\"\npublic_url = \"https://lb\"\n\
                 [redis]\nkey_prefix = \"blue\"\nusername = \"kvs\"\npassword_file = {:?}\n\
                 ca_file = \"/etc/kvs/redis-ca.pem\"\nclient_cert = \"/etc/kvs/c.pem\"\n\
                 client_key = \"/etc/kvs/c.key\"\nsentinel_username = \"watcher\"\n\
                 sentinel_password_file = {:?}\n",
                password.to_str().unwrap(),
                sentinel_password.to_str().unwrap()
            ),
        )
        .unwrap();
        let path = path.to_str().unwrap();
        let options = parse(&["--config", path, "--no-tls", "--in-memory"]).unwrap();
        let cluster = config(&options).unwrap().config.cluster.unwrap();
        assert_eq!(cluster.url, "rediss+sentinel://s1,s2:26380/main");
        assert_eq!(cluster.key_prefix, "blue");
        assert_eq!(cluster.username.as_deref(), Some("kvs"));
        assert_eq!(cluster.password.as_deref(), Some("data-secret"));
        assert_eq!(
            cluster.ca_file.as_deref(),
            Some(Path::new("/etc/kvs/redis-ca.pem"))
        );
        assert_eq!(
            cluster.client_cert_file.as_deref(),
            Some(Path::new("/etc/kvs/c.pem"))
        );
        assert_eq!(
            cluster.client_key_file.as_deref(),
            Some(Path::new("/etc/kvs/c.key"))
        );
        assert_eq!(cluster.sentinel_username.as_deref(), Some("watcher"));
        assert_eq!(
            cluster.sentinel_password.as_deref(),
            Some("sentinel-secret")
        );
        // Flags win over the file.
        let options = parse(&[
            "--config",
            path,
            "--no-tls",
            "--in-memory",
            "--redis-ca-file",
            "/other/ca.pem",
            "--cluster-prefix",
            "green",
        ])
        .unwrap();
        let cluster = config(&options).unwrap().config.cluster.unwrap();
        assert_eq!(cluster.ca_file.as_deref(), Some(Path::new("/other/ca.pem")));
        assert_eq!(cluster.key_prefix, "green");
        // A password file that holds nothing is named.
        std::fs::write(&sentinel_password, "\n").unwrap();
        let err = parse(&["--config", path]).unwrap_err();
        assert!(
            err.contains("redis.sentinel_password_file") && err.contains("holds no password"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_keys_anywhere_makes_one_to_print() {
        let options = parse(&["--no-tls", "--in-memory"]).unwrap();
        let setup = config(&options).unwrap();
        let key = setup.printed_key.unwrap();
        assert!(key.access_key_id.starts_with("AKIA") && key.access_key_id.len() == 20);
        assert_eq!(setup.config.credentials, vec![key]);
    }
}
