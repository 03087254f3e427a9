use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ::http::{HeaderMap, HeaderValue, Response};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kvs_signaling_core::RequestError;
use kvs_signaling_proto::{ChannelArn, ChannelName, ClientId, ErrorBody, ErrorType, Role};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::{HeaderSignedRequest, Verifier};

const ARN: &str = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1657142193914";
const TIMEOUT: Duration = Duration::from_secs(5);

/// A request the test server received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    host: String,
    content_type: String,
    body: String,
}

/// A canned answer: status, extra headers, body.
type Answer = (u16, Vec<(&'static str, String)>, Vec<u8>);

type Handler = Arc<dyn Fn(&str) -> Answer + Send + Sync>;

/// A tiny server that checks every signature with [`Verifier::verify_header`], as the real
/// server does, and answers with `handler`.
struct TestServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
}

impl TestServer {
    async fn start(verifier: Verifier, handler: Handler, tls: Option<TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let shared = (Arc::new(verifier), handler, Arc::clone(&seen));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(tcp).await {
                                serve(stream, shared).await;
                            }
                        }
                        None => serve(tcp, shared).await,
                    }
                });
            }
        });
        Self {
            addr,
            seen,
            accepted,
        }
    }

    /// How many TCP connections the server accepted.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve<S>(
    stream: S,
    (verifier, handler, seen): (Arc<Verifier>, Handler, Arc<Mutex<Vec<Seen>>>),
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: ::http::Request<Incoming>| {
        let (verifier, handler, seen) = (verifier.clone(), handler.clone(), seen.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            let headers: Vec<(&str, &str)> = parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
                .collect();
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(String::new(), |(_, v)| (*v).to_owned())
            };
            seen.lock().unwrap().push(Seen {
                path: parts.uri.path().to_owned(),
                host: header("host"),
                content_type: header("content-type"),
                body: String::from_utf8(body.to_vec()).unwrap(),
            });
            let signed = HeaderSignedRequest::new("POST", parts.uri.path(), &headers, &body);
            let (status, extra, body) = match verifier.verify_header(SystemTime::now(), &signed) {
                Ok(_) => handler(parts.uri.path()),
                Err(err) => error_answer(403, err.error_type(), &err.message),
            };
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = ::http::StatusCode::from_u16(status).unwrap();
            for (name, value) in extra {
                response
                    .headers_mut()
                    .insert(name, HeaderValue::from_str(&value).unwrap());
            }
            Ok::<_, hyper::Error>(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// An error as the real server writes it (`crates/kvs-signaling-server/src/http.rs`).
fn error_answer(status: u16, error_type: ErrorType, message: &str) -> Answer {
    (
        status,
        vec![
            ("content-type", "application/json".to_owned()),
            (
                "x-amzn-ErrorType",
                format!(
                    "{}:http://internal.amazon.com/coral/com.amazonaws.kinesisvideo/",
                    error_type.name()
                ),
            ),
        ],
        ErrorBody::new(error_type, message).encode(),
    )
}

fn json(body: &str) -> Answer {
    (
        200,
        vec![("content-type", "application/json".to_owned())],
        body.as_bytes().to_vec(),
    )
}

/// Answers every operation as the service would for the channel `demo`, with the HTTPS
/// endpoint at `https_endpoint`.
fn service(https_endpoint: Arc<Mutex<String>>) -> Handler {
    Arc::new(move |path| match path {
        "/describeSignalingChannel" => json(&format!(
            r#"{{"ChannelInfo":{{"ChannelARN":"{ARN}","ChannelName":"demo","ChannelStatus":"ACTIVE","ChannelType":"SINGLE_MASTER","CreationTime":1657142193.914,"SingleMasterConfiguration":{{"MessageTtlSeconds":60}},"Version":"abc123"}}}}"#
        )),
        "/createSignalingChannel" => json(&format!(r#"{{"ChannelARN":"{ARN}"}}"#)),
        "/getSignalingChannelEndpoint" => json(&format!(
            r#"{{"ResourceEndpointList":[{{"Protocol":"HTTPS","ResourceEndpoint":"{}"}},{{"Protocol":"WSS","ResourceEndpoint":"wss://v-1.example"}}]}}"#,
            https_endpoint.lock().unwrap()
        )),
        "/v1/get-ice-server-config" => json(
            r#"{"IceServerList":[{"Password":"pw","Ttl":300,"Uris":["turn:1.2.3.4:443?transport=udp"],"Username":"1657143338:dXNlcg=="}]}"#,
        ),
        _ => error_answer(
            404,
            ErrorType::ResourceNotFoundException,
            "no such operation",
        ),
    })
}

fn temporary() -> Credentials {
    Credentials::new("AKIDEXAMPLE", "secret").with_session_token("token+/=")
}

/// A client whose proxies are those of `environment`, not of the process's environment.
fn client_in(
    url: &str,
    credentials: Credentials,
    trust: TlsTrust,
    environment: ProxyConfig,
) -> RestClient {
    RestClient::with_environment(url, "us-west-2", credentials, trust, environment)
        .unwrap()
        .with_timeout(TIMEOUT)
}

fn client(url: &str, credentials: Credentials, trust: TlsTrust) -> RestClient {
    client_in(url, credentials, trust, ProxyConfig::none())
}

#[tokio::test]
async fn every_call_is_signed_sent_and_decoded() {
    let https = Arc::new(Mutex::new(String::new()));
    for credentials in [Credentials::new("AKIDEXAMPLE", "secret"), temporary()] {
        let verifier = Verifier::new("us-west-2", [credentials.clone()]);
        let server = TestServer::start(verifier, service(Arc::clone(&https)), None).await;
        *https.lock().unwrap() = server.url("http");
        let client = client(&server.url("http"), credentials, TlsTrust::default());
        let name = ChannelName::new("demo").unwrap();
        let arn = ChannelArn::new(ARN).unwrap();
        let viewer = ClientId::new("viewer-1").unwrap();

        let info = client.describe_channel(&name).await.unwrap();
        assert_eq!(info.channel_arn, Some(arn.clone()));
        client.create_channel(&name).await.unwrap();
        let endpoints = client.get_endpoints(&arn, Role::Viewer).await.unwrap();
        assert_eq!(
            endpoints,
            Endpoints::new("wss://v-1.example", server.url("http"))
        );
        let servers = client
            .get_ice_config(&endpoints.https, &arn, Some(&viewer))
            .await
            .unwrap();
        assert_eq!(servers.len(), 1);
        assert_eq!(
            servers[0].username.as_ref().map(|u| u.as_str()),
            Some("1657143338:dXNlcg==")
        );
        // A trailing slash on the HTTPS endpoint, and the master without a client id.
        let master = client
            .get_ice_config(&format!("{}/", endpoints.https), &arn, None)
            .await
            .unwrap();
        assert_eq!(master, servers);

        let seen = server.seen();
        let sent: Vec<(&str, &str)> = seen
            .iter()
            .map(|s| (s.path.as_str(), s.body.as_str()))
            .collect();
        assert_eq!(
            sent,
            [
                ("/describeSignalingChannel", r#"{"ChannelName":"demo"}"#),
                (
                    "/createSignalingChannel",
                    r#"{"ChannelName":"demo","ChannelType":"SINGLE_MASTER"}"#
                ),
                (
                    "/getSignalingChannelEndpoint",
                    &*format!(
                        r#"{{"ChannelARN":"{ARN}","SingleMasterChannelEndpointConfiguration":{{"Protocols":["WSS","HTTPS"],"Role":"VIEWER"}}}}"#
                    )
                ),
                (
                    "/v1/get-ice-server-config",
                    &*format!(r#"{{"ChannelARN":"{ARN}","ClientId":"viewer-1","Service":"TURN"}}"#)
                ),
                (
                    "/v1/get-ice-server-config",
                    &*format!(r#"{{"ChannelARN":"{ARN}","Service":"TURN"}}"#)
                ),
            ]
        );
        for s in &seen {
            assert_eq!(s.host, server.addr.to_string());
            assert_eq!(s.content_type, "application/json");
        }
    }
}

#[tokio::test]
async fn service_errors_keep_status_type_and_message() {
    let handler: Handler = Arc::new(|path| match path {
        "/describeSignalingChannel" => error_answer(
            404,
            ErrorType::ResourceNotFoundException,
            "The requested channel is not found or not active.",
        ),
        "/createSignalingChannel" => (500, Vec::new(), b"upstream failure".to_vec()),
        "/getSignalingChannelEndpoint" => json(
            r#"{"ResourceEndpointList":[{"Protocol":"WSS","ResourceEndpoint":"wss://v-1.example"}]}"#,
        ),
        _ => json(r#"{"IceServerList":"not a list"}"#),
    });
    let credentials = temporary();
    let server = TestServer::start(
        Verifier::new("us-west-2", [credentials.clone()]),
        handler,
        None,
    )
    .await;
    let client = client(&server.url("http"), credentials, TlsTrust::default());
    let name = ChannelName::new("demo").unwrap();
    let arn = ChannelArn::new(ARN).unwrap();

    let err = client.describe_channel(&name).await.unwrap_err();
    assert_eq!(err.status, Some(404));
    assert_eq!(err.error_type, Some(ErrorType::ResourceNotFoundException));
    assert_eq!(
        err.message,
        "The requested channel is not found or not active."
    );
    assert!(err.is_not_found());

    let err = client.create_channel(&name).await.unwrap_err();
    assert_eq!(err, RequestError::http(500, "upstream failure"));

    let err = client.get_endpoints(&arn, Role::Master).await.unwrap_err();
    assert_eq!(err.status, None);
    assert!(
        err.message.contains("lacks the WSS or the HTTPS endpoint"),
        "{err}"
    );

    let err = client
        .get_ice_config(&server.url("http"), &arn, None)
        .await
        .unwrap_err();
    assert!(
        err.message
            .starts_with("GetIceServerConfig: the answer does not parse: IceServerList"),
        "{err}"
    );

    let err = client
        .get_ice_config("ftp://x", &arn, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        r#"https_endpoint: "ftp://x" must start with https:// or http://"#
    );
}

#[tokio::test]
async fn a_refused_signature_is_a_credentials_error() {
    let server = TestServer::start(
        Verifier::new("us-west-2", [temporary()]),
        service(Arc::new(Mutex::new(String::new()))),
        None,
    )
    .await;
    let name = ChannelName::new("demo").unwrap();
    let wrong_secret =
        Credentials::new("AKIDEXAMPLE", "not-the-secret").with_session_token("token+/=");
    let wrong_region = RestClient::new(
        &server.url("http"),
        "eu-west-1",
        temporary(),
        TlsTrust::default(),
    )
    .unwrap()
    .with_timeout(TIMEOUT);
    for client in [
        client(&server.url("http"), wrong_secret, TlsTrust::default()),
        wrong_region,
    ] {
        let err = client.describe_channel(&name).await.unwrap_err();
        assert_eq!(err.status, Some(403));
        assert_eq!(err.error_type, Some(ErrorType::InvalidSignatureException));
        assert!(err.is_credentials(), "{err}");
    }
}

#[test]
fn error_answers_are_read_from_header_and_body() {
    let header = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("x-amzn-ErrorType", HeaderValue::from_str(value).unwrap());
        headers
    };
    let none = HeaderMap::new();
    let cases: Vec<(u16, HeaderMap, &str, Option<ErrorType>, &str)> = vec![
        // The real service: the type in the header, `Message` in the body.
        (
            404,
            header("ResourceNotFoundException:https://kinesisvideo.amazonaws.com/doc/2017-09-30/"),
            r#"{"Message":"The requested stream is not found or not active."}"#,
            Some(ErrorType::ResourceNotFoundException),
            "The requested stream is not found or not active.",
        ),
        // Only `__type` in the body, lowercase `message`.
        (
            400,
            none.clone(),
            r#"{"__type":"SessionExpiredException","message":"expired"}"#,
            Some(ErrorType::SessionExpiredException),
            "expired",
        ),
        // A namespaced `__type`.
        (
            400,
            none.clone(),
            r#"{"__type":"com.amazonaws.kinesisvideo#ClientLimitExceededException","Message":"slow down"}"#,
            Some(ErrorType::ClientLimitExceededException),
            "slow down",
        ),
        // A type this crate does not know is named in the message.
        (
            400,
            header("BrandNewException:x"),
            r#"{"Message":"new"}"#,
            None,
            "BrandNewException: new",
        ),
        // No JSON at all.
        (
            502,
            none.clone(),
            "<html>bad gateway</html>",
            None,
            "<html>bad gateway</html>",
        ),
        (503, none.clone(), "", None, "the service gave no message"),
        (
            403,
            header("InvalidSignatureException:x"),
            "{}",
            Some(ErrorType::InvalidSignatureException),
            "the service gave no message",
        ),
    ];
    for (status, headers, body, error_type, message) in cases {
        let err = service_error(status, &headers, body.as_bytes());
        assert_eq!(
            (err.status, err.error_type, err.message.as_str()),
            (Some(status), error_type, message),
            "{body}"
        );
    }
    let long = "x".repeat(10_000);
    let err = service_error(500, &none, long.as_bytes());
    assert_eq!(err.message.len(), MAX_QUOTED_BODY);
}

#[tokio::test]
async fn answers_are_bounded_in_size_and_time() {
    let huge: Handler =
        Arc::new(|_| json(&format!(r#"{{"Pad":"{}"}}"#, "x".repeat(MAX_RESPONSE_BODY))));
    let credentials = temporary();
    let server = TestServer::start(
        Verifier::new("us-west-2", [credentials.clone()]),
        huge,
        None,
    )
    .await;
    let name = ChannelName::new("demo").unwrap();
    let err = client(
        &server.url("http"),
        credentials.clone(),
        TlsTrust::default(),
    )
    .describe_channel(&name)
    .await
    .unwrap_err();
    assert_eq!(err.status, None);
    assert!(
        err.message.contains("is longer than 1048576 bytes"),
        "{err}"
    );

    // A server that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp);
        }
    });
    let timeout = Duration::from_millis(200);
    let err = client(&silent_url, credentials.clone(), TlsTrust::default())
        .with_timeout(timeout)
        .describe_channel(&name)
        .await
        .unwrap_err();
    assert_eq!(err, RequestError::timeout(timeout));
    hold.abort();

    // Nobody listening.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = client(&closed_url, credentials, TlsTrust::default())
        .describe_channel(&name)
        .await
        .unwrap_err();
    assert_eq!(err.status, None);
    assert!(
        err.message
            .starts_with("cannot connect to http://127.0.0.1:"),
        "{err}"
    );
}

/// A CA and a certificate it signed for 127.0.0.1, as `kvs-signaling serve` makes them.
fn dev_ca() -> (String, TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca_cert.pem(), TlsAcceptor::from(Arc::new(config)))
}

#[tokio::test]
async fn https_trusts_the_cas_it_is_given() {
    let (ca_pem, acceptor) = dev_ca();
    let credentials = temporary();
    let https = Arc::new(Mutex::new(String::new()));
    let server = TestServer::start(
        Verifier::new("us-west-2", [credentials.clone()]),
        service(Arc::clone(&https)),
        Some(acceptor),
    )
    .await;
    *https.lock().unwrap() = server.url("https");
    let name = ChannelName::new("demo").unwrap();
    let arn = ChannelArn::new(ARN).unwrap();

    let trusting = client(
        &server.url("https"),
        credentials.clone(),
        TlsTrust::empty().with_pem(ca_pem.as_bytes()).unwrap(),
    );
    assert!(trusting.describe_channel(&name).await.is_ok());
    let endpoints = trusting.get_endpoints(&arn, Role::Master).await.unwrap();
    assert_eq!(endpoints.https, server.url("https"));
    assert!(
        trusting
            .get_ice_config(&endpoints.https, &arn, None)
            .await
            .is_ok()
    );
    assert_eq!(trusting.tls_config().alpn_protocols, [b"http/1.1".to_vec()]);

    // The webpki roots do not include the development CA.
    let err = client(&server.url("https"), credentials, TlsTrust::default())
        .describe_channel(&name)
        .await
        .unwrap_err();
    assert_eq!(err.status, None);
    assert!(
        err.message
            .starts_with("TLS handshake with https://127.0.0.1:"),
        "{err}"
    );
}

#[test]
fn pem_problems_are_named() {
    let (ca_pem, _) = dev_ca();
    let both = format!("{ca_pem}{ca_pem}");
    assert!(TlsTrust::empty().with_pem(both.as_bytes()).is_ok());
    assert!(
        format!(
            "{:?}",
            TlsTrust::default().with_pem(ca_pem.as_bytes()).unwrap()
        )
        .contains("webpki_roots: true, extra_certificates: 1")
    );
    assert_eq!(
        TlsTrust::empty().with_pem(b"not pem").unwrap_err(),
        ClientConfigError::NoCertificate
    );
    let not_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        TlsTrust::empty().with_pem(not_base64.as_bytes()),
        Err(ClientConfigError::Pem { .. })
    ));
    let not_a_certificate = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
    let err = TlsTrust::empty()
        .with_pem(not_a_certificate.as_bytes())
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("ca_pem: certificate 0 (counting from 0) is not a usable trust anchor"),
        "{err}"
    );
    assert_eq!(
        RestClient::new(
            "kinesisvideo.us-west-2.amazonaws.com",
            "us-west-2",
            temporary(),
            TlsTrust::default()
        )
        .unwrap_err()
        .to_string(),
        r#"control_endpoint: "kinesisvideo.us-west-2.amazonaws.com" must start with https:// or http://"#
    );
}

#[test]
fn the_client_presigns_with_its_credentials_and_region() {
    let client = client(
        "https://kinesisvideo.us-west-2.amazonaws.com",
        temporary(),
        TlsTrust::default(),
    );
    assert_eq!(client.region(), "us-west-2");
    assert_eq!(client.credentials(), &temporary());
    assert_eq!(client.timeout(), TIMEOUT);
    let arn = ChannelArn::new(ARN).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_690_186_022);
    let url = client
        .presign_connect_url("wss://m-1.example", &arn, None, now)
        .unwrap();
    let (_, query) = url.split_once('?').unwrap();
    assert!(
        Verifier::new("us-west-2", [temporary()])
            .verify_presigned(now, "m-1.example", "/", query)
            .is_ok()
    );
    let mut client = client;
    client.set_credentials(Credentials::new("AKIDOTHER", "s"));
    assert_eq!(client.credentials().access_key_id, "AKIDOTHER");
}

#[tokio::test]
async fn calls_reuse_one_connection_over_http_and_tls() {
    let (ca_pem, acceptor) = dev_ca();
    let trust = TlsTrust::empty().with_pem(ca_pem.as_bytes()).unwrap();
    let name = ChannelName::new("demo").unwrap();
    let arn = ChannelArn::new(ARN).unwrap();
    for (scheme, tls) in [("http", None), ("https", Some(acceptor))] {
        let credentials = temporary();
        let https = Arc::new(Mutex::new(String::new()));
        let server = TestServer::start(
            Verifier::new("us-west-2", [credentials.clone()]),
            service(Arc::clone(&https)),
            tls,
        )
        .await;
        *https.lock().unwrap() = server.url(scheme);
        let client = client(&server.url(scheme), credentials.clone(), trust.clone());

        // What a connect asks, then a reconnect on a clone of the client.
        client.describe_channel(&name).await.unwrap();
        client.create_channel(&name).await.unwrap();
        let endpoints = client.get_endpoints(&arn, Role::Viewer).await.unwrap();
        client
            .get_ice_config(&endpoints.https, &arn, None)
            .await
            .unwrap();
        let clone = client.clone();
        clone.describe_channel(&name).await.unwrap();
        clone.get_endpoints(&arn, Role::Viewer).await.unwrap();
        assert_eq!(server.seen().len(), 6, "{scheme}");
        assert_eq!(server.accepted(), 1, "{scheme}: six calls, one connection");

        // Another client has a pool of its own.
        let other = self::client(&server.url(scheme), credentials, trust.clone());
        other.describe_channel(&name).await.unwrap();
        assert_eq!(server.accepted(), 2, "{scheme}");
    }
}

/// A listener whose accept queue is full and that never accepts: Linux drops the SYN of a
/// further connect, which then waits (and retries) for an answer that never comes. Returns
/// the address and what must stay alive.
async fn saturated_listener() -> (SocketAddr, impl Sized) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..64 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(stream) => queued.push(stream.unwrap()),
            Err(_) => return (addr, (listener, queued)),
        }
    }
    panic!("64 connects to a listener that never accepts all completed");
}

