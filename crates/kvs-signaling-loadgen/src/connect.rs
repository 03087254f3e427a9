//! Opening one signaling WebSocket as the official SDKs do: a connect URL presigned with
//! SigV4, a TCP connection (from a chosen loopback source address when asked), the upgrade.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use kvs_ice_rest::{Credentials, presign_connect_url};
use kvs_signaling_proto::{ChannelArn, ClientId};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::LoadError;

/// A client WebSocket.
pub(crate) type Ws = WebSocketStream<Stream>;

/// A connection to the server: plain TCP, or TLS over it.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The largest message the client accepts: the service's payload limit and room for the
/// envelope, as the server allows.
const MAX_MESSAGE_LEN: usize = kvs_signaling_proto::limits::MAX_MESSAGE_PAYLOAD_LEN + 4 * 1024;

/// How long to wait before trying a connect again that the connect rate limit refused.
const RETRY_DELAY: Duration = Duration::from_millis(400);

/// Where the WebSockets go.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `ws://host[:port][/path]` or `wss://…`, as presigned.
    pub(crate) ws_endpoint: String,
    /// The address the host resolved to.
    pub(crate) addr: SocketAddr,
    /// For `wss://`: the name the server's certificate must carry, and the TLS
    /// configuration.
    pub(crate) tls: Option<(
        rustls_pki_types::ServerName<'static>,
        Arc<rustls::ClientConfig>,
    )>,
}

impl Target {
    /// Resolves the host of `ws_endpoint` once, for every connection.
    pub(crate) async fn resolve(
        ws_endpoint: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self, LoadError> {
        let fail = |reason: String| LoadError::Endpoint {
            endpoint: ws_endpoint.to_owned(),
            reason,
        };
        let (rest, secure) = if let Some(rest) = ws_endpoint.strip_prefix("ws://") {
            (rest, false)
        } else if let Some(rest) = ws_endpoint.strip_prefix("wss://") {
            (rest, true)
        } else {
            return Err(fail(
                "the WebSocket endpoint must start with ws:// or wss://".to_owned(),
            ));
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.is_empty() {
            return Err(fail("no host".to_owned()));
        }
        let has_port = match authority.rsplit_once(']') {
            Some((_, after)) => after.starts_with(':'),
            None => authority.contains(':'),
        };
        let lookup = match (has_port, secure) {
            (true, _) => authority.to_owned(),
            (false, false) => format!("{authority}:80"),
            (false, true) => format!("{authority}:443"),
        };
        let tls = if secure {
            let host = match authority.rsplit_once(':') {
                Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
                _ => authority,
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = rustls_pki_types::ServerName::try_from(host.to_owned())
                .map_err(|err| fail(format!("{host} is not a TLS server name: {err}")))?;
            Some((name, tls))
        } else {
            None
        };
        let addr = tokio::net::lookup_host(&lookup)
            .await
            .map_err(|err| fail(format!("cannot resolve {lookup}: {err}")))?
            .next()
            .ok_or_else(|| fail(format!("{lookup} resolves to no address")))?;
        Ok(Self {
            ws_endpoint: ws_endpoint.to_owned(),
            addr,
            tls,
        })
    }
}

/// One connection to open.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// Its place in the connect order, which picks its source address.
    pub(crate) seq: usize,
    /// Its channel's index.
    pub(crate) channel: usize,
    /// `None` for the master, `Some(j)` for the viewer `v<j>`.
    pub(crate) viewer: Option<usize>,
    pub(crate) arn: ChannelArn,
    pub(crate) client_id: Option<ClientId>,
}

/// Why a connection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    Presign,
    Timeout,
    Tcp(io::ErrorKind),
    /// The upgrade was answered with this status; `throttled` when the connect rate limit
    /// refused it.
    Http {
        status: u16,
        throttled: bool,
    },
    Handshake,
}

impl Failure {
    /// The key counting failures of this kind in the report.
    pub(crate) fn key(&self) -> String {
        match self {
            Self::Presign => "presign".to_owned(),
            Self::Timeout => "timeout".to_owned(),
            Self::Tcp(kind) => format!("tcp_{kind:?}"),
            Self::Http { status, .. } => format!("http_{status}"),
            Self::Handshake => "handshake".to_owned(),
        }
    }
}

/// Opens connections with one set of credentials to one target (or the masters to one and
/// the viewers to another).
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    pub(crate) credentials: Credentials,
    pub(crate) region: String,
    pub(crate) target: Target,
    /// Where the viewers connect, when not to `target`.
    pub(crate) viewer_target: Option<Target>,
    pub(crate) source_ips: u8,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
}

