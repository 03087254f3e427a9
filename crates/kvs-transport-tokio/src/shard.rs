//! The shard task: one task owns a [`Hub`] by value and drives it, fed by the connections'
//! reader tasks through one bounded queue, answering through each connection's own bounded
//! queue. No lock is shared with the hub.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use kvs_signaling_core::{
    AlexaOffer, AlexaRequestId, ChannelView, CloseReason, ConnId, Counters, Frame, HeldChange, Hub,
    OpenConnection, Output, Receipt, Refused,
};
use kvs_signaling_proto::{ChannelArn, MessagePayload, MessageTtlSeconds};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::outbox::{Ack, Batch, OutboxReceiver, OutboxSender, PushError, Queued, outbox};
use crate::telemetry::Telemetry;

/// The sizes of the shard's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardConfig {
    /// Inputs waiting for the shard task, from every connection: 4096. A full queue makes the
    /// readers wait, which pushes back on their clients through TCP.
    pub inbound_capacity: usize,
    /// Frames waiting for one connection's writer: 512. A connection whose queue is full reads
    /// slower than its peers write to it; it is closed (1008, "slow consumer") rather than
    /// buffered for. The hub's own limits let about 320 frames reach one master at once (ten
    /// viewers' bursts of 5 SDP messages and 20 candidates, and 64 buffered messages flushed
    /// when it connects), all of which may be queued before its writer runs; the queue
    /// allocates as it fills, so an idle connection does not pay for the room.
    pub outbound_capacity: usize,
}

impl Default for ShardConfig {
    fn default() -> Self {
        Self {
            inbound_capacity: 4096,
            outbound_capacity: 512,
        }
    }
}

impl ShardConfig {
    /// Sets [`ShardConfig::inbound_capacity`].
    #[must_use]
    pub fn inbound_capacity(mut self, capacity: usize) -> Self {
        self.inbound_capacity = capacity.max(1);
        self
    }

    /// Sets [`ShardConfig::outbound_capacity`].
    #[must_use]
    pub fn outbound_capacity(mut self, capacity: usize) -> Self {
        self.outbound_capacity = capacity.max(1);
        self
    }
}

/// The close code of a connection closed for reading too slowly: 1008, policy violation.
pub const SLOW_CONSUMER_CLOSE_CODE: u16 = 1008;

/// How a connection's writer is told to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseCommand {
    /// The WebSocket close code.
    pub code: u16,
    /// The close reason.
    pub reason: &'static str,
}

impl CloseCommand {
    /// Close with `code` and `reason`.
    pub const fn new(code: u16, reason: &'static str) -> Self {
        Self { code, reason }
    }
}

impl From<CloseReason> for CloseCommand {
    fn from(reason: CloseReason) -> Self {
        Self {
            code: reason.code(),
            reason: reason.description(),
        }
    }
}

/// The shard has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the shard task has stopped")]
#[non_exhaustive]
pub struct ShardStopped;

pub(crate) enum Command {
    Open {
        open: OpenConnection,
        outbound: OutboxSender,
        reply: oneshot::Sender<Result<ConnId, Refused>>,
    },
    Established(ConnId),
    /// A text message, and when it was read off the socket.
    Frame(ConnId, String, StdInstant),
    Keepalive(ConnId),
    Closed(ConnId),
    Alexa {
        offer: AlexaOffer,
        reply: oneshot::Sender<Result<MessagePayload<'static>, Refused>>,
    },
    Drain,
    ReconnectIceServers(Option<ChannelArn>),
    ChannelUpdated(ChannelArn, MessageTtlSeconds, u64),
    ChannelDeleted(ChannelArn),
    Counters(oneshot::Sender<Counters>),
    ChannelViews(oneshot::Sender<Vec<ChannelView>>),
    /// Tracked frames written to their sockets.
    Written(Vec<Ack>),
    /// Tracked frames that will never be written.
    Unwritten(Vec<(Ack, Frame)>),
    /// A connection whose socket another node holds.
    OpenRemote {
        open: OpenConnection,
        sink: RemoteSink,
        reply: oneshot::Sender<Result<ConnId, Refused>>,
    },
    /// The node holding these remote connections is gone: they are closed, and their tracked
    /// frames held again.
    RemoteGone(Vec<ConnId>),
    /// Report held messages as they change, to this sink.
    TrackHeld(HeldSink),
    RestoreHeld {
        arn: ChannelArn,
        ttl: MessageTtlSeconds,
        revision: u64,
        held: Vec<HeldChange>,
        reply: oneshot::Sender<usize>,
    },
    ExportHeld(ChannelArn, oneshot::Sender<Vec<HeldChange>>),
    Evict(ChannelArn),
    /// GO_AWAY (or a close) to every connection whose socket is in this process.
    GoAwayLocal,
}

