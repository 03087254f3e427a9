//! Routing across nodes: each live channel has one owner node, whose hub decides everything
//! for it; a socket on another node is bridged to the owner's hub through the nodes' inboxes.
//!
//! - A connect looks up the channel's owner, claiming the channel (one Lua script: the
//!   channel exists, and its owner is none or dead) when it has none; a node that claims a
//!   channel loads the messages its previous owner held ([`super::held`]) before anything else
//!   of the channel. On the owner a connect is an ordinary one; elsewhere the node registers
//!   the socket with its bridge, asks the owner to open it, and answers the upgrade request
//!   with the owner's verdict: `101`, or the owner's refusal as one server would give it.
//! - Frames, pings and closes of a bridged socket go to the owner's hub; what the hub sends
//!   the connection comes back to the socket's node. Each side checks the other's word
//!   against what it knows: a frame for a connection the owner does not know is answered
//!   `Gone` (the socket is closed), a delivery from a node that is not the socket's owner is
//!   refused.
//! - Channels move ([`super::moving`]) when their owner dies, shuts down or loses its claim.

#![allow(
    clippy::result_large_err,
    reason = "the error of these helpers is the ready HTTP answer, returned once per call"
)]

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kvs_signaling_core::{AlexaOffer, ChannelRecord, ConnId, Frame, OpenConnection, Refused};
use kvs_signaling_proto::{ChannelArn, ErrorType, MessagePayload, MessageTtlSeconds, PeerId};
use kvs_transport_tokio::{
    Bridge, BridgeEvent, CloseCommand, Registration, RemoteOutput, RemoteOutputKind, RemoteSink,
    ShardHandle,
};
use tokio::sync::{mpsc, oneshot};

use super::Cluster;
use super::wire::{Batch, Msg, OpenParams, Verdict};
use crate::app::Shards;

/// Claims a channel for `ARGV[1]` unless a live node owns it: it exists, and its owner is
/// none, or dead (its last heartbeat older than the TTL relative to the claimer's own).
/// Answers `MISSING`, `{OTHER, owner, epoch}`, `{MINE, epoch}` when the claimer owned it
/// already, or `{NEW, epoch, record, held...}` when it takes the channel: with the channel's
/// record and the messages held for it, field and value by turns, to load before anything
/// else of the channel. With `ARGV[3]` = `look`, only looks: answers `NONE` where it would
/// claim.
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'MISSING'} end
local owner = redis.call('HGET', KEYS[1], 'owner')
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if owner and owner ~= '' then
  if owner == ARGV[1] then return {'MINE', epoch} end
  local mine = redis.call('ZSCORE', KEYS[2], ARGV[1])
  local theirs = redis.call('ZSCORE', KEYS[2], owner)
  if theirs and mine and tonumber(theirs) >= tonumber(mine) - tonumber(ARGV[2]) then
    return {'OTHER', owner, epoch}
  end
end
if ARGV[3] == 'look' then return {'NONE'} end
local e = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', e)
local out = {'NEW', tostring(e), redis.call('HGET', KEYS[1], 'rec') or ''}
for _, v in ipairs(redis.call('HGETALL', KEYS[4])) do table.insert(out, v) end
return out
";

/// How long a socket's node waits for the owner's verdict on an open: the C SDK waits 5 s
/// for its upgrade.
pub(super) const VERDICT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the caller's node waits for an Alexa answer: the hub's own timeout, and a margin.
const ALEXA_TIMEOUT: Duration = Duration::from_secs(12);
/// Outputs of the local hubs for remote connections, waiting to be sent, at most: past it, a
/// connection is closed as a slow consumer.
const REMOTE_QUEUE: usize = 65_536;
/// Bridge events waiting for the router, at most: past it, bridged sockets' reads wait.
const OUTBOUND_EVENTS: usize = 16_384;
/// Frames of one bridged socket held while its channel moves, at most: more are dropped,
/// and counted.
pub(super) const MOVING_QUEUE: usize = 1024;

/// Where a channel's hub is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Owner {
    /// Here.
    Me,
    /// On this other node.
    Node(String),
}

/// A bridged socket of this node: its channel's owner and the owner's connection.
#[derive(Debug, Clone)]
pub(super) struct Link {
    pub(super) owner: String,
    pub(super) conn: u64,
    pub(super) arn: ChannelArn,
    /// The connect, to open it again at another owner.
    pub(super) open: OpenConnection,
    /// When its socket opened.
    pub(super) since: Instant,
    /// While its channel moves: the frames its client sent meanwhile (with their reading
    /// times), to send to the next owner in order.
    pub(super) moving: Option<Vec<(String, u64)>>,
}

/// A connection of a local hub whose socket another node holds.
#[derive(Debug, Clone)]
pub(super) struct Remote {
    pub(super) node: String,
    pub(super) link: u64,
    pub(super) arn: ChannelArn,
    /// Its hub's shard, and its id there (ids are per hub: each shard's run on their own).
    pub(super) shard: usize,
    pub(super) conn: ConnId,
}

/// The remote connections of this node's hubs, by the id other nodes know them by: one
/// sequence for the node, since each shard's hub numbers its connections on its own.
#[derive(Debug, Default)]
pub(super) struct Remotes {
    by_wire: HashMap<u64, Remote>,
    by_conn: HashMap<(usize, ConnId), u64>,
    next: u64,
}

impl Remotes {
    /// Records `remote`; its id for other nodes.
    pub(super) fn insert(&mut self, remote: Remote) -> u64 {
        self.next += 1;
        let wire = self.next;
        self.by_conn.insert((remote.shard, remote.conn), wire);
        self.by_wire.insert(wire, remote);
        wire
    }

    /// The remote connection node `from` holds the socket of, by its id.
    pub(super) fn get(&self, wire: u64, from: &str) -> Option<&Remote> {
        self.by_wire.get(&wire).filter(|remote| remote.node == from)
    }

    /// The id and the remote connection of `conn` of shard `shard`.
    pub(super) fn of_conn(&self, shard: usize, conn: ConnId) -> Option<(u64, &Remote)> {
        let wire = *self.by_conn.get(&(shard, conn))?;
        Some((wire, self.by_wire.get(&wire)?))
    }

