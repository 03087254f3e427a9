//! A coturn (`turnserver`) on 127.0.0.1 for one test or example.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{self, Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use turn_types::stun::message::Message;

use super::{UdpClient, binding_request, read_binding_response, transaction_id};

/// A `turnserver` on 127.0.0.1 with `use-auth-secret`, killed and cleaned up on drop.
///
/// It listens on UDP only (no TCP, TLS or DTLS), relays on 127.0.0.1 from a range of 16 ports
/// of its own above Linux's ephemeral range, allows loopback peers (`allow-loopback-peers`; no
/// `denied-peer-ip` is set), adds FINGERPRINT to its messages, and reads no configuration
/// file. Its realm is unique per instance, so a client that reached some other server would
/// notice. Its log is in a temporary directory, printed on drop if the thread is panicking.
#[derive(Debug)]
pub struct Coturn {
    child: Child,
    addr: SocketAddr,
    realm: String,
    relay_ports: Range<u16>,
    dir: PathBuf,
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);
/// Listening ports handed out in this process: each is used once, so two tests never race
/// for the same one (coturn binds with SO_REUSEPORT, and two would share it silently).
static PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Whether `turnserver` is an executable file in one of the `PATH` directories.
pub fn turnserver_on_path() -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join("turnserver")))
}

fn is_executable(file: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(file).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        file.is_file()
    }
}

impl Coturn {
    /// Starts coturn with `secrets` as its `static-auth-secret`s (the first signs nothing
    /// itself: coturn accepts a password made with any of them), and waits until it answers a
    /// STUN Binding request. Retries twice with another port if it does not come up in 3 s.
    /// Blocks the calling thread meanwhile.
    ///
    /// Fails with [`io::ErrorKind::NotFound`] when `turnserver` is not installed: install it
    /// with `scripts/install-test-deps.sh`.
    pub fn start(secrets: &[&str]) -> io::Result<Self> {
        let mut logs = String::new();
        for _ in 0..3 {
            let mut coturn = Self::spawn(secrets)?;
            if coturn.wait_until_ready(Duration::from_secs(3))? {
                return Ok(coturn);
            }
            logs.push_str(&coturn.log());
        }
        Err(io::Error::other(format!(
            "coturn did not come up in three attempts:\n{logs}"
        )))
    }

    fn spawn(secrets: &[&str]) -> io::Result<Self> {
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let port = free_udp_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let pid = process::id();
        let realm = format!("kvs-test-{pid}-{n}");
        // Relay ports from 61000, above Linux's ephemeral range, 16 per instance; the process
        // id moves the start, so that test binaries running at once seldom share a range.
        let slot = (u64::from(pid) + n) % 200;
        let first = 61_000 + u16::try_from(slot).unwrap_or(0) * 16;
        let relay_ports = first..first + 16;
        let dir = std::env::temp_dir().join(format!("kvs-coturn-{pid}-{n}"));
        fs::create_dir_all(&dir)?;
        let log = File::create(dir.join("turnserver.log"))?;

        let mut command = Command::new("turnserver");
        command
            .arg("-n") // no configuration file: /etc/turnserver.conf stays out of it
            .arg("--use-auth-secret")
            .args(secrets.iter().map(|s| format!("--static-auth-secret={s}")))
            .arg(format!("--realm={realm}"))
            .arg("--listening-ip=127.0.0.1")
            .arg("--relay-ip=127.0.0.1")
            .arg(format!("--listening-port={port}"))
            .arg(format!("--min-port={}", relay_ports.start))
            .arg(format!("--max-port={}", relay_ports.end - 1))
            .arg("--allow-loopback-peers")
            .arg("--fingerprint")
            .args([
                "--no-tcp",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--no-rfc5780",
            ])
            .arg(format!(
                "--pidfile={}",
                dir.join("turnserver.pid").display()
            ))
            .arg(format!("--db={}", dir.join("turndb").display()))
            .args(["--log-file=stdout", "--simple-log"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command.spawn().map_err(|e| {
            let _ = fs::remove_dir_all(&dir);
            io::Error::new(
                e.kind(),
                format!(
                    "cannot run turnserver ({e}): install it with scripts/install-test-deps.sh"
                ),
            )
        })?;
        Ok(Self {
            child,
            addr,
            realm,
            relay_ports,
            dir,
        })
    }

    /// Polls with STUN Binding requests until coturn answers (`true`), it exits or `limit`
    /// passes (`false`). coturn keeps retrying a listening port someone else holds, so a port
    /// lost to a race shows as silence until `limit`.
    fn wait_until_ready(&mut self, limit: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + limit;
        let client = UdpClient::connect(self.addr, Duration::from_millis(50))?;
        let local = client.local_addr()?;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                self.append_to_log(&format!("turnserver exited with {status}"));
                return Ok(false);
            }
            let id = transaction_id();
            let request = binding_request(id).map_err(io::Error::other)?;
            match client.transact(&request, id, 1) {
                Ok(response) => {
                    let mapped = Message::from_bytes(&response)
                        .map_err(io::Error::other)
                        .and_then(|response| {
                            read_binding_response(&response).map_err(io::Error::other)
                        })?;
                    if mapped != local {
                        return Err(io::Error::other(format!(
                            "coturn at {} maps {local} to {mapped}",
                            self.addr
                        )));
                    }
                    return Ok(true);
                }
                // Not listening yet: the ICMP port unreachable comes back as a refusal.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(_) => {}
            }
        }
        Ok(false)
    }

    /// Where it listens (UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its realm, unique per instance.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The ports its relayed addresses are on (on 127.0.0.1).
    pub fn relay_ports(&self) -> Range<u16> {
        self.relay_ports.clone()
    }

    /// The URI for our `TurnConfig`: `turn:127.0.0.1:PORT?transport=udp`.
    pub fn turn_uri(&self) -> String {
        format!("turn:{}?transport=udp", self.addr)
    }

    /// The STUN URI: `stun:127.0.0.1:PORT`.
    pub fn stun_uri(&self) -> String {
        format!("stun:{}", self.addr)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
    }

    fn append_to_log(&self, line: &str) {
        use std::io::Write as _;
        if let Ok(mut file) = fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("turnserver.log"))
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("coturn log ({}):\n{}", self.addr, self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago and that no other coturn of this process
/// got.
fn free_udp_port() -> io::Result<u16> {
    loop {
        let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let mut ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
        if ports.insert(port) {
            return Ok(port);
        }
    }
}
