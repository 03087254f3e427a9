//! A real `redis-server` on a free port, `kvs-signaling serve --cluster` processes on
//! 127.0.0.1, 127.0.0.2 and 127.0.0.3, and clients that call and connect to a chosen node.

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt as _, StreamExt as _};
use kvs_ice_rest::{Credentials, presign_connect_url_with, sign_request_headers};
use kvs_signaling_proto::{ChannelArn, ClientId};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

pub(crate) const KEY: &str = "AKIDCLUSTERTEST";
pub(crate) const SECRET: &str = "cluster-test-secret";
pub(crate) const REGION: &str = "us-west-2";
/// The balancer's URL every node hands out (the tests address nodes directly).
pub(crate) const PUBLIC_URL: &str = "http://signaling.test";

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
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free TCP port on loopback.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `signal` to `pid`.
pub(crate) fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A `redis-server` of the test's own, killed on drop.
pub(crate) struct Redis {
    child: Option<Child>,
    pub(crate) port: u16,
    dir: TempDir,
    /// Arguments beyond the defaults (TLS files, replication, a password).
    extra: Vec<String>,
    /// Whether the port speaks TLS (`--port 0 --tls-port PORT`).
    tls: bool,
    /// What `redis-cli` needs to reach it (TLS files, a password).
    cli_args: Vec<String>,
}

impl Redis {
    pub(crate) fn start() -> Self {
        Self::start_with(&[], false, &[])
    }

