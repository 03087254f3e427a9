//! The KVS WebRTC signaling data plane (the WebSocket connects of ConnectAsMaster and
//! ConnectAsViewer) served by [`Hub`] on std threads and blocking sockets: no async runtime.
//!
//! ```text
//! cargo run -p kvs-signaling-core --example std_threads -- \
//!     --listen 127.0.0.1:8443 --cert cert.pem --key key.pem \
//!     --access-key-id AKIDEXAMPLE --secret-access-key SECRET [--region us-west-2]
//! ```
//!
//! It prints `listening on wss://ADDR` and serves until killed. Point an official SDK's
//! `SignalingClient` (its channel endpoint) at that URL: every connect is SigV4-verified with
//! `kvs-signaling-auth` against the one access key given, then the hub routes offers, answers
//! and ICE candidates between the channel's master and viewers, holds messages for absent
//! recipients for the channel's TTL, applies the service's rates and limits and answers bad
//! messages with STATUS_RESPONSE. Without `--cert` and `--key` it serves plain `ws://` (which
//! the JavaScript SDK refuses to connect to; put a TLS-terminating proxy in front).
//!
//! The threads:
//! - the accept loop spawns one thread per connection, up to [`MAX_CONNECTIONS`];
//! - each connection's thread does the TLS and WebSocket handshakes, then alternates between
//!   reading its socket (with a short read timeout) and writing what the hub queued for it;
//! - one hub thread owns the [`Hub`]: it takes the connections' inputs from a bounded channel,
//!   calls [`Hub::handle_timeout`] when [`Hub::poll_timeout`] says, and hands each output to
//!   its connection through a bounded queue. A connection whose queue is full is not keeping up
//!   and is dropped.
//!
//! What a real server adds on top: the control plane (channels that exist, with their own TTL:
//! see [`kvs_signaling_core::Registry`]), GetIceServerConfig, SendAlexaOfferToMaster, drain on
//! shutdown and metrics. `kvs-signaling serve` is all of that on tokio.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example reports on its terminal"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "the IO edge reads the clocks that the hub and the verifier take as arguments"
)]
#![allow(
    clippy::result_large_err,
    reason = "tungstenite's handshake callback refuses with a whole HTTP response"
)]

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use kvs_signaling_auth::{Credentials, Verifier};
use kvs_signaling_core::{CloseReason, ConnId, Hub, HubConfig, OpenConnection, Output, Refused};
use kvs_signaling_proto::{ConnectQuery, ErrorType, MessageTtlSeconds, Role};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{HandshakeError, Message, WebSocket};

/// Open connections at most; more are closed as soon as they are accepted.
pub(crate) const MAX_CONNECTIONS: usize = 1_000;
/// Frames queued for one connection at most.
pub(crate) const CONNECTION_QUEUE: usize = 256;
/// Inputs queued for the hub at most; connection threads wait when it is full.
pub(crate) const HUB_QUEUE: usize = 4_096;
/// How long the TLS and WebSocket handshakes may take together.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write may block before the connection is dropped.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection's thread waits on its socket before it looks at its queue: the most
/// a frame from the hub waits while the socket is quiet.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How long the closing handshake may take.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest message a client may send: the largest payload and its envelope.
pub(crate) const MAX_MESSAGE_LEN: usize =
    kvs_signaling_proto::limits::MAX_MESSAGE_PAYLOAD_LEN + 4_096;

/// What the example serves with.
struct Options {
    /// Where to listen.
    listen: SocketAddr,
    /// The PEM certificate chain and private key; plain `ws://` without them.
    tls: Option<(PathBuf, PathBuf)>,
    /// The region connects are signed for.
    region: String,
    /// The one access key that may connect.
    credentials: Credentials,
}