/// Where a shard reports held messages as they change ([`ShardHandle::track_held`]): a
/// bounded queue. When it is full, the changes wait in the shard and go with the next ones.
pub type HeldSink = mpsc::Sender<Vec<HeldChange>>;

/// Held-message changes a shard keeps while its [`HeldSink`] is full, at most; past it the
/// oldest are dropped (and logged): the copy they were for is then stale until the
/// recipient's messages change again.
const MAX_HELD_BACKLOG: usize = 65_536;

/// A way to talk to a shard task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShardHandle {
    commands: mpsc::Sender<Command>,
    outbound_capacity: usize,
    telemetry: Arc<Telemetry>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Open { .. } => "Open",
            Self::Established(_) => "Established",
            Self::Frame(..) => "Frame",
            Self::Keepalive(_) => "Keepalive",
            Self::Closed(_) => "Closed",
            Self::Alexa { .. } => "Alexa",
            Self::Drain => "Drain",
            Self::ReconnectIceServers(_) => "ReconnectIceServers",
            Self::ChannelUpdated(..) => "ChannelUpdated",
            Self::ChannelDeleted(_) => "ChannelDeleted",
            Self::Counters(_) => "Counters",
            Self::ChannelViews(_) => "ChannelViews",
            Self::Written(_) => "Written",
            Self::Unwritten(_) => "Unwritten",
            Self::OpenRemote { .. } => "OpenRemote",
            Self::RemoteGone(_) => "RemoteGone",
            Self::TrackHeld(_) => "TrackHeld",
            Self::RestoreHeld { .. } => "RestoreHeld",
            Self::ExportHeld(..) => "ExportHeld",
            Self::Evict(_) => "Evict",
            Self::GoAwayLocal => "GoAwayLocal",
        })
    }
}

/// What a shard sends a connection whose socket another node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteOutput {
    /// The hub's id of the connection.
    pub conn: ConnId,
    /// What to do.
    pub kind: RemoteOutputKind,
}

/// What a remote connection's node is to do ([`RemoteOutput`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteOutputKind {
    /// Write `frame`; if it carries a token, say whether it was written
    /// ([`ShardHandle::remote_acked`]).
    Frame {
        /// The text frame.
        frame: Frame,
        /// The token of a tracked frame (its sender asked for delivery status).
        token: Option<u64>,
    },
    /// Close the socket.
    Close(CloseCommand),
}

/// Where a shard sends the outputs of its remote connections: a bounded queue the caller
/// drains toward the nodes that hold the sockets. When it is full, the connection is closed
/// as a slow consumer would be.
pub type RemoteSink = mpsc::Sender<RemoteOutput>;

/// A connection the hub accepted, before or while its socket is served. Dropping it tells the
/// hub the connection closed.
#[derive(Debug)]
pub struct Registration {
    pub(crate) conn: ConnId,
    pub(crate) shard: ShardHandle,
    pub(crate) outbound: OutboxReceiver,
}

impl Registration {
    /// The hub's id of the connection.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Waits for the next frame the hub sends this connection, or for the hub's order to
    /// close it. For callers that carry frames themselves; [`crate::serve_websocket`] does it
    /// for a WebSocket.
    pub async fn next(&mut self) -> Option<Result<Frame, CloseCommand>> {
        self.outbound.next().await
    }

