//! The `std_threads` example (the hub served on std threads and blocking sockets, no async
//! runtime) against real clients: the official KVS WebRTC JavaScript SDK's `SignalingClient`
//! in Node (`tests/js-sdk/e2e.mjs`: a master and two viewers, the SDK presigning its own
//! connects, offers, answers and candidates relayed, a wrongly signed viewer refused), over TLS
//! with a CA that Node is told to trust; and a raw socket whose unsigned connect is refused
//! with the service's error.
//!
//! Node and the SDK come from `scripts/install-test-deps.sh`; without them the test fails (it
//! does not skip).

#![cfg(test)]
#![allow(
    clippy::disallowed_methods,
    reason = "a test of real sockets and processes reads the clock for its deadlines"
)]

#[path = "../examples/std_threads.rs"]
#[allow(dead_code, reason = "the example's main and flags are not used here")]
mod example;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use kvs_signaling_auth::{Credentials, Verifier};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

const KEY: &str = "AKIDSTDTHREADS";
const SECRET: &str = "std-threads/secret+key";
const REGION: &str = "eu-central-1";
const ARN: &str =
    "arn:aws:kinesisvideo:eu-central-1:123456789012:channel/std-threads/1700000000000";
/// The script's own limit; it exits 1 when it elapses.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Node's start, on top of the script's limit, before the test kills it.
const NODE_GRACE: Duration = Duration::from_secs(15);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A directory under Cargo's target temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a CA and a certificate for 127.0.0.1 that it signed into `dir`: `ca.pem`,
/// `cert.pem` (the chain), `key.pem`.
fn certificates(dir: &Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    // Names of their own: a leaf named as its issuer would look self-signed.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "std_threads test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), format!("{}{}", leaf.pem(), ca.pem())).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// Starts the example on a free loopback port, with TLS when `tls` names the PEM files.
fn start(tls: Option<&Path>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let tls =
        tls.map(|dir| example::tls_config(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap());
    let verifier = Verifier::new(REGION, [Credentials::new(KEY, SECRET)]);
    thread::spawn(move || example::serve(listener, verifier, tls));
    addr
}

#[test]
fn the_official_js_sdk_relays_through_the_hub_on_std_threads() {
    let js_dir = repo_root().join("tests/js-sdk");
    let sdk = js_dir.join("node_modules/amazon-kinesis-video-streams-webrtc/package.json");
    assert!(
        sdk.is_file(),
        "{} is missing: run scripts/install-test-deps.sh",
        sdk.display()
    );
    let dir = TempDir::new("std-threads");
    certificates(&dir.0);
    let addr = start(Some(&dir.0));

    let mut child = Command::new("node")
        .arg("e2e.mjs")
        .current_dir(&js_dir)
        .env("NODE_EXTRA_CA_CERTS", dir.0.join("ca.pem"))
        .env("KVS_WSS_ENDPOINT", format!("wss://{addr}"))
        .env_remove("KVS_HTTPS_ENDPOINT")
        .env("KVS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("KVS_CHANNEL_ARN", ARN)
        .env("KVS_E2E_TIMEOUT_MS", SCRIPT_TIMEOUT.as_millis().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot run `node` ({err}): run scripts/install-test-deps.sh")
        });
    let deadline = Instant::now() + SCRIPT_TIMEOUT + NODE_GRACE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("--- node e2e.mjs stdout ---\n{stdout}--- stderr ---\n{stderr}");
    assert_eq!(
        output.status.code(),
        Some(0),
        "node e2e.mjs failed or was killed"
    );
    assert!(stdout.contains("e2e: PASSED"), "{stdout}");
}

#[test]
fn an_unsigned_connect_is_refused_with_the_services_error() {
    let addr = start(None);
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        socket,
        "GET /?X-Amz-ChannelARN={} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        ARN.replace(':', "%3A").replace('/', "%2F")
    )
    .unwrap();
    let mut answer = String::new();
    let _ = socket.read_to_string(&mut answer);
    let status = answer.lines().next().unwrap_or_default();
    assert!(status.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-amzn-errortype: accessdeniedexception"),
        "{answer}"
    );
    assert!(answer.contains("not signed"), "{answer}");
}