fn main() -> Result<(), Box<dyn Error>> {
    let options = parse_args(std::env::args().skip(1))?;
    let listener = TcpListener::bind(options.listen)?;
    let tls = options
        .tls
        .as_ref()
        .map(|(cert, key)| tls_config(cert, key))
        .transpose()?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    println!("listening on {scheme}://{}", listener.local_addr()?);
    let verifier = Verifier::new(options.region, [options.credentials]);
    serve(listener, verifier, tls)?;
    Ok(())
}

/// `--listen ADDR [--cert PEM --key PEM] --access-key-id ID --secret-access-key KEY
/// [--region REGION]`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let (mut listen, mut cert, mut key, mut id, mut secret) = (None, None, None, None, None);
    let mut region = "us-west-2".to_owned();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => {
                listen = Some(
                    value
                        .parse::<SocketAddr>()
                        .map_err(|err| format!("--listen {value}: {err}"))?,
                );
            }
            "--cert" => cert = Some(PathBuf::from(value)),
            "--key" => key = Some(PathBuf::from(value)),
            "--access-key-id" => id = Some(value),
            "--secret-access-key" => secret = Some(value),
            "--region" => region = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err("--cert and --key go together".to_owned()),
    };
    Ok(Options {
        listen: listen.ok_or("--listen is required")?,
        tls,
        region,
        credentials: Credentials::new(
            id.ok_or("--access-key-id is required")?,
            secret.ok_or("--secret-access-key is required")?,
        ),
    })
}

