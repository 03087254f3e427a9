//! The server over real sockets on loopback: REST calls signed as the official C SDK signs
//! them, WebSocket connects presigned as the official JavaScript SDK presigns them.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use futures_util::{SinkExt as _, StreamExt as _};
use kvs_ice_rest::{Credentials, TurnConfig, TurnSecret};
use kvs_signaling_core::HubConfig;
use kvs_signaling_proto::{IceServerTtl, IceUri};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::{Server, ServerConfig};

mod aws_sdk;
mod conformance;
mod console;
mod cors;
mod delivery;
mod hardening;
mod harness;
mod liveness;
mod security;

const KEY: &str = "AKIDTESTKEY";
const SECRET: &str = "test-secret";

async fn start() -> Server {
    Server::start(config()).await.unwrap()
}

fn config() -> ServerConfig {
    let ice = TurnConfig::new(
        vec![IceUri::new("turn:127.0.0.1:3478?transport=udp").unwrap()],
        vec![IceUri::new("stun:127.0.0.1:3478").unwrap()],
        vec![TurnSecret::new("turn-secret")],
        IceServerTtl::default(),
    )
    .unwrap();
    ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![Credentials::new(KEY, SECRET)],
        ice,
    )
    .hub(HubConfig::default().max_viewers_per_channel(2))
}

/// Who signs, and for which scope and time.
#[derive(Clone, Copy)]
struct Signing<'a> {
    key: &'a str,
    secret: &'a str,
    region: &'a str,
    service: &'a str,
    time: SystemTime,
}

impl<'a> Signing<'a> {
    fn new(key: &'a str, secret: &'a str) -> Self {
        Self {
            key,
            secret,
            region: "us-west-2",
            service: "kinesisvideo",
            time: SystemTime::now(),
        }
    }

    fn params(
        &self,
        identity: &'a Identity,
        location: SignatureLocation,
    ) -> v4::SigningParams<'a, SigningSettings> {
        let mut settings = SigningSettings::default();
        settings.signature_location = location;
        if location == SignatureLocation::QueryParams {
            settings.expires_in = Some(Duration::from_secs(299));
        }
        v4::SigningParams::builder()
            .identity(identity)
            .region(self.region)
            .name(self.service)
            .time(self.time)
            .settings(settings)
            .build()
            .unwrap()
    }
}

struct Answer {
    status: u16,
    error_type: Option<String>,
    body: String,
}

/// A POST signed with `host;x-amz-date`, as the official C SDK signs its calls.
async fn call(server: &Server, path: &str, body: &str, secret: Option<&str>) -> Answer {
    call_as(server, KEY, path, body, secret).await
}

/// [`call`] signed with the access key `key`.
async fn call_as(
    server: &Server,
    key: &str,
    path: &str,
    body: &str,
    secret: Option<&str>,
) -> Answer {
    let signing = secret.map(|secret| Signing::new(key, secret));
    call_signed(server, path, body, signing.as_ref()).await
}

/// [`call`] signed as `signing` says, or not at all.
async fn call_signed(
    server: &Server,
    path: &str,
    body: &str,
    signing: Option<&Signing<'_>>,
) -> Answer {
    let request = signed_request(server, path, body, signing);
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    exchange(stream, &request).await
}

