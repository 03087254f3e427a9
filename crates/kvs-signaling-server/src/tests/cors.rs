//! CORS over real sockets: preflights as Chromium sends them for the official JavaScript SDK
//! and the AWS SDKs for JavaScript (v2 and v3), the headers every answer carries, and origins
//! that are not allowed.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{KEY, SECRET, Signing, config, signed_request};
use crate::{AllowedOrigins, Server};

/// What v3 sends on a control-plane call with temporary credentials: every header a preflight
/// asks for.
const REQUESTED: &str = "amz-sdk-invocation-id,amz-sdk-request,authorization,content-type,\
                         x-amz-content-sha256,x-amz-date,x-amz-security-token,x-amz-user-agent";
const PAGE: &str = "http://localhost:5173";

/// An answer's status, head (lowercase) and body.
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    /// The value of header `name`, if the head has it once.
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}: ", name.to_ascii_lowercase());
        let mut values = self
            .head
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix));
        let value = values.next();
        assert!(values.next().is_none(), "{name} twice in\n{}", self.head);
        value
    }
}

async fn send(server: &Server, request: &str) -> Raw {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    Raw {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

fn preflight(server: &Server, path: &str, origin: &str) -> String {
    format!(
        "OPTIONS {path} HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\n\
         Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: {REQUESTED}\r\n\
         Connection: close\r\n\r\n",
        server.local_addr()
    )
}

/// `signed_request` from a page at `origin`.
fn from_page(server: &Server, path: &str, body: &str, origin: &str, signed: bool) -> String {
    let signing = Signing::new(KEY, SECRET);
    let request = signed_request(server, path, body, signed.then_some(&signing));
    let (line, rest) = request.split_once("\r\n").unwrap();
    format!("{line}\r\norigin: {origin}\r\n{rest}")
}

fn assert_readable_by_page(answer: &Raw, allow_origin: &str) {
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(allow_origin),
        "{}",
        answer.head
    );
    let exposed = answer
        .header("access-control-expose-headers")
        .unwrap_or_default();
    for name in [
        "x-amzn-requestid",
        "x-amzn-errortype",
        "x-amzn-errormessage",
        "date",
    ] {
        assert!(
            exposed.split(',').any(|e| e.trim() == name),
            "{name} not exposed: {}",
            answer.head
        );
    }
    assert!(answer.header("date").is_some(), "{}", answer.head);
}

#[tokio::test]
async fn preflights_are_answered_on_every_rest_path_without_authentication() {
    let server = Server::start(config()).await.unwrap();
    for path in [
        "/createSignalingChannel",
        "/describeSignalingChannel",
        "/getSignalingChannelEndpoint",
        "/ListTagsForResource",
        "/v1/get-ice-server-config",
        "/v1/send-alexa-offer-to-master",
    ] {
        let answer = send(&server, &preflight(&server, path, PAGE)).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.head);
        assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
        let methods = answer.header("access-control-allow-methods").unwrap();
        assert!(methods.contains("post"), "{methods}");
        let allowed = answer.header("access-control-allow-headers").unwrap();
        for name in REQUESTED.split(',') {
            assert!(
                allowed.contains(name),
                "{path}: {name} not allowed: {allowed}"
            );
        }
        assert_eq!(answer.header("access-control-max-age"), Some("7200"));
    }
}

#[tokio::test]
async fn every_answer_errors_included_is_readable_by_the_page() {
    let server = Server::start(config()).await.unwrap();
    let body = r#"{"ChannelName":"cors-page"}"#;
    let created = send(
        &server,
        &from_page(&server, "/createSignalingChannel", body, PAGE, true),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_readable_by_page(&created, "*");

    // Unsigned: 403, and the page can read why and the Date to correct its clock by.
    let refused = send(
        &server,
        &from_page(&server, "/describeSignalingChannel", body, PAGE, false),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.header("x-amzn-errortype").is_some());
    assert_readable_by_page(&refused, "*");

    // A path with no operation: still readable.
    let missing = send(&server, &from_page(&server, "/nothing", "{}", PAGE, true)).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_readable_by_page(&missing, "*");

    // Without Origin (every non-browser client), nothing changes but the added headers.
    let plain = send(
        &server,
        &signed_request(
            &server,
            "/describeSignalingChannel",
            body,
            Some(&Signing::new(KEY, SECRET)),
        ),
    )
    .await;
    assert_eq!(plain.status, 200, "{}", plain.body);
}

#[tokio::test]
async fn only_listed_origins_are_allowed_and_others_are_told_why() {
    let mut config = config();
    config.cors.allowed_origins =
        AllowedOrigins::parse(&["https://app.example.com", PAGE]).unwrap();
    let server = Server::start(config).await.unwrap();

    let answer = send(
        &server,
        &preflight(
            &server,
            "/describeSignalingChannel",
            "https://App.example.com",
        ),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    // The origin echoed as sent, and caches told that the answer depends on it.
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(answer.header("vary"), Some("origin"));

    let body = r#"{"ChannelName":"cors-listed"}"#;
    let created = send(
        &server,
        &from_page(&server, "/createSignalingChannel", body, PAGE, true),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_readable_by_page(&created, PAGE);

    for request in [
        preflight(&server, "/describeSignalingChannel", "https://evil.example"),
        from_page(
            &server,
            "/describeSignalingChannel",
            body,
            "https://evil.example",
            true,
        ),
    ] {
        let refused = send(&server, &request).await;
        assert_eq!(refused.status, 403, "{}", refused.head);
        assert_eq!(refused.header("access-control-allow-origin"), None);
        assert!(
            refused.body.contains("https://evil.example") && refused.body.contains("[cors]"),
            "{}",
            refused.body
        );
    }

    // Clients that send no Origin are not affected.
    let plain = send(
        &server,
        &signed_request(
            &server,
            "/describeSignalingChannel",
            body,
            Some(&Signing::new(KEY, SECRET)),
        ),
    )
    .await;
    assert_eq!(plain.status, 200, "{}", plain.body);
}
