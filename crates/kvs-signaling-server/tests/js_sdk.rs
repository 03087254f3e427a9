//! The official KVS WebRTC JavaScript SDK (`amazon-kinesis-video-streams-webrtc`, its
//! `SignalingClient`, in Node) as master and viewers against the `kvs-signaling` binary.
//!
//! The binary runs `serve` with its default TLS (a development CA and certificate made in a
//! temporary directory) and authentication on. This test creates a channel with a SigV4-signed
//! `CreateSignalingChannel` over HTTPS, asks `GetSignalingChannelEndpoint` for the endpoints,
//! then runs `tests/js-sdk/e2e.mjs`, in which the SDK presigns its connects with its own signer
//! and the clients exchange offers, answers and ICE candidates; see that script for what it
//! checks. A second test runs the same SDK and the AWS SDK for JavaScript in headless Chromium
//! (`tests/js-sdk/browser.mjs`): pages of another origin, so CORS, and real WebRTC between
//! them. Node, the SDKs and Chromium come from `scripts/install-test-deps.sh`; without them the
//! tests fail (they do not skip).

// Marks the helpers below as test code, for clippy's `allow-*-in-tests`.
#![cfg(test)]

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};

const KEY: &str = "AKIDJSSDKE2ETEST";
const SECRET: &str = "js-sdk-e2e/secret+key";
/// Not the server's default, so that a region the SDK did not get from us would show.
const REGION: &str = "eu-west-1";
/// How long the server may take to print its endpoint.
const SERVER_START: Duration = Duration::from_secs(15);
/// The script's own time limit; it exits 1 when it elapses.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Node's start, on top of the script's limit, before the test kills it.
const NODE_GRACE: Duration = Duration::from_secs(15);
const INSTALL: &str =
    "run scripts/install-test-deps.sh (it installs Node.js and runs `npm ci` in tests/js-sdk)";

fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `node --version`, or why it could not run.
fn node_version() -> Result<String, String> {
    let output = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|err| err.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(format!("`node --version` exited with {}", output.status))
    }
}

/// A directory under Cargo's target temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("js-sdk-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir.canonicalize().unwrap())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything a child writes to a pipe, collected by a thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn drain(&self, pipe: impl Read + Send + 'static, lines: Option<mpsc::Sender<String>>) {
        let captured = self.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(lines) = &lines {
                    let _ = lines.send(line.clone());
                }
                let mut text = captured.0.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
    }

    fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A running `kvs-signaling serve`, killed on drop.
struct Serve {
    child: Child,
    addr: SocketAddr,
    /// The development CA to trust, as the server printed it.
    ca: PathBuf,
    stdout: Captured,
    stderr: Captured,
}

