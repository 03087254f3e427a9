//! Channels survive `kill -9` of the `kvs-signaling` binary.

#![cfg(test)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `kvs-signaling serve`, killed with SIGKILL on drop.
struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start(data_dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kvs-signaling"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--no-tls",
                "--insecure-no-auth",
                "--data-dir",
            ])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let first = BufReader::new(stdout).lines().next().unwrap().unwrap();
        let addr = first.rsplit("http://").next().unwrap().trim().to_owned();
        Self { child, addr }
    }

    fn post(&self, path: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split(' ').nth(1).unwrap().parse().unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
        (status, body)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no drain, no clean close of the store.
        let _ = self.child.wait();
    }
}

#[test]
fn channels_survive_kill_minus_nine() {
    let dir = std::env::temp_dir().join(format!("kvs-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let created = {
        let server = Serve::start(&dir);
        let (status, body) =
            server.post("/createSignalingChannel", r#"{"ChannelName":"survivor"}"#);
        assert_eq!(status, 200, "{body}");
        body
        // Killed here, right after the answer.
    };
    let server = Serve::start(&dir);
    let (status, described) =
        server.post("/describeSignalingChannel", r#"{"ChannelName":"survivor"}"#);
    assert_eq!(status, 200, "{described}");
    let arn = created.split('"').nth(3).unwrap();
    assert!(described.contains(arn), "{described} should name {arn}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_drains_and_exits() {
    let dir = std::env::temp_dir().join(format!("kvs-term-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut server = Serve::start(&dir);
    let (status, _) = server.post("/createSignalingChannel", r#"{"ChannelName":"c"}"#);
    assert_eq!(status, 200);
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    // The drain waits out the GO_AWAY grace period (60 s) before exiting; the listener stops at
    // once, so new connections are refused while it drains.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if TcpStream::connect(&server.addr).is_err() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the listener kept accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
