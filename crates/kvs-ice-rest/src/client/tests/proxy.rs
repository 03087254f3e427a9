//! The proxy settings, and calls through a small HTTP `CONNECT` proxy written here.

use super::*;

/// The request heads of the `CONNECT`s a [`TestProxy`] received.
type Heads = Arc<Mutex<Vec<String>>>;

/// What a [`TestProxy`] does with a `CONNECT`.
#[derive(Clone, Copy)]
pub(super) enum ProxyMode {
    /// Answers 200 and carries bytes to and from this address, whatever the target.
    Tunnel(SocketAddr),
    /// Answers with this status line and closes.
    Refuse(&'static str),
    /// Reads the request and never answers.
    Silent,
}

/// A small HTTP `CONNECT` proxy that records each request's head.
pub(super) struct TestProxy {
    addr: SocketAddr,
    heads: Heads,
}

impl TestProxy {
    pub(super) async fn start(mode: ProxyMode) -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Heads::default();
        let seen = Arc::clone(&heads);
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0; 1];
                    // One byte at a time, so that nothing after the head is consumed.
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                        if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    seen.lock().unwrap().push(String::from_utf8(head).unwrap());
                    match mode {
                        ProxyMode::Tunnel(upstream) => {
                            let mut upstream =
                                tokio::net::TcpStream::connect(upstream).await.unwrap();
                            tcp.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                                .await
                                .unwrap();
                            let _ = tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await;
                        }
                        ProxyMode::Refuse(status) => {
                            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                            let _ = tcp.write_all(answer.as_bytes()).await;
                        }
                        ProxyMode::Silent => std::future::pending::<()>().await,
                    }
                });
            }
        });
        Self { addr, heads }
    }

    pub(super) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The request line of each `CONNECT` received.
    pub(super) fn connects(&self) -> Vec<String> {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .map(|head| head.lines().next().unwrap_or_default().to_owned())
            .collect()
    }

    /// The `Proxy-Authorization` of each `CONNECT` received.
    fn authorizations(&self) -> Vec<Option<String>> {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .map(|head| {
                head.lines().find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("proxy-authorization")
                        .then(|| value.trim().to_owned())
                })
            })
            .collect()
    }
}

#[tokio::test]
async fn calls_go_through_the_configured_proxy_in_a_connect_tunnel() {
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
        let proxy = TestProxy::start(ProxyMode::Tunnel(server.addr)).await;
        // Credentials in the URL, percent-encoded, become Basic proxy authorization.
        let proxy_url = format!("http://kvs:p%40ss@{}", proxy.addr);
        let config = match scheme {
            "http" => ProxyConfig::none().with_http(proxy_url),
            _ => ProxyConfig::none().with_https(proxy_url),
        };
        let client = client(&server.url(scheme), credentials, trust.clone())
            .with_proxy(config)
            .unwrap();

        client.describe_channel(&name).await.unwrap();
        let endpoints = client.get_endpoints(&arn, Role::Master).await.unwrap();
        client
            .get_ice_config(&endpoints.https, &arn, None)
            .await
            .unwrap();
        let target = server.addr;
        assert_eq!(
            proxy.connects(),
            [format!("CONNECT {target} HTTP/1.1")],
            "{scheme}: one tunnel, reused by the three calls"
        );
        // base64("kvs:p@ss")
        assert_eq!(
            proxy.authorizations(),
            [Some("Basic a3ZzOnBAc3M=".to_owned())],
            "{scheme}"
        );
        assert_eq!(server.accepted(), 1, "{scheme}");
        // The signed Host is the endpoint's, not the proxy's.
        for seen in server.seen() {
            assert_eq!(seen.host, target.to_string(), "{scheme}");
        }
    }
}

