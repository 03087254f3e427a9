//! The client's task: one loop that owns the session, the socket and the queue of messages
//! waiting for a connection, and that carries out the session's outputs.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt as _, StreamExt as _};
use kvs_signaling_core::{
    ClientSession, Endpoints, RequestError, SessionEvent, SessionOutput, SessionRequestId,
    SessionState, SplitMix64,
};
use kvs_signaling_proto::{ChannelInfo, ClientMessage, IceServer, MessageType, ServerEvent};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::{ClientConfig, ClientError, ClientEvent, Command, SendError, Sent, Status, relayed};

/// A byte stream a WebSocket runs over: plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Socket = WebSocketStream<Box<dyn Io>>;

/// Frames the client cannot decode come as often as the server sends them: one line per
/// period.
static UNDECODABLE: crate::LogLimiter = crate::LogLimiter::new(Duration::from_secs(10));

/// Writes `message` within `timeout`: whether it went out.
async fn write(socket: &mut Socket, message: Message, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, socket.send(message)).await,
        Ok(Ok(()))
    )
}

/// What a spawned request reports back.
enum Completion {
    Describe(SessionRequestId, Result<ChannelInfo, RequestError>),
    Create(SessionRequestId, Result<(), RequestError>),
    Endpoints(SessionRequestId, Result<Endpoints, RequestError>),
    IceConfig(SessionRequestId, Result<Vec<IceServer>, RequestError>),
    Connect(SessionRequestId, Result<Box<Socket>, RequestError>),
}

/// The open socket and what the keepalive knows of it.
struct Open {
    id: SessionRequestId,
    socket: Socket,
    /// When the last frame of any kind arrived.
    heard: Instant,
    /// When the next ping is due.
    ping_at: Instant,
}

pub(super) struct Driver {
    config: ClientConfig,
    session: ClientSession,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<ClientEvent>,
    completions_tx: mpsc::Sender<Completion>,
    completions: mpsc::Receiver<Completion>,
    open: Option<Open>,
    queued: VecDeque<ClientMessage<'static>>,
    closing: Option<oneshot::Sender<()>>,
    status: tokio::sync::watch::Sender<Status>,
}

/// How long a spawned request may outlive its deadline in the session before it is dropped.
const REQUEST_SLACK: Duration = Duration::from_secs(1);

impl Driver {
    pub(super) fn new(
        config: ClientConfig,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<ClientEvent>,
        status: tokio::sync::watch::Sender<Status>,
    ) -> Result<Self, ClientError> {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let session = ClientSession::new(
            config.session.clone(),
            SplitMix64::new(seed),
            Instant::now().into_std(),
        )?;
        // At most a REST call, a background ICE refresh and a connect are in flight.
        let (completions_tx, completions) = mpsc::channel(8);
        Ok(Self {
            config,
            session,
            commands,
            events,
            completions_tx,
            completions,
            open: None,
            queued: VecDeque::new(),
            closing: None,
            status,
        })
    }