    /// Waits for what the writer does next: at most `max` queued frames, the close order, or
    /// the end.
    pub(crate) async fn next_batch(&mut self, max: usize) -> Batch {
        self.outbound.next_batch(max).await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Harmless when the hub closed the connection itself: it ignores closed ids.
        self.shard.notify_closed(self.conn);
        // Tracked frames that never reached the socket go back to the hub, after the close,
        // so that it holds them for the recipient's next connection.
        let unwritten = self.outbound.take_unwritten();
        if !unwritten.is_empty() {
            self.shard
                .post_without_waiting(Command::Unwritten(unwritten));
        }
    }
}

impl ShardHandle {
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        outbound_capacity: usize,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Self {
            commands,
            outbound_capacity,
            telemetry,
        }
    }

    pub(crate) fn outbound_capacity(&self) -> usize {
        self.outbound_capacity
    }

    /// Registers a connection with the hub; a refusal carries the service's error, to answer
    /// the upgrade request with.
    pub async fn open(
        &self,
        open: OpenConnection,
    ) -> Result<Result<Registration, Refused>, ShardStopped> {
        let (outbound_tx, outbound_rx) = outbox(self.outbound_capacity);
        let (reply_tx, reply_rx) = oneshot::channel();
        self.send(Command::Open {
            open,
            outbound: outbound_tx,
            reply: reply_tx,
        })
        .await?;
        let result = reply_rx.await.map_err(|_| ShardStopped)?;
        Ok(result.map(|conn| Registration {
            conn,
            shard: self.clone(),
            outbound: outbound_rx,
        }))
    }

    /// Registers a connection whose socket another node holds: the hub decides it as any
    /// connect, and its outputs go to `sink`. The caller then forwards the socket's
    /// [`ShardHandle::established`], [`ShardHandle::frame`], [`ShardHandle::keepalive`] and
    /// [`ShardHandle::closed`].
    pub async fn open_remote(
        &self,
        open: OpenConnection,
        sink: RemoteSink,
    ) -> Result<Result<ConnId, Refused>, ShardStopped> {
        let (reply, verdict) = oneshot::channel();
        self.send(Command::OpenRemote { open, sink, reply }).await?;
        verdict.await.map_err(|_| ShardStopped)
    }

    /// A remote connection's tracked frame (its `token`) was written to its socket, or never
    /// will be (then its message is held again).
    pub async fn remote_acked(
        &self,
        conn: ConnId,
        token: u64,
        written: bool,
    ) -> Result<(), ShardStopped> {
        let ack = Ack::Link { conn, token };
        let command = if written {
            Command::Written(vec![ack])
        } else {
            Command::Unwritten(vec![(ack, Frame::from(String::new()))])
        };
        self.send(command).await
    }

    /// The node holding these remote connections is gone: they close, and their tracked
    /// frames are held again.
    pub async fn remote_gone(&self, conns: Vec<ConnId>) -> Result<(), ShardStopped> {
        self.send(Command::RemoteGone(conns)).await
    }

    /// Reports every change of the hub's held messages to `sink`, for a copy kept elsewhere
    /// (see [`Hub::take_held_changes`]).
    pub async fn track_held(&self, sink: HeldSink) -> Result<(), ShardStopped> {
        self.send(Command::TrackHeld(sink)).await
    }

    /// Restores held messages another hub held for `arn` (see [`Hub::restore_held`]);
    /// returns how many were kept.
    pub async fn restore_held(
        &self,
        arn: ChannelArn,
        ttl: MessageTtlSeconds,
        revision: u64,
        held: Vec<HeldChange>,
    ) -> Result<usize, ShardStopped> {
        let (reply, kept) = oneshot::channel();
        self.send(Command::RestoreHeld {
            arn,
            ttl,
            revision,
            held,
            reply,
        })
        .await?;
        kept.await.map_err(|_| ShardStopped)
    }

    /// The held messages of `arn` now (see [`Hub::export_held`]).
    pub async fn export_held(&self, arn: ChannelArn) -> Result<Vec<HeldChange>, ShardStopped> {
        let (reply, held) = oneshot::channel();
        self.send(Command::ExportHeld(arn, reply)).await?;
        held.await.map_err(|_| ShardStopped)
    }

    /// Another hub decides for `arn` now (see [`Hub::evict_channel`]).
    pub async fn evict(&self, arn: ChannelArn) -> Result<(), ShardStopped> {
        self.send(Command::Evict(arn)).await
    }

    /// Sends GO_AWAY to the connections whose sockets this process holds (closing those that
    /// do not handle it), as [`ShardHandle::drain`] does to all, but goes on taking
    /// connections and serving remote ones (see [`Hub::go_away_connections`]).
    pub async fn go_away_local(&self) -> Result<(), ShardStopped> {
        self.send(Command::GoAwayLocal).await
    }

    /// Tells the hub that the socket of `conn` is up (its `101` written): only now does it
    /// take the place of an older connection with its identity and receive what was held
    /// for it.
    pub async fn established(&self, conn: ConnId) -> Result<(), ShardStopped> {
        self.send(Command::Established(conn)).await
    }

    /// Passes a text frame from `conn` to the hub, waiting while the shard's queue is full.
    pub async fn frame(&self, conn: ConnId, text: String) -> Result<(), ShardStopped> {
        self.frame_read_at(conn, text, StdInstant::now()).await
    }

    /// [`ShardHandle::frame`] for a frame read off its socket at `read_at` (perhaps by
    /// another process, and delayed on the way), from which its relay latency is counted and
    /// its connection's message rates judged (see [`Hub::handle_frame_read_at`]).
    pub async fn frame_read_at(
        &self,
        conn: ConnId,
        text: String,
        read_at: StdInstant,
    ) -> Result<(), ShardStopped> {
        self.send(Command::Frame(conn, text, read_at)).await
    }

    /// The measurements of the shard and its connections.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// Tells the hub `conn` closed.
    pub async fn closed(&self, conn: ConnId) -> Result<(), ShardStopped> {
        self.send(Command::Closed(conn)).await
    }

    /// Tells the hub `conn` is active (a ping or pong arrived).
    pub async fn keepalive(&self, conn: ConnId) -> Result<(), ShardStopped> {
        self.send(Command::Keepalive(conn)).await
    }

    /// A SendAlexaOfferToMaster call: waits for the master's answer or the hub's error.
    pub async fn alexa_offer(
        &self,
        offer: AlexaOffer,
    ) -> Result<Result<MessagePayload<'static>, Refused>, ShardStopped> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Alexa { offer, reply }).await?;
        answer.await.map_err(|_| ShardStopped)
    }

    /// Sends GO_AWAY to every connection and closes each a grace period later.
    pub async fn drain(&self) -> Result<(), ShardStopped> {
        self.send(Command::Drain).await
    }

    /// Sends RECONNECT_ICE_SERVER to the connections of `channel`, or of every channel.
    pub async fn reconnect_ice_servers(
        &self,
        channel: Option<ChannelArn>,
    ) -> Result<(), ShardStopped> {
        self.send(Command::ReconnectIceServers(channel)).await
    }

    /// The channel's message TTL changed, at configuration revision `revision` (older
    /// revisions than the hub knows are ignored).
    pub async fn channel_updated(
        &self,
        arn: ChannelArn,
        ttl: MessageTtlSeconds,
        revision: u64,
    ) -> Result<(), ShardStopped> {
        self.send(Command::ChannelUpdated(arn, ttl, revision)).await
    }

    /// The channel was deleted: its connections are closed.
    pub async fn channel_deleted(&self, arn: ChannelArn) -> Result<(), ShardStopped> {
        self.send(Command::ChannelDeleted(arn)).await
    }

    /// The hub's counters now.
    pub async fn counters(&self) -> Result<Counters, ShardStopped> {
        let (reply, counters) = oneshot::channel();
        self.send(Command::Counters(reply)).await?;
        counters.await.map_err(|_| ShardStopped)
    }

    /// Every channel the hub holds now, with its connections and held messages.
    pub async fn channel_views(&self) -> Result<Vec<ChannelView>, ShardStopped> {
        let (reply, views) = oneshot::channel();
        self.send(Command::ChannelViews(reply)).await?;
        views.await.map_err(|_| ShardStopped)
    }

    /// Queues `command`, waiting while the shard's queue is full.
    async fn send(&self, command: Command) -> Result<(), ShardStopped> {
        match self.try_post(command) {
            Ok(None) => Ok(()),
            Ok(Some(command)) => self.send_slow(command).await,
            Err(stopped) => Err(stopped),
        }
    }

    /// Queues `command` if the shard's queue has room: `Ok(Some(command))` when it is full.
    /// Connection tasks post this way and wait ([`ShardHandle::send_slow`]) only under
    /// backpressure, so that the state of a wait is not part of every idle connection's task.
    pub(crate) fn try_post(&self, command: Command) -> Result<Option<Command>, ShardStopped> {
        match self.commands.try_send(command) {
            Ok(()) => Ok(None),
            Err(mpsc::error::TrySendError::Full(command)) => Ok(Some(command)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(ShardStopped),
        }
    }

    /// Waits for room in the shard's queue and queues `command`; boxed, since it is rare
    /// (the caller holds only the box while it waits).
    pub(crate) fn send_slow(
        &self,
        command: Command,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), ShardStopped>> + Send + '_>> {
        Box::pin(async move { self.commands.send(command).await.map_err(|_| ShardStopped) })
    }

    /// Tells the hub `conn` closed, from a context that cannot wait (a `Drop`).
    fn notify_closed(&self, conn: ConnId) {
        self.post_without_waiting(Command::Closed(conn));
    }

    /// Queues `command` from a context that cannot wait (a `Drop`): at once if there is room,
    /// else from a task of its own.
    fn post_without_waiting(&self, command: Command) {
        match self.commands.try_send(command) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(command)) => {
                let commands = self.commands.clone();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let _ = commands.send(command).await;
                    });
                }
            }
        }
    }
}

