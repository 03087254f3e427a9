//! What the tests that run Node scripts against the `kvs-signaling` binary share
//! (`js_sdk.rs`, `console_browser.rs`, and `cluster.rs` for Node alone): the binary serving
//! over TLS with its development CA, Node with the packages and tools of
//! `scripts/install-test-deps.sh`, and `node SCRIPT` run with a time limit.

#![allow(
    dead_code,
    reason = "each test binary compiles this module and uses a part of it"
)]

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

pub(crate) const KEY: &str = "AKIDJSSDKE2ETEST";
pub(crate) const SECRET: &str = "js-sdk-e2e/secret+key";
/// Not the server's default, so that a region the SDK did not get from us would show.
pub(crate) const REGION: &str = "eu-west-1";
/// How long the server may take to print its endpoint.
const SERVER_START: Duration = Duration::from_secs(15);
/// Node's start, on top of a script's own limit, before the test kills it.
const NODE_GRACE: Duration = Duration::from_secs(15);
const INSTALL: &str =
    "run scripts/install-test-deps.sh (it installs Node.js and runs `npm ci` in tests/js-sdk)";

/// `tests/js-sdk`, where the scripts and their `node_modules` are.
pub(crate) fn js_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root).join("tests/js-sdk")
}

/// Fails (never skips: a skipped test reads as a passed one) unless `node` runs, the npm
/// `packages` are installed in `tests/js-sdk/node_modules` and the `tools` exist.
pub(crate) fn require_node(packages: &[&str], tools: &[&str]) {
    match node_version() {
        Ok(version) => eprintln!("node {version}"),
        Err(err) => panic!("cannot run `node` ({err}); {INSTALL}"),
    }
    for package in packages {
        let manifest = js_dir()
            .join("node_modules")
            .join(package)
            .join("package.json");
        assert!(
            manifest.is_file(),
            "{} is missing: {INSTALL}",
            manifest.display()
        );
    }
    for tool in tools {
        assert!(Path::new(tool).is_file(), "{tool} is missing: {INSTALL}");
    }
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
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(prefix: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{prefix}-{}-{nanos}", std::process::id()));
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
pub(crate) struct Captured(Arc<Mutex<String>>);

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

    pub(crate) fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A running `kvs-signaling serve`, killed on drop.
pub(crate) struct Serve {
    child: Child,
    pub(crate) addr: SocketAddr,
    /// The development CA to trust, as the server printed it.
    pub(crate) ca: PathBuf,
    /// The live console's URL, with its token, as the server printed it.
    pub(crate) console_url: String,
    pub(crate) stdout: Captured,
    pub(crate) stderr: Captured,
}

impl Serve {
    /// Starts the binary with its default TLS, authentication on with the key [`KEY`], and its
    /// console. Channels are kept in memory; the development certificate goes to `dir/tls`.
    pub(crate) fn start(dir: &Path) -> Self {
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
            "KVS_CONSOLE_TOKEN",
        ] {
            command.env_remove(name);
        }
        let mut child = command.spawn().unwrap();
        let (stdout, stderr) = (Captured::default(), Captured::default());
        let (lines_tx, lines) = mpsc::channel();
        stdout.drain(child.stdout.take().unwrap(), Some(lines_tx));
        stderr.drain(child.stderr.take().unwrap(), None);

        let deadline = Instant::now() + SERVER_START;
        let (mut url, mut ca, mut console_url) = (None, None, None);
        while url.is_none() || ca.is_none() || console_url.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = lines.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "kvs-signaling did not print its endpoint, CA and console URL within \
                     {SERVER_START:?}\n--- stdout ---\n{}--- stderr ---\n{}",
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
            let line = line.trim();
            if line.starts_with("https://") && line.contains("/console/?token=") {
                console_url = Some(line.to_owned());
            }
        }
        let (url, ca, console_url) = (url.unwrap(), ca.unwrap(), console_url.unwrap());
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
        assert!(
            console_url.starts_with(&format!("{url}/console/?token=")),
            "the console URL {console_url} is not on the server's {url}"
        );
        Self {
            child,
            addr,
            ca,
            console_url,
            stdout,
            stderr,
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `node script` in `tests/js-sdk` with `envs`, killed after `limit` plus
/// [`NODE_GRACE`]; prints its output, then fails unless it exited with 0 and printed
/// `passed`. Returns its stdout.
pub(crate) fn run_node(
    server: &Serve,
    script: &str,
    envs: &[(&str, String)],
    limit: Duration,
    passed: &str,
) -> String {
    run_script(script, envs, limit, passed, || {
        format!(
            "--- server stdout ---\n{}--- server stderr ---\n{}",
            server.stdout.text(),
            server.stderr.text()
        )
    })
}

/// [`run_node`] against servers other than a [`Serve`]: a failure shows `servers()`, what
/// they said, after Node's output.
pub(crate) fn run_script(
    script: &str,
    envs: &[(&str, String)],
    limit: Duration,
    passed: &str,
    servers: impl Fn() -> String,
) -> String {
    let mut command = Command::new("node");
    command
        .arg(script)
        .current_dir(js_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in envs {
        command.env(name, value);
    }
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let (stdout, stderr) = (Captured::default(), Captured::default());
    stdout.drain(child.stdout.take().unwrap(), None);
    stderr.drain(child.stderr.take().unwrap(), None);
    let deadline = started + limit + NODE_GRACE;
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
    let elapsed = started.elapsed();
    let code = status.map(|s| s.code().unwrap_or(-1));
    let (stdout, stderr) = (stdout.text(), stderr.text());
    eprintln!("--- node {script} ({elapsed:?}) stdout ---\n{stdout}--- stderr ---\n{stderr}");
    assert!(
        code == Some(0),
        "node {script} {} after {elapsed:?}\n--- node stdout ---\n{stdout}--- node stderr ---\n{stderr}{}",
        code.map_or_else(
            || "was killed: it did not exit by itself".to_owned(),
            |c| format!("exited with {c}")
        ),
        servers()
    );
    assert!(stdout.contains(passed), "{stdout}");
    stdout
}
