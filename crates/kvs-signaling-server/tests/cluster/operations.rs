//! Cluster mode on Redis as it is deployed: TLS with a private CA (and client certificates), an
//! ACL user with only the rights the cluster needs, its password from the environment or a
//! file, two clusters apart on one Redis by their key prefixes, and Sentinel, whose failover
//! the nodes follow without a restart. Each start-time refusal names its cause. Nodes stamp what
//! they write with its format, and set aside what a newer release wrote, for rolling upgrades.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio_tungstenite::tungstenite::Message;

use super::harness::{
    Node, Redis, TempDir, Ws, call, connect, connect_url, create, free_port, get, metric, send,
    text,
};

/// What a node logs when it follows a new primary.
const MOVED: &str = "the cluster's Redis primary moved (a Sentinel failover)";

const OFFER: &str = r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXI="}"#;
const OFFER_SEEN: &str =
    r#"{"messagePayload":"b2ZmZXI=","messageType":"SDP_OFFER","senderClientId":"v1"}"#;
const ANSWER: &str =
    r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"YW5zd2Vy"}"#;
const ANSWER_SEEN: &str = r#"{"messagePayload":"YW5zd2Vy","messageType":"SDP_ANSWER"}"#;

/// The ACL rules the README recommends for the cluster's user (after `ACL SETUSER kvs`), with
/// the password `kvs-acl-secret` and the default prefix.
const RECOMMENDED_ACL: &[&str] = &[
    "on",
    ">kvs-acl-secret",
    "resetkeys",
    "~kvs:*",
    "resetchannels",
    "-@all",
    "+@read",
    "+@write",
    "-@dangerous",
    "-function",
    "+eval",
    "+evalsha",
    "+script|load",
    "+time",
    "+info",
    "+role",
];

/// A master on `a` and a viewer on `b` of channel `arn`: an offer and its answer cross.
async fn relay_across(a: SocketAddr, b: SocketAddr, arn: &str) {
    let mut master = connect(a, arn, None).await;
    let mut viewer = connect(b, arn, Some("v1")).await;
    send(&mut viewer, OFFER).await;
    assert_eq!(text(&mut master).await, OFFER_SEEN);
    send(&mut master, ANSWER).await;
    assert_eq!(text(&mut viewer).await, ANSWER_SEEN);
}

/// [`relay_across`] that reports a failure instead of panicking, for retries.
async fn try_relay_across(a: SocketAddr, b: SocketAddr, arn: &str) -> Result<(), String> {
    let connect = |node: SocketAddr, id: Option<&'static str>| {
        let url = connect_url(node, arn, id, &[]);
        async move {
            match tokio::time::timeout(
                Duration::from_secs(5),
                tokio_tungstenite::connect_async(url),
            )
            .await
            {
                Ok(Ok((ws, _))) => Ok(ws),
                Ok(Err(err)) => Err(format!("connect to {node}: {err}")),
                Err(_) => Err(format!("connect to {node} timed out")),
            }
        }
    };
    let mut master = connect(a, None).await?;
    let mut viewer = connect(b, Some("v1")).await?;
    viewer
        .send(Message::Text(OFFER.into()))
        .await
        .map_err(|err| err.to_string())?;
    let seen = next(&mut master).await?;
    if seen != OFFER_SEEN {
        return Err(format!("the master got {seen}"));
    }
    master
        .send(Message::Text(ANSWER.into()))
        .await
        .map_err(|err| err.to_string())?;
    let seen = next(&mut viewer).await?;
    if seen != ANSWER_SEEN {
        return Err(format!("the viewer got {seen}"));
    }
    Ok(())
}

/// The next text frame of `ws` within 5 s, or why not.
async fn next(ws: &mut Ws) -> Result<String, String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Ok(text.as_str().to_owned()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            other => return Err(format!("no frame: {other:?}")),
        }
    }
}

/// A CA, a certificate for 127.0.0.1 it signed (Redis's), one for a client, and an unrelated
/// CA, as PEM files in a directory of their own.
struct Pki {
    _dir: TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    other_ca: PathBuf,
}

