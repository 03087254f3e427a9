//! The `kvs-signaling` binary.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use kvs_ice_rest::{Credentials, TurnConfig, TurnSecret};
use kvs_signaling_proto::{IceServerTtl, IceUri};
use std::path::{Path, PathBuf};

use kvs_signaling_server::{AuthMode, Server, ServerConfig, TlsFiles, dev_certificate};

const USAGE: &str = "\
kvs-signaling: a self-hostable Amazon Kinesis Video Streams WebRTC signaling server

usage:
  kvs-signaling serve [options]

options (each may also come from the environment variable in brackets):
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
  --stun-uri URI             a stun: URI to hand out              (stun:127.0.0.1:3478)
  --data-dir DIR             where channels are kept              [KVS_DATA_DIR] (.kvs-signaling)
  --in-memory                keep channels in memory only (lost when the server stops)
  --insecure-no-auth         accept unsigned requests: throwaway local use only
  -h, --help                 this text
";

#[derive(Debug)]
struct Options {
    listen: SocketAddr,
    public_url: Option<String>,
    region: String,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    turn_uris: Vec<String>,
    turn_secret: Option<String>,
    stun_uri: String,
    data_dir: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    no_tls: bool,
    insecure: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match args.next().as_deref() {
        Some("serve") => {}
        Some("-h" | "--help") | None => return Ok(None),
        Some("--version" | "-V") => {
            eprintln!("kvs-signaling {}", env!("CARGO_PKG_VERSION"));
            return Ok(None);
        }
        Some(other) => return Err(format!("unknown command {other:?}")),
    }
    let listen = env("KVS_LISTEN").unwrap_or_else(|| "127.0.0.1:8443".to_owned());
    let mut options = Options {
        listen: listen
            .parse()
            .map_err(|_| format!("KVS_LISTEN: {listen:?} is not an address like 127.0.0.1:8080"))?,
        public_url: env("KVS_PUBLIC_URL"),
        region: env("KVS_REGION").unwrap_or_else(|| "us-west-2".to_owned()),
        access_key_id: env("KVS_ACCESS_KEY_ID"),
        secret_access_key: env("KVS_SECRET_ACCESS_KEY"),
        turn_uris: Vec::new(),
        turn_secret: env("KVS_TURN_SECRET"),
        stun_uri: "stun:127.0.0.1:3478".to_owned(),
        data_dir: Some(env("KVS_DATA_DIR").unwrap_or_else(|| ".kvs-signaling".to_owned())),
        tls_cert: env("KVS_TLS_CERT"),
        tls_key: env("KVS_TLS_KEY"),
        no_tls: false,
        insecure: false,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let text = value()?;
                options.listen = text.parse().map_err(|_| {
                    format!("--listen: {text:?} is not an address like 127.0.0.1:8080")
                })?;
            }
            "--public-url" => options.public_url = Some(value()?),
            "--region" => options.region = value()?,
            "--access-key-id" => options.access_key_id = Some(value()?),
            "--secret-access-key" => options.secret_access_key = Some(value()?),
            "--turn-uri" => options.turn_uris.push(value()?),
            "--turn-secret" => options.turn_secret = Some(value()?),
            "--stun-uri" => options.stun_uri = value()?,
            "--data-dir" => options.data_dir = Some(value()?),
            "--in-memory" => options.data_dir = None,
            "--tls-cert" => options.tls_cert = Some(value()?),
            "--tls-key" => options.tls_key = Some(value()?),
            "--no-tls" => options.no_tls = true,
            "--insecure-no-auth" => options.insecure = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
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
            let dir = options.data_dir.as_deref().unwrap_or(".kvs-signaling");
            let dev = dev_certificate(Path::new(dir)).map_err(|err| err.to_string())?;
            Ok(Some((dev.files, Some(dev.ca))))
        }
        _ => Err("--tls-cert and --tls-key go together".to_owned()),
    }
}

