//! The Rust signaling client: a KVS master or viewer against the real service or any server
//! that speaks its protocol.
//!
//! [`SignalingClient::start`] spawns one task that drives `kvs-signaling-core`'s
//! [`ClientSession`](kvs_signaling_core::ClientSession) and carries out what it asks: the REST
//! calls (through `kvs-ice-rest`'s [`RestClient`]), the presigned WebSocket connect, closes and
//! reconnects. The application talks to that task through two bounded queues: commands in
//! ([`SignalingClient`]'s methods) and events out ([`Events`]).
//!
//! What users of the official C SDK rely on holds here too:
//!
//! - any unexpected close or GO_AWAY reconnects, after a capped exponential backoff with
//!   jitter, re-fetching the endpoints and ICE configuration as the session decides;
//! - the ICE configuration is fetched again before its TTL ends, and at once on
//!   RECONNECT_ICE_SERVER;
//! - WebSocket pings go out during silence, and a socket silent for two ping intervals is
//!   taken for dead;
//! - messages sent while not connected wait in a bounded queue
//!   ([`ClientConfig::max_queued_messages`]) and go out, in order, once connected; a full queue
//!   refuses the message ([`SendError::QueueFull`]), and messages still queued when the
//!   session ends are reported ([`ClientEvent::Undelivered`]), never dropped silently.

use std::time::Duration;

use kvs_ice_rest::RestClient;
use kvs_signaling_core::{ClientSessionConfig, SessionEvent, SessionState};
use kvs_signaling_proto::{
    Action, ClientMessage, DeliveryStatus, IceCandidate, MessagePayload, MessageType,
    PayloadJson as _, PeerId, SessionDescription,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

mod driver;

/// The WebSocket limits and buffers a signaling client connects with: messages and frames up
/// to `max_message_len` bytes (room for the largest payload and its envelope), and small
/// buffers so that an idle connection costs little memory.
pub(crate) fn websocket_config(max_message_len: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(max_message_len.saturating_mul(4).max(64 * 1024))
        .max_message_size(Some(max_message_len))
        .max_frame_size(Some(max_message_len))
}

/// Everything a [`SignalingClient`] needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The channel, role, client id and the session's timing (backoff, timeouts, ICE refresh).
    pub session: ClientSessionConfig,
    /// The REST client: control-plane endpoint, region, credentials and TLS trust.
    pub rest: RestClient,
    /// How often a ping goes out while the socket is silent: 30 s. A socket that stays silent
    /// (no frame, no pong) for twice this long is closed and reconnected.
    pub ping_interval: Duration,
    /// How long one write to the socket may take: 10 s. A server that stops reading is
    /// taken for gone, and the client reconnects.
    pub write_timeout: Duration,
    /// Messages held while not connected: 64. More are refused with
    /// [`SendError::QueueFull`].
    pub max_queued_messages: usize,
    /// Events waiting for the application: 256. When the application falls behind, the client
    /// stops reading the socket until it catches up (TCP then pushes back on the server).
    pub event_capacity: usize,
    /// The largest message accepted from the server, in bytes: 64 KiB.
    pub max_message_len: usize,
    /// Whether the connect URL says the client handles GO_AWAY and RECONNECT_ICE_SERVER
    /// ([`INDICATIONS_PARAM`](kvs_signaling_proto::INDICATIONS_PARAM)`=true`), so that a
    /// kvs-signaling server sends them to it: on, except against the real service's
    /// `amazonaws.com` endpoints, which send them to everyone and need no such parameter.
    pub indications: Option<bool>,
    /// Whether to ask a kvs-signaling server for delivery status: the connect URL then
    /// carries [`DELIVERY_STATUS_PARAM`](kvs_signaling_proto::DELIVERY_STATUS_PARAM)`=true`,
    /// and each message sent with a correlation id ([`SignalingClient::send`]) is followed by
    /// [`ClientEvent::DeliveryStatus`] events: `HELD`, then `DELIVERED`, `EXPIRED` or
    /// `OVERWRITTEN`. Off by default; an extension of this project, which the real service
    /// does not offer.
    pub delivery_status: bool,
}

impl ClientConfig {
    /// The defaults for `session`, calling the service through `rest`.
    pub fn new(session: ClientSessionConfig, rest: RestClient) -> Self {
        Self {
            session,
            rest,
            ping_interval: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_queued_messages: 64,
            event_capacity: 256,
            max_message_len: 64 * 1024,
            indications: None,
            delivery_status: false,
        }
    }

