//! `kvs-signaling connect` against `kvs-signaling serve`, both as users run them: a master and
//! a viewer typing messages to each other, every event read back as JSON.

#![cfg(test)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const KEY: &str = "AKIDCLITEST";
const SECRET: &str = "cli-test-secret";

/// A child process killed on drop, its stdout read line by line on a thread.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// The first line containing every one of `needles`, within 10 s.
    fn wait_for(&self, needles: &[&str]) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if needles.iter().all(|n| line.contains(n)) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!(
                    "no line with {needles:?} within 10 s; saw:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(endpoint: &str, args: &[&str]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kvs-signaling"));
    command
        .arg("connect")
        .args(["--endpoint", endpoint])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_REGION", "us-west-2");
    Running::spawn(&mut command)
}

#[test]
fn a_master_and_a_viewer_talk_through_the_cli() {
    let mut serve = Command::new(env!("CARGO_BIN_EXE_kvs-signaling"));
    serve
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-tls",
            "--in-memory",
        ])
        .args(["--access-key-id", KEY, "--secret-access-key", SECRET]);
    let server = Running::spawn(&mut serve);
    let first = server.wait_for(&["is serving on"]);
    let endpoint = first.rsplit(' ').next().unwrap().trim().to_owned();
    // `serve` no longer restarts itself with allocator settings in its environment: the
    // choice of allocator is the program's own.
    #[cfg(target_os = "linux")]
    {
        let environ = std::fs::read(format!("/proc/{}/environ", server.child.id())).unwrap();
        assert!(
            !environ
                .split(|b| *b == 0)
                .any(|var| var.starts_with(b"MALLOC_MMAP_THRESHOLD_")),
            "serve set MALLOC_MMAP_THRESHOLD_ on itself"
        );
    }

    let mut master = connect(
        &endpoint,
        &["--channel", "cli", "--role", "master", "--create"],
    );
    master.wait_for(&[r#""state":"connected""#]);
    let mut viewer = connect(
        &endpoint,
        &[
            "--channel",
            "cli",
            "--role",
            "viewer",
            "--client-id",
            "typist",
        ],
    );
    viewer.wait_for(&["\"ice-servers\""]);
    viewer.wait_for(&[r#""state":"connected""#]);

    viewer.type_line(r#"offer {"type":"offer","sdp":"v=0\r\ns=cli\r\n"}"#);
    viewer.wait_for(&["\"sent\"", "\"how\":\"written\""]);
    let got = master.wait_for(&["SDP_OFFER"]);
    assert!(got.contains(r#""sender":"typist""#), "{got}");
    assert!(
        got.contains(r#""payload":{"sdp":"v=0\r\ns=cli\r\n","type":"offer"}"#),
        "{got}"
    );

    // The master must name the viewer; the CLI says so instead of sending.
    master.type_line(r#"answer {"type":"answer","sdp":"v=0"}"#);
    master.wait_for(&["input-error", "to=ID"]);
    master.type_line(r#"answer to=typist {"type":"answer","sdp":"v=0"}"#);
    let got = viewer.wait_for(&["SDP_ANSWER"]);
    assert!(got.contains(r#""sender":null"#), "{got}");

    // A raw envelope goes out as it is (a viewer's recipient is ignored by the service).
    viewer.type_line(r#"raw {"action":"ICE_CANDIDATE","messagePayload":"e30=","correlationId":"c-1","recipientClientId":"x"}"#);
    viewer.wait_for(&["\"sent\""]);
    master.wait_for(&["ICE_CANDIDATE", "typist"]);

    viewer.type_line("quit");
    let status = viewer.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn sighup_rotates_the_turn_secret_and_clients_hear_reconnect_ice_server() {
    let dir = std::env::temp_dir().join(format!("kvs-hup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("kvs.toml");
    let write = |secrets: &str| {
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nin_memory = true\n[tls]\ndisabled = true\n\
                 [[credentials]]\naccess_key_id = \"{KEY}\"\nsecret_access_key = \"{SECRET}\"\n\
                 [ice]\nturn_uris = [\"turn:127.0.0.1:3478?transport=udp\"]\n\
                 turn_secrets = [{secrets}]\n"
            ),
        )
        .unwrap();
    };
    write("\"first\"");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_kvs-signaling"));
    serve.arg("serve").arg("--config").arg(&config);
    let server = Running::spawn(&mut serve);
    let first = server.wait_for(&["is serving on"]);
    let endpoint = first.rsplit(' ').next().unwrap().trim().to_owned();
    let master = connect(
        &endpoint,
        &["--channel", "hup", "--role", "master", "--create"],
    );
    let before = master.wait_for(&["\"ice-servers\""]);
    master.wait_for(&[r#""state":"connected""#]);

    // The new secret first, the old one kept: the signing secret changed.
    write("\"second\", \"first\"");
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    master.wait_for(&["\"RECONNECT_ICE_SERVER\""]);
    let after = master.wait_for(&["\"ice-servers\""]);
    let password = |line: &str| line.split("\"password\"").nth(1).map(str::to_owned);
    assert_ne!(password(&before), password(&after), "{before}\n{after}");
    let _ = std::fs::remove_dir_all(&dir);
}