#[tokio::test]
async fn no_proxy_and_the_other_scheme_go_direct() {
    let credentials = temporary();
    let server = TestServer::start(
        Verifier::new("us-west-2", [credentials.clone()]),
        service(Arc::new(Mutex::new(String::new()))),
        None,
    )
    .await;
    let proxy = TestProxy::start(ProxyMode::Tunnel(server.addr)).await;
    let name = ChannelName::new("demo").unwrap();
    let configs = [
        ProxyConfig::none()
            .with_http(proxy.url())
            .with_no_proxy("127.0.0.1"),
        ProxyConfig::none()
            .with_http(proxy.url())
            .with_no_proxy("example.com, 127.0.0.0/8"),
        ProxyConfig::none()
            .with_http(proxy.url())
            .with_no_proxy("*"),
        // An https:// proxy setting does not apply to an http:// endpoint.
        ProxyConfig::none().with_https(proxy.url()),
    ];
    for (index, config) in configs.into_iter().enumerate() {
        let client = client(
            &server.url("http"),
            credentials.clone(),
            TlsTrust::default(),
        )
        .with_proxy(config)
        .unwrap();
        client.describe_channel(&name).await.unwrap();
        assert_eq!(server.accepted(), index + 1);
    }
    assert_eq!(proxy.connects(), Vec::<String>::new());

    // The same proxy without the exception does see the call.
    let client = client(&server.url("http"), credentials, TlsTrust::default())
        .with_proxy(ProxyConfig::none().with_http(proxy.url()))
        .unwrap();
    client.describe_channel(&name).await.unwrap();
    assert_eq!(proxy.connects().len(), 1);
}

#[tokio::test]
async fn the_proxy_from_the_environment_carries_the_calls() {
    // The proxy tunnels every CONNECT to the server, so the endpoint may have a name that
    // only the proxy "resolves": loopback endpoints never go through an environment proxy.
    let credentials = temporary();
    let server = TestServer::start(
        Verifier::new("us-west-2", [credentials.clone()]),
        service(Arc::new(Mutex::new(String::new()))),
        None,
    )
    .await;
    let proxy = TestProxy::start(ProxyMode::Tunnel(server.addr)).await;
    let proxy_url = proxy.url();
    let environment =
        || ProxyConfig::from_lookup(|name| (name == "http_proxy").then(|| proxy_url.clone()));
    let name = ChannelName::new("demo").unwrap();

    let client = client_in(
        "http://kvs.test:8080",
        credentials.clone(),
        TlsTrust::default(),
        environment(),
    );
    client.describe_channel(&name).await.unwrap();
    assert_eq!(proxy.connects(), ["CONNECT kvs.test:8080 HTTP/1.1"]);
    assert_eq!(server.seen()[0].host, "kvs.test:8080");

    // A loopback endpoint goes direct, without NO_PROXY. (What NO_PROXY names goes
    // direct too: `the_environment_names_the_proxies` checks the decisions without dialing
    // a name that only the proxy knows.)
    let client = client_in(
        &server.url("http"),
        credentials,
        TlsTrust::default(),
        environment(),
    );
    client.describe_channel(&name).await.unwrap();
    assert_eq!(proxy.connects().len(), 1);
    assert_eq!(server.accepted(), 2);
}