/// A POST of `body` to `path`, signed as `signing` says, with `connection: close`.
fn signed_request(
    server: &Server,
    path: &str,
    body: &str,
    signing: Option<&Signing<'_>>,
) -> String {
    let host = server.local_addr().to_string();
    let mut headers = vec![("host".to_owned(), host.clone())];
    if let Some(signing) = signing {
        let identity: Identity =
            AwsCredentials::new(signing.key, signing.secret, None, None, "test").into();
        let params = signing.params(&identity, SignatureLocation::Headers).into();
        let url = format!("http://{host}{path}");
        let request = SignableRequest::new(
            "POST",
            url,
            [("host", host.as_str())].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        for (name, value) in instructions.headers() {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    let mut request = format!("POST {path} HTTP/1.1\r\n");
    for (name, value) in &headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    request
}

/// Writes `request` on `stream` and reads the whole answer.
async fn exchange<S>(mut stream: S, request: &str) -> Answer
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let error_type = head
        .lines()
        .find_map(|l| l.strip_prefix("x-amzn-errortype: "))
        .map(|v| v.split(':').next().unwrap().to_owned());
    Answer {
        status,
        error_type,
        body: body.to_owned(),
    }
}

/// A WebSocket URL presigned as the official JavaScript SDK presigns it.
fn presign(server: &Server, arn: &str, client_id: Option<&str>, secret: &str) -> String {
    presign_as(server, KEY, arn, client_id, secret)
}

/// [`presign`] with the access key `key`.
fn presign_as(
    server: &Server,
    key: &str,
    arn: &str,
    client_id: Option<&str>,
    secret: &str,
) -> String {
    presign_signed(server, arn, client_id, &Signing::new(key, secret))
}

/// [`presign`] signed as `signing` says.
fn presign_signed(
    server: &Server,
    arn: &str,
    client_id: Option<&str>,
    signing: &Signing<'_>,
) -> String {
    presign_extra(server, arn, client_id, &[], signing)
}

/// [`presign_signed`] with `extra` parameters after the client id, signed too.
fn presign_extra(
    server: &Server,
    arn: &str,
    client_id: Option<&str>,
    extra: &[(&str, &str)],
    signing: &Signing<'_>,
) -> String {
    let host = server.local_addr().to_string();
    let identity: Identity =
        AwsCredentials::new(signing.key, signing.secret, None, None, "test").into();
    let params = signing
        .params(&identity, SignatureLocation::QueryParams)
        .into();
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let mut query = format!("X-Amz-ChannelARN={}", encode(arn));
    if let Some(id) = client_id {
        query.push_str(&format!("&X-Amz-ClientId={}", encode(id)));
    }
    for (name, value) in extra {
        query.push_str(&format!("&{name}={}", encode(value)));
    }
    let url = format!("http://{host}/?{query}");
    let request = SignableRequest::new(
        "GET",
        url,
        [("host", host.as_str())].into_iter(),
        SignableBody::Bytes(b""),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    for (name, value) in instructions.params() {
        query.push_str(&format!("&{name}={}", encode(value)));
    }
    format!("ws://{host}/?{query}")
}

fn json_field(body: &str, key: &str) -> String {
    let start = body.find(&format!("\"{key}\":\"")).unwrap() + key.len() + 4;
    body[start..].split('"').next().unwrap().to_owned()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// The HTTP status of a refused connect.
async fn refused_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Ok(_) => panic!("the connect was accepted"),
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[tokio::test]
async fn control_plane_and_data_plane() {
    let server = start().await;
    let created = call(
        &server,
        "/createSignalingChannel",
        r#"{"ChannelName":"demo"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let arn = json_field(&created.body, "ChannelARN");
    assert!(
        arn.starts_with("arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/"),
        "{arn}"
    );

    let described = call(
        &server,
        "/describeSignalingChannel",
        r#"{"ChannelName":"demo"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(described.status, 200);
    assert!(
        described.body.contains(r#""ChannelStatus":"ACTIVE""#),
        "{}",
        described.body
    );
    assert!(
        described.body.contains(r#""MessageTtlSeconds":60"#),
        "{}",
        described.body
    );

    let endpoints = call(
        &server,
        "/getSignalingChannelEndpoint",
        &format!(r#"{{"ChannelARN":"{arn}","SingleMasterChannelEndpointConfiguration":{{"Protocols":["WSS","HTTPS"],"Role":"VIEWER"}}}}"#),
        Some(SECRET),
    )
    .await;
    let base = server.public_url().trim_start_matches("http://").to_owned();
    assert_eq!(
        endpoints.body,
        format!(
            r#"{{"ResourceEndpointList":[{{"Protocol":"WSS","ResourceEndpoint":"ws://{base}"}},{{"Protocol":"HTTPS","ResourceEndpoint":"http://{base}"}}]}}"#
        )
    );

    let ice = call(
        &server,
        "/v1/get-ice-server-config",
        &format!(r#"{{"ChannelARN":"{arn}","ClientId":"v1","Service":"TURN"}}"#),
        Some(SECRET),
    )
    .await;
    assert_eq!(ice.status, 200, "{}", ice.body);
    assert!(
        ice.body
            .contains(r#""Uris":["turn:127.0.0.1:3478?transport=udp"]"#),
        "{}",
        ice.body
    );
    assert!(ice.body.contains(r#""Ttl":300"#));

    // Errors: the service's status, type header and a message naming the field.
    let unsigned = call(&server, "/listSignalingChannels", "{}", None).await;
    assert_eq!(
        (unsigned.status, unsigned.error_type.as_deref()),
        (403, Some("AccessDeniedException"))
    );
    let forged = call(&server, "/listSignalingChannels", "{}", Some("wrong")).await;
    assert_eq!(
        (forged.status, forged.error_type.as_deref()),
        (403, Some("InvalidSignatureException"))
    );
    let bad = call(
        &server,
        "/createSignalingChannel",
        r#"{"ChannelName":"a b"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(
        (bad.status, bad.error_type.as_deref()),
        (400, Some("InvalidArgumentException"))
    );
    assert!(
        bad.body.contains("ChannelName: character ' '"),
        "{}",
        bad.body
    );
    let taken = call(
        &server,
        "/createSignalingChannel",
        r#"{"ChannelName":"demo"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(taken.error_type.as_deref(), Some("ResourceInUseException"));
    let missing = call(
        &server,
        "/describeSignalingChannel",
        r#"{"ChannelName":"nope"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(
        (missing.status, missing.error_type.as_deref()),
        (404, Some("ResourceNotFoundException"))
    );
    assert!(missing.body.contains(r#""Message":"#), "{}", missing.body);
}

#[tokio::test]
async fn websocket_connects_relay_and_refuse_before_the_upgrade() {
    let server = start().await;
    let created = call(
        &server,
        "/createSignalingChannel",
        r#"{"ChannelName":"live"}"#,
        Some(SECRET),
    )
    .await;
    let arn = json_field(&created.body, "ChannelARN");

    let (mut master, _) = tokio_tungstenite::connect_async(presign(&server, &arn, None, SECRET))
        .await
        .unwrap();
    let (mut viewer, _) =
        tokio_tungstenite::connect_async(presign(&server, &arn, Some("v1"), SECRET))
            .await
            .unwrap();
    viewer
        .send(Message::Text(
            r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXI="}"#.into(),
        ))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut master).await,
        r#"{"messagePayload":"b2ZmZXI=","messageType":"SDP_OFFER","senderClientId":"v1"}"#
    );
    master
        .send(Message::Text(
            r#"{"action":"SDP_ANSWER","recipientClientId":"v1","messagePayload":"YW5z"}"#.into(),
        ))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut viewer).await,
        r#"{"messagePayload":"YW5z","messageType":"SDP_ANSWER"}"#
    );

    // Refusals are plain HTTP answers before the upgrade.
    assert_eq!(
        refused_status(&presign(&server, &arn, Some("v2"), "wrong")).await,
        403
    );
    let other = arn.replace("/live/", "/gone/");
    assert_eq!(
        refused_status(&presign(&server, &other, Some("v2"), SECRET)).await,
        404
    );
    assert_eq!(
        refused_status(&presign(&server, &arn, Some("AWS_v"), SECRET)).await,
        400
    );
    let (_v2, _) = tokio_tungstenite::connect_async(presign(&server, &arn, Some("v2"), SECRET))
        .await
        .unwrap();
    // The viewer limit is two in this test.
    assert_eq!(
        refused_status(&presign(&server, &arn, Some("v3"), SECRET)).await,
        400
    );

    // Deleting the channel closes its sockets.
    let deleted = call(
        &server,
        "/deleteSignalingChannel",
        &format!(r#"{{"ChannelARN":"{arn}"}}"#),
        Some(SECRET),
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    match tokio::time::timeout(Duration::from_secs(5), master.next())
        .await
        .unwrap()
    {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.reason.as_str(), "channel deleted")
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn send_alexa_offer_to_master_waits_for_the_answer() {
    let server = start().await;
    let created = call(
        &server,
        "/createSignalingChannel",
        r#"{"ChannelName":"alexa"}"#,
        Some(SECRET),
    )
    .await;
    let arn = json_field(&created.body, "ChannelARN");
    let (mut master, _) = tokio_tungstenite::connect_async(presign(&server, &arn, None, SECRET))
        .await
        .unwrap();
    let body = format!(
        r#"{{"ChannelARN":"{arn}","SenderClientId":"AWS_ALEXA","MessagePayload":"b2ZmZXI="}}"#
    );
    // The call waits for the master's answer: run both sides at once.
    let (answer, ()) = tokio::join!(
        call(
            &server,
            "/v1/send-alexa-offer-to-master",
            &body,
            Some(SECRET)
        ),
        async {
            assert_eq!(
                next_text(&mut master).await,
                r#"{"messagePayload":"b2ZmZXI=","messageType":"SDP_OFFER","senderClientId":"AWS_ALEXA"}"#
            );
            master
                .send(Message::Text(r#"{"action":"SDP_ANSWER","recipientClientId":"AWS_ALEXA","messagePayload":"YW5z"}"#.into()))
                .await
                .unwrap();
        }
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, r#"{"Answer":"YW5z"}"#);
}

#[tokio::test]
async fn health_and_metrics() {
    let server = start().await;
    // One forged call, and one well-signed call that fails: both are counted.
    let forged = call(&server, "/listSignalingChannels", "{}", Some("wrong")).await;
    assert_eq!(forged.status, 403);
    let missing = call(
        &server,
        "/describeSignalingChannel",
        r#"{"ChannelName":"nowhere"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(missing.status, 404);
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("kvs_connections_opened_total 0"),
        "{response}"
    );
    assert!(response.contains("kvs_channels 0"), "{response}");
    assert!(response.contains("kvs_rest_errors_total 2"), "{response}");
    assert!(response.contains("kvs_auth_failures_total 1"), "{response}");
}

#[tokio::test]
async fn channels_and_tags_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("kvs-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let start_in = |dir: std::path::PathBuf| async move {
        let ice = TurnConfig::new(
            vec![],
            vec![IceUri::new("stun:127.0.0.1:3478").unwrap()],
            vec![],
            IceServerTtl::default(),
        )
        .unwrap();
        let config = ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            vec![Credentials::new(KEY, SECRET)],
            ice,
        )
        .data_dir(dir);
        Server::start(config).await.unwrap()
    };
    let server = start_in(dir.clone()).await;
    let created = call(
        &server,
        "/createSignalingChannel",
        r#"{"ChannelName":"kept","Tags":[{"Key":"env","Value":"dev"}]}"#,
        Some(SECRET),
    )
    .await;
    let arn = json_field(&created.body, "ChannelARN");
    call(
        &server,
        "/createSignalingChannel",
        r#"{"ChannelName":"dropped"}"#,
        Some(SECRET),
    )
    .await;
    let dropped = call(
        &server,
        "/describeSignalingChannel",
        r#"{"ChannelName":"dropped"}"#,
        Some(SECRET),
    )
    .await;
    let dropped_arn = json_field(&dropped.body, "ChannelARN");
    call(
        &server,
        "/deleteSignalingChannel",
        &format!(r#"{{"ChannelARN":"{dropped_arn}"}}"#),
        Some(SECRET),
    )
    .await;
    call(
        &server,
        "/TagResource",
        &format!(r#"{{"ResourceARN":"{arn}","Tags":[{{"Key":"team","Value":"a"}}]}}"#),
        Some(SECRET),
    )
    .await;
    server.stop().await;

    let server = start_in(dir.clone()).await;
    let described = call(
        &server,
        "/describeSignalingChannel",
        r#"{"ChannelName":"kept"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(json_field(&described.body, "ChannelARN"), arn);
    let tags = call(
        &server,
        "/ListTagsForResource",
        &format!(r#"{{"ResourceARN":"{arn}"}}"#),
        Some(SECRET),
    )
    .await;
    assert_eq!(tags.body, r#"{"Tags":{"env":"dev","team":"a"}}"#);
    let gone = call(
        &server,
        "/describeSignalingChannel",
        r#"{"ChannelName":"dropped"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(gone.status, 404);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn channels_spread_over_shards_and_metrics_sum_them() {
    let ice = TurnConfig::new(
        vec![],
        vec![IceUri::new("stun:127.0.0.1:3478").unwrap()],
        vec![],
        IceServerTtl::default(),
    )
    .unwrap();
    let config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![Credentials::new(KEY, SECRET)],
        ice,
    )
    .shards(4);
    let server = Server::start(config).await.unwrap();
    let mut sockets = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for i in 0..12 {
        let created = call(
            &server,
            "/createSignalingChannel",
            &format!(r#"{{"ChannelName":"c{i}"}}"#),
            Some(SECRET),
        )
        .await;
        let arn = json_field(&created.body, "ChannelARN");
        used.insert(
            kvs_signaling_proto::ChannelArn::new(arn.clone())
                .map(|a| {
                    let hash = a.as_str().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                    });
                    hash % 4
                })
                .unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async(presign(&server, &arn, None, SECRET))
            .await
            .unwrap();
        sockets.push(ws);
    }
    assert!(used.len() > 1, "twelve channels all hashed to one shard");
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(
        response.contains("kvs_connections_opened_total 12"),
        "{response}"
    );
}

#[tokio::test]
async fn tls_with_the_development_certificate() {
    use std::sync::Arc;

    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, ServerName};

    let dir = std::env::temp_dir().join(format!("kvs-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dev = crate::dev_certificate(&dir).unwrap();
    assert!(dev.created);
    let again = crate::dev_certificate(&dir).unwrap();
    assert!(!again.created, "the certificate is made once and reused");
    assert_eq!(
        std::fs::read(&dev.files.cert).unwrap(),
        std::fs::read(&again.files.cert).unwrap()
    );

    let ice = TurnConfig::new(
        vec![],
        vec![IceUri::new("stun:127.0.0.1:3478").unwrap()],
        vec![],
        IceServerTtl::default(),
    )
    .unwrap();
    let config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![Credentials::new(KEY, SECRET)],
        ice,
    )
    .tls(dev.files.clone());
    let server = Server::start(config).await.unwrap();
    assert!(
        server.public_url().starts_with("https://127.0.0.1:"),
        "{}",
        server.public_url()
    );

    // A client that trusts only the development CA.
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&dev.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    for name in ["127.0.0.1", "localhost"] {
        let tcp = TcpStream::connect(server.local_addr()).await.unwrap();
        let mut tls = connector
            .connect(ServerName::try_from(name).unwrap().to_owned(), tcp)
            .await
            .unwrap_or_else(|err| panic!("TLS to {name}: {err}"));
        tls.write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        tls.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }

    // The WebSocket connect over TLS reaches the server's checks: an unknown channel is a 404.
    let tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap().to_owned(), tcp)
        .await
        .unwrap();
    let arn = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/none/1";
    let url = presign(&server, arn, Some("v1"), SECRET).replacen("ws://", "wss://", 1);
    match tokio_tungstenite::client_async(url, tls).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 404);
        }
        other => panic!(
            "expected a 404 before the upgrade, got {:?}",
            other.map(|_| ())
        ),
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn keys_limited_to_channels_and_roles() {
    use crate::{Grant, Scope};
    let mut config = config();
    config
        .credentials
        .push(Credentials::new("AKIDVIEWER", "viewer-secret"));
    config
        .credentials
        .push(Credentials::new("AKIDCAMS", "cams-secret"));
    let config = config
        .limit(
            "AKIDVIEWER",
            Scope::new(vec!["door".to_owned()], vec![Grant::Viewer]).unwrap(),
        )
        .limit(
            "AKIDCAMS",
            Scope::new(vec!["cam-*".to_owned()], vec![Grant::Master, Grant::Admin]).unwrap(),
        );
    let server = Server::start(config).await.unwrap();
    let viewer = |path: &'static str, body: &'static str| {
        call_as(&server, "AKIDVIEWER", path, body, Some("viewer-secret"))
    };
    let cams = |path: &'static str, body: &'static str| {
        call_as(&server, "AKIDCAMS", path, body, Some("cams-secret"))
    };

    // Creating needs admin, and the channel in scope.
    let denied = viewer("/createSignalingChannel", r#"{"ChannelName":"door"}"#).await;
    assert_eq!(denied.status, 401, "{}", denied.body);
    assert_eq!(denied.error_type.as_deref(), Some("AccessDeniedException"));
    assert!(
        denied.body.contains(
            "User: AKIDVIEWER is not authorized to perform: \
             kinesisvideo:CreateSignalingChannel on channel door (the key lacks the admin role)"
        ),
        "{}",
        denied.body
    );
    let denied = cams("/createSignalingChannel", r#"{"ChannelName":"door"}"#).await;
    assert_eq!(denied.status, 401, "{}", denied.body);
    assert!(
        denied.body.contains("outside the key's channels"),
        "{}",
        denied.body
    );
    let door = call(
        &server,
        "/createSignalingChannel",
        r#"{"ChannelName":"door"}"#,
        Some(SECRET),
    )
    .await;
    assert_eq!(door.status, 200, "{}", door.body);
    let door_arn = json_field(&door.body, "ChannelARN");
    let cam = cams("/createSignalingChannel", r#"{"ChannelName":"cam-1"}"#).await;
    assert_eq!(cam.status, 200, "{}", cam.body);
    let cam_arn = json_field(&cam.body, "ChannelARN");

    // Reads are allowed in scope only; List shows only what the key may see.
    assert_eq!(
        viewer("/describeSignalingChannel", r#"{"ChannelName":"door"}"#)
            .await
            .status,
        200
    );
    assert_eq!(
        viewer("/describeSignalingChannel", r#"{"ChannelName":"cam-1"}"#)
            .await
            .status,
        401
    );
    let listed = cams("/listSignalingChannels", "{}").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(
        listed.body.contains("cam-1") && !listed.body.contains("door"),
        "{}",
        listed.body
    );
    let all = call(&server, "/listSignalingChannels", "{}", Some(SECRET)).await;
    assert!(
        all.body.contains("cam-1") && all.body.contains("door"),
        "{}",
        all.body
    );
    let body = format!(r#"{{"ChannelARN":"{door_arn}"}}"#);
    let ice = call_as(
        &server,
        "AKIDVIEWER",
        "/v1/get-ice-server-config",
        &body,
        Some("viewer-secret"),
    )
    .await;
    assert_eq!(ice.status, 200, "{}", ice.body);
    let deleted = call_as(
        &server,
        "AKIDVIEWER",
        "/deleteSignalingChannel",
        &body,
        Some("viewer-secret"),
    )
    .await;
    assert_eq!(deleted.status, 401, "{}", deleted.body);

    // Connects: the role and the channel are both checked before the upgrade.
    assert_eq!(
        refused_status(&presign_as(
            &server,
            "AKIDVIEWER",
            &door_arn,
            None,
            "viewer-secret"
        ))
        .await,
        403
    );
    assert_eq!(
        refused_status(&presign_as(
            &server,
            "AKIDVIEWER",
            &cam_arn,
            Some("v"),
            "viewer-secret"
        ))
        .await,
        403
    );
    assert_eq!(
        refused_status(&presign_as(
            &server,
            "AKIDCAMS",
            &cam_arn,
            Some("v"),
            "cams-secret"
        ))
        .await,
        403
    );
    let (mut master, _) = tokio_tungstenite::connect_async(presign_as(
        &server,
        "AKIDCAMS",
        &cam_arn,
        None,
        "cams-secret",
    ))
    .await
    .unwrap();
    let (mut door_viewer, _) = tokio_tungstenite::connect_async(presign_as(
        &server,
        "AKIDVIEWER",
        &door_arn,
        Some("v"),
        "viewer-secret",
    ))
    .await
    .unwrap();
    let (mut door_master, _) =
        tokio_tungstenite::connect_async(presign(&server, &door_arn, None, SECRET))
            .await
            .unwrap();
    door_viewer
        .send(Message::Text(
            r#"{"action":"SDP_OFFER","messagePayload":"b2ZmZXI="}"#.into(),
        ))
        .await
        .unwrap();
    assert!(
        next_text(&mut door_master)
            .await
            .contains(r#""senderClientId":"v""#)
    );
    master.close(None).await.unwrap();
}

/// Every metric name in `text`: the words that start with `kvs_`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("kvs_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn the_grafana_dashboard_queries_only_what_metrics_exports() {
    let server = start().await;
    let response = exchange(
        TcpStream::connect(server.local_addr()).await.unwrap(),
        "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 200);
    // The series the server exports: each sample line's name.
    let exported: std::collections::BTreeSet<String> = response
        .body
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next().map(str::to_owned))
        .collect();
    assert!(
        exported.contains("kvs_relay_latency_seconds_bucket"),
        "{exported:?}"
    );
    assert!(
        !exported.iter().any(|name| name.starts_with("kvs_cluster_")),
        "a single node exports no cluster series: {exported:?}"
    );

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/kvs-signaling.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(!panels.is_empty());
    let mut queried = std::collections::BTreeSet::new();
    let mut ids = std::collections::BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: id taken"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{title}: {expr} names no metric");
            // The cluster panels' series exist in cluster mode only: the cluster tests hold
            // them to a cluster node's /metrics.
            for name in names.into_iter().filter(|n| !n.starts_with("kvs_cluster_")) {
                assert!(
                    exported.contains(&name),
                    "{title}: {expr} queries {name}, which /metrics does not export"
                );
                queried.insert(name);
            }
        }
    }
    // And nothing the server exports is missing from the dashboard.
    let families: std::collections::BTreeSet<String> = exported
        .iter()
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| exported.contains(&format!("{base}_bucket")))
                .unwrap_or(name)
                .to_owned()
        })
        .collect();
    let shown: std::collections::BTreeSet<String> = queried
        .iter()
        .map(|name| {
            name.strip_suffix("_bucket")
                .or_else(|| name.strip_suffix("_sum"))
                .or_else(|| name.strip_suffix("_count"))
                .unwrap_or(name)
                .to_owned()
        })
        .collect();
    let missing: Vec<_> = families.difference(&shown).collect();
    assert!(
        missing.is_empty(),
        "the dashboard shows nothing of {missing:?}"
    );
}
