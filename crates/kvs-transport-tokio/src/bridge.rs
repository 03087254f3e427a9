//! Sockets whose hub is in another process: a cluster node serves the WebSocket of a channel
//! that another node owns. The connection task is the same [`crate::serve_websocket`] as for
//! a local hub; its [`Registration`] just talks to a bridge task instead of a shard, which
//! turns what the socket does into [`BridgeEvent`]s for the caller to forward to the owner,
//! and writes what the owner sends ([`Bridge::deliver`], [`Bridge::close`]) to the socket.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kvs_signaling_core::{ConnId, Frame};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::outbox::{Ack, OutboxSender, PushError, outbox};
use crate::shard::{
    CloseCommand, Command, Registration, SLOW_CONSUMER_CLOSE_CODE, ShardConfig, ShardHandle,
    ShardStopped,
};
use crate::telemetry::Telemetry;

/// What a bridged socket did, for its owner's hub.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BridgeEvent {
    /// The socket is up (its `101` written).
    Established(ConnId),
    /// A text message arrived, read off the socket at this time.
    Frame(ConnId, String, std::time::Instant),
    /// The client pinged.
    Keepalive(ConnId),
    /// The socket is closed.
    Closed(ConnId),
    /// A tracked frame was written to the socket (`true`), or never will be (`false`).
    Acked {
        /// The connection.
        conn: ConnId,
        /// The owner's token for the frame.
        token: u64,
        /// Whether it was written.
        written: bool,
    },
}

/// Commands of the bridge task besides those its connections send.
enum Order {
    Register(ConnId, OutboxSender),
    Deliver(ConnId, Frame, Option<u64>),
    Close(ConnId, CloseCommand),
}

/// A bridge: registrations for local sockets of remote channels, and the way to write to them.
#[derive(Debug, Clone)]
pub struct Bridge {
    handle: ShardHandle,
    orders: mpsc::Sender<Order>,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Register(..) => "Register",
            Self::Deliver(..) => "Deliver",
            Self::Close(..) => "Close",
        })
    }
}

/// Starts a bridge task: what its sockets do goes to `events` (bounded: when the caller falls
/// behind, the sockets' reads wait).
pub fn spawn_bridge(
    config: ShardConfig,
    telemetry: Arc<Telemetry>,
    events: mpsc::Sender<BridgeEvent>,
) -> (Bridge, JoinHandle<()>) {
    let (commands, inbound) = mpsc::channel(config.inbound_capacity.max(1));
    let (orders, order_rx) = mpsc::channel(config.inbound_capacity.max(1));
    let handle = ShardHandle::new(commands, config.outbound_capacity.max(1), telemetry);
    let task = tokio::spawn(run(inbound, order_rx, events));
    (
        Bridge {
            handle,
            orders,
            next_id: Arc::new(AtomicU64::new(1)),
        },
        task,
    )
}

impl Bridge {
    /// A registration for a new local socket: its id (which the caller maps to the owner's
    /// connection), and what [`crate::serve_websocket`] serves it with.
    pub async fn register(&self) -> Result<Registration, ShardStopped> {
        let raw = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = ConnId::from_raw(raw);
        let (sender, receiver) = outbox(self.handle.outbound_capacity());
        self.orders
            .send(Order::Register(conn, sender))
            .await
            .map_err(|_| ShardStopped)?;
        Ok(Registration {
            conn,
            shard: self.handle.clone(),
            outbound: receiver,
        })
    }

    /// Writes `frame` to the socket `conn`; with a `token`, says whether it was written
    /// ([`BridgeEvent::Acked`]).
    pub async fn deliver(
        &self,
        conn: ConnId,
        frame: Frame,
        token: Option<u64>,
    ) -> Result<(), ShardStopped> {
        self.orders
            .send(Order::Deliver(conn, frame, token))
            .await
            .map_err(|_| ShardStopped)
    }