/// Starts a shard task driving `hub` on the current tokio runtime, with measurements of its
/// own.
pub fn spawn(hub: Hub, config: ShardConfig) -> (ShardHandle, JoinHandle<()>) {
    spawn_with_telemetry(hub, config, Arc::default())
}

/// [`spawn`], counting into `telemetry` (which several shards of a server may share).
pub fn spawn_with_telemetry(
    hub: Hub,
    config: ShardConfig,
    telemetry: Arc<Telemetry>,
) -> (ShardHandle, JoinHandle<()>) {
    let (commands, inbound) = mpsc::channel(config.inbound_capacity.max(1));
    let handle = ShardHandle {
        commands,
        outbound_capacity: config.outbound_capacity.max(1),
        telemetry: Arc::clone(&telemetry),
    };
    let task = tokio::spawn(run(hub, inbound, telemetry));
    (handle, task)
}

/// Where a connection's outputs go.
enum Peer {
    /// A socket of this process, through its outbox.
    Local(OutboxSender),
    /// A socket of another node, through the sink the caller drains.
    Remote(RemoteSink),
}

/// The time now, on tokio's clock, so that tests can pause it.
fn now() -> StdInstant {
    Instant::now().into_std()
}

type AlexaReplies =
    HashMap<AlexaRequestId, oneshot::Sender<Result<MessagePayload<'static>, Refused>>>;