    pub(super) async fn run(mut self) {
        loop {
            self.carry_out().await;
            if matches!(
                self.session.state(),
                SessionState::Closed | SessionState::Failed
            ) {
                break;
            }
            let timeout = self.session.poll_timeout().map(Instant::from_std);
            let ping_at = self.open.as_ref().map(|open| open.ping_at);
            tokio::select! {
                () = sleep_until(timeout) => {
                    self.session.handle_timeout(Instant::now().into_std());
                }
                () = sleep_until(ping_at) => self.keepalive().await,
                Some(completion) = self.completions.recv() => self.complete(completion).await,
                frame = next_frame(&mut self.open) => self.received(frame).await,
                command = self.commands.recv() => match command {
                    Some(Command::Send { message, reply }) => {
                        let _ = reply.send(self.send(message).await);
                    }
                    Some(Command::Close { done }) => {
                        self.closing = Some(done);
                        self.session.close(Instant::now().into_std());
                    }
                    // Every handle is gone: nobody can send or close any more.
                    None => self.session.close(Instant::now().into_std()),
                },
            }
        }
        self.carry_out().await;
        if let Some(mut open) = self.open.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), open.socket.close(None)).await;
        }
        if !self.queued.is_empty() {
            let undelivered = self.queued.drain(..).collect();
            let _ = self
                .events
                .send(ClientEvent::Undelivered(undelivered))
                .await;
        }
        // Anyone still sending hears that the client stopped.
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Send { reply, .. } => {
                    let _ = reply.send(Err(SendError::Closed));
                }
                Command::Close { done } => {
                    let _ = done.send(());
                }
            }
        }
        if let Some(done) = self.closing.take() {
            let _ = done.send(());
        }
    }

    /// Carries out everything the session asked for.
    async fn carry_out(&mut self) {
        while let Some(output) = self.session.poll_output() {
            match output {
                SessionOutput::DescribeChannel { id, name } => {
                    let rest = self.config.rest.clone();
                    self.spawn(async move {
                        Completion::Describe(id, rest.describe_channel(&name).await)
                    });
                }
                SessionOutput::CreateChannel { id, name } => {
                    let rest = self.config.rest.clone();
                    self.spawn(
                        async move { Completion::Create(id, rest.create_channel(&name).await) },
                    );
                }
                SessionOutput::GetEndpoints { id, arn, role } => {
                    let rest = self.config.rest.clone();
                    self.spawn(async move {
                        Completion::Endpoints(id, rest.get_endpoints(&arn, role).await)
                    });
                }
                SessionOutput::GetIceConfig {
                    id,
                    arn,
                    https_endpoint,
                    client_id,
                } => {
                    let rest = self.config.rest.clone();
                    self.spawn(async move {
                        let result = rest
                            .get_ice_config(&https_endpoint, &arn, client_id.as_ref())
                            .await;
                        Completion::IceConfig(id, result)
                    });
                }
                SessionOutput::Connect {
                    id,
                    wss_endpoint,
                    arn,
                    client_id,
                } => {
                    let rest = self.config.rest.clone();
                    let max = self.config.max_message_len;
                    let indications = self
                        .config
                        .indications
                        .unwrap_or_else(|| !is_aws_endpoint(&wss_endpoint));
                    let delivery_status = self.config.delivery_status;
                    self.spawn(async move {
                        let mut extra: Vec<(&str, &str)> = Vec::new();
                        if indications {
                            extra.push((kvs_signaling_proto::INDICATIONS_PARAM, "true"));
                        }
                        if delivery_status {
                            extra.push((kvs_signaling_proto::DELIVERY_STATUS_PARAM, "true"));
                        }
                        let extra = extra.as_slice();
                        let url = kvs_ice_rest::presign_connect_url_with(
                            rest.credentials(),
                            rest.region(),
                            &wss_endpoint,
                            &arn,
                            client_id.as_ref(),
                            extra,
                            SystemTime::now(),
                        );
                        let result = match url {
                            Ok(url) => connect(&url, &rest, max).await.map(Box::new),
                            Err(err) => Err(RequestError::new(format!("presigning: {err}"))),
                        };
                        Completion::Connect(id, result)
                    });
                }
                SessionOutput::CloseSocket { id } => {
                    if let Some(mut open) = self.open.take_if(|open| open.id == id) {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), open.socket.close(None))
                                .await;
                    }
                }
                SessionOutput::Event(event) => {
                    match &event {
                        SessionEvent::StateChanged(state) => {
                            self.status.send_modify(|status| status.state = *state);
                        }
                        SessionEvent::IceServersUpdated(servers) => {
                            let servers = servers.clone();
                            self.status
                                .send_modify(|status| status.ice_servers = servers);
                        }
                        _ => {}
                    }
                    if event == SessionEvent::StateChanged(SessionState::Connected) {
                        self.flush().await;
                    }
                    let _ = self.events.send(ClientEvent::Session(event)).await;
                }
                _ => {}
            }
        }
    }

    /// Runs a request on its own task, bounded by the session's deadline.
    fn spawn(&self, request: impl Future<Output = Completion> + Send + 'static) {
        let completions = self.completions_tx.clone();
        let limit = self
            .config
            .session
            .request_timeout
            .max(self.config.session.connect_timeout)
            + REQUEST_SLACK;
        tokio::spawn(async move {
            if let Ok(completion) = tokio::time::timeout(limit, request).await {
                let _ = completions.send(completion).await;
            }
        });
    }

    async fn complete(&mut self, completion: Completion) {
        let now = Instant::now().into_std();
        match completion {
            Completion::Describe(id, result) => self.session.handle_describe(now, id, result),
            Completion::Create(id, result) => self.session.handle_create(now, id, result),
            Completion::Endpoints(id, result) => self.session.handle_endpoints(now, id, result),
            Completion::IceConfig(id, result) => self.session.handle_ice_config(now, id, result),
            Completion::Connect(id, Ok(socket)) => {
                let at = Instant::now();
                if let Some(mut old) = self.open.replace(Open {
                    id,
                    socket: *socket,
                    heard: at,
                    ping_at: at + self.config.ping_interval,
                }) {
                    let _ = old.socket.close(None).await;
                }
                self.session.handle_connected(now, id);
            }
            Completion::Connect(id, Err(error)) => {
                self.session.handle_connect_failed(now, id, error);
            }
        }
    }

    /// A frame, an error or the end of the open socket.
    async fn received(&mut self, frame: Option<Result<Message, String>>) {
        let Some(open) = &mut self.open else { return };
        let id = open.id;
        let now = Instant::now();
        match frame {
            Some(Ok(Message::Text(text))) => {
                open.heard = now;
                open.ping_at = now + self.config.ping_interval;
                match ServerEvent::decode(text.as_str()) {
                    Ok(event) => {
                        self.session.handle_event(now.into_std(), &event);
                        if let Some(status) = &event.delivery_status {
                            let status = ClientEvent::DeliveryStatus(status.clone());
                            let _ = self.events.send(status).await;
                        }
                        if matches!(
                            event.message_type,
                            MessageType::SdpOffer
                                | MessageType::SdpAnswer
                                | MessageType::IceCandidate
                        ) {
                            let sender = event.sender_client_id.map(|s| s.into_owned());
                            let payload = event.message_payload.map(|p| p.into_owned());
                            let client_event = relayed(event.message_type, sender, payload);
                            let _ = self.events.send(client_event).await;
                        }
                    }
                    Err(err) => {
                        // Not an event of the protocol (the real gateway sends some of its own
                        // JSON on errors): tell the application, keep the socket.
                        if let Some(suppressed) = UNDECODABLE.check() {
                            // The frame is the server's: at most its start is logged.
                            let start: String = text.as_str().chars().take(200).collect();
                            tracing::debug!(%err, frame = %start, suppressed, "an undecodable frame");
                        }
                        let _ = self
                            .events
                            .send(ClientEvent::Undecodable {
                                message_type: MessageType::StatusResponse,
                                sender: None,
                                payload: None,
                                error: format!("{err}: {text}"),
                            })
                            .await;
                    }
                }
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => {
                self.open = None;
                self.session.handle_socket_closed(now.into_std(), id);
            }
            Some(Ok(_)) => {
                open.heard = now;
                open.ping_at = now + self.config.ping_interval;
            }
        }
    }

    /// Pings a silent socket, or gives up on one silent for two intervals.
    async fn keepalive(&mut self) {
        let Some(open) = &mut self.open else { return };
        let now = Instant::now();
        if now.duration_since(open.heard) >= self.config.ping_interval * 2 {
            tracing::debug!("no frame for two ping intervals: the socket is taken for dead");
            let id = open.id;
            self.open = None;
            self.session.handle_socket_closed(now.into_std(), id);
            return;
        }
        open.ping_at = now + self.config.ping_interval;
        if !write(
            &mut open.socket,
            Message::Ping(Default::default()),
            self.config.write_timeout,
        )
        .await
        {
            let id = open.id;
            self.open = None;
            self.session.handle_socket_closed(now.into_std(), id);
        }
    }

    /// Writes `message` now when connected, else queues it within the bound.
    async fn send(&mut self, message: ClientMessage<'static>) -> Result<Sent, SendError> {
        if matches!(
            self.session.state(),
            SessionState::Closed | SessionState::Failed
        ) {
            return Err(SendError::Closed);
        }
        if self.session.state() == SessionState::Connected
            && self.queued.is_empty()
            && let Some(open) = &mut self.open
        {
            let text = message.encode();
            if write(
                &mut open.socket,
                Message::Text(text.into()),
                self.config.write_timeout,
            )
            .await
            {
                return Ok(Sent::Written);
            }
            let id = open.id;
            self.open = None;
            self.session
                .handle_socket_closed(Instant::now().into_std(), id);
        }
        if self.queued.len() >= self.config.max_queued_messages {
            return Err(SendError::QueueFull(self.queued.len()));
        }
        self.queued.push_back(message);
        Ok(Sent::Queued)
    }

    /// Writes the queued messages, in order, to the newly open socket.
    async fn flush(&mut self) {
        let Some(open) = &mut self.open else { return };
        while let Some(message) = self.queued.front() {
            let text = message.encode();
            if !write(
                &mut open.socket,
                Message::Text(text.into()),
                self.config.write_timeout,
            )
            .await
            {
                // Kept for the next connection. A write that failed or timed out leaves the
                // socket unusable (part of a frame may be out): it is given up.
                let id = open.id;
                self.open = None;
                self.session
                    .handle_socket_closed(Instant::now().into_std(), id);
                return;
            }
            self.queued.pop_front();
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_frame(open: &mut Option<Open>) -> Option<Result<Message, String>> {
    match open {
        Some(open) => open
            .socket
            .next()
            .await
            .map(|frame| frame.map_err(|err| err.to_string())),
        None => std::future::pending().await,
    }
}

/// Whether `endpoint` is one of the real service's (`*.amazonaws.com`, `*.amazonaws.com.cn`).
fn is_aws_endpoint(endpoint: &str) -> bool {
    let host = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .split(['/', ':', '?'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
}

/// Opens the WebSocket at the presigned `url`: TCP as `rest` makes its connections (through
/// its proxy's tunnel when one applies), TLS for `wss://` with `rest`'s trust, then the
/// upgrade, all within `rest`'s connect timeout.
async fn connect(
    url: &str,
    rest: &kvs_ice_rest::RestClient,
    max_message_len: usize,
) -> Result<Socket, RequestError> {
    let request = url
        .into_client_request()
        .map_err(|err| RequestError::new(format!("the connect URL: {err}")))?;
    let uri = request.uri().clone();
    let secure = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        other => {
            return Err(RequestError::new(format!(
                "the connect URL's scheme {other:?} is neither wss nor ws"
            )));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| RequestError::new("the connect URL has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let within = rest.connect_timeout();
    let deadline = Instant::now() + within;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let late = |step: &str| {
        RequestError::new(format!(
            "{step} with {authority}: not done within {within:?}"
        ))
    };
    let tcp = rest.dial(&host, port, secure).await?;
    let io: Box<dyn Io> = if secure {
        let name = rustls_pki_types::ServerName::try_from(host.clone())
            .map_err(|err| RequestError::new(format!("TLS name {host:?}: {err}")))?;
        let handshake = tokio_rustls::TlsConnector::from(rest.tls_config()).connect(name, tcp);
        let tls = tokio::time::timeout_at(deadline, handshake)
            .await
            .map_err(|_| late("the TLS handshake"))?
            .map_err(|err| RequestError::new(format!("TLS to {authority}: {err}")))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let config = super::websocket_config(max_message_len);
    let upgrade = tokio_tungstenite::client_async_with_config(request, io, Some(config));
    let upgraded = tokio::time::timeout_at(deadline, upgrade)
        .await
        .map_err(|_| late("the WebSocket upgrade"))?;
    match upgraded {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned();
            Err(RequestError::http(status, body))
        }
        Err(err) => Err(RequestError::new(format!("the WebSocket upgrade: {err}"))),
    }
}