#[test]
fn the_environment_names_the_proxies() {
    let config = |variables: &[(&'static str, &'static str)]| {
        let variables = variables.to_vec();
        ProxyConfig::from_lookup(move |name| {
            variables
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    };
    let aws = "https://kinesisvideo.us-west-2.amazonaws.com";
    let local = "http://signaling.internal:8080";
    // The variables, a destination, the proxy it goes through.
    type Case = (
        Vec<(&'static str, &'static str)>,
        &'static str,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (vec![], aws, None),
        (
            vec![("HTTPS_PROXY", "http://proxy.example:3128")],
            aws,
            Some("http://proxy.example:3128/"),
        ),
        (
            vec![("https_proxy", "proxy.example:3128")],
            aws,
            Some("http://proxy.example:3128/"),
        ),
        // Upper case first; an empty variable counts as unset.
        (
            vec![("HTTPS_PROXY", "upper:1"), ("https_proxy", "lower:2")],
            aws,
            Some("http://upper:1/"),
        ),
        (
            vec![("HTTPS_PROXY", ""), ("https_proxy", "lower:2")],
            aws,
            Some("http://lower:2/"),
        ),
        // Each scheme its own proxy.
        (vec![("HTTPS_PROXY", "p:1")], local, None),
        (vec![("HTTP_PROXY", "p:1")], aws, None),
        (vec![("HTTP_PROXY", "p:1")], local, Some("http://p:1/")),
        (vec![("http_proxy", "p:1")], local, Some("http://p:1/")),
        // NO_PROXY: domains with their subdomains, addresses, networks, `*`.
        (
            vec![("HTTPS_PROXY", "p:1"), ("NO_PROXY", ".amazonaws.com")],
            aws,
            None,
        ),
        (
            vec![("HTTPS_PROXY", "p:1"), ("no_proxy", "amazonaws.com")],
            aws,
            None,
        ),
        (
            vec![("HTTPS_PROXY", "p:1"), ("NO_PROXY", "example.com")],
            aws,
            Some("http://p:1/"),
        ),
        (
            vec![("HTTPS_PROXY", "p:1"), ("NO_PROXY", "10.0.0.0/8")],
            "https://10.1.2.3",
            None,
        ),
        (vec![("HTTPS_PROXY", "p:1"), ("NO_PROXY", "*")], aws, None),
        (
            vec![("HTTPS_PROXY", "p:1"), ("NO_PROXY", "example.com, *")],
            "https://10.0.0.1",
            None,
        ),
        // Loopback always goes direct.
        (vec![("HTTPS_PROXY", "p:1")], "https://127.0.0.1:8443", None),
        (vec![("HTTPS_PROXY", "p:1")], "https://127.1.2.3", None),
        (vec![("HTTPS_PROXY", "p:1")], "https://localhost:8443", None),
        (vec![("HTTPS_PROXY", "p:1")], "https://[::1]:8443", None),
        (
            vec![("HTTPS_PROXY", "p:1")],
            "https://10.0.0.1:8443",
            Some("http://p:1/"),
        ),
        // A CGI program ignores HTTP_PROXY, which a request's `Proxy` header can set.
        (
            vec![("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "evil:1")],
            local,
            None,
        ),
        (
            vec![("REQUEST_METHOD", "GET"), ("http_proxy", "p:1")],
            local,
            Some("http://p:1/"),
        ),
    ];
    for (variables, url, expected) in cases {
        assert_eq!(
            config(&variables).proxy_for(url).unwrap().as_deref(),
            expected,
            "{variables:?} {url}"
        );
    }

    // Unusable settings are named, without their credentials.
    let refused = [
        (
            config(&[("HTTPS_PROXY", "socks5h://proxy.example:1080")]),
            "HTTPS_PROXY: socks5h://proxy.example:1080: socks5h:// proxies are not supported; give an http:// proxy",
        ),
        (
            config(&[("https_proxy", "https://kvs:secret@proxy.example")]),
            "https_proxy: https://***@proxy.example: TLS to the proxy is not supported; give its http:// URL",
        ),
        (
            config(&[("HTTP_PROXY", "http://kvs:secret@")]),
            "HTTP_PROXY: http://***@: not a URL (invalid authority)",
        ),
        (
            ProxyConfig::none().with_https("http://"),
            "ProxyConfig::with_https: http://: not a URL (empty string)",
        ),
    ];
    for (config, message) in refused {
        assert_eq!(
            config.proxy_for(aws).unwrap_err().to_string(),
            message,
            "{config:?}"
        );
    }
    let config = config(&[("HTTPS_PROXY", "http://kvs:secret@proxy.example:3128")]);
    assert!(!format!("{config:?}").contains("secret"), "{config:?}");
}

#[tokio::test]
async fn an_unusable_proxy_is_refused() {
    let credentials = temporary();
    let server = TestServer::start(
        Verifier::new("us-west-2", [credentials.clone()]),
        service(Arc::new(Mutex::new(String::new()))),
        None,
    )
    .await;
    let name = ChannelName::new("demo").unwrap();
    let socks = || ProxyConfig::none().with_http("socks5://127.0.0.1:1080");
    // Set explicitly: the setter fails.
    let err = client(
        &server.url("http"),
        credentials.clone(),
        TlsTrust::default(),
    )
    .with_proxy(socks())
    .unwrap_err();
    assert_eq!(
        err,
        ClientConfigError::Proxy {
            setting: "ProxyConfig::with_http",
            reason: "socks5://127.0.0.1:1080: socks5:// proxies are not supported; give an http:// proxy".to_owned()
        }
    );
    // Named by the environment: every call fails, until another proxy setting replaces it.
    let environment = ProxyConfig::from_lookup(|name| {
        (name == "HTTP_PROXY").then(|| "socks5://127.0.0.1:1080".to_owned())
    });
    let client = client_in(
        &server.url("http"),
        credentials,
        TlsTrust::default(),
        environment,
    );
    let err = client.describe_channel(&name).await.unwrap_err();
    assert_eq!(
        err.message,
        "DescribeSignalingChannel: HTTP_PROXY: socks5://127.0.0.1:1080: socks5:// proxies are not supported; give an http:// proxy"
    );
    assert_eq!(server.accepted(), 0);
    let client = client.with_proxy(ProxyConfig::none()).unwrap();
    client.describe_channel(&name).await.unwrap();
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn a_proxy_that_refuses_the_tunnel_fails_the_call() {
    let name = ChannelName::new("demo").unwrap();
    let endpoint = "http://127.0.0.1:9";
    let cases = [
        ("403 Forbidden", "tunnel error: unsuccessful"),
        (
            "407 Proxy Authentication Required",
            "tunnel error: proxy authorization required",
        ),
    ];
    for (status, reason) in cases {
        let proxy = TestProxy::start(ProxyMode::Refuse(status)).await;
        let err = client(endpoint, temporary(), TlsTrust::default())
            .with_proxy(ProxyConfig::none().with_http(proxy.url()))
            .unwrap()
            .describe_channel(&name)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            RequestError::new(format!(
                "cannot connect to {endpoint} through the proxy {}: {reason}",
                proxy.url()
            ))
        );
        assert_eq!(proxy.connects(), ["CONNECT 127.0.0.1:9 HTTP/1.1"]);
    }

    // Nobody listening where the proxy should be.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = client(endpoint, temporary(), TlsTrust::default())
        .with_proxy(ProxyConfig::none().with_http(&proxy_url))
        .unwrap()
        .describe_channel(&name)
        .await
        .unwrap_err();
    assert!(
        err.message.starts_with(&format!(
            "cannot connect to {endpoint} through the proxy {proxy_url}: tunnel error: failed to create underlying connection: tcp connect error"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn dial_opens_the_websocket_clients_connections_as_calls_open_theirs() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // Where every tunnel ends: a socket that answers what it reads, upper-cased.
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = upstream.accept().await {
            tokio::spawn(async move {
                let mut buf = [0; 64];
                while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                    let _ = tcp.write_all(&buf[..n].to_ascii_uppercase()).await;
                }
            });
        }
    });
    let https = TestProxy::start(ProxyMode::Tunnel(upstream_addr)).await;
    let http = TestProxy::start(ProxyMode::Tunnel(upstream_addr)).await;
    let client = client("http://127.0.0.1:9", temporary(), TlsTrust::default())
        .with_proxy(
            ProxyConfig::none()
                .with_https(format!("http://kvs:p%40ss@{}", https.addr))
                .with_http(http.url())
                .with_no_proxy("direct.invalid"),
        )
        .unwrap();

    // A wss:// endpoint: through HTTPS_PROXY's tunnel, with its authorization.
    let mut tunnel = client
        .dial("kinesisvideo.example", 443, true)
        .await
        .unwrap();
    tunnel.write_all(b"hello").await.unwrap();
    let mut answer = [0; 5];
    tunnel.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HELLO");
    assert_eq!(
        https.connects(),
        ["CONNECT kinesisvideo.example:443 HTTP/1.1"]
    );
    assert_eq!(
        https.authorizations(),
        [Some("Basic a3ZzOnBAc3M=".to_owned())]
    );
    // A ws:// endpoint: through HTTP_PROXY's; an IPv6 address keeps its brackets.
    client.dial("::1", 8443, false).await.unwrap();
    assert_eq!(http.connects(), ["CONNECT [::1]:8443 HTTP/1.1"]);
    // What NO_PROXY names goes direct: here, to a name that does not resolve.
    let err = client.dial("direct.invalid", 443, true).await.unwrap_err();
    assert!(
        err.message
            .starts_with("cannot connect to direct.invalid:443: "),
        "{err}"
    );
    assert_eq!(https.connects().len(), 1, "NO_PROXY's host went direct");

    // A proxy that refuses the tunnel fails the connection, naming it.
    let refusing = TestProxy::start(ProxyMode::Refuse("403 Forbidden")).await;
    let err = client
        .clone()
        .with_proxy(ProxyConfig::none().with_https(refusing.url()))
        .unwrap()
        .dial("kinesisvideo.example", 443, true)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RequestError::new(format!(
            "cannot connect to kinesisvideo.example:443 through the proxy {}: tunnel error: unsuccessful",
            refusing.url()
        ))
    );
}