/// Tracked frames handed to other nodes' sockets, awaiting word of their writing, at most.
/// Past it a frame is taken as unwritten at once (held again), so that a silent node cannot
/// grow the table.
const MAX_REMOTE_RECEIPTS: usize = 65_536;

/// What the shard task holds besides its hub.
struct State<'a> {
    peers: HashMap<ConnId, Peer>,
    alexa: AlexaReplies,
    /// Tracked frames sent to remote connections: (connection, token) to the receipt and a
    /// copy of the frame, to hold it again if it comes back unwritten.
    receipts: HashMap<(ConnId, u64), (Receipt, Frame)>,
    next_token: u64,
    telemetry: &'a Telemetry,
    /// Where held-message changes go, when tracked, and those waiting for room there.
    held_sink: Option<HeldSink>,
    held_backlog: Vec<HeldChange>,
}

async fn run(mut hub: Hub, mut inbound: mpsc::Receiver<Command>, telemetry: Arc<Telemetry>) {
    let mut state = State {
        peers: HashMap::new(),
        alexa: HashMap::new(),
        receipts: HashMap::new(),
        next_token: 0,
        telemetry: &telemetry,
        held_sink: None,
        held_backlog: Vec::new(),
    };
    loop {
        let deadline = hub.poll_timeout();
        tokio::select! {
            command = inbound.recv() => {
                let Some(command) = command else { break };
                hub.set_observing(state.telemetry.observing());
                step(&mut hub, &mut state, command);
                // Take what else is waiting, up to a budget, before waiting again.
                for _ in 0..COMMANDS_PER_WAKEUP {
                    let Ok(command) = inbound.try_recv() else { break };
                    step(&mut hub, &mut state, command);
                }
                report_held(&mut hub, &mut state);
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                let at = now();
                hub.set_observing(state.telemetry.observing());
                hub.handle_timeout(at);
                debug_assert!(hub.poll_timeout().is_none_or(|next| next > at), "timers must move");
                while let Some(output) = hub.poll_output() {
                    dispatch(&mut hub, &mut state, output, None);
                }
                report_held(&mut hub, &mut state);
            }
        }
    }
}