impl Pki {
    fn new() -> Self {
        let dir = TempDir::new("pki");
        let write = |name: &str, pem: String| {
            let path = dir.0.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(params, key))
        };
        let (ca_pem, issuer) = ca("kvs test Redis CA");
        let (other_pem, _) = ca("an unrelated CA");
        let leaf = |names: Vec<String>| {
            let params = CertificateParams::new(names).unwrap();
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]);
        let (client_cert, client_key) = leaf(vec!["kvs-node".to_owned()]);
        Self {
            ca: write("ca.pem", ca_pem),
            server_cert: write("server.pem", server_cert),
            server_key: write("server.key", server_key),
            client_cert: write("client.pem", client_cert),
            client_key: write("client.key", client_key),
            other_ca: write("other-ca.pem", other_pem),
            _dir: dir,
        }
    }
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn nodes_join_over_tls_with_a_private_ca_and_refuse_an_untrusted_redis() {
    let pki = Pki::new();
    let redis = Redis::start_with(
        &[
            "--tls-cert-file",
            path(&pki.server_cert),
            "--tls-key-file",
            path(&pki.server_key),
            "--tls-ca-cert-file",
            path(&pki.ca),
            "--tls-auth-clients",
            "optional",
        ],
        true,
        &[
            "--tls",
            "--cacert",
            path(&pki.ca),
            "--cert",
            path(&pki.client_cert),
            "--key",
            path(&pki.client_key),
        ],
    );
    assert!(redis.url().starts_with("rediss://"));
    assert_eq!(redis.cli(&["PING"]), "PONG", "redis-cli over TLS");

    // The CA by flag on one node, by the environment on the other.
    let a = Node::start_with(
        &redis.url(),
        "127.0.0.1",
        &["--redis-ca-file", path(&pki.ca)],
        &[],
    );
    let b = Node::start_with(
        &redis.url(),
        "127.0.0.2",
        &[],
        &[("KVS_REDIS_CA_FILE", path(&pki.ca))],
    );
    let arn = create(a.addr, "over-tls").await;
    relay_across(a.addr, b.addr, &arn).await;

    // No CA: the system's roots do not know this one.
    let stderr = Node::refused(&redis.url(), &[], &[]);
    assert!(
        stderr.contains("TLS: Redis's certificate is not trusted")
            && stderr.contains("--redis-ca-file"),
        "{stderr}"
    );
    // The wrong CA.
    let stderr = Node::refused(&redis.url(), &["--redis-ca-file", path(&pki.other_ca)], &[]);
    assert!(
        stderr.contains("TLS: Redis's certificate is not trusted"),
        "{stderr}"
    );
    // A CA file that holds no certificate is named, with the rule.
    let stderr = Node::refused(
        &redis.url(),
        &["--redis-ca-file", path(&pki.server_key)],
        &[],
    );
    assert!(
        stderr.contains("--redis-ca-file") && stderr.contains("holds no certificate"),
        "{stderr}"
    );
    // A CA for plain redis:// is a mistake, said so.
    let plain = redis.url().replace("rediss://", "redis://");
    let stderr = Node::refused(&plain, &["--redis-ca-file", path(&pki.ca)], &[]);
    assert!(stderr.contains("use rediss://"), "{stderr}");

    // Mutual TLS: once Redis requires client certificates, a node without one is refused
    // with the TLS cause, and a node with one joins.
    assert_eq!(
        redis.cli(&["CONFIG", "SET", "tls-auth-clients", "yes"]),
        "OK"
    );
    let stderr = Node::refused(&redis.url(), &["--redis-ca-file", path(&pki.ca)], &[]);
    assert!(
        stderr.contains("TLS") && stderr.contains("--redis-client-cert"),
        "{stderr}"
    );
    let c = Node::start_with(
        &redis.url(),
        "127.0.0.3",
        &[
            "--redis-ca-file",
            path(&pki.ca),
            "--redis-client-cert",
            path(&pki.client_cert),
            "--redis-client-key",
            path(&pki.client_key),
        ],
        &[],
    );
    let described = call(
        c.addr,
        "/describeSignalingChannel",
        r#"{"ChannelName":"over-tls"}"#,
    )
    .await;
    assert_eq!(described.status, 200, "{}", described.body);
    relay_across(c.addr, b.addr, &arn).await;

    // The eviction check holds over TLS too.
    assert_eq!(
        redis.cli(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]),
        "OK"
    );
    let stderr = Node::refused(
        &redis.url(),
        &[
            "--redis-ca-file",
            path(&pki.ca),
            "--redis-client-cert",
            path(&pki.client_cert),
            "--redis-client-key",
            path(&pki.client_key),
        ],
        &[],
    );
    assert!(
        stderr.contains("maxmemory-policy allkeys-lru") && stderr.contains("noeviction"),
        "{stderr}"
    );
}

/// The `object` of each entry of `ACL LOG`, as `redis-cli` prints it.
fn acl_log_objects(redis: &Redis) -> Vec<String> {
    let log = redis.cli(&["ACL", "LOG"]);
    let lines: Vec<&str> = log.lines().collect();
    lines
        .windows(2)
        .filter(|pair| pair[0] == "object")
        .map(|pair| pair[1].to_owned())
        .collect()
}

