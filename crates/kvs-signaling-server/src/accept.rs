//! Taking connections: the accept loop, with its backoff when the process is out of
//! descriptors; the cap on open connections, with its refusal; the TLS handshake and HTTP/1.1
//! with their deadlines; and the graceful end of every connection on drain.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use kvs_transport_tokio::{LogLimiter, accept_tls};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::app::App;
use crate::deadline::WriteDeadline;

/// A connection's place under [`crate::ServerConfig::max_connections`]: held by the task that
/// serves the socket, HTTP or WebSocket, and given back when the socket is closed.
pub(crate) type Slot = Arc<OwnedSemaphorePermit>;

/// The address a request came from, in its extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

/// Refusals (503) written at once, at most; connections past them are closed unanswered.
const MAX_REFUSING: usize = 64;
/// How long a refusal may take, TLS handshake included.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait between accepts while the process is out of descriptors or memory.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

static ACCEPT_FAILED: LogLimiter = LogLimiter::new(Duration::from_secs(10));
static TCP_OPTIONS_FAILED: LogLimiter = LogLimiter::new(Duration::from_secs(10));
static AT_CAPACITY: LogLimiter = LogLimiter::new(Duration::from_secs(10));
static TLS_FAILED: LogLimiter = LogLimiter::new(Duration::from_secs(10));
static HTTP_FAILED: LogLimiter = LogLimiter::new(Duration::from_secs(10));

/// The open connections and their cap.
#[derive(Debug)]
pub(crate) struct Connections {
    slots: Arc<Semaphore>,
    max: usize,
    refusing: Arc<Semaphore>,
}

impl Connections {
    pub(crate) fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
        }
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    /// The cap.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Waits until every connection is closed.
    pub(crate) async fn all_closed(&self) {
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        // The semaphore is never closed, so this only waits.
        let _ = self.slots.acquire_many(all).await;
    }
}

/// Whether an accept error is about the one connection (the next accept may well succeed) or
/// about the process (out of descriptors or memory: accepting again at once would spin).
fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::PermissionDenied
    )
}

/// Accepts connections until `stop` turns true.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<Arc<rustls::ServerConfig>>,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::ZERO;
                accepted
            }
            Err(err) if is_transient(&err) => continue,
            Err(err) => {
                // Out of descriptors (EMFILE) or memory: wait for connections to close
                // instead of spinning on the same error.
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                app.accept_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(suppressed) = ACCEPT_FAILED.check() {
                    tracing::warn!(%err, ?backoff, suppressed, "accept failed; backing off");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => continue,
                    _ = stop.changed() => break,
                }
            }
        };
        if let Err(err) = app.config.tcp.apply(&stream)
            && let Some(suppressed) = TCP_OPTIONS_FAILED.check()
        {
            tracing::debug!(%peer, %err, suppressed, "TCP options not set");
        }
        let acceptor = acceptor.clone();
        match Arc::clone(&app.connections.slots).try_acquire_owned() {
            Ok(slot) => {
                let app = Arc::clone(&app);
                let stop = stop.clone();
                tokio::spawn(async move {
                    serve_connection(stream, peer, acceptor, app, Arc::new(slot), stop).await;
                });
            }
            Err(_) => {
                app.connections_refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(suppressed) = AT_CAPACITY.check() {
                    tracing::warn!(
                        max = app.connections.max(),
                        suppressed,
                        "connection refused: the server holds its limit of open connections \
                         (max_connections)"
                    );
                }
                if let Ok(refusal) = Arc::clone(&app.connections.refusing).try_acquire_owned() {
                    let max = app.connections.max();
                    let timeout = app.config.tls_handshake_timeout.min(REFUSAL_TIMEOUT);
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(timeout, refuse(stream, acceptor, max)).await;
                        drop(refusal);
                    });
                }
            }
        }
    }
}