/// Hands the held-message changes of the last steps to the sink, when they are tracked.
fn report_held(hub: &mut Hub, state: &mut State<'_>) {
    let Some(sink) = &state.held_sink else {
        return;
    };
    let mut changes = hub.take_held_changes(now());
    if changes.is_empty() && state.held_backlog.is_empty() {
        return;
    }
    if !state.held_backlog.is_empty() {
        let mut backlog = std::mem::take(&mut state.held_backlog);
        backlog.append(&mut changes);
        changes = backlog;
    }
    match sink.try_send(changes) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(mut changes)) => {
            if changes.len() > MAX_HELD_BACKLOG {
                let dropped = changes.len() - MAX_HELD_BACKLOG;
                changes.drain(..dropped);
                if let Some(suppressed) = HELD_DROPPED.check() {
                    tracing::warn!(
                        dropped,
                        suppressed,
                        "held-message changes dropped: their copy is behind"
                    );
                }
            }
            state.held_backlog = changes;
        }
        Err(mpsc::error::TrySendError::Closed(_)) => state.held_sink = None,
    }
}

static HELD_DROPPED: crate::LogLimiter = crate::LogLimiter::new(std::time::Duration::from_secs(10));

/// Commands handled per wakeup of the shard task before it waits again.
const COMMANDS_PER_WAKEUP: usize = 256;

/// Slow consumers are closed as often as peers stop reading; one line per period says so.
static SLOW_CONSUMER: crate::LogLimiter =
    crate::LogLimiter::new(std::time::Duration::from_secs(10));

/// Handles one command and carries out every output it caused, each relayed frame stamped
/// with when the message it relays was read.
fn step(hub: &mut Hub, state: &mut State<'_>, command: Command) {
    let read_at = handle(hub, state, command);
    while let Some(output) = hub.poll_output() {
        dispatch(hub, state, output, read_at);
    }
}

async fn sleep_until(deadline: Option<StdInstant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(Instant::from_std(deadline)).await;
    }
}

/// A tracked frame is written, or never will be: its hub hears of it.
fn acked(hub: &mut Hub, state: &mut State<'_>, ack: Ack, frame: Option<Frame>) {
    let now = now();
    match (ack, frame) {
        (Ack::Hub(receipt), None) => hub.handle_written(now, *receipt),
        (Ack::Hub(receipt), Some(frame)) => hub.handle_unwritten(now, *receipt, frame),
        (Ack::Link { conn, token }, written) => {
            if let Some((receipt, copy)) = state.receipts.remove(&(conn, token)) {
                match written {
                    None => hub.handle_written(now, receipt),
                    Some(_) => hub.handle_unwritten(now, receipt, copy),
                }
            }
        }
    }
}

