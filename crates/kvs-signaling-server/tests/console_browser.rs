//! The live console (`/console/`) in headless Chromium against the `kvs-signaling` binary.
//!
//! The binary runs `serve` with its default TLS (a development CA and certificate made in a
//! temporary directory), authentication on and its console; the test reads the console URL it
//! prints (with its token) and runs `tests/js-sdk/console.mjs`, which signs in with it, makes a
//! channel with the page's form, watches master and viewer connections of the official KVS
//! WebRTC SDK appear and leave within a second and their relayed offer in the event stream,
//! makes a test call between two more pages with Chromium's fake camera, chats over its data
//! channel, and deletes the channel; see that script for every check. Screenshots of each step
//! go to `CARGO_TARGET_TMPDIR/console-screenshots`, and their paths are printed. Node, the SDKs
//! and Chromium come from `scripts/install-test-deps.sh`; without them the test fails (it does
//! not skip).

// Marks the helpers below as test code, for clippy's `allow-*-in-tests`.
#![cfg(test)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{KEY, REGION, SECRET, Serve, TempDir};

/// The script's own time limit; it exits 1 when it elapses. A run takes about 10 s.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn console_in_chromium_shows_connections_events_and_a_test_call() {
    common::require_node(
        &[
            "amazon-kinesis-video-streams-webrtc",
            "aws-sdk",
            "playwright-core",
            "ws",
        ],
        &["/usr/bin/chromium", "/usr/bin/certutil"],
    );

    let dir = TempDir::new("console");
    let server = Serve::start(&dir.0);
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    // Only this run's pictures: a stale one must not pass for a new one.
    let _ = std::fs::remove_dir_all(&screenshots);
    std::fs::create_dir_all(&screenshots).unwrap();

    let stdout = common::run_node(
        &server,
        "console.mjs",
        &[
            ("KVS_CONSOLE_URL", server.console_url.clone()),
            ("KVS_CA_FILE", server.ca.display().to_string()),
            ("KVS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
            ("KVS_SCREENSHOTS", screenshots.display().to_string()),
            (
                "KVS_CONSOLE_TIMEOUT_MS",
                CONSOLE_TIMEOUT.as_millis().to_string(),
            ),
            (
                "AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE",
                "1".to_owned(),
            ),
        ],
        CONSOLE_TIMEOUT,
        "console: PASSED",
    );

    let mut taken: Vec<_> = std::fs::read_dir(&screenshots)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    taken.sort();
    eprintln!("screenshots:");
    for path in &taken {
        eprintln!("  {}", path.display());
    }
    for name in [
        "01-signed-out",
        "04-viewer-connected",
        "05-offer-relayed",
        "06-viewer-closed",
        "07-call-master",
        "08-call-viewer",
        "09-console-during-call",
        "10-channel-deleted",
    ] {
        let path = screenshots.join(format!("{name}.png"));
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        assert!(
            size > 1000,
            "no screenshot {} ({size} bytes)",
            path.display()
        );
        assert!(
            stdout.contains(&format!("screenshot: {}", path.display())),
            "{stdout}"
        );
    }
}
