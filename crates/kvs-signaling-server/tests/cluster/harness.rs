//! A real `redis-server` on a free port, `kvs-signaling serve --cluster` processes on
//! 127.0.0.1, 127.0.0.2 and 127.0.0.3, HAProxy balancing TCP connections over nodes, and
//! clients that call and connect to a chosen node.

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
/// The balancer's URL every node hands out unless told another (most tests address nodes
/// directly).
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

/// Copies the files of `from`, and of its directories, into `to`.
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
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

    /// Redis's clock (`TIME`), in Unix milliseconds: what nodes score their heartbeats by.
    pub(crate) fn time_ms(&self) -> u64 {
        let time = self.cli(&["TIME"]);
        let mut parts = time.lines().map(|part| part.parse::<u64>().unwrap());
        let (seconds, micros) = (parts.next().unwrap(), parts.next().unwrap());
        seconds * 1000 + micros / 1000
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

    /// A copy of its data (its AOF) as it stands now.
    pub(crate) fn copy_data(&self) -> TempDir {
        let copy = TempDir::new("redis-copy");
        copy_dir(&self.dir.0, &copy.0);
        copy
    }

    /// Kills it (SIGKILL) and starts it again on the same port from `data`, a copy made
    /// before: Redis as a failover to a lagging replica, or a lost disk, leaves it, without
    /// the writes made since.
    pub(crate) fn restart_from(&mut self, data: &TempDir) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::fs::remove_dir_all(&self.dir.0).unwrap();
        std::fs::create_dir_all(&self.dir.0).unwrap();
        copy_dir(&data.0, &self.dir.0);
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

/// The id node `pid` joined the cluster on `redis` with (default prefix).
pub(crate) fn node_id_of(redis: &Redis, pid: u32) -> String {
    let marker = format!("-{pid}-");
    redis
        .cli(&["ZRANGE", "kvs:nodes", "0", "-1"])
        .lines()
        .find(|id| id.contains(&marker))
        .unwrap_or_else(|| panic!("no node of process {pid}"))
        .to_owned()
}

/// A node that connects to Redis as the ACL user `slow` ([`SlowUser`]), whose reads a test
/// can take away.
pub(crate) const SLOW_USER: [(&str, &str); 2] = [
    ("KVS_REDIS_USERNAME", "slow"),
    ("KVS_REDIS_PASSWORD", "slow-secret"),
];

/// The ACL user `slow` of a test's Redis: every right, until [`SlowUser::stop_reads`].
pub(crate) struct SlowUser<'a>(&'a Redis);

impl<'a> SlowUser<'a> {
    /// Adds the user to `redis`.
    pub(crate) fn add(redis: &'a Redis) -> Self {
        let setuser = [
            "ACL",
            "SETUSER",
            "slow",
            "on",
            ">slow-secret",
            "~*",
            "&*",
            "+@all",
        ];
        assert_eq!(redis.cli(&setuser), "OK");
        Self(redis)
    }