/// Hands `command` to the hub; returns when the frame it carried was read, if it did.
fn handle(hub: &mut Hub, state: &mut State<'_>, command: Command) -> Option<StdInstant> {
    let now = now();
    match command {
        Command::Open {
            open,
            outbound,
            reply,
        } => {
            let result = hub.handle_open(now, open);
            if let Ok(conn) = result {
                state.peers.insert(conn, Peer::Local(outbound));
            }
            if let Err(Ok(conn)) = reply.send(result) {
                // The connection went away while waiting: forget it at once.
                state.peers.remove(&conn);
                hub.handle_close(now, conn);
            }
        }
        Command::OpenRemote { open, sink, reply } => {
            let result = hub.handle_open(now, open);
            if let Ok(conn) = result {
                state.peers.insert(conn, Peer::Remote(sink));
            }
            if let Err(Ok(conn)) = reply.send(result) {
                state.peers.remove(&conn);
                hub.handle_close(now, conn);
            }
        }
        Command::Established(conn) => hub.handle_established(now, conn),
        Command::Frame(conn, text, read_at) => {
            // The hub's clock is tokio's (pausable in tests); `read_at` is the system's.
            let read_at_hub = now.checked_sub(read_at.elapsed()).unwrap_or(now);
            hub.handle_frame_read_at(now, read_at_hub, conn, &text);
            return Some(read_at);
        }
        Command::Keepalive(conn) => hub.handle_keepalive(now, conn),
        Command::Closed(conn) => {
            state.peers.remove(&conn);
            hub.handle_close(now, conn);
        }
        Command::Alexa { offer, reply } => match hub.handle_alexa_offer(now, offer) {
            Ok(request) => {
                state.alexa.insert(request, reply);
            }
            Err(refused) => {
                let _ = reply.send(Err(refused));
            }
        },
        Command::Drain => hub.drain(now),
        Command::ReconnectIceServers(Some(arn)) => hub.reconnect_ice_servers(now, &arn),
        Command::ReconnectIceServers(None) => hub.reconnect_ice_servers_all(now),
        Command::ChannelUpdated(arn, ttl, revision) => {
            hub.handle_channel_updated(now, &arn, ttl, revision);
        }
        Command::ChannelDeleted(arn) => hub.handle_channel_deleted(now, &arn),
        Command::Counters(reply) => {
            let _ = reply.send(hub.counters().clone());
        }
        Command::ChannelViews(reply) => {
            let _ = reply.send(hub.channel_views());
        }
        Command::Written(acks) => {
            for ack in acks {
                acked(hub, state, ack, None);
            }
        }
        Command::Unwritten(frames) => {
            for (ack, frame) in frames {
                acked(hub, state, ack, Some(frame));
            }
        }
        Command::TrackHeld(sink) => {
            hub.set_tracking_held(true);
            state.held_sink = Some(sink);
        }
        Command::RestoreHeld {
            arn,
            ttl,
            revision,
            held,
            reply,
        } => {
            let _ = reply.send(hub.restore_held(now, &arn, ttl, revision, held));
        }
        Command::ExportHeld(arn, reply) => {
            let _ = reply.send(hub.export_held(now, &arn));
        }
        Command::Evict(arn) => hub.evict_channel(now, &arn),
        Command::GoAwayLocal => {
            let local: Vec<ConnId> = state
                .peers
                .iter()
                .filter(|(_, peer)| matches!(peer, Peer::Local(_)))
                .map(|(conn, _)| *conn)
                .collect();
            tracing::debug!(
                connections = local.len(),
                "GO_AWAY to this process's sockets"
            );
            hub.go_away_connections(now, &local);
        }
        Command::RemoteGone(conns) => {
            for conn in conns {
                state.peers.remove(&conn);
                hub.handle_close(now, conn);
                let tokens: Vec<(ConnId, u64)> = state
                    .receipts
                    .keys()
                    .filter(|(c, _)| *c == conn)
                    .copied()
                    .collect();
                for key in tokens {
                    if let Some((receipt, frame)) = state.receipts.remove(&key) {
                        hub.handle_unwritten(now, receipt, frame);
                    }
                }
            }
        }
    }
    None
}