    pub(super) fn remove(&mut self, wire: u64) -> Option<Remote> {
        let remote = self.by_wire.remove(&wire)?;
        self.by_conn.remove(&(remote.shard, remote.conn));
        Some(remote)
    }

    /// Removes and returns the remote connections `which` picks.
    pub(super) fn take(&mut self, which: impl Fn(&Remote) -> bool) -> Vec<Remote> {
        let wires: Vec<u64> = self
            .by_wire
            .iter()
            .filter(|(_, remote)| which(remote))
            .map(|(wire, _)| *wire)
            .collect();
        wires
            .into_iter()
            .filter_map(|wire| self.remove(wire))
            .collect()
    }

    /// How many there are.
    pub(super) fn len(&self) -> usize {
        self.by_wire.len()
    }

    /// The nodes holding sockets of `arn`.
    pub(super) fn nodes_of(&self, arn: &ChannelArn) -> BTreeSet<String> {
        self.by_wire
            .values()
            .filter(|remote| remote.arn == *arn)
            .map(|remote| remote.node.clone())
            .collect()
    }
}

/// An open waiting for the owner's verdict.
#[derive(Debug)]
struct PendingOpen {
    /// The link it makes (a new connect) or moves (`conn` still the old owner's).
    link: Link,
    link_id: u64,
    /// Whether the link exists already and moves.
    moving: bool,
    verdict: oneshot::Sender<Verdict>,
}

/// What the router counts, for the metrics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Bridged sockets opened at a channel's next owner.
    pub(crate) moved_links: AtomicU64,
    /// Bridged sockets closed because their channel could not be moved.
    pub(crate) unmoved_links: AtomicU64,
    /// Frames sent again to a next owner from a dead owner's inbox.
    pub(crate) replayed: AtomicU64,
    /// Frames dropped while their channel moved (a socket's queue was full).
    pub(crate) lost_moving: AtomicU64,
    /// The last move's duration, from the owner's loss to the last socket moved, in
    /// microseconds.
    pub(crate) last_move_us: AtomicU64,
    /// Opens and offers sent to a node that did not own the channel (any more).
    pub(crate) redirects: AtomicU64,
    /// Channels claimed by this node.
    pub(crate) claims: AtomicU64,
    /// Channels this node lost to another (found when a write was fenced).
    pub(crate) lost: AtomicU64,
    /// Held-message writes to Redis, and those refused by the fence.
    pub(crate) held_writes: AtomicU64,
    pub(crate) held_fenced: AtomicU64,
    /// Held messages loaded when claiming channels.
    pub(crate) held_loaded: AtomicU64,
    /// The inboxes' writer and reader.
    pub(crate) wire: Arc<super::wire::WireStats>,
}

