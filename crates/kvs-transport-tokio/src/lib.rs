//! Tokio and WebSocket IO for KVS WebRTC signaling.
//!
//! The server side carries out the decisions of `kvs-signaling-core`'s `Hub`:
//!
//! - [`spawn`] starts a shard task that owns a hub by value, fed through one bounded queue by
//!   the connections' readers; after every input it drains the hub's outputs into each
//!   connection's own bounded queue. A connection whose queue is full is closed
//!   ([`SLOW_CONSUMER_CLOSE_CODE`]) rather than buffered for, and no lock is shared with the hub.
//! - [`ShardHandle::open`] registers a connection (or returns the hub's refusal, to answer the
//!   upgrade request with), and [`serve_websocket`] serves its socket with a reader and a
//!   writer task.
//!
//! The transport makes no routing decision of its own.
//!
//! The client side is [`SignalingClient`]: a master or viewer driving `kvs-signaling-core`'s
//! `ClientSession`, with the REST calls and the presigned connect URL of `kvs-ice-rest`.

mod bridge;
mod client;
mod codec;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod internal;
mod listen;
mod log;
mod outbox;
mod shard;
mod telemetry;
mod tls;
mod ws;

pub use client::{
    ClientConfig, ClientError, ClientEvent, Events, Received, SendError, Sent, SignalingClient,
};
/// The TLS library this crate's API speaks (`rustls::ClientConfig`,
/// `rustls::ServerConfig`), re-exported so that users build those with the very version this
/// crate was built against, whatever other rustls their tree holds.
pub use rustls;

pub use bridge::{Bridge, BridgeEvent, spawn_bridge};
pub use codec::{HandshakeError, accept_key};
pub use listen::{LISTEN_BACKLOG, TcpTuning, listen};
pub use log::LogLimiter;
pub use shard::{
    CloseCommand, HeldSink, Registration, RemoteOutput, RemoteOutputKind, RemoteSink,
    SLOW_CONSUMER_CLOSE_CODE, ShardConfig, ShardHandle, ShardStopped, spawn, spawn_with_telemetry,
};
pub use telemetry::{HistogramSnapshot, LatencyHistogram, Observations, Telemetry};
pub use tls::{TlsStream, accept_tls};
pub use ws::{WebSocketLimits, serve_websocket};