fn dispatch(hub: &mut Hub, state: &mut State<'_>, output: Output, read_at: Option<StdInstant>) {
    match output {
        Output::Deliver { conn, frame } => {
            push(hub, state, conn, (frame, read_at, None));
        }
        Output::DeliverTracked {
            conn,
            frame,
            receipt,
        } => {
            push(
                hub,
                state,
                conn,
                (frame, read_at, Some(Ack::Hub(Box::new(receipt)))),
            );
        }
        Output::Close { conn, reason } => match state.peers.remove(&conn) {
            Some(Peer::Local(outbound)) => outbound.close(reason.into()),
            Some(Peer::Remote(sink)) => {
                let _ = sink.try_send(RemoteOutput {
                    conn,
                    kind: RemoteOutputKind::Close(reason.into()),
                });
            }
            None => {}
        },
        Output::AlexaAnswer { request, result } => {
            if let Some(reply) = state.alexa.remove(&request) {
                let _ = reply.send(result);
            }
        }
        Output::Observed(observation) => state.telemetry.observed(observation),
        other => tracing::warn!(?other, "unknown hub output"),
    }
}

/// Queues `queued` for `conn`: into its outbox, or to the node that holds its socket. A slow
/// reader is closed, not buffered for; a tracked frame that cannot be queued goes back to the
/// hub unwritten.
fn push(hub: &mut Hub, state: &mut State<'_>, conn: ConnId, queued: Queued) {
    let (frame, read_at, ack) = queued;
    match state.peers.get(&conn) {
        None => {
            if let Some(Ack::Hub(receipt)) = ack {
                hub.handle_unwritten(now(), *receipt, frame);
            }
        }
        Some(Peer::Local(outbound)) => match outbound.push((frame, read_at, ack)) {
            Ok(()) => {}
            Err((error, (frame, _, ack))) => {
                if let Some(Ack::Hub(receipt)) = ack {
                    hub.handle_unwritten(now(), *receipt, frame);
                }
                match error {
                    PushError::Full => {
                        // A slow reader is closed, not buffered for.
                        if let Some(suppressed) = SLOW_CONSUMER.check() {
                            tracing::debug!(?conn, suppressed, "closing a slow consumer");
                        }
                        if let Some(Peer::Local(outbound)) = state.peers.remove(&conn) {
                            outbound.close(CloseCommand {
                                code: SLOW_CONSUMER_CLOSE_CODE,
                                reason: "slow consumer",
                            });
                        }
                        hub.handle_close(now(), conn);
                    }
                    PushError::Gone => {
                        state.peers.remove(&conn);
                        hub.handle_close(now(), conn);
                    }
                }
            }
        },
        Some(Peer::Remote(sink)) => {
            let token = match ack {
                Some(Ack::Hub(receipt)) if state.receipts.len() < MAX_REMOTE_RECEIPTS => {
                    state.next_token += 1;
                    let token = state.next_token;
                    state
                        .receipts
                        .insert((conn, token), (*receipt, frame.clone()));
                    Some(token)
                }
                Some(Ack::Hub(receipt)) => {
                    hub.handle_unwritten(now(), *receipt, frame);
                    return;
                }
                _ => None,
            };
            let output = RemoteOutput {
                conn,
                kind: RemoteOutputKind::Frame { frame, token },
            };
            if let Err(err) = sink.try_send(output) {
                // The link to the other node is backed up: the connection is closed, as a
                // slow consumer would be, and its tracked frame held again.
                let output = match err {
                    mpsc::error::TrySendError::Full(output)
                    | mpsc::error::TrySendError::Closed(output) => output,
                };
                if let RemoteOutputKind::Frame {
                    token: Some(token), ..
                } = output.kind
                    && let Some((receipt, frame)) = state.receipts.remove(&(conn, token))
                {
                    hub.handle_unwritten(now(), receipt, frame);
                }
                if let Some(Peer::Remote(sink)) = state.peers.remove(&conn) {
                    let _ = sink.try_send(RemoteOutput {
                        conn,
                        kind: RemoteOutputKind::Close(CloseCommand {
                            code: SLOW_CONSUMER_CLOSE_CODE,
                            reason: "slow consumer",
                        }),
                    });
                }
                hub.handle_close(now(), conn);
            }
        }
    }
}