    /// A `redis-server` with `extra` arguments; on a TLS port when `tls` (then `extra` names
    /// its certificate files); `cli_args` are what `redis-cli` needs to reach it.
    pub(crate) fn start_with(extra: &[&str], tls: bool, cli_args: &[&str]) -> Self {
        let dir = TempDir::new("redis");
        let port = free_port();
        let mut redis = Self {
            child: None,
            port,
            dir,
            extra: extra.iter().map(|arg| (*arg).to_owned()).collect(),
            tls,
            cli_args: cli_args.iter().map(|arg| (*arg).to_owned()).collect(),
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let ports: &[&str] = match self.tls {
            true => &["--port", "0", "--tls-port", &port],
            false => &["--port", &port],
        };
        let child = Command::new("redis-server")
            .args(ports)
            .args(["--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ])
            .args(["--maxmemory-policy", "noeviction"])
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(&self.dir.0)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start redis-server ({err}); run scripts/install-test-deps.sh")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn url(&self) -> String {
        match self.tls {
            true => format!("rediss://127.0.0.1:{}", self.port),
            false => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// `redis-cli`'s answer to `args`.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(&self.cli_args)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Kills it (SIGKILL), for good.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills it (SIGKILL) and starts it again on the same port and data (its AOF).
    pub(crate) fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Everything a child writes to a pipe, collected by a thread.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn drain(
        &self,
        pipe: impl std::io::Read + Send + 'static,
        lines: Option<mpsc::Sender<String>>,
    ) {
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

/// A `kvs-signaling serve --cluster` process, killed on drop.
pub(crate) struct Node {
    child: Option<Child>,
    pub(crate) addr: SocketAddr,
    pub(crate) stdout: Captured,
    pub(crate) stderr: Captured,
}

impl Node {
    /// A node on `ip` (127.0.0.x) of the cluster on `redis`.
    pub(crate) fn start(redis: &Redis, ip: &str, extra: &[&str]) -> Self {
        Self::start_with(&redis.url(), ip, extra, &[])
    }

    /// The `serve` command of a node on `ip` of the cluster at `url`, with `extra` flags and
    /// `env` variables (and none of the caller's `KVS_` variables).
    fn command(url: &str, ip: &str, extra: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kvs-signaling"));
        command
            .args(["serve", "--no-tls", "--in-memory", "--no-console"])
            .args(["--listen", &format!("{ip}:0")])
            .args(["--cluster", url, "--public-url", PUBLIC_URL])
            .args(["--access-key-id", KEY, "--secret-access-key", SECRET])
            .args(["--region", REGION])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("KVS_CLUSTER_LOG")
                    .unwrap_or_else(|_| "info,kvs_signaling_server::cluster=debug".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars() {
            if name.starts_with("KVS_") && name != "KVS_CLUSTER_LOG" {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().copied());
        command
    }

    /// A node on `ip` of the cluster at `url`, with `extra` flags and `env` variables.
    pub(crate) fn start_with(url: &str, ip: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Self::command(url, ip, extra, env).spawn().unwrap();
        let (stdout, stderr) = (Captured::default(), Captured::default());
        let (lines_tx, lines) = mpsc::channel();
        stdout.drain(child.stdout.take().unwrap(), Some(lines_tx));
        stderr.drain(child.stderr.take().unwrap(), None);
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = lines.recv_timeout(left) else {
                let _ = child.kill();
                panic!(
                    "the node did not start\n--- stdout ---\n{}--- stderr ---\n{}",
                    stdout.text(),
                    stderr.text()
                );
            };
            if let Some(addr) = line.trim().strip_prefix("listening on ") {
                break addr.parse().unwrap();
            }
        };
        Self {
            child: Some(child),
            addr,
            stdout,
            stderr,
        }
    }

    /// A node of the cluster at `url` that must refuse to start, within 30 s: what it wrote
    /// to standard error.
    pub(crate) fn refused(url: &str, extra: &[&str], env: &[(&str, &str)]) -> String {
        let mut child = Self::command(url, "127.0.0.1", extra, env).spawn().unwrap();
        let (stdout, stderr) = (Captured::default(), Captured::default());
        stdout.drain(child.stdout.take().unwrap(), None);
        stderr.drain(child.stderr.take().unwrap(), None);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the node neither started nor refused within 30 s\n--- stdout ---\n{}--- stderr ---\n{}",
                    stdout.text(),
                    stderr.text()
                );
            }
            thread::sleep(Duration::from_millis(50));
        };
        assert!(
            !status.success(),
            "the node exited successfully\n--- stdout ---\n{}--- stderr ---\n{}",
            stdout.text(),
            stderr.text()
        );
        // The pipes' last lines are read by their threads; the process has ended, so they
        // end soon.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !stderr.text().contains("kvs-signaling") && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !stdout.text().contains("listening on"),
            "the node served before it failed: {}",
            stdout.text()
        );
        stderr.text()
    }

    /// SIGKILL, and waits for the process to end.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The node's log so far.
    pub(crate) fn log(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout.text(),
            self.stderr.text()
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        // A failed test shows what each node said.
        if thread::panicking() {
            eprintln!("=== node {} ===\n{}", self.addr, self.log());
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A REST call to `node`, signed as the AWS SDKs sign it.
pub(crate) async fn call(node: SocketAddr, path: &str, body: &str) -> Answer {
    let authority = node.to_string();
    let credentials = Credentials::new(KEY, SECRET);
    let signed = sign_request_headers(
        &credentials,
        REGION,
        SystemTime::now(),
        "POST",
        &authority,
        path,
        body.as_bytes(),
    )
    .unwrap();
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: {authority}\r\n");
    for (name, value) in signed {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    let mut stream = tokio::net::TcpStream::connect(node).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer to {path} from {node}"))
    .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    Answer {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        body: body.to_owned(),
    }
}

/// Creates channel `name` through `node`; its ARN.
pub(crate) async fn create(node: SocketAddr, name: &str) -> String {
    let answer = call(
        node,
        "/createSignalingChannel",
        &format!(r#"{{"ChannelName":"{name}"}}"#),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["ChannelARN"].as_str().unwrap().to_owned()
}

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A connect to `node` presigned as the official SDKs presign it: the master when
/// `client_id` is `None`.
pub(crate) fn connect_url(
    node: SocketAddr,
    arn: &str,
    client_id: Option<&str>,
    extra: &[(&str, &str)],
) -> String {
    let arn = ChannelArn::new(arn).unwrap();
    let client_id = client_id.map(|id| ClientId::new(id).unwrap());
    presign_connect_url_with(
        &Credentials::new(KEY, SECRET),
        REGION,
        &format!("ws://{node}"),
        &arn,
        client_id.as_ref(),
        extra,
        SystemTime::now(),
    )
    .unwrap()
}

/// A WebSocket to `node` for `arn` as its master (`None`) or viewer.
pub(crate) async fn connect(node: SocketAddr, arn: &str, client_id: Option<&str>) -> Ws {
    connect_with(node, arn, client_id, &[]).await
}

/// [`connect`] with extra connect parameters.
pub(crate) async fn connect_with(
    node: SocketAddr,
    arn: &str,
    client_id: Option<&str>,
    extra: &[(&str, &str)],
) -> Ws {
    let url = connect_url(node, arn, client_id, extra);
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(err)) => panic!("connect to {node} failed: {err}"),
        Err(_) => panic!("connect to {node} timed out"),
    }
}

pub(crate) async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

/// The next text frame within `within`, or `None`.
pub(crate) async fn next_text(ws: &mut Ws, within: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(text)))) => return Some(text.as_str().to_owned()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            // Closed, reset or ended: nothing more will come.
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => return None,
            Ok(other) => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The next text frame, which must come within 5 s.
pub(crate) async fn text(ws: &mut Ws) -> String {
    next_text(ws, Duration::from_secs(5))
        .await
        .expect("no frame within 5 s")
}

/// The close code the socket ends with, within `within`.
pub(crate) async fn closed(ws: &mut Ws, within: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("the socket was still open after {within:?}"),
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return None,
        }
    }
}