#[tokio::test]
async fn making_a_connection_is_bounded_by_the_connect_timeout() {
    let connect_timeout = Duration::from_millis(300);
    async fn check(url: String, client: RestClient) {
        let started = Instant::now();
        let name = ChannelName::new("demo").unwrap();
        let err = client.describe_channel(&name).await.unwrap_err();
        assert_eq!(
            err,
            RequestError::new(format!(
                "cannot connect to {url}: not connected within {:?}",
                client.connect_timeout()
            ))
        );
        // The call's own timeout did not end it.
        assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
    }

    // The TCP connect: the SYN gets no answer.
    let (addr, _held) = saturated_listener().await;
    let url = format!("http://{addr}");
    let tcp = client(&url, temporary(), TlsTrust::default()).with_connect_timeout(connect_timeout);
    assert_eq!(tcp.connect_timeout(), connect_timeout);
    check(url, tcp).await;

    // The TLS handshake: the server accepts and never answers the ClientHello.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", silent.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp);
        }
    });
    let tls = client(&url, temporary(), TlsTrust::default()).with_connect_timeout(connect_timeout);
    check(url, tls).await;
    hold.abort();

    // The tunnel: the proxy never answers the CONNECT.
    let proxy = proxy::TestProxy::start(proxy::ProxyMode::Silent).await;
    let url = "http://127.0.0.1:9".to_owned();
    let tunnel = client(&url, temporary(), TlsTrust::default())
        .with_connect_timeout(connect_timeout)
        .with_proxy(ProxyConfig::none().with_http(proxy.url()))
        .unwrap();
    check(url, tunnel).await;
    assert_eq!(proxy.connects(), ["CONNECT 127.0.0.1:9 HTTP/1.1"]);
}

