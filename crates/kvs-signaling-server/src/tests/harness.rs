//! Raw sockets against the server, over plain TCP or TLS alike: upgrades written by hand,
//! frames built and read byte by byte, so that tests can break every rule a client library
//! would not let them break.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{KEY, SECRET, Signing, exchange, json_field, presign_extra, signed_request};
use crate::{Server, ServerConfig};

/// A stream to the server, TCP or TLS.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A boxed [`Io`].
pub(super) type Raw = Box<dyn Io>;

/// Which listener a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listener {
    Plain,
    Tls,
}

impl Listener {
    pub(super) const BOTH: [Self; 2] = [Self::Plain, Self::Tls];
}

/// A running server and the means to reach it raw.
pub(super) struct Harness {
    pub(super) server: Server,
    connector: Option<tokio_rustls::TlsConnector>,
    dir: Option<PathBuf>,
}

impl Harness {
    /// Starts a server with `config` on `listener` (TLS with a fresh development CA, which
    /// the harness's client trusts, and nothing else).
    pub(super) async fn start(listener: Listener, config: ServerConfig) -> Self {
        match listener {
            Listener::Plain => Self {
                server: Server::start(config).await.unwrap(),
                connector: None,
                dir: None,
            },
            Listener::Tls => {
                static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let dir =
                    std::env::temp_dir().join(format!("kvs-harness-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                let dev = crate::dev_certificate(&dir).unwrap();
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
                Self {
                    server: Server::start(config.tls(dev.files)).await.unwrap(),
                    connector: Some(tokio_rustls::TlsConnector::from(Arc::new(client))),
                    dir: Some(dir),
                }
            }
        }
    }

    /// A new connection, its TLS handshake done.
    pub(super) async fn raw(&self) -> Raw {
        let tcp = TcpStream::connect(self.server.local_addr()).await.unwrap();
        self.over(tcp).await
    }

    /// A new connection whose receive buffer holds only `bytes`, so that the server's
    /// writes push back as soon as the client stops reading.
    pub(super) async fn raw_small_receive_buffer(&self, bytes: u32) -> Raw {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        let tcp = socket.connect(self.server.local_addr()).await.unwrap();
        self.over(tcp).await
    }

    /// `tcp` with this listener's TLS handshake done, if it speaks TLS.
    async fn over(&self, tcp: TcpStream) -> Raw {
        tcp.set_nodelay(true).unwrap();
        match &self.connector {
            None => Box::new(tcp),
            Some(connector) => Box::new(
                connector
                    .connect(ServerName::try_from("127.0.0.1").unwrap().to_owned(), tcp)
                    .await
                    .unwrap(),
            ),
        }
    }

    /// A channel called `name`, made through the control plane over this listener.
    pub(super) async fn channel(&self, name: &str) -> String {
        let request = signed_request(
            &self.server,
            "/createSignalingChannel",
            &format!(r#"{{"ChannelName":"{name}"}}"#),
            Some(&Signing::new(KEY, SECRET)),
        );
        let created = exchange(self.raw().await, &request).await;
        assert_eq!(created.status, 200, "{}", created.body);
        json_field(&created.body, "ChannelARN")
    }

    /// The path and query of a presigned connect for `client_id` (the master when `None`),
    /// with `extra` parameters signed too.
    pub(super) fn connect_path(
        &self,
        arn: &str,
        client_id: Option<&str>,
        extra: &[(&str, &str)],
    ) -> String {
        let url = presign_extra(
            &self.server,
            arn,
            client_id,
            extra,
            &Signing::new(KEY, SECRET),
        );
        let (_, rest) = url.split_once("://").unwrap();
        rest[rest.find('/').unwrap()..].to_owned()
    }

    /// Writes an upgrade request for `path` with `headers` (each `Name: value`), and returns
    /// the stream and the answer's head.
    pub(super) async fn upgrade_request(&self, path: &str, headers: &[&str]) -> (Raw, String) {
        let mut io = self.raw().await;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
            self.server.local_addr()
        );
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        io.write_all(request.as_bytes()).await.unwrap();
        let head = read_head(&mut io).await;
        (io, head)
    }

    /// A WebSocket connect that must succeed: the stream after the `101`.
    pub(super) async fn upgrade(&self, arn: &str, client_id: Option<&str>) -> Raw {
        self.upgrade_with(arn, client_id, &[], &[]).await
    }

    /// [`Harness::upgrade`] with extra connect parameters and headers.
    pub(super) async fn upgrade_with(
        &self,
        arn: &str,
        client_id: Option<&str>,
        params: &[(&str, &str)],
        headers: &[&str],
    ) -> Raw {
        let path = self.connect_path(arn, client_id, params);
        let mut all = vec![
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ];
        all.extend_from_slice(headers);
        let (io, head) = self.upgrade_request(&path, &all).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{head}"
        );
        io
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Reads an HTTP head, up to its blank line.
pub(super) async fn read_head(io: &mut Raw) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), io.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            other => panic!(
                "the head ended early ({other:?}): {}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8(head).unwrap()
}

/// A client frame: masked with a fixed mask.
pub(super) fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// What the server sent: a frame, or the end of the stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ServerFrame {
    Text(String),
    Pong(Vec<u8>),
    Ping(Vec<u8>),
    Close(Option<u16>),
    Other(u8),
    /// The stream ended (a clean end: FIN, or TLS close_notify then FIN).
    End,
    /// The stream failed (a reset, or TLS ended without close_notify).
    Broken(String),
}

/// Reads the next server frame, within five seconds.
pub(super) async fn next_frame(io: &mut Raw) -> ServerFrame {
    let read = async {
        let mut head = [0u8; 2];
        if let Err(err) = io.read_exact(&mut head[..1]).await {
            // A TLS stream that ends without close_notify is broken, though it reads as an
            // unexpected end too.
            return if err.kind() == std::io::ErrorKind::UnexpectedEof
                && !err.to_string().contains("close_notify")
            {
                ServerFrame::End
            } else {
                ServerFrame::Broken(err.to_string())
            };
        }
        if let Err(err) = io.read_exact(&mut head[1..]).await {
            return ServerFrame::Broken(err.to_string());
        }
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7F {
            126 => {
                let mut ext = [0u8; 2];
                io.read_exact(&mut ext).await.unwrap();
                usize::from(u16::from_be_bytes(ext))
            }
            127 => {
                let mut ext = [0u8; 8];
                io.read_exact(&mut ext).await.unwrap();
                usize::try_from(u64::from_be_bytes(ext)).unwrap()
            }
            short => usize::from(short),
        };
        let mut payload = vec![0u8; len];
        if let Err(err) = io.read_exact(&mut payload).await {
            return ServerFrame::Broken(err.to_string());
        }
        match head[0] & 0x0F {
            0x1 => ServerFrame::Text(String::from_utf8(payload).unwrap()),
            0x9 => ServerFrame::Ping(payload),
            0xA => ServerFrame::Pong(payload),
            0x8 => ServerFrame::Close(
                (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
            ),
            other => ServerFrame::Other(other),
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("a frame or the end within five seconds")
}

/// Reads until the server's close frame and the clean end of the stream after it; returns
/// the close code. Fails on a text frame, a missing close frame or a broken end.
pub(super) async fn expect_close(io: &mut Raw) -> Option<u16> {
    let code = loop {
        match next_frame(io).await {
            ServerFrame::Close(code) => break code,
            ServerFrame::Ping(_) | ServerFrame::Pong(_) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    // Answer it, as a conforming client does, and wait for the end.
    let _ = io
        .write_all(&frame(true, 0x8, &code.unwrap_or(1000).to_be_bytes()))
        .await;
    assert_eq!(
        next_frame(io).await,
        ServerFrame::End,
        "a clean end after the close"
    );
    code
}