    /// Takes `XREAD` from the user, and waits until `node` (connected as it) finds its inbox
    /// unreadable: the read it had waiting in Redis, which `XREAD` rights are not checked
    /// for again, is ended by an empty entry from no node. (The node logs that at most once
    /// in 10 s: a second call soon after waits for nothing more than the empty entry's
    /// write, which is ahead of whatever the test writes next.)
    pub(crate) async fn stop_reads(&self, node: &Node) {
        assert_eq!(self.0.cli(&["ACL", "SETUSER", "slow", "-xread"]), "OK");
        let inbox = format!("kvs:inbox:{}", node_id_of(self.0, node.pid()));
        let empty = r#"{"from":"elsewhere","seq":1,"msgs":[]}"#;
        self.0.cli(&["XADD", &inbox, "*", "v", "1", "b", empty]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !node.log().contains("reading this node's inbox failed") {
            assert!(Instant::now() < deadline, "the node still reads its inbox");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Gives `XREAD` back.
    pub(crate) fn resume_reads(&self) {
        assert_eq!(self.0.cli(&["ACL", "SETUSER", "slow", "+xread"]), "OK");
    }
}

/// A config file of a test's nodes, in a directory of its own (`prefix`): `[limits]` with
/// `limits` (TOML lines). Returns the directory, removed on drop, and the file's path.
pub(crate) fn limits_config(prefix: &str, limits: &str) -> (TempDir, String) {
    let dir = TempDir::new(prefix);
    let path = dir.0.join("node.toml");
    std::fs::write(&path, format!("[limits]\n{limits}")).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

/// A `kvs-signaling serve --cluster` process, killed on drop.
pub(crate) struct Node {
    child: Option<Child>,
    pub(crate) addr: SocketAddr,
    pub(crate) stdout: Captured,
    pub(crate) stderr: Captured,
}

impl Node {
    /// A node on `ip` (127.0.0.x) of the cluster on `redis`, handing out [`PUBLIC_URL`].
    pub(crate) fn start(redis: &Redis, ip: &str, extra: &[&str]) -> Self {
        Self::start_with(&redis.url(), ip, extra, &[])
    }

    /// A node on `ip` of the cluster on the Redis at `url`.
    pub(crate) fn start_on(url: &str, ip: &str, extra: &[&str]) -> Self {
        Self::start_with(url, ip, extra, &[])
    }

    /// [`Node::start`], handing out `public_url` (in GetSignalingChannelEndpoint's answers).
    pub(crate) fn start_with_public_url(
        redis: &Redis,
        ip: &str,
        public_url: &str,
        extra: &[&str],
    ) -> Self {
        Self::launch(&redis.url(), ip, public_url, extra, &[])
    }

    /// The `serve` command of a node on `ip` of the cluster at `url`, with `extra` flags and
    /// `env` variables (and none of the caller's `KVS_` variables).
    fn command(
        url: &str,
        ip: &str,
        public_url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kvs-signaling"));
        command
            .args(["serve", "--no-tls", "--in-memory"])
            .args(["--listen", &format!("{ip}:0")])
            .args(["--cluster", url, "--public-url", public_url])
            .args(["--access-key-id", KEY, "--secret-access-key", SECRET])
            .args(["--region", REGION])
            .args(extra)
            .args(
                (!extra.contains(&"--console-token"))
                    .then_some("--no-console")
                    .iter(),
            )
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
        Self::launch(url, ip, PUBLIC_URL, extra, env)
    }

    fn launch(url: &str, ip: &str, public_url: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Self::command(url, ip, public_url, extra, env)
            .spawn()
            .unwrap();
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
        let mut child = Self::command(url, "127.0.0.1", PUBLIC_URL, extra, env)
            .spawn()
            .unwrap();
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

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("the node has stopped").id()
    }

    /// SIGTERM, and waits (at most `within`) for the node to drain and exit; whether it did.
    pub(crate) fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        signal(child.id(), "TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
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

/// A GET of `path` (`/ready`, `/health`, `/metrics`) from `node`.
pub(crate) async fn get(node: SocketAddr, path: &str) -> Answer {
    let request = format!("GET {path} HTTP/1.1\r\nhost: {node}\r\nconnection: close\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(node).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer to GET {path} from {node}"))
    .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    Answer {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        body: body.to_owned(),
    }
}

/// A TCP proxy on loopback in front of `target` (a node's way to Redis), which the test can
/// cut (every connection through it dropped, new ones refused) and heal: a network
/// partition of one node from Redis.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub(crate) fn start(target: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (cut_flag, generations) = (Arc::clone(&cut), Arc::clone(&generation));
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut_flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(upstream) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let born = generations.load(Ordering::SeqCst);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    let (cut_flag, generations) = (Arc::clone(&cut_flag), Arc::clone(&generations));
                    from.set_read_timeout(Some(Duration::from_millis(50)))
                        .unwrap();
                    thread::spawn(move || {
                        use std::io::{Read as _, Write as _};
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            if cut_flag.load(Ordering::SeqCst)
                                || generations.load(Ordering::SeqCst) != born
                            {
                                let _ = from.shutdown(std::net::Shutdown::Both);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => {
                                    let _ = to.shutdown(std::net::Shutdown::Write);
                                    return;
                                }
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Err(err)
                                    if matches!(
                                        err.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => return,
                            }
                        }
                    });
                }
            }
        });
        Self {
            port,
            cut,
            generation,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub(crate) fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets connections through again.
    pub(crate) fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// HAProxy from Debian in front of nodes, `mode tcp` with `balance roundrobin`: each TCP
/// connection to 127.0.0.1:`port` goes to the next node in turn. Killed on drop.
pub(crate) struct Haproxy {
    child: Option<Child>,
    pub(crate) addr: SocketAddr,
    /// What it wrote: with `option tcplog`, a line per connection once it ends, naming the
    /// node it went to.
    pub(crate) log: Captured,
    _dir: TempDir,
}

impl Haproxy {
    /// Listens on 127.0.0.1:`port`, which a test takes from [`free_port`] before it starts the
    /// nodes (they hand out the balancer's URL, and the balancer needs their addresses). With
    /// `tls`, a PEM file holding a certificate chain and its key, it terminates TLS and passes
    /// the plain bytes on, as a balancer offloading TLS does.
    pub(crate) fn start(port: u16, nodes: &[SocketAddr], tls: Option<&Path>) -> Self {
        let dir = TempDir::new("haproxy");
        let bind = match tls {
            Some(pem) => format!("127.0.0.1:{port} ssl crt {}", pem.display()),
            None => format!("127.0.0.1:{port}"),
        };
        // One thread, so that nothing but the order of connections decides the next node; no
        // health checks (`check`), so that the balancer opens no connection of its own.
        let mut config = format!(
            "\
global
    nbthread 1
    log stdout format raw local0

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h

frontend signaling
    bind {bind}
    default_backend nodes

backend nodes
    balance roundrobin
"
        );
        for (index, node) in nodes.iter().enumerate() {
            config.push_str(&format!("    server node{index} {node}\n"));
        }
        let path = dir.0.join("haproxy.cfg");
        std::fs::write(&path, &config).unwrap();
        let spawn = |program: &str| {
            Command::new(program)
                .arg("-f")
                .arg(&path)
                .arg("-db")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        };
        // Debian puts it in /usr/sbin, which a user's PATH may lack.
        let mut child = match spawn("haproxy") {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => spawn("/usr/sbin/haproxy"),
            spawned => spawned,
        }
        .unwrap_or_else(|err| {
            panic!("cannot start haproxy ({err}); run scripts/install-test-deps.sh")
        });
        let log = Captured::default();
        log.drain(child.stdout.take().unwrap(), None);
        log.drain(child.stderr.take().unwrap(), None);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        // The probe closes at once: with TLS the balancer drops it in the handshake; without,
        // a node may see a connection open and close, and nothing more.
        while std::net::TcpStream::connect(addr).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "haproxy exited with {status}\n{}\n--- haproxy.cfg ---\n{config}",
                    log.text()
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("haproxy did not listen on {addr}\n{}", log.text());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Self {
            child: Some(child),
            addr,
            log,
            _dir: dir,
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!("=== haproxy {} ===\n{}", self.addr, self.log.text());
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
    exchange(node, path, &request).await
}

/// Writes `request` (one, with `connection: close`) to `node` and reads the answer to the end.
pub(crate) async fn exchange(node: SocketAddr, path: &str, request: &str) -> Answer {
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

/// The value of the unlabelled sample `name` in `node`'s `/metrics`.
pub(crate) async fn metric(node: SocketAddr, name: &str) -> u64 {
    let request = format!("GET /metrics HTTP/1.1\r\nhost: {node}\r\nconnection: close\r\n\r\n");
    let answer = exchange(node, "/metrics", &request).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
        .body
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {node}'s /metrics:\n{}", answer.body))
        .parse()
        .unwrap()
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