/// `SignalingClient` runs on a multi-thread runtime, where the pool's tasks and the calls run in
/// parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_on_a_multi_thread_runtime_reuse_their_connections() {
    let (ca_pem, acceptor) = dev_ca();
    let credentials = temporary();
    let https = Arc::new(Mutex::new(String::new()));
    let server = TestServer::start(
        Verifier::new("us-west-2", [credentials.clone()]),
        service(Arc::clone(&https)),
        Some(acceptor),
    )
    .await;
    *https.lock().unwrap() = server.url("https");
    let client = client(
        &server.url("https"),
        credentials,
        TlsTrust::empty().with_pem(ca_pem.as_bytes()).unwrap(),
    );
    let name = ChannelName::new("demo").unwrap();
    let arn = ChannelArn::new(ARN).unwrap();
    const CYCLES: usize = 20;
    for _ in 0..CYCLES {
        // Each call on a task of its own, as SignalingClient makes them.
        let (c, n) = (client.clone(), name.clone());
        tokio::spawn(async move { c.describe_channel(&n).await.unwrap() })
            .await
            .unwrap();
        let (c, a) = (client.clone(), arn.clone());
        let endpoints =
            tokio::spawn(async move { c.get_endpoints(&a, Role::Viewer).await.unwrap() })
                .await
                .unwrap();
        let (c, a) = (client.clone(), arn.clone());
        tokio::spawn(async move { c.get_ice_config(&endpoints.https, &a, None).await.unwrap() })
            .await
            .unwrap();
    }
    assert_eq!(server.seen().len(), 3 * CYCLES);
    // One connection in practice. A call that starts before the previous call's connection
    // is back in the pool opens another (hyperium/hyper#4134), which the pool then keeps too;
    // a task hop between calls leaves the pool the time it needs.
    assert!(server.accepted() <= 2, "{} connections", server.accepted());
}

mod proxy;