#[tokio::test]
async fn a_refused_inbox_trim_does_not_stop_a_node_reading_its_inbox() {
    let redis = Redis::start();
    let mut setuser = vec!["ACL", "SETUSER", "kvs"];
    setuser.extend_from_slice(RECOMMENDED_ACL);
    assert_eq!(redis.cli(&setuser), "OK");
    let env = [
        ("KVS_REDIS_USERNAME", "kvs"),
        ("KVS_REDIS_PASSWORD", "kvs-acl-secret"),
    ];
    let a = Node::start_with(&redis.url(), "127.0.0.1", &[], &env);
    let b = Node::start_with(&redis.url(), "127.0.0.2", &[], &env);
    let arn = create(a.addr, "untrimmed").await;
    // Trims refused from now on (as a demoted primary or a narrower ACL would refuse them):
    // the owner's reads, which go in one pipeline with its trims, go on.
    assert_eq!(redis.cli(&["ACL", "SETUSER", "kvs", "-xtrim"]), "OK");
    let mut master = connect(a.addr, &arn, None).await;
    let mut viewer = connect(b.addr, &arn, Some("v1")).await;
    for _ in 0..5 {
        send(&mut viewer, OFFER).await;
        assert_eq!(text(&mut master).await, OFFER_SEEN);
        send(&mut master, ANSWER).await;
        assert_eq!(text(&mut viewer).await, ANSWER_SEEN);
    }
    let refused = redis.cli(&["ACL", "LOG"]);
    assert!(refused.contains("xtrim"), "{refused}");
    // Past the time B's deliveries wait for their trim (refused too): both nodes still read.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    send(&mut viewer, OFFER).await;
    assert_eq!(text(&mut master).await, OFFER_SEEN);
    send(&mut master, ANSWER).await;
    assert_eq!(text(&mut viewer).await, ANSWER_SEEN);
    // What the refused trims left: the frames A read are still in its inbox.
    let keys = redis.cli(&["KEYS", "kvs:inbox:*"]);
    let held: String = keys
        .lines()
        .map(|key| redis.cli(&["XRANGE", key, "-", "+"]))
        .collect();
    assert!(held.contains(r#""t":"Frame""#), "{held}");
    // Granted again: what waited is trimmed, and both inboxes empty.
    assert_eq!(redis.cli(&["ACL", "SETUSER", "kvs", "+xtrim"]), "OK");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keys = redis.cli(&["KEYS", "kvs:inbox:*"]);
        let left: Vec<(String, String)> = keys
            .lines()
            .filter(|key| !key.is_empty())
            .map(|key| (key.to_owned(), redis.cli(&["XLEN", key])))
            .filter(|(_, len)| len != "0")
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "inboxes not trimmed: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send(&mut viewer, OFFER).await;
    assert_eq!(text(&mut master).await, OFFER_SEEN);
    assert!(
        a.log().contains("trimming this node's inbox failed"),
        "{}",
        a.log()
    );
}

#[tokio::test]
async fn an_acl_user_with_the_recommended_rights_runs_the_cluster() {
    let redis = Redis::start();
    let mut setuser = vec!["ACL", "SETUSER", "kvs"];
    setuser.extend_from_slice(RECOMMENDED_ACL);
    assert_eq!(redis.cli(&setuser), "OK");
    let dir = TempDir::new("acl");
    let password_file = dir.0.join("redis-password");
    std::fs::write(&password_file, "kvs-acl-secret\n").unwrap();

    // The password from the environment on one node, from a file on the other.
    let a = Node::start_with(
        &redis.url(),
        "127.0.0.1",
        &[],
        &[
            ("KVS_REDIS_USERNAME", "kvs"),
            ("KVS_REDIS_PASSWORD", "kvs-acl-secret"),
        ],
    );
    let b = Node::start_with(
        &redis.url(),
        "127.0.0.2",
        &["--redis-password-file", path(&password_file)],
        &[("KVS_REDIS_USERNAME", "kvs")],
    );
    // Every node connection is the ACL user's.
    let clients = redis.cli(&["CLIENT", "LIST"]);
    let users: Vec<&str> = clients
        .lines()
        .filter(|line| !line.contains("cmd=client|list"))
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("user=")))
        .collect();
    assert!(
        users.len() >= 4 && users.iter().all(|user| *user == "kvs"),
        "{clients}"
    );

    // The whole control plane and routing, with only those rights.
    let arn = create(a.addr, "acl").await;
    let described = call(
        b.addr,
        "/describeSignalingChannel",
        r#"{"ChannelName":"acl"}"#,
    )
    .await;
    assert_eq!(described.status, 200, "{}", described.body);
    let version = described.json()["ChannelInfo"]["Version"]
        .as_str()
        .unwrap()
        .to_owned();
    let updated = call(
        b.addr,
        "/updateSignalingChannel",
        &format!(
            r#"{{"ChannelARN":"{arn}","CurrentVersion":"{version}","SingleMasterConfiguration":{{"MessageTtlSeconds":30}}}}"#
        ),
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let listed = call(a.addr, "/listSignalingChannels", "{}").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    relay_across(a.addr, b.addr, &arn).await;
    let deleted = call(
        b.addr,
        "/deleteSignalingChannel",
        &format!(r#"{{"ChannelARN":"{arn}"}}"#),
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    // Nothing was refused along the way (Redis 7.2 and newer log redis-rs's CLIENT SETINFO,
    // which it ignores).
    let refused: Vec<String> = acl_log_objects(&redis)
        .into_iter()
        .filter(|object| object != "client|setinfo")
        .collect();
    assert!(refused.is_empty(), "{}", redis.cli(&["ACL", "LOG"]));

    // A wrong password: refused at start, for authentication, and never printed.
    let stderr = Node::refused(
        &redis.url(),
        &[],
        &[
            ("KVS_REDIS_USERNAME", "kvs"),
            ("KVS_REDIS_PASSWORD", "not-the-password-42"),
        ],
    );
    assert!(
        stderr.contains("authentication failed") && stderr.contains("\"kvs\""),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password-42"), "{stderr}");
    // Nor is the right one, when the URL carries it and something else fails.
    let stderr = Node::refused(
        &format!("redis://kvs:kvs-acl-secret@127.0.0.1:{}", redis.port),
        &["--cluster-prefix", "a:b"],
        &[],
    );
    assert!(stderr.contains("key prefix"), "{stderr}");
    assert!(!stderr.contains("kvs-acl-secret"), "{stderr}");

    // A user that may not run INFO is told what to grant.
    assert_eq!(redis.cli(&["ACL", "SETUSER", "kvs", "-info"]), "OK");
    let stderr = Node::refused(
        &format!("redis://kvs:kvs-acl-secret@127.0.0.1:{}", redis.port),
        &[],
        &[],
    );
    assert!(
        stderr.contains("may not run INFO") && stderr.contains("+info"),
        "{stderr}"
    );
    assert!(!stderr.contains("kvs-acl-secret"), "{stderr}");

    // The eviction check holds for an ACL user.
    assert_eq!(redis.cli(&["ACL", "SETUSER", "kvs", "+info"]), "OK");
    assert_eq!(
        redis.cli(&["CONFIG", "SET", "maxmemory-policy", "volatile-lru"]),
        "OK"
    );
    let stderr = Node::refused(
        &redis.url(),
        &[],
        &[
            ("KVS_REDIS_USERNAME", "kvs"),
            ("KVS_REDIS_PASSWORD", "kvs-acl-secret"),
        ],
    );
    assert!(stderr.contains("maxmemory-policy volatile-lru"), "{stderr}");
}

#[tokio::test]
async fn two_key_prefixes_are_two_clusters_on_one_redis() {
    let redis = Redis::start();
    let blue_a = Node::start(&redis, "127.0.0.1", &["--cluster-prefix", "blue"]);
    let blue_b = Node::start_with(
        &redis.url(),
        "127.0.0.2",
        &[],
        &[("KVS_CLUSTER_PREFIX", "blue")],
    );
    let green = Node::start(&redis, "127.0.0.3", &["--cluster-prefix", "green"]);

    let arn = create(blue_a.addr, "shared-name").await;
    relay_across(blue_a.addr, blue_b.addr, &arn).await;
    // Green does not see blue's channel, by name or by ARN, nor list it.
    let by_name = call(
        green.addr,
        "/describeSignalingChannel",
        r#"{"ChannelName":"shared-name"}"#,
    )
    .await;
    assert_eq!(by_name.status, 404, "{}", by_name.body);
    assert!(
        by_name.body.contains("ResourceNotFoundException"),
        "{}",
        by_name.body
    );
    let by_arn = call(
        green.addr,
        "/describeSignalingChannel",
        &format!(r#"{{"ChannelARN":"{arn}"}}"#),
    )
    .await;
    assert_eq!(by_arn.status, 404, "{}", by_arn.body);
    let listed = call(green.addr, "/listSignalingChannels", "{}").await;
    assert_eq!(listed.json()["ChannelInfoList"], serde_json::json!([]));
    // The same name is free in green.
    let green_arn = create(green.addr, "shared-name").await;
    assert_ne!(green_arn, arn);
    let listed = call(blue_b.addr, "/listSignalingChannels", "{}").await;
    let blue_list = listed.json()["ChannelInfoList"].clone();
    assert_eq!(blue_list.as_array().map(Vec::len), Some(1), "{blue_list}");
    assert_eq!(blue_list[0]["ChannelARN"], arn.as_str());

    // Every key either cluster wrote is under its prefix: blue's records, nodes, ownership
    // epochs and inboxes (its nodes relayed to each other), green's records and nodes.
    let keys = redis.cli(&["--scan"]);
    let keys: Vec<&str> = keys.lines().collect();
    for expected in [
        "blue:chan:",
        "blue:name:",
        "blue:names",
        "blue:nodes",
        "blue:epoch",
        "blue:inbox:",
        "green:chan:",
        "green:name:",
        "green:names",
        "green:nodes",
    ] {
        assert!(
            keys.iter().any(|key| key.starts_with(expected)),
            "no {expected} key in {keys:?}"
        );
    }
    let stray: Vec<&&str> = keys
        .iter()
        .filter(|key| !key.starts_with("blue:") && !key.starts_with("green:"))
        .collect();
    assert!(stray.is_empty(), "keys outside the prefixes: {stray:?}");
}

/// A Redis Sentinel of the test's own, killed on drop; its log is shown when a test fails.
struct Sentinel {
    child: Option<Child>,
    port: u16,
    password: String,
    /// What `redis-cli` needs to reach it (TLS).
    cli_args: Vec<String>,
    dir: TempDir,
}

impl Sentinel {
    /// A Sentinel watching the primary `name` at `primary_port` (password `data_password`),
    /// quick to act: down after 1 s; over TLS, to its clients and to Redis, with `tls`.
    fn start(
        name: &str,
        primary_port: u16,
        data_password: &str,
        password: &str,
        tls: Option<&Pki>,
    ) -> Self {
        let dir = TempDir::new("sentinel");
        let port = free_port();
        let conf = dir.0.join("sentinel.conf");
        let (listen, cli_args) = match tls {
            None => (format!("port {port}\n"), Vec::new()),
            Some(pki) => (
                format!(
                    "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
                     tls-ca-cert-file {}\ntls-auth-clients optional\ntls-replication yes\n",
                    path(&pki.server_cert),
                    path(&pki.server_key),
                    path(&pki.ca)
                ),
                vec![
                    "--tls".to_owned(),
                    "--cacert".to_owned(),
                    path(&pki.ca).to_owned(),
                ],
            ),
        };
        std::fs::write(
            &conf,
            format!(
                "{listen}bind 127.0.0.1\ndir {}\nrequirepass {password}\n\
                 sentinel monitor {name} 127.0.0.1 {primary_port} 1\n\
                 sentinel auth-pass {name} {data_password}\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 4000\n",
                dir.0.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.0.join("sentinel.log")).unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-sentinel did not start");
            thread::sleep(Duration::from_millis(20));
        }
        Self {
            child: Some(child),
            port,
            password: password.to_owned(),
            cli_args,
            dir,
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--no-auth-warning"])
            .args(["-a", &self.password])
            .args(&self.cli_args)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            let log = std::fs::read_to_string(self.dir.0.join("sentinel.log")).unwrap_or_default();
            eprintln!("=== sentinel ===\n{log}");
        }
    }
}

/// Waits up to `within` for `check`, polling; whether it came true.
fn wait_for(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn nodes_follow_a_sentinel_failover_without_a_restart() {
    const NAME: &str = "kvsprimary";
    const DATA_PASSWORD: &str = "data-secret";
    let auth = [
        "--requirepass",
        DATA_PASSWORD,
        "--masterauth",
        DATA_PASSWORD,
    ];
    let cli = ["-a", DATA_PASSWORD, "--no-auth-warning"];
    let mut primary = Redis::start_with(&auth, false, &cli);
    let primary_port = primary.port.to_string();
    let mut replica_args = vec!["--replicaof", "127.0.0.1", &primary_port];
    replica_args.extend_from_slice(&auth);
    let replica = Redis::start_with(&replica_args, false, &cli);
    assert!(
        wait_for(Duration::from_secs(10), || replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")),
        "the replica did not sync: {}",
        replica.cli(&["INFO", "replication"])
    );
    let sentinel = Sentinel::start(NAME, primary.port, DATA_PASSWORD, "sentinel-secret", None);
    let replica_port = replica.port.to_string();
    assert!(
        wait_for(Duration::from_secs(15), || {
            let replicas = sentinel.cli(&["SENTINEL", "REPLICAS", NAME]);
            replicas.contains(&replica_port)
                && !replicas.contains("s_down")
                && !replicas.contains("disconnected")
        }),
        "Sentinel did not find the replica: {}",
        sentinel.cli(&["SENTINEL", "REPLICAS", NAME])
    );
    let url = format!("redis+sentinel://127.0.0.1:{}/{NAME}", sentinel.port);
    let env = [
        ("KVS_REDIS_PASSWORD", DATA_PASSWORD),
        ("KVS_REDIS_SENTINEL_PASSWORD", "sentinel-secret"),
    ];

    // Refusals at start name the part that failed.
    let stderr = Node::refused(
        &url,
        &[],
        &[
            ("KVS_REDIS_PASSWORD", DATA_PASSWORD),
            ("KVS_REDIS_SENTINEL_PASSWORD", "wrong-sentinel-secret"),
        ],
    );
    assert!(
        stderr.contains("no Sentinel answered")
            && stderr.contains("authentication failed: the Sentinel"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-sentinel-secret"), "{stderr}");
    let stderr = Node::refused(
        &format!("redis+sentinel://127.0.0.1:{}/nosuchprimary", sentinel.port),
        &[],
        &env,
    );
    assert!(
        stderr.contains("the Sentinels name no reachable primary \"nosuchprimary\""),
        "{stderr}"
    );
    // The eviction check is made on the primary Sentinel names.
    assert_eq!(
        primary.cli(&["CONFIG", "SET", "maxmemory-policy", "volatile-lru"]),
        "OK"
    );
    let stderr = Node::refused(&url, &[], &env);
    assert!(stderr.contains("maxmemory-policy volatile-lru"), "{stderr}");
    assert_eq!(
        primary.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]),
        "OK"
    );
    // The replica keeps its own setting: it must be safe once promoted too.
    assert_eq!(
        replica.cli(&["CONFIG", "GET", "maxmemory-policy"]),
        "maxmemory-policy\nnoeviction"
    );

    let a = Node::start_with(&url, "127.0.0.1", &[], &env);
    let b = Node::start_with(&url, "127.0.0.2", &[], &env);
    let arn = create(a.addr, "before").await;
    relay_across(a.addr, b.addr, &arn).await;
    // The channel is on the replica before the primary goes.
    assert!(
        wait_for(Duration::from_secs(5), || replica
            .cli(&["--scan", "--pattern", "kvs:name:before"])
            .contains("kvs:name:before")),
        "the channel did not replicate"
    );

    primary.kill();
    let killed = Instant::now();
    assert!(
        wait_for(Duration::from_secs(30), || sentinel
            .cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME])
            .contains(&replica_port)),
        "Sentinel did not promote the replica: {}",
        sentinel.cli(&["SENTINEL", "MASTER", NAME])
    );
    let promoted = killed.elapsed();

    // Without a restart, both nodes answer again and relay across each other, on the channel
    // made before the failover (it was replicated).
    recover(a.addr, b.addr, &arn, killed + Duration::from_secs(30)).await;
    let recovered = killed.elapsed();
    let after = call(
        a.addr,
        "/createSignalingChannel",
        r#"{"ChannelName":"after"}"#,
    )
    .await;
    assert_eq!(after.status, 200, "{}", after.body);
    let after = after.json()["ChannelARN"].as_str().unwrap().to_owned();
    relay_across(b.addr, a.addr, &after).await;
    // The nodes went to the new primary: it holds what they wrote after the failover.
    assert!(
        replica
            .cli(&["--scan", "--pattern", "kvs:name:*"])
            .contains("kvs:name:after")
    );
    for node in [&a, &b] {
        assert_eq!(node.log().matches(MOVED).count(), 1, "{}", node.log());
    }

    // The old primary comes back, as Sentinel makes it a replica of the new one; then a
    // planned switchover (SENTINEL FAILOVER) makes it the primary again while the other stays
    // up as a replica, refusing writes: the nodes follow again.
    primary.restart();
    assert!(
        wait_for(Duration::from_secs(20), || {
            let info = primary.cli(&["INFO", "replication"]);
            info.contains("role:slave") && info.contains("master_link_status:up")
        }),
        "Sentinel did not make the old primary a replica: {}",
        primary.cli(&["INFO", "replication"])
    );
    let switched = Instant::now();
    assert!(
        wait_for(Duration::from_secs(20), || sentinel
            .cli(&["SENTINEL", "FAILOVER", NAME])
            == "OK"),
        "Sentinel refused the switchover: {}",
        sentinel.cli(&["SENTINEL", "FAILOVER", NAME])
    );
    assert!(
        wait_for(Duration::from_secs(20), || sentinel
            .cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME])
            .contains(&primary_port)),
        "Sentinel did not switch back: {}",
        sentinel.cli(&["SENTINEL", "MASTER", NAME])
    );
    // The demoted primary goes on taking writes until Sentinel reconfigures it, seconds
    // later: the nodes must not wait for an error, they watch what Sentinel names.
    for node in [&a, &b] {
        assert!(
            wait_for(Duration::from_secs(10), || node
                .log()
                .matches(MOVED)
                .count()
                == 2),
            "{}",
            node.log()
        );
    }
    recover(a.addr, b.addr, &after, switched + Duration::from_secs(30)).await;
    let switched_back = switched.elapsed();
    // What the nodes write now is on the new primary (a write to the demoted one would be
    // only there, and lost when Sentinel reconfigures it).
    let created = call(
        b.addr,
        "/createSignalingChannel",
        r#"{"ChannelName":"switched"}"#,
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let switched_arn = created.json()["ChannelARN"].as_str().unwrap().to_owned();
    assert!(
        primary
            .cli(&["--scan", "--pattern", "kvs:name:*"])
            .contains("kvs:name:switched")
    );
    relay_across(b.addr, a.addr, &switched_arn).await;
    eprintln!("switchover: the nodes relayed again {switched_back:?} after SENTINEL FAILOVER");
    eprintln!(
        "Sentinel promoted the replica {promoted:?} after the kill; the nodes relayed again \
         {recovered:?} after the kill"
    );
}

/// Waits until `b` describes channel `arn` and a master on `a` and a viewer on `b` of it
/// relay again, before `deadline`.
async fn recover(a: SocketAddr, b: SocketAddr, arn: &str, deadline: Instant) {
    let mut last = String::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "the nodes did not recover in time; last: {last}"
        );
        let described = call(
            b,
            "/describeSignalingChannel",
            &format!(r#"{{"ChannelARN":"{arn}"}}"#),
        )
        .await;
        if described.status != 200 {
            last = format!("describe: {} {}", described.status, described.body);
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        match try_relay_across(a, b, arn).await {
            Ok(()) => return,
            Err(err) => {
                last = format!("relay: {err}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

#[tokio::test]
async fn nodes_join_through_sentinel_over_tls() {
    const NAME: &str = "kvstls";
    let pki = Pki::new();
    let primary = Redis::start_with(
        &[
            "--tls-cert-file",
            path(&pki.server_cert),
            "--tls-key-file",
            path(&pki.server_key),
            "--tls-ca-cert-file",
            path(&pki.ca),
            "--tls-auth-clients",
            "optional",
            "--tls-replication",
            "yes",
            "--requirepass",
            "data-secret",
        ],
        true,
        &[
            "--tls",
            "--cacert",
            path(&pki.ca),
            "-a",
            "data-secret",
            "--no-auth-warning",
        ],
    );
    assert_eq!(primary.cli(&["PING"]), "PONG", "redis-cli over TLS");
    let sentinel = Sentinel::start(
        NAME,
        primary.port,
        "data-secret",
        "sentinel-secret",
        Some(&pki),
    );
    let url = format!("rediss+sentinel://127.0.0.1:{}/{NAME}", sentinel.port);
    let env = [
        ("KVS_REDIS_PASSWORD", "data-secret"),
        ("KVS_REDIS_SENTINEL_PASSWORD", "sentinel-secret"),
        ("KVS_REDIS_CA_FILE", path(&pki.ca)),
    ];
    let a = Node::start_with(&url, "127.0.0.1", &[], &env);
    let b = Node::start_with(&url, "127.0.0.2", &[], &env);
    let arn = create(a.addr, "sentinel-tls").await;
    relay_across(a.addr, b.addr, &arn).await;
    assert!(
        primary
            .cli(&["--scan", "--pattern", "kvs:name:*"])
            .contains("kvs:name:sentinel-tls")
    );
    // Without the CA, the Sentinels cannot be trusted, and the error says so.
    let stderr = Node::refused(&url, &[], &env[..2]);
    assert!(
        stderr.contains("no Sentinel answered")
            && stderr.contains("TLS: Redis's certificate is not trusted"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_grafana_dashboards_cluster_panels_show_what_a_cluster_node_exports() {
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let metrics = get(a.addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    let exported: std::collections::BTreeSet<String> = metrics
        .body
        .lines()
        .filter(|line| line.starts_with("kvs_cluster_"))
        .filter_map(|line| line.split(['{', ' ']).next().map(str::to_owned))
        .collect();
    assert!(exported.contains("kvs_cluster_valid"), "{exported:?}");

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/kvs-signaling.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queried = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("kvs_cluster_") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..end];
                assert!(
                    exported.contains(name),
                    "{}: {expr} queries {name}, which a cluster node does not export",
                    panel["title"]
                );
                queried.insert(name.to_owned());
                rest = &tail[end..];
            }
        }
    }
    let missing: Vec<_> = exported.difference(&queried).collect();
    assert!(
        missing.is_empty(),
        "the dashboard shows nothing of {missing:?}"
    );
}

/// The id `node` joined the cluster with: the member of the formats hash with its process id.
fn node_id(redis: &Redis, node: &Node) -> String {
    let marker = format!("-{}-", node.pid());
    redis
        .cli(&["HKEYS", "kvs:formats"])
        .lines()
        .find(|id| id.contains(&marker))
        .unwrap_or_else(|| panic!("node {} published no formats", node.pid()))
        .to_owned()
}

/// `/health` of `node` until it contains `want`, within 10 s; the body then.
async fn health_saying(node: &Node, want: &str, keep_alive: impl Fn()) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        keep_alive();
        let health = get(node.addr, "/health").await;
        assert_eq!(health.status, 200, "{}", health.body);
        if health.body.contains(want) {
            return health.body;
        }
        assert!(Instant::now() < deadline, "no {want:?} in: {}", health.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn what_a_newer_release_wrote_is_set_aside_counted_and_named_and_health_tells_formats_apart()
{
    let redis = Redis::start();
    let a = Node::start(&redis, "127.0.0.1", &[]);
    let b = Node::start(&redis, "127.0.0.2", &[]);
    // Each node published the formats it reads before its first heartbeat; nodes alike say
    // nothing of them.
    let a_id = node_id(&redis, &a);
    assert_eq!(redis.cli(&["HGET", "kvs:formats", &a_id]), "1-2");
    assert_eq!(get(a.addr, "/health").await.body, "ok\n");

    // A channel record says its format, and one in a format these nodes do not read fails the
    // calls that read it with an error that names the format, instead of being misread.
    let arn = create(a.addr, "formats").await;
    let channel = format!("kvs:chan:{arn}");
    let record = redis.cli(&["HGET", &channel, "rec"]);
    assert!(record.starts_with(r#"{"v":1,"#), "{record}");
    let newer = record.replacen(r#""v":1"#, r#""v":3"#, 1);
    redis.cli(&["HSET", &channel, "rec", &newer]);
    let describe = r#"{"ChannelName":"formats"}"#;
    for (path, body) in [
        ("/describeSignalingChannel", describe),
        ("/listSignalingChannels", "{}"),
    ] {
        let answer = call(b.addr, path, body).await;
        assert_eq!(answer.status, 500, "{path}: {}", answer.body);
        assert!(
            answer.body.contains("is in format 3") && answer.body.contains("reads formats 1 to 2"),
            "{path}: {}",
            answer.body
        );
    }
    redis.cli(&["HSET", &channel, "rec", &record]);
    assert_eq!(
        call(b.addr, "/describeSignalingChannel", describe)
            .await
            .status,
        200
    );

    // An inbox entry in format 3 is set aside and counted, and the node goes on reading what
    // comes after it.
    relay_across(a.addr, b.addr, &arn).await;
    let entry = r#"{"from":"newer","seq":1,"msgs":[{"t":"Closed","conn":1}]}"#;
    let inbox = format!("kvs:inbox:{a_id}");
    assert!(
        !redis
            .cli(&["XADD", &inbox, "*", "v", "3", "b", entry])
            .is_empty()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(a.addr, "kvs_cluster_unknown_formats_total").await == 0 {
        assert!(Instant::now() < deadline, "the entry was not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(a.addr, "kvs_cluster_unknown_formats_total").await, 1);
    relay_across(a.addr, b.addr, &arn).await;
    assert_eq!(metric(b.addr, "kvs_cluster_unknown_formats_total").await, 0);
    assert!(
        a.log()
            .contains("is in format 3, and this node reads formats 1 to 2"),
        "{}",
        a.log()
    );

    // A live node of a newer release that still reads format 2: a note, and format 2 stays the
    // cluster's. One that no longer does: a warning that names it.
    let beat = |range: &str| {
        let range = range.to_owned();
        let redis = &redis;
        move || {
            let now = redis.time_ms().to_string();
            redis.cli(&["HSET", "kvs:formats", "newer-node", &range]);
            redis.cli(&["ZADD", "kvs:nodes", &now, "newer-node"]);
        }
    };
    let body = health_saying(&a, "note:", beat("1-3")).await;
    assert!(
        body.contains("newer-node (1-3)") && body.contains("the cluster writes format 2"),
        "{body}"
    );
    let body = health_saying(&b, "warning:", beat("3-4")).await;
    assert!(
        body.contains("no format is read by every live node") && body.contains("newer-node 3-4"),
        "{body}"
    );
}