/// A connection that opened.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) ws: Ws,
    /// The time of the attempt that succeeded.
    pub(crate) latency: Duration,
    /// Attempts before it that the connect rate limit refused.
    pub(crate) retries: u32,
}

impl Connector {
    /// Opens `job`'s connection, trying again after connect-rate refusals.
    pub(crate) async fn open(&self, job: &Job) -> Result<Opened, (Failure, u32)> {
        let mut retries = 0;
        loop {
            let started = Instant::now();
            match self.attempt(job).await {
                Ok(ws) => {
                    return Ok(Opened {
                        ws,
                        latency: started.elapsed(),
                        retries,
                    });
                }
                Err(Failure::Http {
                    throttled: true, ..
                }) if retries < self.retries => {
                    retries += 1;
                    tokio::time::sleep(RETRY_DELAY).await;
                }
                Err(failure) => return Err((failure, retries)),
            }
        }
    }

    /// Where `job` connects.
    fn target_of(&self, job: &Job) -> &Target {
        match (&self.viewer_target, job.viewer) {
            (Some(viewers), Some(_)) => viewers,
            _ => &self.target,
        }
    }

    async fn attempt(&self, job: &Job) -> Result<Ws, Failure> {
        let target = self.target_of(job);
        let url = presign_connect_url(
            &self.credentials,
            &self.region,
            &target.ws_endpoint,
            &job.arn,
            job.client_id.as_ref(),
            SystemTime::now(),
        )
        .map_err(|_| Failure::Presign)?;
        let request = url.into_client_request().map_err(|_| Failure::Handshake)?;
        let connect = async {
            let tcp = self
                .tcp(target.addr, job.seq)
                .await
                .map_err(|err| Failure::Tcp(err.kind()))?;
            // Small frames, latency-bound: no Nagle delay, as the server.
            let _ = tcp.set_nodelay(true);
            let tcp = match &target.tls {
                None => Stream::Plain(tcp),
                Some((name, config)) => {
                    let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|_| Failure::Handshake)?;
                    Stream::Tls(Box::new(tls))
                }
            };
            // Small buffers, as the Rust client's, so that the generator's own memory stays
            // small at 20,000 connections.
            let config = WebSocketConfig::default()
                .read_buffer_size(4 * 1024)
                .write_buffer_size(0)
                .max_write_buffer_size(MAX_MESSAGE_LEN.saturating_mul(4).max(64 * 1024))
                .max_message_size(Some(MAX_MESSAGE_LEN))
                .max_frame_size(Some(MAX_MESSAGE_LEN));
            match tokio_tungstenite::client_async_with_config(request, tcp, Some(config)).await {
                Ok((ws, _)) => Ok(ws),
                Err(WsError::Http(response)) => {
                    let status = response.status().as_u16();
                    let body = response.body().as_deref().unwrap_or_default();
                    let throttled = status == 429
                        || String::from_utf8_lossy(body).contains("ClientLimitExceeded");
                    Err(Failure::Http { status, throttled })
                }
                Err(WsError::Io(err)) => Err(Failure::Tcp(err.kind())),
                Err(_) => Err(Failure::Handshake),
            }
        };
        tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| Failure::Timeout)?
    }

    /// A TCP connection to `addr`, from 127.0.0.(1 + seq mod K) when source addresses are
    /// spread.
    async fn tcp(&self, addr: SocketAddr, seq: usize) -> io::Result<TcpStream> {
        if self.source_ips == 0 || !addr.is_ipv4() {
            return TcpStream::connect(addr).await;
        }
        let k = usize::from(self.source_ips);
        let last = u8::try_from(seq % k + 1).unwrap_or(1);
        let source = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 0);
        let socket = TcpSocket::new_v4()?;
        socket.bind(source)?;
        socket.connect(addr).await
    }
}
