//! The live console over real sockets: nothing of it without signing in (a token URL, or an
//! access key that administers every channel), no CORS, the header that guards changes, and
//! what it shows: channels, live connections with their addresses and counts, held
//! messages, and the event stream of connects, relays and closes.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use super::{KEY, SECRET, call, config, json_field, presign};
use crate::{ConsoleConfig, Grant, Scope, Server};

const TOKEN: &str = "ConsoleTestToken0123456789";

async fn server() -> Server {
    Server::start(config().console(ConsoleConfig::default().token(TOKEN)))
        .await
        .unwrap()
}

/// An answer: status, head (lower-case names) and body.
struct Http {
    status: u16,
    head: String,
    body: String,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// `method path` with `headers` and `body`, on a connection of its own.
async fn request(server: &Server, method: &str, path: &str, headers: &[&str], body: &str) -> Http {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
        server.local_addr(),
        body.len()
    );
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut response),
    )
    .await
    .unwrap()
    .unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    Http {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// The cookie a sign-in answer sets.
fn cookie(answer: &Http) -> String {
    let set = answer
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no cookie in {}", answer.head));
    let pair = set.split(';').next().unwrap().trim().to_owned();
    assert!(pair.starts_with("kvs_console="), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(set.contains("Path=/console"), "{set}");
    pair
}

async fn signed_in(server: &Server) -> String {
    let answer = request(server, "GET", &format!("/console/?token={TOKEN}"), &[], "").await;
    assert_eq!(answer.status, 303, "{}", answer.head);
    assert_eq!(answer.header("location"), Some("/console/"));
    format!("cookie: {}", cookie(&answer))
}

#[tokio::test]
async fn nothing_of_the_console_without_signing_in() {
    let server = server().await;
    let url = server.console_url().unwrap();
    assert_eq!(
        url,
        format!("{}/console/?token={TOKEN}", server.public_url())
    );
    // The page is the sign-in form, never the console or its data.
    let page = request(&server, "GET", "/console/", &[], "").await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("id=\"token-form\""), "{}", page.body);
    assert!(!page.body.contains("app.js"));
    for path in [
        "/console/api/state",
        "/console/api/events",
        "/console/app.js",
    ] {
        let answer = request(&server, "GET", path, &[], "").await;
        assert_eq!(answer.status, 401, "{path}");
        assert!(
            answer.body.contains("sign in first"),
            "{path}: {}",
            answer.body
        );
    }
    let created = request(
        &server,
        "POST",
        "/console/api/create",
        &["x-kvs-console: 1", "content-type: application/json"],
        r#"{"ChannelName":"sneaky"}"#,
    )
    .await;
    assert_eq!(created.status, 401);
    // A wrong token, a forged cookie and a cookie of another value are all refused.
    let wrong = request(
        &server,
        "GET",
        "/console/?token=NotTheTokenAtAll000000",
        &[],
        "",
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    let cookie = signed_in(&server).await;
    let forged = cookie.replace(".token.", ".AKIDTESTKEY.");
    for header in [
        forged.as_str(),
        "cookie: kvs_console=v1.99999999999.token.00",
    ] {
        let answer = request(&server, "GET", "/console/api/state", &[header], "").await;
        assert_eq!(answer.status, 401, "{header}");
    }
    // The token as a bearer works too, for scripts.
    let bearer = format!("authorization: Bearer {TOKEN}");
    let answer = request(&server, "GET", "/console/api/state", &[&bearer], "").await;
    assert_eq!(answer.status, 200);
    // The console's answers carry no CORS headers: another origin's page cannot read them.
    let answer = request(
        &server,
        "GET",
        "/console/api/state",
        &[&cookie, "origin: https://evil.example"],
        "",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.header("access-control-allow-origin").is_none(),
        "{}",
        answer.head
    );
    let preflight = request(
        &server,
        "OPTIONS",
        "/console/api/create",
        &[
            "origin: https://evil.example",
            "access-control-request-method: POST",
        ],
        "",
    )
    .await;
    assert!(preflight.header("access-control-allow-origin").is_none());
    // Changes need the console's header, which no form or image of another site can send.
    let unguarded = request(
        &server,
        "POST",
        "/console/api/create",
        &[&cookie, "content-type: application/json"],
        r#"{"ChannelName":"csrf"}"#,
    )
    .await;
    assert_eq!(unguarded.status, 403);
    assert!(
        unguarded.body.contains("X-Kvs-Console"),
        "{}",
        unguarded.body
    );
    let described = call(
        &server,
        "/describeSignalingChannel",
        r#"{"ChannelName":"csrf"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(described.status, 404, "the unguarded call changed nothing");
}

#[tokio::test]
async fn an_access_key_that_administers_every_channel_signs_in() {
    let config = config()
        .console(ConsoleConfig::default().token(TOKEN))
        .limit(
            "AKIDVIEWERONLY",
            Scope::new(vec!["*".to_owned()], vec![Grant::Viewer]).unwrap(),
        );
    let mut config = config;
    config.credentials.push(kvs_ice_rest::Credentials::new(
        "AKIDVIEWERONLY",
        "viewer-secret",
    ));
    let server = Server::start(config).await.unwrap();
    let login = |form: &'static str| {
        let server = &server;
        async move {
            request(
                server,
                "POST",
                "/console/login",
                &["content-type: application/x-www-form-urlencoded"],
                form,
            )
            .await
        }
    };
    let answer = login("access_key_id=AKIDTESTKEY&secret_access_key=test-secret").await;
    assert_eq!(answer.status, 303, "{}", answer.head);
    let key_cookie = format!("cookie: {}", cookie(&answer));
    let state = request(&server, "GET", "/console/api/state", &[&key_cookie], "").await;
    assert_eq!(state.status, 200);
    assert!(
        state.body.contains(r#""signedInAs":"AKIDTESTKEY""#),
        "{}",
        state.body
    );
    for (form, why) in [
        (
            "access_key_id=AKIDTESTKEY&secret_access_key=wrong",
            "the secret is not the access key's",
        ),
        (
            "access_key_id=AKIDNOBODY&secret_access_key=test-secret",
            "no such access key",
        ),
        (
            "access_key_id=AKIDVIEWERONLY&secret_access_key=viewer-secret",
            "does not administer every channel",
        ),
        (
            "token=NotTheTokenAtAll000000",
            "the token is not this server's",
        ),
    ] {
        let answer = login(form).await;
        assert_eq!(answer.status, 401, "{form}");
        assert!(answer.header("set-cookie").is_none(), "{form}");
        let error = answer.header("x-kvs-console-error").unwrap_or_default();
        assert!(error.contains(why), "{form}: {error}");
    }
    let answer = login("token=ConsoleTestToken0123456789").await;
    assert_eq!(answer.status, 303);
}

/// Reads server-sent events from `lines` until one satisfies `wanted`.
async fn until_event<R>(
    lines: &mut tokio::io::Lines<R>,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("no such event within 5 s")
            .unwrap()
            .expect("the event stream ended");
        if let Some(data) = line.strip_prefix("data: ") {
            let event: serde_json::Value = serde_json::from_str(data).unwrap();
            if wanted(&event) {
                return event;
            }
        }
    }
}

#[tokio::test]
async fn the_console_shows_channels_connections_and_a_live_stream_of_events() {
    let server = server().await;
    let cookie = signed_in(&server).await;
    let guarded = [
        cookie.as_str(),
        "x-kvs-console: 1",
        "content-type: application/json",
    ];
    let created = request(
        &server,
        "POST",
        "/console/api/create",
        &guarded,
        r#"{"ChannelName":"lobby","SingleMasterConfiguration":{"MessageTtlSeconds":30}}"#,
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let arn = json_field(&created.body, "ChannelARN");

    // The event stream, open before anything happens.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(
            format!("GET /console/api/events HTTP/1.1\r\nhost: x\r\n{cookie}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut lines = BufReader::new(stream).lines();
    let status = lines.next_line().await.unwrap().unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut head = Vec::new();
    loop {
        let line = lines.next_line().await.unwrap().unwrap();
        if line.is_empty() {
            break;
        }
        head.push(line.to_ascii_lowercase());
    }
    assert!(
        head.iter().any(|h| h == "content-type: text/event-stream"),
        "{head:?}"
    );
    // Give the stream's task time to subscribe before the first connect.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (master, _) = tokio_tungstenite::connect_async(presign(&server, &arn, None, SECRET))
        .await
        .unwrap();
    let (mut viewer, _) =
        tokio_tungstenite::connect_async(presign(&server, &arn, Some("cam-viewer"), SECRET))
            .await
            .unwrap();
    let connected = until_event(&mut lines, |e| {
        e["type"] == "connected" && e["who"] == "cam-viewer"
    })
    .await;
    assert_eq!(connected["channel"], "lobby");
    assert!(
        connected["remote"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{connected}"
    );
    viewer
        .send(Message::Text(
            r#"{"action":"SDP_OFFER","messagePayload":"eyJ0eXBlIjoib2ZmZXIifQ=="}"#.into(),
        ))
        .await
        .unwrap();
    let relayed = until_event(&mut lines, |e| e["type"] == "relayed").await;
    assert_eq!(relayed["messageType"], "SDP_OFFER");
    assert_eq!(relayed["from"], "cam-viewer");
    assert_eq!(relayed["to"], "master");

    // The state: the channel with its master and viewer, their addresses and counts.
    let state = request(&server, "GET", "/console/api/state", &[&cookie], "").await;
    assert_eq!(state.status, 200);
    let state: serde_json::Value = serde_json::from_str(&state.body).unwrap();
    let lobby = state["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "lobby")
        .unwrap()
        .clone();
    assert_eq!(lobby["ttlSeconds"], 30);
    let connections = lobby["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 2, "{lobby}");
    let viewer_view = connections.iter().find(|c| c["role"] == "viewer").unwrap();
    assert_eq!(viewer_view["clientId"], "cam-viewer");
    assert_eq!(viewer_view["state"], "current");
    assert_eq!(viewer_view["messagesIn"], 1);
    assert!(
        viewer_view["remote"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let master_view = connections.iter().find(|c| c["role"] == "master").unwrap();
    assert_eq!(master_view["messagesOut"], 1);
    assert!(state["counters"]["delivered"].as_u64().unwrap() >= 1);

    // A message for a viewer that is not there is held, and the console shows it.
    let (mut master_tx, _master_rx) = master.split();
    master_tx
        .send(Message::Text(
            r#"{"action":"SDP_ANSWER","recipientClientId":"later","messagePayload":"YQ=="}"#.into(),
        ))
        .await
        .unwrap();
    let held = until_event(&mut lines, |e| e["type"] == "held").await;
    assert_eq!(held["to"], "later");
    let state = request(&server, "GET", "/console/api/state", &[&cookie], "").await;
    assert!(
        state.body.contains(r#""recipient":"later""#),
        "{}",
        state.body
    );

    // The viewer leaves: the stream says so, and the state no longer shows it.
    viewer.close(None).await.unwrap();
    let closed = until_event(&mut lines, |e| {
        e["type"] == "closed" && e["who"] == "cam-viewer"
    })
    .await;
    assert_eq!(closed["reason"], "closed by the client");
    let state = request(&server, "GET", "/console/api/state", &[&cookie], "").await;
    assert!(!state.body.contains("cam-viewer"), "{}", state.body);

    // A refused connect shows with its error.
    let refused = tokio_tungstenite::connect_async(presign(&server, &arn, None, "wrong")).await;
    assert!(refused.is_err());
    let deleted = request(
        &server,
        "POST",
        "/console/api/delete",
        &guarded,
        &format!(r#"{{"ChannelARN":"{arn}"}}"#),
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let closed = until_event(&mut lines, |e| {
        e["type"] == "closed" && e["who"] == "master"
    })
    .await;
    assert_eq!(closed["reason"], "channel deleted");
    let described = call(
        &server,
        "/describeSignalingChannel",
        r#"{"ChannelName":"lobby"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(described.status, 404);
}

#[tokio::test]
async fn a_test_call_gets_a_working_connect_url_and_the_ice_servers() {
    let server = server().await;
    let cookie = signed_in(&server).await;
    let guarded = [
        cookie.as_str(),
        "x-kvs-console: 1",
        "content-type: application/json",
    ];
    let created = request(
        &server,
        "POST",
        "/console/api/create",
        &guarded,
        r#"{"ChannelName":"calls"}"#,
    )
    .await;
    let arn = json_field(&created.body, "ChannelARN");
    for body in [
        format!(r#"{{"ChannelARN":"{arn}","Role":"MASTER"}}"#),
        format!(r#"{{"ChannelARN":"{arn}","Role":"VIEWER","ClientId":"console-1"}}"#),
    ] {
        let answer = request(&server, "POST", "/console/api/test-call", &guarded, &body).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let answer: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        let url = answer["url"].as_str().unwrap();
        assert!(url.contains(&format!("X-Amz-Credential={KEY}")), "{url}");
        let (socket, response) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert_eq!(response.status(), 101);
        drop(socket);
        let ice = answer["iceServers"].as_array().unwrap();
        assert!(
            ice.iter()
                .any(|s| s["urls"][0].as_str().unwrap().starts_with("turn:"))
        );
        assert!(ice.iter().any(|s| s["username"].is_string()));
    }
    let answer = request(
        &server,
        "POST",
        "/console/api/test-call",
        &guarded,
        &format!(r#"{{"ChannelARN":"{arn}","Role":"VIEWER"}}"#),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("ClientId"), "{}", answer.body);
}

#[tokio::test]
async fn the_console_can_be_off_and_refuses_a_short_token() {
    let server = Server::start(config().console(ConsoleConfig::default().enabled(false)))
        .await
        .unwrap();
    assert!(server.console_url().is_none());
    let answer = request(&server, "GET", "/console/", &[], "").await;
    assert_eq!(answer.status, 404);
    let err = Server::start(config().console(ConsoleConfig::default().token("short")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least 16"), "{err}");
    let _ = KEY;
}