    /// Sets [`ClientConfig::indications`]: whether to ask for GO_AWAY and
    /// RECONNECT_ICE_SERVER, whatever the endpoint.
    #[must_use]
    pub fn indications(mut self, ask: bool) -> Self {
        self.indications = Some(ask);
        self
    }

    /// Sets [`ClientConfig::delivery_status`].
    #[must_use]
    pub fn delivery_status(mut self, ask: bool) -> Self {
        self.delivery_status = ask;
        self
    }

    /// Sets [`ClientConfig::ping_interval`] (at least 100 ms).
    #[must_use]
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// Sets [`ClientConfig::write_timeout`] (at least 100 ms).
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout.max(Duration::from_millis(100));
        self
    }

    /// Sets [`ClientConfig::max_queued_messages`].
    #[must_use]
    pub fn max_queued_messages(mut self, max: usize) -> Self {
        self.max_queued_messages = max;
        self
    }

    /// Sets [`ClientConfig::event_capacity`] (at least 1).
    #[must_use]
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }
}

/// A message relayed from the other side.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Received<T> {
    /// Who sent it: the viewer's client id on messages to the master, `None` on messages from
    /// the master (the service does not name it).
    pub sender: Option<PeerId>,
    /// What was sent, decoded from the payload.
    pub body: T,
    /// The payload as it came, base64.
    pub payload: MessagePayload<'static>,
}

/// What the client tells the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// An SDP offer.
    Offer(Received<SessionDescription>),
    /// An SDP answer.
    Answer(Received<SessionDescription>),
    /// A trickled ICE candidate.
    IceCandidate(Received<IceCandidate>),
    /// A relayed message whose payload is not the JSON its type calls for.
    Undecodable {
        /// The message's type.
        message_type: MessageType,
        /// Who sent it.
        sender: Option<PeerId>,
        /// The payload as it came.
        payload: Option<MessagePayload<'static>>,
        /// What was wrong.
        error: String,
    },
    /// What the session reports: state changes (`Connected` means messages go out at once),
    /// new ICE servers, STATUS_RESPONSE errors, GO_AWAY, RECONNECT_ICE_SERVER, failed
    /// requests, scheduled retries, and the final failure.
    Session(SessionEvent),
    /// Messages the application sent that never went out, because the session closed or
    /// failed first.
    Undelivered(Vec<ClientMessage<'static>>),
    /// What became of a message sent with a correlation id, when
    /// [`ClientConfig::delivery_status`] is on.
    DeliveryStatus(DeliveryStatus),
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Not connected, and the queue for later already holds its maximum.
    #[error("not connected, and {0} messages already wait for the connection")]
    QueueFull(usize),
    /// The client is closed or has failed.
    #[error("the signaling client has stopped")]
    Closed,
    /// The message cannot be encoded.
    #[error("the message cannot be sent: {0}")]
    Invalid(String),
    /// The master must name the viewer a message is for.
    #[error("recipientClientId: the master must name the viewer a message is for")]
    RecipientRequired,
}

/// Where a message accepted by [`SignalingClient::send`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sent {
    /// Written to the socket.
    Written,
    /// Queued until the connection is back.
    Queued,
}