type Setup = (ServerConfig, Credentials, Option<String>, Option<PathBuf>);

fn config(options: &Options) -> Result<Setup, String> {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const ANY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let access_key_id = options
        .access_key_id
        .clone()
        .unwrap_or_else(|| format!("AKIA{}", random_text(16, UPPER)));
    let secret = options
        .secret_access_key
        .clone()
        .unwrap_or_else(|| random_text(40, ANY));
    let credentials = Credentials::new(access_key_id, secret);
    let uri = |text: &str| IceUri::new(text).map_err(|err| format!("{text:?}: {err}"));
    let turn_uris = options
        .turn_uris
        .iter()
        .map(|u| uri(u))
        .collect::<Result<Vec<_>, _>>()?;
    let turn_secret = match (&options.turn_secret, turn_uris.is_empty()) {
        (Some(secret), _) => Some(secret.clone()),
        (None, false) => Some(random_text(32, ANY)),
        (None, true) => None,
    };
    let secrets = turn_secret.iter().map(TurnSecret::new).collect();
    let ice = TurnConfig::new(
        turn_uris,
        vec![uri(&options.stun_uri)?],
        secrets,
        IceServerTtl::default(),
    )
    .map_err(|err| err.to_string())?;
    let mut config = ServerConfig::new(options.listen, vec![credentials.clone()], ice)
        .region(options.region.clone());
    if let Some(url) = &options.public_url {
        config = config.public_url(url.clone());
    }
    if options.insecure {
        config = config.auth(AuthMode::DisabledInsecure);
    }
    if let Some(dir) = &options.data_dir {
        config = config.data_dir(dir.clone());
    }
    let mut ca = None;
    if let Some((files, dev_ca)) = tls(options)? {
        config = config.tls(files);
        ca = dev_ca;
    }
    Ok((config, credentials, turn_secret, ca))
}

#[expect(
    clippy::print_stdout,
    reason = "the binary tells its user where it listens"
)]
async fn serve(options: Options) -> Result<(), String> {
    let (config, credentials, turn_secret, dev_ca) = config(&options)?;
    let grace = config.hub.go_away_grace;
    let region = config.region.clone();
    let data_dir = config.data_dir.clone();
    let server = Server::start(config).await.map_err(|err| err.to_string())?;
    println!(
        "kvs-signaling {} is serving on {}",
        env!("CARGO_PKG_VERSION"),
        server.public_url()
    );
    println!();
    println!("Point an AWS or KVS SDK at it with:");
    println!("  endpoint:               {}", server.public_url());
    println!("  region:                 {region}");
    println!("  AWS_ACCESS_KEY_ID:      {}", credentials.access_key_id);
    println!(
        "  AWS_SECRET_ACCESS_KEY:  {}",
        credentials.secret_access_key
    );
    if let Some(ca) = dev_ca {
        println!(
            "  TLS: a local development certificate; trust its CA, {} (for Node: \
             NODE_EXTRA_CA_CERTS={})",
            ca.display(),
            ca.display()
        );
    }
    if let Some(secret) = turn_secret {
        println!("  TURN static-auth-secret (for coturn): {secret}");
    }
    println!();
    match data_dir {
        Some(dir) => println!(
            "Channels are kept in {}. Ctrl-C or SIGTERM drains and stops.",
            dir.display()
        ),
        None => println!(
            "Channels live in memory and are lost when the server stops. Ctrl-C or SIGTERM drains and stops."
        ),
    }
    shutdown_signal().await?;
    println!(
        "Draining: GO_AWAY sent to every connection; closing in {} s.",
        grace.as_secs()
    );
    server.drain().await;
    tokio::time::sleep(grace.min(Duration::from_secs(60))).await;
    server.abort();
    Ok(())
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

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kvs-signaling: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kvs-signaling: {message}");
            ExitCode::FAILURE
        }
    }
}
