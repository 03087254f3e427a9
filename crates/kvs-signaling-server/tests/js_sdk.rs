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

mod common;

use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use common::{KEY, REGION, SECRET, Serve, TempDir};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};

/// The script's own time limit; it exits 1 when it elapses.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(20);

/// A POST to `server` over TLS (trusting the development CA), signed with `host;x-amz-date` as
/// the C SDK signs its calls; the status and the body.
fn post(server: &Serve, path: &str, body: &str) -> (u16, String) {
    let host = server.addr.to_string();
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
    for cert in CertificateDer::pem_file_iter(&server.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::IpAddress(server.addr.ip().into());
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect_timeout(&server.addr, Duration::from_secs(5)).unwrap();
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
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(err) => panic!("POST {path}: {err}"),
    }
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("POST {path}: no HTTP answer: {response:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

#[test]
fn official_js_sdk_signaling_client_as_master_and_viewers() {
    // No skipping when Node is missing, in CI or not, like the coturn tests: a skipped test reads
    // as a passed one.
    common::require_node(&["amazon-kinesis-video-streams-webrtc", "ws"], &[]);

    let dir = TempDir::new("js-sdk");
    let server = Serve::start(&dir.0);

    let (status, created) = post(
        &server,
        "/createSignalingChannel",
        r#"{"ChannelName":"js-sdk-e2e"}"#,
    );
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
    let (status, endpoints) = post(
        &server,
        "/getSignalingChannelEndpoint",
        &request.to_string(),
    );
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

    common::run_node(
        &server,
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
        SCRIPT_TIMEOUT,
        "e2e: PASSED",
    );
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
    common::require_node(
        &[
            "amazon-kinesis-video-streams-webrtc",
            "aws-sdk",
            "playwright-core",
        ],
        &["/usr/bin/chromium", "/usr/bin/certutil"],
    );

    let dir = TempDir::new("js-sdk");
    let server = Serve::start(&dir.0);
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();

    eprintln!("screenshots go to {}", screenshots.display());
    let stdout = common::run_node(
        &server,
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
        BROWSER_TIMEOUT,
        "browser: PASSED",
    );
    for name in ["clock-right", "clock-15-minutes-ahead"] {
        assert!(
            stdout.contains(&format!("ok: {name}: master and viewer connected")),
            "{stdout}"
        );
    }
}