    /// Closes the socket `conn` with `command`.
    pub async fn close(&self, conn: ConnId, command: CloseCommand) -> Result<(), ShardStopped> {
        self.orders
            .send(Order::Close(conn, command))
            .await
            .map_err(|_| ShardStopped)
    }

    /// [`Bridge::close`] without waiting, for a caller the bridge may be waiting on: at once
    /// when the bridge's queue has room, else from a task of its own.
    pub fn close_detached(&self, conn: ConnId, command: CloseCommand) {
        match self.orders.try_send(Order::Close(conn, command)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(order)) => {
                let orders = self.orders.clone();
                tokio::spawn(async move {
                    let _ = orders.send(order).await;
                });
            }
        }
    }
}

async fn run(
    mut inbound: mpsc::Receiver<Command>,
    mut orders: mpsc::Receiver<Order>,
    events: mpsc::Sender<BridgeEvent>,
) {
    let mut links: HashMap<ConnId, OutboxSender> = HashMap::new();
    loop {
        let emitted = tokio::select! {
            command = inbound.recv() => match command {
                Some(command) => from_socket(&mut links, command),
                None => break,
            },
            order = orders.recv() => match order {
                Some(order) => from_owner(&mut links, order),
                None => break,
            },
        };
        for event in emitted {
            if events.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// What a socket's task reports.
fn from_socket(links: &mut HashMap<ConnId, OutboxSender>, command: Command) -> Vec<BridgeEvent> {
    match command {
        Command::Established(conn) => vec![BridgeEvent::Established(conn)],
        Command::Frame(conn, text, read_at) => vec![BridgeEvent::Frame(conn, text, read_at)],
        Command::Keepalive(conn) => vec![BridgeEvent::Keepalive(conn)],
        // Said once: by the socket's task as it ends, or by its registration when dropped.
        Command::Closed(conn) => match links.remove(&conn) {
            Some(_) => vec![BridgeEvent::Closed(conn)],
            None => Vec::new(),
        },
        Command::Written(acks) => acks
            .into_iter()
            .filter_map(|ack| match ack {
                Ack::Link { conn, token } => Some(BridgeEvent::Acked {
                    conn,
                    token,
                    written: true,
                }),
                Ack::Hub(_) => None,
            })
            .collect(),
        Command::Unwritten(frames) => frames
            .into_iter()
            .filter_map(|(ack, _)| match ack {
                Ack::Link { conn, token } => Some(BridgeEvent::Acked {
                    conn,
                    token,
                    written: false,
                }),
                Ack::Hub(_) => None,
            })
            .collect(),
        // Nothing else is sent to a bridge.
        _ => Vec::new(),
    }
}

/// What the owner orders.
fn from_owner(links: &mut HashMap<ConnId, OutboxSender>, order: Order) -> Vec<BridgeEvent> {
    match order {
        Order::Register(conn, sender) => {
            links.insert(conn, sender);
            Vec::new()
        }
        Order::Deliver(conn, frame, token) => {
            let unwritten = |conn| {
                token
                    .map(|token| BridgeEvent::Acked {
                        conn,
                        token,
                        written: false,
                    })
                    .into_iter()
                    .collect::<Vec<_>>()
            };
            let Some(link) = links.get(&conn) else {
                return unwritten(conn);
            };
            let ack = token.map(|token| Ack::Link { conn, token });
            match link.push((frame, None, ack)) {
                Ok(()) => Vec::new(),
                Err((PushError::Full, _)) => {
                    // A slow reader is closed, not buffered for.
                    if let Some(link) = links.remove(&conn) {
                        link.close(CloseCommand {
                            code: SLOW_CONSUMER_CLOSE_CODE,
                            reason: "slow consumer",
                        });
                    }
                    let mut events = unwritten(conn);
                    events.push(BridgeEvent::Closed(conn));
                    events
                }
                Err((PushError::Gone, _)) => {
                    links.remove(&conn);
                    unwritten(conn)
                }
            }
        }
        Order::Close(conn, command) => {
            if let Some(link) = links.remove(&conn) {
                link.close(command);
            }
            Vec::new()
        }
    }
}