/// Answers a connection past the cap with 503, then closes it.
async fn refuse(stream: TcpStream, acceptor: Option<Arc<rustls::ServerConfig>>, max: usize) {
    let message = format!(
        "too many connections: this server holds at most {max} at once (max_connections); \
         try again later"
    );
    let body = format!(r#"{{"__type":"ServiceUnavailableException","Message":"{message}"}}"#);
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         x-amzn-ErrorType: ServiceUnavailableException:\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    match acceptor {
        None => answer_and_close(stream, response.as_bytes()).await,
        Some(acceptor) => {
            if let Ok(tls) = accept_tls(stream, acceptor).await {
                answer_and_close(tls, response.as_bytes()).await;
            }
        }
    }
}

/// Writes `response`, ends the stream, and reads what the client still sends until it closes,
/// so that the answer is not lost to a reset.
async fn answer_and_close<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, response: &[u8]) {
    if stream.write_all(response).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 1024];
    while let Ok(n) = stream.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

/// Serves one accepted connection: the TLS handshake within its deadline if the listener
/// speaks TLS, then HTTP/1.1. Each kind of stream is served by a future of its own size,
/// boxed, so that a plain connection's task is not as large as a TLS one's.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<Arc<rustls::ServerConfig>>,
    app: Arc<App>,
    slot: Slot,
    stop: watch::Receiver<bool>,
) {
    match acceptor {
        None => Box::pin(serve_http(stream, app, peer, slot, stop)).await,
        Some(acceptor) => {
            let timeout = app.config.tls_handshake_timeout;
            match tokio::time::timeout(timeout, accept_tls(stream, acceptor)).await {
                Ok(Ok(tls)) => Box::pin(serve_http(tls, app, peer, slot, stop)).await,
                Ok(Err(err)) => {
                    if let Some(suppressed) = TLS_FAILED.check() {
                        tracing::debug!(%peer, %err, suppressed, "TLS handshake failed");
                    }
                }
                Err(_) => {
                    if let Some(suppressed) = TLS_FAILED.check() {
                        tracing::debug!(%peer, ?timeout, suppressed, "TLS handshake timed out");
                    }
                }
            }
        }
    }
}

/// Serves HTTP/1.1 (with upgrades) on one connection, plain or TLS: a request head must come
/// within the header read timeout (which also closes idle keep-alive connections), every
/// write within the write timeout, and on drain the connection ends after its request in
/// flight.
async fn serve_http<S>(
    stream: S,
    app: Arc<App>,
    peer: SocketAddr,
    slot: Slot,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let header_read_timeout = app.config.header_read_timeout;
    let write_timeout = app.config.websocket.write_timeout;
    // Set once the connection answers 101: it is handed to its WebSocket, whose drain closes
    // it with a close frame; a graceful shutdown of the HTTP connection meanwhile would end
    // it without one.
    let upgraded = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let upgrading = Arc::clone(&upgraded);
    let service = service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
        let app = Arc::clone(&app);
        let slot = Arc::clone(&slot);
        let upgrading = Arc::clone(&upgrading);
        request.extensions_mut().insert(PeerAddr(peer));
        async move {
            let response = crate::app::handle(app, request, slot).await;
            if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                upgrading.store(true, std::sync::atomic::Ordering::Release);
            }
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let connection = builder
        .serve_connection(
            TokioIo::new(WriteDeadline::new(stream, write_timeout)),
            service,
        )
        .with_upgrades();
    tokio::pin!(connection);
    let stopping = async move {
        // The guard `wait_for` returns is dropped here, before anything else is awaited.
        let _ = stop.wait_for(|stopping| *stopping).await;
    };
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopping => {
            if !upgraded.load(std::sync::atomic::Ordering::Acquire) {
                connection.as_mut().graceful_shutdown();
            }
            connection.await
        }
    };
    if let Err(err) = result
        && let Some(suppressed) = HTTP_FAILED.check()
    {
        tracing::debug!(%peer, %err, suppressed, "connection ended with an error");
    }
}