enum Command {
    Send {
        message: ClientMessage<'static>,
        reply: oneshot::Sender<Result<Sent, SendError>>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// The events of a [`SignalingClient`], in order. Ends after the session closes or fails.
#[derive(Debug)]
pub struct Events {
    events: mpsc::Receiver<ClientEvent>,
}

impl Events {
    /// The next event; `None` once the client has stopped and every event was read.
    pub async fn next(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }
}

/// A running master or viewer. Cheap to clone; every clone sends through the same session.
#[derive(Debug, Clone)]
pub struct SignalingClient {
    commands: mpsc::Sender<Command>,
    is_master: bool,
    status: watch::Receiver<Status>,
}

/// What the driver publishes for [`SignalingClient::state`] and
/// [`SignalingClient::ice_servers`].
#[derive(Debug, Clone)]
struct Status {
    state: SessionState,
    ice_servers: Vec<kvs_signaling_proto::IceServer>,
}

impl SignalingClient {
    /// Starts the session on the current tokio runtime. It describes the channel (creating
    /// it when the session configuration asks), fetches the endpoints and the ICE
    /// configuration, and connects; events tell how it goes.
    pub fn start(config: ClientConfig) -> Result<(Self, Events), ClientError> {
        let is_master = config.session.client_id.is_none();
        let (commands, command_rx) = mpsc::channel(32);
        let (event_tx, events) = mpsc::channel(config.event_capacity.max(1));
        let (status_tx, status) = watch::channel(Status {
            state: SessionState::New,
            ice_servers: Vec::new(),
        });
        let driver = driver::Driver::new(config, command_rx, event_tx, status_tx)?;
        tokio::spawn(driver.run());
        Ok((
            Self {
                commands,
                is_master,
                status,
            },
            Events { events },
        ))
    }

    /// Where the session is now; `Connected` means messages go out at once.
    pub fn state(&self) -> SessionState {
        self.status.borrow().state
    }

    /// The latest ICE servers fetched (empty before the first GetIceServerConfig answer), for
    /// an application that did not keep the `IceServersUpdated` event.
    pub fn ice_servers(&self) -> Vec<kvs_signaling_proto::IceServer> {
        self.status.borrow().ice_servers.clone()
    }

    /// Sends an SDP offer: to the master from a viewer (`to` is ignored), or to the viewer `to`
    /// from the master.
    pub async fn send_offer(
        &self,
        to: Option<&PeerId>,
        offer: &SessionDescription,
    ) -> Result<Sent, SendError> {
        self.send_json(Action::SdpOffer, to, offer).await
    }

    /// Sends an SDP answer, addressed as [`SignalingClient::send_offer`].
    pub async fn send_answer(
        &self,
        to: Option<&PeerId>,
        answer: &SessionDescription,
    ) -> Result<Sent, SendError> {
        self.send_json(Action::SdpAnswer, to, answer).await
    }

    /// Sends an ICE candidate, addressed as [`SignalingClient::send_offer`].
    pub async fn send_ice_candidate(
        &self,
        to: Option<&PeerId>,
        candidate: &IceCandidate,
    ) -> Result<Sent, SendError> {
        self.send_json(Action::IceCandidate, to, candidate).await
    }

    async fn send_json(
        &self,
        action: Action,
        to: Option<&PeerId>,
        body: &impl kvs_signaling_proto::PayloadJson,
    ) -> Result<Sent, SendError> {
        let payload = body
            .to_payload()
            .map_err(|err| SendError::Invalid(err.to_string()))?;
        let mut message = ClientMessage::new(action, payload);
        if self.is_master {
            message.recipient_client_id = Some(to.ok_or(SendError::RecipientRequired)?.clone());
        }
        self.send(message).await
    }

    /// Sends a message as it is (a correlation id asks the service for a STATUS_RESPONSE on
    /// failure). Returns once it is written to the socket or queued.
    pub async fn send(&self, message: ClientMessage<'static>) -> Result<Sent, SendError> {
        if self.is_master && message.recipient_client_id.is_none() {
            return Err(SendError::RecipientRequired);
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Send { message, reply })
            .await
            .map_err(|_| SendError::Closed)?;
        answer.await.unwrap_or(Err(SendError::Closed))
    }

    /// Closes the socket and ends the session; returns once the client has stopped.
    pub async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Close { done }).await.is_ok() {
            let _ = finished.await;
        }
    }
}

/// A client that cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The session configuration is refused.
    #[error("session configuration: {0}")]
    Session(#[from] kvs_signaling_core::SessionConfigError),
}

/// Decodes a relayed event into what the application sees.
fn relayed(
    message_type: MessageType,
    sender: Option<PeerId>,
    payload: Option<MessagePayload<'static>>,
) -> ClientEvent {
    let undecodable = |payload, error: String| ClientEvent::Undecodable {
        message_type,
        sender: sender.clone(),
        payload,
        error,
    };
    let Some(payload) = payload else {
        return undecodable(None, "messagePayload: missing".to_owned());
    };
    match message_type {
        MessageType::SdpOffer | MessageType::SdpAnswer => {
            match SessionDescription::from_payload(&payload) {
                Ok(body) => {
                    let received = Received {
                        sender,
                        body,
                        payload,
                    };
                    if message_type == MessageType::SdpOffer {
                        ClientEvent::Offer(received)
                    } else {
                        ClientEvent::Answer(received)
                    }
                }
                Err(err) => undecodable(Some(payload), err.to_string()),
            }
        }
        MessageType::IceCandidate => match IceCandidate::from_payload(&payload) {
            Ok(body) => ClientEvent::IceCandidate(Received {
                sender,
                body,
                payload,
            }),
            Err(err) => undecodable(Some(payload), err.to_string()),
        },
        _ => undecodable(Some(payload), "not a relayed message type".to_owned()),
    }
}

#[cfg(test)]
mod tests;