impl Serve {
    /// Starts the binary with its default TLS and authentication on. Channels are kept in
    /// memory; the development certificate goes to `dir/tls`.
    fn start(dir: &Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kvs-signaling"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--region", REGION])
            .args(["--access-key-id", KEY, "--secret-access-key", SECRET])
            .arg("--data-dir")
            .arg(dir)
            .arg("--in-memory")
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for name in [
            "KVS_LISTEN",
            "KVS_PUBLIC_URL",
            "KVS_TLS_CERT",
            "KVS_TLS_KEY",
            "KVS_REGION",
            "KVS_ACCESS_KEY_ID",
            "KVS_SECRET_ACCESS_KEY",
            "KVS_TURN_SECRET",
            "KVS_DATA_DIR",
        ] {
            command.env_remove(name);
        }
        let mut child = command.spawn().unwrap();
        let (stdout, stderr) = (Captured::default(), Captured::default());
        let (lines_tx, lines) = mpsc::channel();
        stdout.drain(child.stdout.take().unwrap(), Some(lines_tx));
        stderr.drain(child.stderr.take().unwrap(), None);

        let deadline = Instant::now() + SERVER_START;
        let (mut url, mut ca) = (None, None);
        while url.is_none() || ca.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = lines.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "kvs-signaling did not print its endpoint and CA within {SERVER_START:?}\n\
                     --- stdout ---\n{}--- stderr ---\n{}",
                    stdout.text(),
                    stderr.text()
                );
            };
            if let Some(rest) = line.split_once(" is serving on ").map(|(_, rest)| rest) {
                url = Some(rest.trim().to_owned());
            }
            if let Some((_, rest)) = line.split_once("NODE_EXTRA_CA_CERTS=") {
                ca = Some(dir.join(rest.trim().trim_end_matches(')')));
            }
        }
        let (url, ca) = (url.unwrap(), ca.unwrap());
        let addr = url
            .strip_prefix("https://")
            .unwrap_or_else(|| panic!("the server should serve TLS by default, not {url}"))
            .parse()
            .unwrap();
        assert!(
            ca.starts_with(dir) && ca.is_file(),
            "the development CA {} should be a file in the test's directory {}",
            ca.display(),
            dir.display()
        );
        Self {
            child,
            addr,
            ca,
            stdout,
            stderr,
        }
    }

    /// A POST over TLS (trusting the development CA), signed with `host;x-amz-date` as the C
    /// SDK signs its calls; the status and the body.
    fn post(&self, path: &str, body: &str) -> (u16, String) {
        let host = self.addr.to_string();
        let identity: Identity = AwsCredentials::new(KEY, SECRET, None, None, "test").into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::Headers;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("kinesisvideo")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            "POST",
            format!("https://{host}{path}"),
            [("host", host.as_str())].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut request = format!("POST {path} HTTP/1.1\r\nhost: {host}\r\n");
        for (name, value) in instructions.headers() {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ));

        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::IpAddress(self.addr.ip().into());
        let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let socket = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut tls = rustls::StreamOwned::new(connection, socket);
        tls.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        match tls.read_to_end(&mut response) {
            Ok(_) => {}
            // A peer that closes without close_notify, once the whole answer is in.
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {
            }
            Err(err) => panic!("POST {path}: {err}"),
        }
        let response = String::from_utf8(response).unwrap();
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("POST {path}: no HTTP answer: {response:?}"));
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `node script` in `dir` with `envs`, killed after `limit`; its status (None when it
/// was killed), stdout and stderr.
fn run_node(
    dir: &Path,
    script: &str,
    envs: &[(&str, String)],
    limit: Duration,
) -> (Option<i32>, String, String) {
    let mut command = Command::new("node");
    command
        .arg(script)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let (stdout, stderr) = (Captured::default(), Captured::default());
    stdout.drain(child.stdout.take().unwrap(), None);
    stderr.drain(child.stderr.take().unwrap(), None);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    // The drain threads end at EOF, right after the exit; give them a moment to get there.
    thread::sleep(Duration::from_millis(100));
    let code = status.map(|s| s.code().unwrap_or(-1));
    (code, stdout.text(), stderr.text())
}

#[test]
fn official_js_sdk_signaling_client_as_master_and_viewers() {
    let js_dir = repo_root().join("tests/js-sdk");
    // No skipping when Node is missing, in CI or not, like the coturn tests: a skipped test reads
    // as a passed one.
    match node_version() {
        Ok(version) => eprintln!("node {version}"),
        Err(err) => panic!("cannot run `node` ({err}); {INSTALL}"),
    }
    for package in ["amazon-kinesis-video-streams-webrtc", "ws"] {
        let manifest = js_dir
            .join("node_modules")
            .join(package)
            .join("package.json");
        assert!(
            manifest.is_file(),
            "{} is missing: {INSTALL}",
            manifest.display()
        );
    }

    let dir = TempDir::new();
    let server = Serve::start(&dir.0);

    let (status, created) =
        server.post("/createSignalingChannel", r#"{"ChannelName":"js-sdk-e2e"}"#);
    assert_eq!(status, 200, "CreateSignalingChannel: {created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let arn = created["ChannelARN"].as_str().unwrap().to_owned();
    assert!(
        arn.starts_with(&format!("arn:aws:kinesisvideo:{REGION}:")),
        "{arn}"
    );

    let request = serde_json::json!({
        "ChannelARN": arn,
        "SingleMasterChannelEndpointConfiguration": {"Protocols": ["WSS", "HTTPS"], "Role": "MASTER"},
    });
    let (status, endpoints) = server.post("/getSignalingChannelEndpoint", &request.to_string());
    assert_eq!(status, 200, "GetSignalingChannelEndpoint: {endpoints}");
    let endpoints: serde_json::Value = serde_json::from_str(&endpoints).unwrap();
    let endpoint = |protocol: &str| -> String {
        endpoints["ResourceEndpointList"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["Protocol"] == protocol)
            .unwrap_or_else(|| panic!("no {protocol} endpoint in {endpoints}"))["ResourceEndpoint"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (wss, https) = (endpoint("WSS"), endpoint("HTTPS"));
    assert_eq!(wss, format!("wss://{}", server.addr));
    assert_eq!(https, format!("https://{}", server.addr));

    let started = Instant::now();
    let (code, stdout, stderr) = run_node(
        &js_dir,
        "e2e.mjs",
        &[
            ("NODE_EXTRA_CA_CERTS", server.ca.display().to_string()),
            ("KVS_WSS_ENDPOINT", wss),
            ("KVS_HTTPS_ENDPOINT", https),
            ("KVS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
            ("KVS_CHANNEL_ARN", arn),
            ("KVS_E2E_TIMEOUT_MS", SCRIPT_TIMEOUT.as_millis().to_string()),
        ],
        SCRIPT_TIMEOUT + NODE_GRACE,
    );
    let elapsed = started.elapsed();
    eprintln!("--- node e2e.mjs ({elapsed:?}) stdout ---\n{stdout}--- stderr ---\n{stderr}");
    assert!(
        code == Some(0),
        "node e2e.mjs {} after {elapsed:?}\n--- node stdout ---\n{stdout}--- node stderr ---\n{stderr}\
         --- server stdout ---\n{}--- server stderr ---\n{}",
        code.map_or_else(
            || "was killed: it did not exit by itself".to_owned(),
            |c| format!("exited with {c}")
        ),
        server.stdout.text(),
        server.stderr.text()
    );
    assert!(stdout.contains("e2e: PASSED"), "{stdout}");
}

/// The browser run's own time limit (two runs of two pages each); it exits 1 when it elapses.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// The official JS SDK and the AWS SDK for JavaScript in headless Chromium, under full web
/// security, against the binary over TLS: `tests/js-sdk/browser.mjs` serves a master page and
/// a viewer page from an origin of their own (so every REST call is a CORS request), trusts the
/// development CA in the browser's own certificate store, and checks that the pages create
/// the channel, get endpoints and ICE servers, connect, exchange offer, answer and candidates,
/// reach `connected` and pass data-channel messages both ways; once more with the pages'
/// clocks 15 minutes ahead, corrected from the answers' `Date` header. Screenshots of the
/// pages go to the test's temporary directory, whose path the output gives.
#[test]
fn official_js_sdk_in_chromium_with_cors_tls_and_a_skewed_clock() {
    let js_dir = repo_root().join("tests/js-sdk");
    match node_version() {
        Ok(version) => eprintln!("node {version}"),
        Err(err) => panic!("cannot run `node` ({err}); {INSTALL}"),
    }
    for package in [
        "amazon-kinesis-video-streams-webrtc",
        "aws-sdk",
        "playwright-core",
    ] {
        let manifest = js_dir
            .join("node_modules")
            .join(package)
            .join("package.json");
        assert!(
            manifest.is_file(),
            "{} is missing: {INSTALL}",
            manifest.display()
        );
    }
    for tool in ["/usr/bin/chromium", "/usr/bin/certutil"] {
        assert!(Path::new(tool).is_file(), "{tool} is missing: {INSTALL}");
    }

    let dir = TempDir::new();
    let server = Serve::start(&dir.0);
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();

    let started = Instant::now();
    let (code, stdout, stderr) = run_node(
        &js_dir,
        "browser.mjs",
        &[
            ("KVS_ENDPOINT", format!("https://{}", server.addr)),
            ("KVS_CA_FILE", server.ca.display().to_string()),
            ("KVS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
            (
                "KVS_BROWSER_TIMEOUT_MS",
                BROWSER_TIMEOUT.as_millis().to_string(),
            ),
            ("KVS_SCREENSHOTS", screenshots.display().to_string()),
        ],
        BROWSER_TIMEOUT + NODE_GRACE,
    );
    let elapsed = started.elapsed();
    eprintln!(
        "--- node browser.mjs ({elapsed:?}; screenshots in {}) stdout ---\n{stdout}--- stderr ---\n{stderr}",
        screenshots.display()
    );
    assert!(
        code == Some(0),
        "node browser.mjs {} after {elapsed:?}\n--- node stdout ---\n{stdout}--- node stderr ---\n{stderr}\
         --- server stdout ---\n{}--- server stderr ---\n{}",
        code.map_or_else(
            || "was killed: it did not exit by itself".to_owned(),
            |c| format!("exited with {c}")
        ),
        server.stdout.text(),
        server.stderr.text()
    );
    assert!(stdout.contains("browser: PASSED"), "{stdout}");
    for name in ["clock-right", "clock-15-minutes-ahead"] {
        assert!(
            stdout.contains(&format!("ok: {name}: master and viewer connected")),
            "{stdout}"
        );
    }
}