/// The cluster's routing on this node.
#[derive(Debug)]
pub(crate) struct Router {
    pub(super) cluster: Arc<Cluster>,
    pub(super) shards: Shards,
    pub(super) bridge: Bridge,
    /// Where each shard's hub sends the outputs of its remote connections.
    sinks: Vec<RemoteSink>,
    out: mpsc::Sender<super::wire::Outgoing>,
    /// Messages to this node itself (its own bridged sockets of channels it owns), in order.
    loopback: mpsc::Sender<Msg>,
    /// Bridged sockets of this node, by their bridge id.
    pub(super) links: Mutex<HashMap<u64, Link>>,
    /// Remote connections of this node's hubs.
    pub(super) remotes: Mutex<Remotes>,
    /// Channels this node owns, with the epoch of its claim.
    pub(super) owned: Mutex<HashMap<ChannelArn, u64>>,
    /// Channels other nodes own, as last seen.
    pub(super) owners: Mutex<HashMap<ChannelArn, String>>,
    opens: Mutex<HashMap<u64, PendingOpen>>,
    alexa: Mutex<HashMap<u64, oneshot::Sender<Verdict>>>,
    /// Consoles' requests for other nodes' states.
    states: Mutex<HashMap<u64, oneshot::Sender<String>>>,
    /// Pauses of a channel this node gives up, waiting for the socket nodes' word.
    pub(super) pauses: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    /// One claim at a time on this node, so that a channel's held messages load once.
    claiming: tokio::sync::Mutex<()>,
    pub(super) next_req: AtomicU64,
    /// Set when this node shuts down: it takes no connects and claims no channel.
    pub(super) draining: AtomicBool,
    pub(crate) stats: Stats,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The service's error `name`, or InternalFailure for a name this server does not know.
fn refused(error: &str, message: String) -> Refused {
    let error_type = ErrorType::from_name(error).unwrap_or(ErrorType::InternalFailure);
    Refused::new(error_type, message)
}

/// Why a routed call could not be made: nothing to answer but an internal failure.
#[derive(Debug)]
pub(crate) struct Unrouted(pub(crate) String);

impl Router {
    /// The routing of `cluster` over this node's `shards`: its inbox read, its writer and
    /// bridge started, its watch on the other nodes' lives, and the copy of its hubs' held
    /// messages in Redis.
    pub(crate) async fn start(
        cluster: Arc<Cluster>,
        shards: Shards,
        config: kvs_transport_tokio::ShardConfig,
        telemetry: Arc<kvs_transport_tokio::Telemetry>,
    ) -> Arc<Self> {
        let (events_tx, mut events) = mpsc::channel(OUTBOUND_EVENTS);
        let (bridge, _) = kvs_transport_tokio::spawn_bridge(config, telemetry, events_tx);
        let mut sinks = Vec::new();
        let mut outputs = Vec::new();
        for _ in shards.all() {
            let (sink, remote_outputs) = mpsc::channel(REMOTE_QUEUE);
            sinks.push(sink);
            outputs.push(remote_outputs);
        }
        let wire = Arc::new(super::wire::WireStats::default());
        let out = super::wire::spawn_writer(
            cluster.redis.clone(),
            cluster.keys.clone(),
            cluster.node.clone(),
            Arc::clone(&cluster.liveness),
            Arc::clone(&wire),
        );
        let (batches_tx, mut batches) = mpsc::channel(1024);
        super::wire::spawn_reader(
            cluster.client.clone(),
            cluster.redis.clone(),
            cluster.keys.clone(),
            cluster.node.clone(),
            batches_tx,
            Arc::clone(&wire),
        );
        let (loopback, mut looped) = mpsc::channel(OUTBOUND_EVENTS);
        let router = Arc::new(Self {
            cluster,
            shards,
            bridge,
            sinks,
            out,
            loopback,
            links: Mutex::new(HashMap::new()),
            remotes: Mutex::new(Remotes::default()),
            owned: Mutex::new(HashMap::new()),
            owners: Mutex::new(HashMap::new()),
            opens: Mutex::new(HashMap::new()),
            alexa: Mutex::new(HashMap::new()),
            states: Mutex::new(HashMap::new()),
            pauses: Mutex::new(HashMap::new()),
            claiming: tokio::sync::Mutex::new(()),
            next_req: AtomicU64::new(1),
            draining: AtomicBool::new(false),
            stats: Stats {
                wire,
                ..Stats::default()
            },
        });
        super::held::start(&router).await;
        let weak = Arc::downgrade(&router);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let Some(router) = weak.upgrade() else { return };
                router.bridged(event).await;
            }
        });
        for (shard, mut remote_outputs) in outputs.into_iter().enumerate() {
            let weak = Arc::downgrade(&router);
            tokio::spawn(async move {
                while let Some(output) = remote_outputs.recv().await {
                    let Some(router) = weak.upgrade() else { return };
                    router.to_remote(shard, output).await;
                }
            });
        }
        // After a lapse of this node's heartbeat, it checks what it still owns before it acts
        // on anything read meanwhile.
        let (recovered_tx, recovered) = tokio::sync::watch::channel(0u64);
        let weak = Arc::downgrade(&router);
        let mut membership = router.cluster.liveness.watch();
        tokio::spawn(async move {
            let mut done = membership.borrow_and_update().lapses;
            let _ = recovered_tx.send(done);
            while membership.changed().await.is_ok() {
                let (lapses, buried) = {
                    let m = membership.borrow_and_update();
                    (m.lapses, m.lapse_buried)
                };
                if lapses == done {
                    continue;
                }
                let Some(router) = weak.upgrade() else { return };
                router.recover(buried).await;
                done = lapses;
                let _ = recovered_tx.send(done);
            }
        });
        let weak = Arc::downgrade(&router);
        tokio::spawn(async move {
            let mut recovered = recovered;
            // The last batch read from each node: one written twice is read once.
            let mut last: HashMap<String, u64> = HashMap::new();
            loop {
                let batch = tokio::select! {
                    batch = batches.recv() => match batch {
                        Some(batch) => batch,
                        None => return,
                    },
                    msg = looped.recv() => match msg {
                        Some(msg) => {
                            let Some(router) = weak.upgrade() else { return };
                            let me = router.cluster.node.clone();
                            router.received(&me, msg).await;
                            continue;
                        }
                        None => return,
                    },
                };
                let Some(router) = weak.upgrade() else { return };
                // Nothing read is acted on while this node may be taken for dead; after its
                // heartbeat lapsed, it first checks what it still owns, so that what was
                // queued for it meanwhile meets the channels as they are now.
                router.cluster.liveness.wait_valid().await;
                let lapses = router.cluster.liveness.membership().lapses;
                while *recovered.borrow_and_update() < lapses {
                    if recovered.changed().await.is_err() {
                        return;
                    }
                }
                let seen = last.entry(batch.from.clone()).or_insert(0);
                if batch.seq <= *seen {
                    continue;
                }
                *seen = batch.seq;
                let Batch { from, msgs, .. } = batch;
                for msg in msgs {
                    router.received(&from, msg).await;
                }
            }
        });
        let weak = Arc::downgrade(&router);
        let mut membership = router.cluster.liveness.watch();
        tokio::spawn(async move {
            let mut known_dead = BTreeSet::new();
            while membership.changed().await.is_ok() {
                let dead = membership.borrow_and_update().dead.clone();
                let newly: Vec<String> = dead.difference(&known_dead).cloned().collect();
                known_dead = dead;
                let Some(router) = weak.upgrade() else { return };
                for node in newly {
                    router.node_died(&node).await;
                }
            }
        });
        router
    }

    /// The live nodes that run with other shared settings than this node's (see
    /// `settings_fingerprint`): empty when all agree, or when Redis cannot tell.
    pub(crate) async fn drift(&self) -> Vec<String> {
        let mut redis = self.cluster.redis.clone();
        let published: HashMap<String, String> = match redis::cmd("HGETALL")
            .arg(self.cluster.keys.settings())
            .query_async(&mut redis)
            .await
        {
            Ok(published) => published,
            Err(_) => return Vec::new(),
        };
        let alive = self.cluster.liveness.membership().alive;
        alive
            .into_iter()
            .filter(|node| {
                published
                    .get(node)
                    .is_some_and(|theirs| *theirs != self.cluster.settings)
            })
            .collect()
    }

    /// This node's id in the cluster.
    pub(crate) fn node(&self) -> &str {
        &self.cluster.node
    }

    /// What the other live nodes' hubs hold, as their consoles would show it: `None` for a
    /// node that did not answer within a second.
    pub(crate) async fn other_states(&self) -> Vec<(String, Option<serde_json::Value>)> {
        let mut asked = Vec::new();
        for node in self.others() {
            let req = self.next_req.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            lock(&self.states).insert(req, tx);
            self.send(&node, Msg::States { req }).await;
            asked.push((node, req, rx));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let mut states = Vec::new();
        for (node, req, rx) in asked {
            let state = tokio::time::timeout_at(deadline, rx)
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|json| serde_json::from_str(&json).ok());
            lock(&self.states).remove(&req);
            states.push((node, state));
        }
        states
    }

    /// This node's cluster metrics, in Prometheus's text format.
    pub(crate) fn write_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let membership = self.cluster.liveness.membership();
        let stats = &self.stats;
        let wire = &stats.wire;
        let get = |value: &AtomicU64| value.load(Ordering::Relaxed);
        let mut metric = |kind: &str, name: &str, help: &str, value: f64| {
            let _ = writeln!(out, "# HELP kvs_cluster_{name} {help}");
            let _ = writeln!(out, "# TYPE kvs_cluster_{name} {kind}");
            let _ = writeln!(out, "kvs_cluster_{name} {value}");
        };
        let gauge = "gauge";
        let counter = "counter";
        metric(
            gauge,
            "valid",
            "1 while this node's heartbeat is recent enough to act; 0 while it cannot reach Redis.",
            f64::from(u8::from(self.cluster.liveness.is_valid())),
        );
        metric(
            gauge,
            "heartbeat_failures",
            "Heartbeats that failed in a row.",
            f64::from(membership.failures),
        );
        metric(
            counter,
            "heartbeat_lapses_total",
            "Times this node's heartbeat lapsed and came back.",
            membership.lapses as f64,
        );
        metric(
            gauge,
            "nodes_alive",
            "Nodes heard from within the TTL.",
            membership.alive.len() as f64,
        );
        metric(
            gauge,
            "nodes_dead",
            "Nodes not heard from for longer (forgotten after an hour).",
            membership.dead.len() as f64,
        );
        metric(
            gauge,
            "owned_channels",
            "Channels this node's hubs decide for.",
            lock(&self.owned).len() as f64,
        );
        metric(
            gauge,
            "remote_connections",
            "Connections of this node's hubs whose sockets other nodes hold.",
            lock(&self.remotes).len() as f64,
        );
        metric(
            gauge,
            "bridged_sockets",
            "Sockets of this node whose channels other nodes own.",
            lock(&self.links).len() as f64,
        );
        metric(
            counter,
            "claims_total",
            "Channels this node claimed.",
            get(&stats.claims) as f64,
        );
        metric(
            counter,
            "channels_lost_total",
            "Channels this node found another node had claimed.",
            get(&stats.lost) as f64,
        );
        metric(
            counter,
            "redirects_total",
            "Opens and Alexa offers sent to a node that did not own the channel.",
            get(&stats.redirects) as f64,
        );
        metric(
            counter,
            "moved_sockets_total",
            "Sockets of this node opened at their channel's next owner.",
            get(&stats.moved_links) as f64,
        );
        metric(
            counter,
            "unmoved_sockets_total",
            "Sockets of this node closed because their channel could not move.",
            get(&stats.unmoved_links) as f64,
        );
        metric(
            counter,
            "replayed_messages_total",
            "Messages sent again to a channel's next owner from a dead owner's inbox.",
            get(&stats.replayed) as f64,
        );
        metric(
            counter,
            "moving_messages_lost_total",
            "Messages dropped while their channel moved.",
            get(&stats.lost_moving) as f64,
        );
        metric(
            gauge,
            "last_move_seconds",
            "How long the last move of a channel's sockets here took, from the owner's loss.",
            get(&stats.last_move_us) as f64 / 1e6,
        );
        metric(
            counter,
            "held_writes_total",
            "Writes of held messages to Redis.",
            get(&stats.held_writes) as f64,
        );
        metric(
            counter,
            "held_fenced_total",
            "Writes of held messages refused because another node owns the channel.",
            get(&stats.held_fenced) as f64,
        );
        metric(
            counter,
            "held_loaded_total",
            "Held messages loaded when claiming channels.",
            get(&stats.held_loaded) as f64,
        );
        metric(
            counter,
            "inbox_entries_written_total",
            "Entries written to other nodes' inboxes (one XADD each).",
            get(&wire.batches_written) as f64,
        );
        metric(
            counter,
            "inbox_messages_written_total",
            "Messages in them.",
            get(&wire.messages_written) as f64,
        );
        metric(
            counter,
            "inbox_messages_lost_total",
            "Messages to other nodes given up (Redis unreachable, or this node's heartbeat stale).",
            get(&wire.messages_lost) as f64,
        );
        metric(
            counter,
            "redis_write_rounds_total",
            "Pipelines of inbox writes.",
            get(&wire.write_rounds) as f64,
        );
        metric(
            counter,
            "redis_write_seconds_total",
            "Time spent in them, retries included.",
            get(&wire.write_us) as f64 / 1e6,
        );
        metric(
            counter,
            "inbox_entries_read_total",
            "Entries read from this node's inbox.",
            get(&wire.batches_read) as f64,
        );
        metric(
            counter,
            "inbox_messages_read_total",
            "Messages in them.",
            get(&wire.messages_read) as f64,
        );
        metric(
            counter,
            "inbox_lag_seconds_total",
            "Time entries spent in this node's inbox before it read them (divide by the entries read).",
            get(&wire.lag_ms) as f64 / 1e3,
        );
    }

    /// What keeps this node from serving fully, for `/health` and `/ready`: `None` when all
    /// is well.
    pub(crate) fn trouble(&self) -> Option<String> {
        let membership = self.cluster.liveness.membership();
        if self.cluster.liveness.is_valid() {
            return None;
        }
        Some(format!(
            "cluster: this node cannot reach Redis at {} ({} heartbeats failed in a row); it \
             serves only the sockets it holds for channels it owns, and takes no connects",
            self.cluster.where_, membership.failures
        ))
    }

    /// Sends `msg` to `node`: through its inbox, or, to this node, in order with its inbox.
    pub(super) async fn send(&self, node: &str, msg: Msg) {
        tracing::trace!(to = node, ?msg, "to a node");
        if node == self.cluster.node {
            let _ = self.loopback.send(msg).await;
        } else {
            let _ = self
                .out
                .send(super::wire::Outgoing::Msg(node.to_owned(), msg))
                .await;
        }
    }

    /// Waits until everything sent to other nodes so far is written to their inboxes (or
    /// given up).
    pub(super) async fn flush_out(&self) {
        let (done, written) = oneshot::channel();
        if self
            .out
            .send(super::wire::Outgoing::Flush(done))
            .await
            .is_ok()
        {
            let _ = written.await;
        }
    }

    /// The owner of `arn`: as known, or claimed for this node when it has no live one (then
    /// the channel's held messages are loaded into this node's hub first). `None` when the
    /// channel does not exist. A node that shuts down claims nothing: `None` too when nobody
    /// owns the channel then.
    pub(super) async fn owner(
        &self,
        arn: &ChannelArn,
        fresh: bool,
    ) -> Result<Option<Owner>, Unrouted> {
        if !fresh && let Some(owner) = self.known_owner(arn) {
            return Ok(Some(owner));
        }
        if !self.cluster.liveness.is_valid() {
            return Err(Unrouted(
                "this node cannot reach the cluster's Redis; connect again (to another node)"
                    .to_owned(),
            ));
        }
        let _claiming = self.claiming.lock().await;
        if !fresh && let Some(owner) = self.known_owner(arn) {
            return Ok(Some(owner));
        }
        let look = self.draining.load(Ordering::Relaxed);
        let ttl_ms = u64::try_from(self.cluster.liveness.node_ttl().as_millis()).unwrap_or(0);
        let keys = &self.cluster.keys;
        let answer: Vec<String> = self
            .cluster
            .retrying(|mut redis| async move {
                redis::Script::new(CLAIM)
                    .key(keys.channel(arn.as_str()))
                    .key(keys.nodes())
                    .key(keys.epochs())
                    .key(keys.held(arn.as_str()))
                    .arg(&self.cluster.node)
                    .arg(ttl_ms)
                    .arg(if look { "look" } else { "claim" })
                    .invoke_async(&mut redis)
                    .await
            })
            .await
            .map_err(|err| Unrouted(format!("the cluster's Redis did not answer: {err}")))?;
        let epoch = |at: usize| answer.get(at).and_then(|e| e.parse::<u64>().ok());
        match answer.first().map(String::as_str) {
            Some("MINE") => {
                let epoch = epoch(1).unwrap_or(0);
                let known = lock(&self.owned).insert(arn.clone(), epoch);
                if known.is_none() {
                    // Redis says this node owns it, but this node forgot (it gave it up and
                    // the release was lost): nothing of the channel is in its hub.
                    tracing::debug!(%arn, "owning a channel this node had forgotten");
                }
                lock(&self.owners).remove(arn);
                Ok(Some(Owner::Me))
            }
            Some("NEW") => {
                let epoch = epoch(1).unwrap_or(0);
                self.stats.claims.fetch_add(1, Ordering::Relaxed);
                let record = answer.get(2).map(String::as_str).unwrap_or_default();
                let held = answer.get(3..).unwrap_or_default();
                self.load_claimed(arn, record, held).await;
                lock(&self.owned).insert(arn.clone(), epoch);
                lock(&self.owners).remove(arn);
                tracing::debug!(%arn, epoch, "claimed a channel");
                Ok(Some(Owner::Me))
            }
            Some("OTHER") => {
                let node = answer.get(1).cloned().unwrap_or_default();
                lock(&self.owned).remove(arn);
                lock(&self.owners).insert(arn.clone(), node.clone());
                Ok(Some(Owner::Node(node)))
            }
            Some("NONE") => Ok(None),
            _ => Ok(None),
        }
    }

    fn known_owner(&self, arn: &ChannelArn) -> Option<Owner> {
        if lock(&self.owned).contains_key(arn) {
            return Some(Owner::Me);
        }
        lock(&self.owners).get(arn).cloned().map(Owner::Node)
    }

    /// Loads what the previous owner of a channel just claimed held for it.
    async fn load_claimed(&self, arn: &ChannelArn, record: &str, held: &[String]) {
        if held.is_empty() {
            return;
        }
        let (ttl, revision) = match serde_json::from_str::<ChannelRecord>(record) {
            Ok(record) => (record.message_ttl(), record.revision()),
            Err(_) => (MessageTtlSeconds::default(), 0),
        };
        let changes = super::held::decode(arn, held);
        let count: usize = changes.iter().map(|change| change.messages.len()).sum();
        match self
            .shards
            .of(arn)
            .restore_held(arn.clone(), ttl, revision, changes)
            .await
        {
            Ok(kept) => {
                self.stats
                    .held_loaded
                    .fetch_add(kept as u64, Ordering::Relaxed);
                tracing::debug!(%arn, kept, of = count, "loaded the held messages of a claimed channel");
            }
            Err(_) => tracing::warn!(%arn, "the hub stopped while loading held messages"),
        }
    }

    /// A connect: opened in the owner's hub, here or on its node.
    pub(crate) async fn open(
        &self,
        open: OpenConnection,
    ) -> Result<Result<Registration, Refused>, Unrouted> {
        if self.draining.load(Ordering::Relaxed) {
            return Ok(Err(Refused::new(
                ErrorType::InternalFailure,
                "this node is shutting down; connect again",
            )));
        }
        let arn = open.channel_arn.clone();
        for attempt in 0..3 {
            if attempt > 0 {
                // The owner may be loading the channel, or just gone: a moment to settle.
                tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
            }
            let Some(owner) = self.owner(&arn, attempt > 0).await? else {
                return Ok(Err(not_found(&arn)));
            };
            let node = match owner {
                Owner::Me => {
                    return self
                        .shards
                        .of(&arn)
                        .open(open)
                        .await
                        .map_err(|_| Unrouted("the hub has stopped".to_owned()));
                }
                Owner::Node(node) => node,
            };
            let registration = self
                .bridge
                .register()
                .await
                .map_err(|_| Unrouted("the bridge has stopped".to_owned()))?;
            let link_id = registration.conn().to_raw();
            let link = Link {
                owner: node.clone(),
                conn: 0,
                arn: arn.clone(),
                open: open.clone(),
                since: Instant::now(),
                moving: None,
            };
            match self.open_at(&node, link_id, link, false).await {
                // The link was recorded when the verdict was read, before any frame the
                // owner sent after it.
                Ok(Verdict::Ok(_)) => return Ok(Ok(registration)),
                Ok(Verdict::Refused { error, message }) => {
                    return Ok(Err(refused(&error, message)));
                }
                // Not (or no longer) the owner, or no answer (it may have died): look again.
                Ok(Verdict::NotOwner { .. }) | Err(()) => {
                    self.stats.redirects.fetch_add(1, Ordering::Relaxed);
                    lock(&self.owners).remove(&arn);
                }
            }
        }
        Err(Unrouted(format!(
            "the owner of channel {arn} did not take the connect; try again"
        )))
    }

    /// Asks `node` to open `link` (new, or `moving` from its previous owner), and waits for
    /// its verdict; `Err` when none came in time.
    pub(super) async fn open_at(
        &self,
        node: &str,
        link_id: u64,
        link: Link,
        moving: bool,
    ) -> Result<Verdict, ()> {
        let params = OpenParams::new(&link.open);
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.opens).insert(
            req,
            PendingOpen {
                link,
                link_id,
                moving,
                verdict: tx,
            },
        );
        self.send(
            node,
            Msg::Open {
                req,
                link: link_id,
                open: params,
            },
        )
        .await;
        let verdict = tokio::time::timeout(VERDICT_TIMEOUT, rx).await;
        lock(&self.opens).remove(&req);
        match verdict {
            Ok(Ok(verdict)) => Ok(verdict),
            _ => Err(()),
        }
    }

    /// A SendAlexaOfferToMaster call, answered by the owner's hub.
    pub(crate) async fn alexa_offer(
        &self,
        offer: AlexaOffer,
    ) -> Result<Result<MessagePayload<'static>, Refused>, Unrouted> {
        let arn = offer.channel_arn.clone();
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
            }
            let Some(owner) = self.owner(&arn, attempt > 0).await? else {
                return Ok(Err(not_found(&arn)));
            };
            let node = match owner {
                Owner::Me => {
                    return self
                        .shards
                        .of(&arn)
                        .alexa_offer(offer)
                        .await
                        .map_err(|_| Unrouted("the hub has stopped".to_owned()));
                }
                Owner::Node(node) => node,
            };
            let req = self.next_req.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            lock(&self.alexa).insert(req, tx);
            self.send(
                &node,
                Msg::Alexa {
                    req,
                    arn: arn.as_str().to_owned(),
                    sender: offer.sender_client_id.as_str().to_owned(),
                    payload: offer.payload.as_str().to_owned(),
                    ttl: offer.message_ttl.get(),
                    rev: offer.ttl_revision,
                },
            )
            .await;
            let verdict = tokio::time::timeout(ALEXA_TIMEOUT, rx).await;
            lock(&self.alexa).remove(&req);
            match verdict {
                Ok(Ok(Verdict::Ok(payload))) => {
                    return match MessagePayload::new(payload) {
                        Ok(payload) => Ok(Ok(payload)),
                        Err(err) => Err(Unrouted(format!("the owner's answer: {err}"))),
                    };
                }
                Ok(Ok(Verdict::Refused { error, message })) => {
                    return Ok(Err(refused(&error, message)));
                }
                Ok(Ok(Verdict::NotOwner { .. })) | Ok(Err(_)) | Err(_) => {
                    self.stats.redirects.fetch_add(1, Ordering::Relaxed);
                    lock(&self.owners).remove(&arn);
                }
            }
        }
        Err(Unrouted(format!(
            "the owner of channel {arn} did not take the offer; try again"
        )))
    }

    /// A channel's TTL changed: every node's hub hears it (only the owner holds the channel).
    pub(crate) async fn channel_updated(&self, arn: &ChannelArn, ttl: MessageTtlSeconds, rev: u64) {
        let _ = self
            .shards
            .of(arn)
            .channel_updated(arn.clone(), ttl, rev)
            .await;
        for node in self.others() {
            self.send(
                &node,
                Msg::Updated {
                    arn: arn.as_str().to_owned(),
                    ttl: ttl.get(),
                    rev,
                },
            )
            .await;
        }
    }

    /// A channel was deleted: its owner closes its connections, every node forgets it.
    pub(crate) async fn channel_deleted(&self, arn: &ChannelArn) {
        self.forget(arn);
        let _ = self.shards.of(arn).channel_deleted(arn.clone()).await;
        for node in self.others() {
            self.send(
                &node,
                Msg::Deleted {
                    arn: arn.as_str().to_owned(),
                },
            )
            .await;
        }
    }

    fn forget(&self, arn: &ChannelArn) {
        lock(&self.owned).remove(arn);
        lock(&self.owners).remove(arn);
    }

    /// The other live nodes.
    fn others(&self) -> Vec<String> {
        self.cluster
            .liveness
            .membership()
            .alive
            .into_iter()
            .filter(|node| *node != self.cluster.node)
            .collect()
    }

    /// What a bridged socket did: to its owner (or, while its channel moves, held).
    async fn bridged(&self, event: BridgeEvent) {
        tracing::trace!(?event, "from a bridged socket");
        match event {
            // The owner counts the socket up from its verdict.
            BridgeEvent::Established(_) => {}
            BridgeEvent::Frame(conn, text, read_at) => {
                let at = super::wire::unix_ms_of(read_at);
                let to = {
                    let mut links = lock(&self.links);
                    let Some(link) = links.get_mut(&conn.to_raw()) else {
                        return;
                    };
                    match &mut link.moving {
                        Some(queue) if queue.len() < MOVING_QUEUE => {
                            queue.push((text, at));
                            return;
                        }
                        Some(_) => {
                            self.stats.lost_moving.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        None => (link.owner.clone(), link.conn),
                    }
                };
                self.send(
                    &to.0,
                    Msg::Frame {
                        conn: to.1,
                        text,
                        at,
                    },
                )
                .await;
            }
            BridgeEvent::Keepalive(conn) => {
                let to = lock(&self.links)
                    .get(&conn.to_raw())
                    .filter(|link| link.moving.is_none())
                    .map(|link| (link.owner.clone(), link.conn));
                if let Some((owner, conn)) = to {
                    self.send(&owner, Msg::Keepalive { conn }).await;
                }
            }
            BridgeEvent::Closed(conn) => {
                let link = lock(&self.links).remove(&conn.to_raw());
                // A socket whose channel moves is not known at the next owner yet: its open
                // there is closed when its verdict comes.
                if let Some(link) = link.filter(|link| link.moving.is_none()) {
                    self.send(&link.owner, Msg::Closed { conn: link.conn })
                        .await;
                }
            }
            BridgeEvent::Acked {
                conn,
                token,
                written,
            } => {
                let link = lock(&self.links).get(&conn.to_raw()).cloned();
                if let Some(link) = link {
                    let msg = Msg::Acked {
                        conn: link.conn,
                        token,
                        written,
                    };
                    self.send(&link.owner, msg).await;
                }
            }
            _ => {}
        }
    }

    /// What shard `shard`'s hub sends a remote connection: to the node that holds its socket.
    async fn to_remote(&self, shard: usize, output: RemoteOutput) {
        let (wire, remote) = {
            let mut remotes = lock(&self.remotes);
            let Some((wire, remote)) = remotes
                .of_conn(shard, output.conn)
                .map(|(wire, remote)| (wire, remote.clone()))
            else {
                return;
            };
            if matches!(output.kind, RemoteOutputKind::Close(_)) {
                remotes.remove(wire);
            }
            (wire, remote)
        };
        let msg = match output.kind {
            RemoteOutputKind::Frame { frame, token } => Msg::Deliver {
                link: remote.link,
                conn: wire,
                frame: frame.into_string(),
                token,
            },
            RemoteOutputKind::Close(close) => Msg::Close {
                link: remote.link,
                conn: wire,
                code: close.code,
                reason: close.reason.to_owned(),
            },
            _ => return,
        };
        self.send(&remote.node, msg).await;
    }

    /// A message from node `from`.
    pub(super) async fn received(self: &Arc<Self>, from: &str, msg: Msg) {
        tracing::trace!(from, ?msg, "from a node");
        match msg {
            Msg::Open { req, link, open } => {
                let verdict = self.open_for(from, link, &open).await;
                self.send(from, Msg::Verdict { req, verdict }).await;
            }
            Msg::Alexa {
                req,
                arn,
                sender,
                payload,
                ttl,
                rev,
            } => {
                let verdict = self.alexa_for(&arn, &sender, payload, ttl, rev).await;
                self.send(from, Msg::AlexaAnswer { req, verdict }).await;
            }
            Msg::Verdict { req, verdict } => self.verdict(from, req, verdict).await,
            Msg::AlexaAnswer { req, verdict } => {
                let waiting = lock(&self.alexa).remove(&req);
                if let Some(waiting) = waiting {
                    let _ = waiting.send(verdict);
                }
            }
            Msg::Frame { conn, text, at } => match self.remote(from, conn) {
                Some((shard, id)) => {
                    let read_at = super::wire::instant_of(at);
                    let _ = shard.frame_read_at(id, text, read_at).await;
                }
                None => self.send(from, Msg::Gone { conn }).await,
            },
            Msg::Keepalive { conn } => match self.remote(from, conn) {
                Some((shard, id)) => {
                    let _ = shard.keepalive(id).await;
                }
                None => self.send(from, Msg::Gone { conn }).await,
            },
            Msg::Closed { conn } => {
                // Its node reported every tracked frame written before the close: those not
                // reported are held again.
                let remote = {
                    let mut remotes = lock(&self.remotes);
                    match remotes.get(conn, from) {
                        Some(_) => remotes.remove(conn),
                        None => None,
                    }
                };
                if let Some(remote) = remote {
                    self.close_remotes(vec![remote]).await;
                }
            }
            Msg::Acked {
                conn,
                token,
                written,
            } => {
                // After its connection closed, a frame's ack is moot: the close held every
                // frame not acknowledged again.
                if let Some((shard, id)) = self.remote(from, conn) {
                    let _ = shard.remote_acked(id, token, written).await;
                }
            }
            Msg::Deliver {
                link,
                conn,
                frame,
                token,
            } => {
                let known = lock(&self.links)
                    .get(&link)
                    .is_some_and(|found| found.owner == from && found.conn == conn);
                if known {
                    let link = ConnId::from_raw(link);
                    let _ = self.bridge.deliver(link, Frame::from(frame), token).await;
                } else if let Some(token) = token {
                    // The socket is gone, or another owner has it now: the sender holds the
                    // message again.
                    let msg = Msg::Acked {
                        conn,
                        token,
                        written: false,
                    };
                    self.send(from, msg).await;
                }
            }
            Msg::Close {
                link,
                conn,
                code,
                reason,
            } => {
                let removed = {
                    let mut links = lock(&self.links);
                    match links.get(&link) {
                        Some(found) if found.owner == from && found.conn == conn => {
                            links.remove(&link)
                        }
                        _ => None,
                    }
                };
                if removed.is_some() {
                    let reason = close_reason(code, &reason);
                    let _ = self
                        .bridge
                        .close(ConnId::from_raw(link), CloseCommand::new(code, reason))
                        .await;
                }
            }
            Msg::Gone { conn } => {
                let gone = {
                    let mut links = lock(&self.links);
                    let found = links
                        .iter()
                        .find(|(_, link)| {
                            link.owner == from && link.conn == conn && link.moving.is_none()
                        })
                        .map(|(id, _)| *id);
                    found.and_then(|id| links.remove(&id).map(|_| id))
                };
                if let Some(link) = gone {
                    tracing::debug!(
                        from,
                        conn,
                        "the owner no longer knows a socket's connection"
                    );
                    let _ = self
                        .bridge
                        .close(
                            ConnId::from_raw(link),
                            CloseCommand::new(1001, "going away"),
                        )
                        .await;
                }
            }
            Msg::Updated { arn, ttl, rev } => {
                if let (Ok(arn), Ok(ttl)) = (ChannelArn::new(&arn), MessageTtlSeconds::new(ttl)) {
                    let _ = self
                        .shards
                        .of(&arn)
                        .channel_updated(arn.clone(), ttl, rev)
                        .await;
                }
            }
            Msg::Deleted { arn } => {
                if let Ok(arn) = ChannelArn::new(&arn) {
                    self.forget(&arn);
                    let _ = self.shards.of(&arn).channel_deleted(arn).await;
                }
            }
            Msg::States { req } => {
                let state = crate::console::local_state(&self.shards)
                    .await
                    .map(|state| state.to_string())
                    .unwrap_or_default();
                self.send(from, Msg::State { req, state }).await;
            }
            Msg::State { req, state } => {
                let waiting = lock(&self.states).remove(&req);
                if let Some(waiting) = waiting {
                    let _ = waiting.send(state);
                }
            }
            Msg::Pause { arn, req } => {
                if let Ok(arn) = ChannelArn::new(&arn) {
                    self.pause(from, &arn);
                }
                self.send(from, Msg::Paused { req }).await;
            }
            Msg::Paused { req } => {
                let waiting = lock(&self.pauses).remove(&req);
                if let Some(waiting) = waiting {
                    let _ = waiting.send(());
                }
            }
            Msg::Moved { arn } => {
                if let Ok(arn) = ChannelArn::new(&arn) {
                    self.moved(from, arn);
                }
            }
        }
    }

    /// The owner's verdict on open `req`: the link recorded (or moved) before the opener hears
    /// it. A verdict that comes after its opener gave up, or for a socket that closed
    /// meanwhile, opened a connection nobody holds: the owner hears it closed.
    async fn verdict(&self, from: &str, req: u64, verdict: Verdict) {
        let pending = lock(&self.opens).remove(&req);
        let Some(pending) = pending else {
            if let Verdict::Ok(conn) = &verdict
                && let Ok(conn) = conn.parse()
            {
                self.send(from, Msg::Closed { conn }).await;
            }
            return;
        };
        let verdict = match verdict {
            Verdict::Ok(text) => match text.parse::<u64>() {
                Ok(conn) => {
                    let recorded = {
                        let mut links = lock(&self.links);
                        if pending.moving {
                            match links.get_mut(&pending.link_id) {
                                Some(link) => {
                                    link.owner = from.to_owned();
                                    link.conn = conn;
                                    true
                                }
                                None => false,
                            }
                        } else {
                            let link = Link {
                                owner: from.to_owned(),
                                conn,
                                ..pending.link
                            };
                            links.insert(pending.link_id, link);
                            true
                        }
                    };
                    if !recorded {
                        self.send(from, Msg::Closed { conn }).await;
                    }
                    Verdict::Ok(text)
                }
                Err(_) => Verdict::Refused {
                    error: ErrorType::InternalFailure.name().to_owned(),
                    message: format!("the owner's connection id {text:?}"),
                },
            },
            other => other,
        };
        if let Err(Verdict::Ok(_)) = pending.verdict.send(verdict)
            && !pending.moving
        {
            // The opener gave up just now: the owner's connection is nobody's.
            let link = lock(&self.links).remove(&pending.link_id);
            if let Some(link) = link {
                self.send(from, Msg::Closed { conn: link.conn }).await;
            }
        }
    }

    /// The shard and hub id of remote connection `wire`, whose socket node `from` holds.
    fn remote(&self, from: &str, wire: u64) -> Option<(ShardHandle, ConnId)> {
        let remotes = lock(&self.remotes);
        let remote = remotes.get(wire, from)?;
        let shard = self.shards.all().get(remote.shard)?.clone();
        Some((shard, remote.conn))
    }

    /// Opens, in this node's hub, a connection whose socket node `from` holds as `link`.
    pub(super) async fn open_for(&self, from: &str, link: u64, params: &OpenParams) -> Verdict {
        let open = match params.open() {
            Ok(open) => open,
            Err(message) => {
                return Verdict::Refused {
                    error: ErrorType::InvalidArgumentException.name().to_owned(),
                    message,
                };
            }
        };
        let arn = open.channel_arn.clone();
        if !lock(&self.owned).contains_key(&arn) || !self.cluster.liveness.is_valid() {
            let owner = lock(&self.owners).get(&arn).cloned();
            return Verdict::NotOwner { owner };
        }
        let index = self.shards.index_of(&arn);
        let (Some(shard), Some(sink)) = (self.shards.all().get(index), self.sinks.get(index))
        else {
            return Verdict::Refused {
                error: ErrorType::InternalFailure.name().to_owned(),
                message: "no shard for the channel".to_owned(),
            };
        };
        match shard.open_remote(open, sink.clone()).await {
            Ok(Ok(conn)) => {
                let wire = lock(&self.remotes).insert(Remote {
                    node: from.to_owned(),
                    link,
                    arn: arn.clone(),
                    shard: index,
                    conn,
                });
                // The socket's node answers 101 as soon as it reads this verdict: the
                // connection is up from here on, so that what is sent to its identity after
                // its client saw the 101 reaches it, not its predecessor. What is sent before
                // the socket is written waits in the socket's queue on that node.
                let _ = shard.established(conn).await;
                Verdict::Ok(wire.to_string())
            }
            Ok(Err(refused)) => Verdict::Refused {
                error: refused.error_type.name().to_owned(),
                message: refused.message,
            },
            Err(_) => Verdict::Refused {
                error: ErrorType::InternalFailure.name().to_owned(),
                message: "the hub has stopped".to_owned(),
            },
        }
    }

    /// Serves, in this node's hub, an Alexa offer made on another node.
    async fn alexa_for(
        &self,
        arn: &str,
        sender: &str,
        payload: String,
        ttl: u32,
        rev: u64,
    ) -> Verdict {
        let bad = |message: String| Verdict::Refused {
            error: ErrorType::InvalidArgumentException.name().to_owned(),
            message,
        };
        let Ok(arn) = ChannelArn::new(arn) else {
            return bad(format!("ChannelARN: {arn:?}"));
        };
        if !lock(&self.owned).contains_key(&arn) || !self.cluster.liveness.is_valid() {
            let owner = lock(&self.owners).get(&arn).cloned();
            return Verdict::NotOwner { owner };
        }
        let (Ok(sender), Ok(payload), Ok(ttl)) = (
            PeerId::new(sender),
            MessagePayload::new(payload),
            MessageTtlSeconds::new(ttl),
        ) else {
            return bad("SendAlexaOfferToMaster: a field is invalid".to_owned());
        };
        let offer = AlexaOffer::new(arn.clone(), sender, payload, ttl).ttl_revision(rev);
        match self.shards.of(&arn).alexa_offer(offer).await {
            Ok(Ok(answer)) => Verdict::Ok(answer.as_str().to_owned()),
            Ok(Err(refused)) => Verdict::Refused {
                error: refused.error_type.name().to_owned(),
                message: refused.message,
            },
            Err(_) => Verdict::Refused {
                error: ErrorType::InternalFailure.name().to_owned(),
                message: "the hub has stopped".to_owned(),
            },
        }
    }
}

fn not_found(arn: &ChannelArn) -> Refused {
    Refused::new(
        ErrorType::ResourceNotFoundException,
        format!("The requested channel is not found or not active: {arn}"),
    )
}

/// The close reason a remote owner gave, as one of the hub's own descriptions (a close frame's
/// reason is static text).
fn close_reason(code: u16, reason: &str) -> &'static str {
    [
        "idle timeout",
        "maximum connection duration reached",
        "server going away",
        "replaced by a newer connection",
        "channel deleted",
        "channel moved to another server",
        "slow consumer",
    ]
    .into_iter()
    .find(|known| *known == reason)
    .unwrap_or(if code == 1001 { "going away" } else { "" })
}
