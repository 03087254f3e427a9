//! Issue 11 on the `kvs-signaling` binary: a server out of descriptors backs off instead of
//! spinning, and SIGTERM drains and exits as soon as the last connection is closed, each
//! close frame on the wire first.

#![cfg(test)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `kvs-signaling serve` on plain HTTP without authentication, in memory; killed on
/// drop if still running.
struct Serve {
    child: Child,
    addr: String,
    stderr: std::path::PathBuf,
}

impl Serve {
    /// Starts the binary through `sh -c`, after `shell_prefix` (a `ulimit`, say).
    fn start(name: &str, shell_prefix: &str, extra: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kvs-resources-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let stderr = dir.join("stderr");
        let script = format!(
            "{shell_prefix} exec '{}' serve --listen 127.0.0.1:0 --no-tls --insecure-no-auth \
             --in-memory {extra} 2>'{}'",
            env!("CARGO_BIN_EXE_kvs-signaling"),
            stderr.display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let first = BufReader::new(stdout).lines().next().unwrap().unwrap();
        let addr = first.rsplit("http://").next().unwrap().trim().to_owned();
        Self {
            child,
            addr,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's CPU time so far (user and system), from `/proc`.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15 of stat(5); after the `)` they are 12 and 13.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }

    fn log_lines(&self) -> usize {
        std::fs::read_to_string(&self.stderr)
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    /// An HTTP exchange; `None` when the server did not answer within two seconds.
    fn request(&self, request: &str) -> Option<String> {
        let mut stream = TcpStream::connect(&self.addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response)
    }

    fn healthy(&self) -> bool {
        self.request("GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
    }

    fn post(&self, path: &str, body: &str) -> String {
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.request(&request).unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn out_of_descriptors_the_server_backs_off_instead_of_spinning() {
    // 128 descriptors, and a connection cap above them, so that accept runs into EMFILE.
    let config = std::env::temp_dir().join(format!("kvs-emfile-{}.toml", std::process::id()));
    std::fs::write(&config, "[limits]\nmax_connections = 100000\n").unwrap();
    let serve = Serve::start(
        "emfile",
        "ulimit -n 128 &&",
        &format!("--config '{}'", config.display()),
    );
    assert!(serve.healthy());
    // Far more idle connections than the server has descriptors.
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(TcpStream::connect(&serve.addr).unwrap());
    }
    std::thread::sleep(Duration::from_millis(500));
    let (cpu, lines) = (serve.cpu(), serve.log_lines());
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let spent = serve.cpu().saturating_sub(cpu);
    let written = serve.log_lines().saturating_sub(lines);
    let elapsed = started.elapsed();
    // A server spinning on EMFILE burns a whole core and writes millions of lines.
    assert!(
        spent < elapsed / 5,
        "the server used {spent:?} of CPU in {elapsed:?} while out of descriptors"
    );
    assert!(written <= 5, "{written} log lines in {elapsed:?}");
    let log = std::fs::read_to_string(&serve.stderr).unwrap();
    assert!(log.contains("accept failed; backing off"), "{log}");
    // Descriptors come back: the server serves again at once.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !serve.healthy() {
        assert!(Instant::now() < deadline, "the server did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&config);
}

/// A masked client frame.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode, 0x80 | payload.len() as u8, 1, 2, 3, 4];
    out.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]),
    );
    out
}

#[test]
fn sigterm_drains_and_exits_once_the_last_connection_is_closed() {
    let mut serve = Serve::start("drain", "", "");
    let created = serve.post("/createSignalingChannel", r#"{"ChannelName":"drained"}"#);
    let arn = created
        .split(r#""ChannelARN":""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let encoded: String = arn
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    // Two viewers, neither handling GO_AWAY (as the official C SDK).
    let mut viewers = Vec::new();
    for id in ["a", "b"] {
        let mut tcp = TcpStream::connect(&serve.addr).unwrap();
        write!(
            tcp,
            "GET /?X-Amz-ChannelARN={encoded}&X-Amz-ClientId={id} HTTP/1.1\r\nHost: {}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: wss\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            serve.addr
        )
        .unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        viewers.push(tcp);
    }
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &serve.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Each viewer gets its close frame (1001, no GO_AWAY first) before the end of the stream.
    for mut tcp in viewers {
        let mut got = Vec::new();
        let mut chunk = [0u8; 64];
        loop {
            let n = tcp.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
            if got.len() >= 4 && got[0] == 0x88 {
                // Answer the close, as a client does, then wait for the end.
                tcp.write_all(&frame(0x8, &1001u16.to_be_bytes())).unwrap();
            }
        }
        assert!(got.len() >= 4, "{got:?}");
        assert_eq!(&got[..4], &[0x88, 19, 0x03, 0xE9], "{got:?}");
        assert_eq!(&got[4..], b"server going away");
    }
    // The process exits at once, not after the 60 s grace period.
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = serve.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