/// A TLS server configuration from PEM files.
pub(crate) fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, Box<dyn Error>> {
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// Serves connects on `listener` until accepting fails for good.
pub(crate) fn serve(
    listener: TcpListener,
    verifier: Verifier,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> io::Result<()> {
    let hub = Hub::new(HubConfig::default())
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err.to_string()))?;
    let (to_hub, inbox) = mpsc::sync_channel(HUB_QUEUE);
    thread::Builder::new()
        .name("hub".to_owned())
        .spawn(move || run_hub(hub, &inbox))?;
    let shared = Arc::new(Shared {
        verifier,
        tls,
        to_hub,
        open: AtomicUsize::new(0),
    });
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(err) => {
                // Out of descriptors, most likely: wait for some to be released.
                eprintln!("accept: {err}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if shared.open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            shared.open.fetch_sub(1, Ordering::AcqRel);
            drop(stream);
            continue;
        }
        let shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("connection".to_owned())
            .spawn(move || {
                if let Err(err) = connection(stream, &shared) {
                    eprintln!("connection: {err}");
                }
                shared.open.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(err) = spawned {
            eprintln!("spawning a connection thread: {err}");
        }
    }
    Ok(())
}

/// What every connection thread shares.
struct Shared {
    verifier: Verifier,
    tls: Option<Arc<rustls::ServerConfig>>,
    to_hub: SyncSender<ToHub>,
    open: AtomicUsize,
}

/// An input for the hub thread.
enum ToHub {
    /// A connect that passed authentication; the reply is its id and its queue, or the refusal.
    Open {
        open: OpenConnection,
        reply: SyncSender<Result<(ConnId, Receiver<ToConnection>), Refused>>,
    },
    /// The `101` is on the wire.
    Established(ConnId),
    /// A text frame arrived.
    Frame(ConnId, String),
    /// A ping or pong arrived.
    Keepalive(ConnId),
    /// The connection is gone.
    Closed(ConnId),
}

/// What the hub thread queues for a connection.
enum ToConnection {
    Frame(String),
    Close(CloseReason),
}

/// The hub thread: every input in order, the timers when due, every output to its connection.
fn run_hub(mut hub: Hub, inbox: &Receiver<ToHub>) {
    let mut queues: BTreeMap<ConnId, SyncSender<ToConnection>> = BTreeMap::new();
    loop {
        let input = match hub.poll_timeout() {
            Some(at) => inbox.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let now = Instant::now();
        match input {
            Ok(ToHub::Open { open, reply }) => {
                let answer = hub.handle_open(now, open).map(|conn| {
                    let (queue, receiver) = mpsc::sync_channel(CONNECTION_QUEUE);
                    queues.insert(conn, queue);
                    (conn, receiver)
                });
                if let Err(TrySendError::Disconnected(Ok((conn, _)))) = reply.try_send(answer) {
                    // The connection thread is gone already.
                    queues.remove(&conn);
                    hub.handle_close(now, conn);
                }
            }
            Ok(ToHub::Established(conn)) => hub.handle_established(now, conn),
            Ok(ToHub::Frame(conn, text)) => hub.handle_frame(now, conn, &text),
            Ok(ToHub::Keepalive(conn)) => hub.handle_keepalive(now, conn),
            Ok(ToHub::Closed(conn)) => {
                queues.remove(&conn);
                hub.handle_close(now, conn);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if hub.poll_timeout().is_some_and(|at| at <= now) {
            hub.handle_timeout(now);
        }
        while let Some(output) = hub.poll_output() {
            match output {
                Output::Deliver { conn, frame } => {
                    let Some(queue) = queues.get(&conn) else {
                        continue;
                    };
                    if queue
                        .try_send(ToConnection::Frame(frame.into_string()))
                        .is_err()
                    {
                        // Full (the peer is not reading) or gone: dropping the queue ends the
                        // connection's thread, which then reports it closed.
                        queues.remove(&conn);
                    }
                }
                Output::Close { conn, reason } => {
                    if let Some(queue) = queues.remove(&conn) {
                        let _ = queue.try_send(ToConnection::Close(reason));
                    }
                }
                // No SendAlexaOfferToMaster here, so no answers to complete; and outputs
                // added in later versions are ignored.
                _ => {}
            }
        }
    }
}

/// A client's socket, with or without TLS.
enum Socket {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Socket {
    fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(tcp) => tcp,
            Self::Tls(tls) => tls.get_ref(),
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.read(buf),
            Self::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.write(buf),
            Self::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.flush(),
            Self::Tls(tls) => tls.flush(),
        }
    }
}

/// One connection, from its first byte to its close.
fn connection(tcp: TcpStream, shared: &Shared) -> Result<(), Box<dyn Error>> {
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    tcp.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let socket = match &shared.tls {
        Some(config) => Socket::Tls(Box::new(rustls::StreamOwned::new(
            rustls::ServerConnection::new(Arc::clone(config))?,
            tcp,
        ))),
        None => Socket::Plain(tcp),
    };
    let mut opened = None;
    let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE_LEN));
    let handshake = tungstenite::accept_hdr_with_config(
        socket,
        |request: &Request, response: Response| match authorize(shared, request) {
            Ok(conn) => {
                opened = Some(conn);
                Ok(response)
            }
            Err(refusal) => Err(refusal),
        },
        Some(config),
    );
    // The error holds the callback, and with it the borrow of `opened`: turn it into text
    // first.
    let handshake = handshake.map_err(|err| match err {
        // The read timeout ran out mid-handshake.
        HandshakeError::Interrupted(_) => "handshake timed out".to_owned(),
        HandshakeError::Failure(err) => err.to_string(),
    });
    let mut ws = match handshake {
        Ok(ws) => ws,
        Err(err) => {
            if let Some((conn, _)) = opened {
                let _ = shared.to_hub.send(ToHub::Closed(conn));
            }
            return Err(err.into());
        }
    };
    let Some((conn, queue)) = opened else {
        return Err("handshake completed without a connection".into());
    };
    shared.to_hub.send(ToHub::Established(conn))?;
    ws.get_ref().tcp().set_read_timeout(Some(POLL_INTERVAL))?;
    let result = relay(&mut ws, conn, &queue, &shared.to_hub);
    let _ = shared.to_hub.send(ToHub::Closed(conn));
    result
}

/// Checks the connect's signature and asks the hub to open it: the connection's id and queue,
/// or the HTTP answer that refuses it, as the service words it.
fn authorize(
    shared: &Shared,
    request: &Request,
) -> Result<(ConnId, Receiver<ToConnection>), ErrorResponse> {
    let host = request
        .headers()
        .get("host")
        .and_then(|host| host.to_str().ok())
        .ok_or_else(|| refusal(ErrorType::InvalidArgumentException, "Host: missing"))?;
    let query = request.uri().query().unwrap_or_default();
    shared
        .verifier
        .verify_presigned(SystemTime::now(), host, request.uri().path(), query)
        .map_err(|err| refusal(err.error_type(), &err.to_string()))?;
    let connect =
        ConnectQuery::parse(query).map_err(|err| refusal(err.error_type(), &err.to_string()))?;
    let ttl = MessageTtlSeconds::default();
    let open = match (connect.role(), connect.client_id) {
        (Role::Viewer, Some(id)) => OpenConnection::viewer(connect.channel_arn, id, ttl),
        _ => OpenConnection::master(connect.channel_arn, ttl),
    }
    .indications(connect.indications);
    let (reply, answer) = mpsc::sync_channel(1);
    let hub_gone = || refusal(ErrorType::InternalFailure, "the hub stopped");
    shared
        .to_hub
        .send(ToHub::Open { open, reply })
        .map_err(|_| hub_gone())?;
    answer
        .recv()
        .map_err(|_| hub_gone())?
        .map_err(|refused| refusal(refused.error_type, &refused.message))
}

/// The HTTP answer to a refused connect: the error's status, its type in `x-amzn-ErrorType`
/// and a JSON body with the message.
fn refusal(error_type: ErrorType, message: &str) -> ErrorResponse {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = ErrorResponse::new(Some(body));
    *response.status_mut() =
        StatusCode::from_u16(error_type.connect_status()).unwrap_or(StatusCode::BAD_REQUEST);
    if let Ok(value) = error_type.name().parse() {
        response.headers_mut().insert("x-amzn-ErrorType", value);
    }
    response
}

/// Relays between the socket and the hub until either side closes.
fn relay(
    ws: &mut WebSocket<Socket>,
    conn: ConnId,
    queue: &Receiver<ToConnection>,
    to_hub: &SyncSender<ToHub>,
) -> Result<(), Box<dyn Error>> {
    let mut closing: Option<Instant> = None;
    loop {
        // What the hub queued, written in one flush.
        loop {
            match queue.try_recv() {
                Ok(ToConnection::Frame(text)) if closing.is_none() => {
                    ws.write(Message::text(text))?;
                }
                Ok(ToConnection::Frame(_)) => {}
                Ok(ToConnection::Close(reason)) => {
                    if closing.is_none() {
                        ws.close(Some(CloseFrame {
                            code: CloseCode::from(reason.code()),
                            reason: reason.description().into(),
                        }))?;
                        closing = Some(Instant::now() + CLOSE_TIMEOUT);
                    }
                }
                Err(TryRecvError::Empty) => break,
                // The hub dropped the queue: the connection could not keep up.
                Err(TryRecvError::Disconnected) => return Err("dropped: not keeping up".into()),
            }
        }
        match ws.flush() {
            Ok(()) => {}
            Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
            Err(err) => return Err(err.into()),
        }
        if closing.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err("the client did not answer the close".into());
        }
        match ws.read() {
            Ok(Message::Text(text)) => to_hub.send(ToHub::Frame(conn, text.as_str().to_owned()))?,
            Ok(Message::Ping(_) | Message::Pong(_)) => to_hub.send(ToHub::Keepalive(conn))?,
            // tungstenite answers the close itself; the next read reports the end.
            Ok(Message::Close(_) | Message::Binary(_) | Message::Frame(_)) => {}
            Err(tungstenite::Error::Io(err))
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        }
    }
}
