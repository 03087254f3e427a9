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

use kvs_signaling_core::{AlexaOffer, ChannelRecord, OpenConnection, Refused};
use kvs_signaling_proto::{ChannelArn, ErrorType, MessagePayload, MessageTtlSeconds};
use kvs_transport_tokio::{Bridge, Registration, RemoteSink};
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
/// claim. `ARGV[4]` says whether the claimer knows it owns the channel (`1`): one that does
/// not, named the owner (it let the channel go, and Redis lost that), claims it anew, loading
/// its record and held messages, or, when it only looks, gives the claim up.
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'MISSING'} end
local owner = redis.call('HGET', KEYS[1], 'owner')
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if owner == ARGV[1] and ARGV[4] ~= '1' then
  owner = ''
  if ARGV[3] == 'look' then redis.call('HSET', KEYS[1], 'owner', '') end
end
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
-- Above any epoch seen, should the counter have lost its last increments with a failover.
local seen = tonumber(epoch or '0') or 0
if e <= seen then
  e = seen + 1
  redis.call('SET', KEYS[3], e)
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', e)
local out = {'NEW', string.format('%d', e), redis.call('HGET', KEYS[1], 'rec') or ''}
for _, v in ipairs(redis.call('HGETALL', KEYS[4])) do table.insert(out, v) end
return out
";

/// Opens of channels a node does not own (sent there because Redis names it the owner) that
/// it claims at once, at most.
const FORGOTTEN_OPENS: usize = 64;
/// Alexa offers from other nodes that wait for their masters at once, at most: each waits up
/// to the hub's timeout (the service's rate, 5 a second per channel, bounds them per channel).
const ALEXA_OFFERS: usize = 1024;

/// How long a socket's node waits for the owner's verdict on an open: the C SDK waits 5 s
/// for its upgrade.
pub(super) const VERDICT_TIMEOUT: Duration = Duration::from_secs(2);
/// An open that waited this long in the owner's inbox (by its entry's id) is refused, not
/// opened: its node is about to give up on it (at [`VERDICT_TIMEOUT`]), or has, and its
/// client may have connected again meanwhile, which a late open would supersede.
pub(super) const OPEN_MAX_AGE_MS: u64 = 1_500;
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
/// Claims and owner lookups a node runs in Redis at once, at most.
const CLAIMS_IN_FLIGHT: usize = 64;

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
    /// Held by its owner's pause (a hand-over), and not yet taken by a move: the owner's
    /// `Moved`, or its death, takes it.
    pub(super) paused: bool,
}

/// An open waiting for the owner's verdict.
#[derive(Debug)]
pub(super) struct PendingOpen {
    /// The link it makes (a new connect) or moves (`conn` still the old owner's).
    pub(super) link: Link,
    pub(super) link_id: u64,
    /// Whether the link exists already and moves.
    pub(super) moving: bool,
    pub(super) verdict: oneshot::Sender<Verdict>,
}

/// The cluster's routing on this node.
#[derive(Debug)]
pub(crate) struct Router {
    pub(super) cluster: Arc<Cluster>,
    pub(super) shards: Shards,
    pub(super) bridge: Bridge,
    /// Where each shard's hub sends the outputs of its remote connections.
    pub(super) sinks: Vec<RemoteSink>,
    pub(super) out: mpsc::Sender<super::wire::Outgoing>,
    /// Messages to this node itself (its own bridged sockets of channels it owns), in order.
    pub(super) loopback: mpsc::Sender<Msg>,
    /// Bridged sockets of this node, by their bridge id.
    pub(super) links: Mutex<HashMap<u64, Link>>,
    /// Remote connections of this node's hubs.
    pub(super) remotes: Mutex<super::remotes::Remotes>,
    /// Channels this node owns, with the epoch of its claim.
    pub(super) owned: Mutex<HashMap<ChannelArn, u64>>,
    /// Channels other nodes own, as last seen.
    pub(super) owners: Mutex<HashMap<ChannelArn, String>>,
    /// The run id of the Redis server on which this node last checked its claims and wrote
    /// its held messages whole: a held write that finds its claim changed on another server
    /// waits for the claims to be reasserted there, instead of letting the channel go.
    pub(super) asserted: Mutex<String>,
    /// Held while this node reasserts its claims, or hands one over.
    pub(super) reasserting: tokio::sync::Mutex<()>,
    /// Opens sent here for channels this node does not own, claimed at once, at most
    /// [`FORGOTTEN_OPENS`].
    pub(super) forgotten_opens: Arc<tokio::sync::Semaphore>,
    /// Alexa offers from other nodes waiting for their masters' answers, at most
    /// [`ALEXA_OFFERS`].
    pub(super) alexa_offers: Arc<tokio::sync::Semaphore>,
    /// Where the held-message writer takes whole rewrites (see `held::rewrite`).
    pub(super) held_rewrites: mpsc::Sender<super::held::Rewrite>,
    pub(super) opens: Mutex<HashMap<u64, PendingOpen>>,
    pub(super) alexa: Mutex<HashMap<u64, oneshot::Sender<Verdict>>>,
    /// Consoles' requests for other nodes' states.
    pub(super) states: Mutex<HashMap<u64, oneshot::Sender<String>>>,
    /// Other nodes' events, for this node's console streams (see `events`).
    pub(super) remote_events: tokio::sync::broadcast::Sender<super::events::RemoteEvent>,
    /// Pauses of a channel this node gives up, waiting for the socket nodes' word.
    pub(super) pauses: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    /// One claim at a time per channel on this node, so that a channel's held messages load
    /// once; claims of different channels run side by side.
    pub(super) claiming: ClaimLocks,
    /// Claims in flight hold it shared; a node that shuts down takes it whole once it stops
    /// claiming, so that every claim made before is in `owned` when it hands them over.
    pub(super) claim_gate: tokio::sync::RwLock<()>,
    /// Claims and lookups in Redis at once, at most [`CLAIMS_IN_FLIGHT`]: a node that takes
    /// over many channels at once (a peer died) loads their held messages a few at a time.
    claim_permits: tokio::sync::Semaphore,
    /// This router, for the tasks it spawns.
    pub(super) me: std::sync::Weak<Router>,
    pub(super) next_req: AtomicU64,
    /// Set when this node shuts down: it takes no connects and claims no channel.
    pub(super) draining: AtomicBool,
    pub(crate) stats: super::status::Stats,
}

/// `router` handles `msg` from `from` now, in the calling task: a message this node sends
/// itself, from the task that handles such messages, when their queue is full.
fn handle_inline<'a>(
    router: &'a Arc<Router>,
    from: &'a str,
    msg: Msg,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    Box::pin(router.received(from, msg))
}

tokio::task_local! {
    /// Set in the task that handles what other nodes, and this one, send this node.
    static INBOUND: ();
}

static MISSING: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(Duration::from_secs(10));

/// A lock per channel, held while this node claims or looks up the channel's owner; a
/// channel's lock exists only while a task holds or awaits it.
#[derive(Debug, Default)]
pub(super) struct ClaimLocks(Mutex<HashMap<ChannelArn, Arc<tokio::sync::Mutex<()>>>>);

/// A task's interest in a channel's claim lock, from the moment it asks for it: the lock is
/// released, and forgotten when no other task holds or awaits it, on drop, also when the
/// task is dropped while it waits.
pub(super) struct ClaimGuard<'a> {
    locks: &'a ClaimLocks,
    arn: ChannelArn,
    mutex: Arc<tokio::sync::Mutex<()>>,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl ClaimLocks {
    /// Waits for `arn`'s lock.
    pub(super) async fn lock(&self, arn: &ChannelArn) -> ClaimGuard<'_> {
        let mutex = Arc::clone(lock(&self.0).entry(arn.clone()).or_default());
        let mut guard = ClaimGuard {
            locks: self,
            arn: arn.clone(),
            mutex,
            held: None,
        };
        guard.held = Some(Arc::clone(&guard.mutex).lock_owned().await);
        guard
    }

    /// Channels whose lock is held or awaited.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.0).len()
    }
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        drop(self.held.take());
        let mut locks = lock(&self.locks.0);
        // Clones are taken under this map's lock, so a count of two (the map's and this
        // guard's) means that no other task holds or awaits this channel's lock.
        if locks
            .get(&self.arn)
            .is_some_and(|mutex| Arc::ptr_eq(mutex, &self.mutex))
            && Arc::strong_count(&self.mutex) == 2
        {
            locks.remove(&self.arn);
        }
    }
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
        let (bridge, _) =
            kvs_transport_tokio::spawn_bridge(config, Arc::clone(&telemetry), events_tx);
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
            super::wire::Writer {
                keys: cluster.keys.clone(),
                me: cluster.node.clone(),
                liveness: Arc::clone(&cluster.liveness),
                stats: Arc::clone(&wire),
                inbox_cap: cluster.inbox_max_entries,
                linger: cluster.batch_linger,
            },
        );
        let (batches_tx, mut batches) = mpsc::channel(super::wire::READ_QUEUE);
        super::wire::spawn_reader(
            cluster.client.clone(),
            cluster.keys.clone(),
            cluster.node.clone(),
            batches_tx,
            Arc::clone(&wire),
            cluster.liveness.read_untrimmed(),
        );
        let (loopback, mut looped) = mpsc::channel(OUTBOUND_EVENTS);
        // A node owns nothing yet: its claims hold on the Redis it starts on.
        let asserted = cluster.liveness.membership().redis_id;
        let (held_rewrites, rewrites) = mpsc::channel(1);
        let router = Arc::new_cyclic(|me| Self {
            cluster,
            shards,
            bridge,
            sinks,
            out,
            loopback,
            links: Mutex::new(HashMap::new()),
            remotes: Mutex::new(super::remotes::Remotes::default()),
            owned: Mutex::new(HashMap::new()),
            owners: Mutex::new(HashMap::new()),
            asserted: Mutex::new(asserted),
            reasserting: tokio::sync::Mutex::new(()),
            forgotten_opens: Arc::new(tokio::sync::Semaphore::new(FORGOTTEN_OPENS)),
            alexa_offers: Arc::new(tokio::sync::Semaphore::new(ALEXA_OFFERS)),
            held_rewrites,
            opens: Mutex::new(HashMap::new()),
            alexa: Mutex::new(HashMap::new()),
            states: Mutex::new(HashMap::new()),
            remote_events: tokio::sync::broadcast::channel(super::events::REMOTE_EVENTS).0,
            pauses: Mutex::new(HashMap::new()),
            claiming: ClaimLocks::default(),
            claim_gate: tokio::sync::RwLock::new(()),
            claim_permits: tokio::sync::Semaphore::new(CLAIMS_IN_FLIGHT),
            me: me.clone(),
            next_req: AtomicU64::new(1),
            draining: AtomicBool::new(false),
            stats: super::status::Stats {
                wire,
                ..super::status::Stats::default()
            },
        });
        super::held::start(&router, rewrites).await;
        super::events::spawn_forwarder(&router, telemetry);
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
                let (lapses, buried, redis_id) = {
                    let m = membership.borrow_and_update();
                    (m.lapses, m.lapse_buried, m.redis_id.clone())
                };
                let Some(router) = weak.upgrade() else { return };
                // Redis restarted or failed over (and may have lost the last writes).
                let changed = *lock(&router.asserted) != redis_id;
                if lapses != done {
                    // A node that was taken for dead lets go of every claim it does not find
                    // as it left it. One that was not, on a Redis that changed (a failover
                    // takes longer than the TTL), reasserts instead: a claim it finds gone was
                    // lost with the last writes, not taken; a claim a live node holds is let
                    // go either way. If that cannot be done, it lets go as after any lapse.
                    if buried || !changed || !router.reassert(&redis_id).await {
                        router.recover(buried).await;
                    }
                    done = lapses;
                    let _ = recovered_tx.send(done);
                }
                // Done again at the next heartbeat until it goes through.
                if changed {
                    router.reassert(&redis_id).await;
                }
            }
        });
        let weak = Arc::downgrade(&router);
        tokio::spawn(INBOUND.scope((), async move {
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
                let lapses = router.cluster.liveness.lapses();
                while *recovered.borrow_and_update() < lapses {
                    if recovered.changed().await.is_err() {
                        return;
                    }
                }
                let seen = last.entry(batch.from.clone()).or_insert(0);
                if batch.seq <= *seen {
                    continue;
                }
                let missing = batch.seq - *seen - 1;
                if missing > 0 {
                    router
                        .stats
                        .wire
                        .batches_missing
                        .fetch_add(missing, Ordering::Relaxed);
                    if let Some(suppressed) = MISSING.check() {
                        tracing::warn!(
                            from = %batch.from,
                            missing,
                            suppressed,
                            "batches another node wrote to this node's inbox never reached it \
                             (trimmed unread past the inbox's cap, lost by Redis, or given up \
                             by their sender)"
                        );
                    }
                }
                *seen = batch.seq;
                let Batch {
                    from,
                    msgs,
                    written_ms,
                    ..
                } = batch;
                for msg in msgs {
                    if let Msg::Open { req, .. } = msg
                        && written_ms > 0
                    {
                        // How long it waited in this node's inbox, and behind the messages
                        // before it.
                        let waited = router
                            .cluster
                            .liveness
                            .redis_now_ms()
                            .saturating_sub(written_ms);
                        if waited >= OPEN_MAX_AGE_MS {
                            router.stale_open(&from, req, waited).await;
                            continue;
                        }
                    }
                    router.received(&from, msg).await;
                }
            }
        }));
        let weak = Arc::downgrade(&router);
        let mut membership = router.cluster.liveness.watch();
        tokio::spawn(async move {
            let mut known_dead = BTreeSet::new();
            while membership.changed().await.is_ok() {
                let (dead, behind) = {
                    let known = membership.borrow_and_update();
                    (known.dead.clone(), known.behind.clone())
                };
                let newly: Vec<String> = dead.difference(&known_dead).cloned().collect();
                known_dead = dead;
                let Some(router) = weak.upgrade() else { return };
                for node in newly {
                    router.node_died(&node).await;
                }
                // Only on what the last heartbeat said: after a failed one, `behind` is old.
                for node in behind.iter().filter(|node| **node != router.cluster.node) {
                    if router.cluster.liveness.is_behind(node) {
                        router.shed(node).await;
                    }
                }
            }
        });
        router
    }

    /// Sends `msg` to `node`: through its inbox, or, to this node, in order with its inbox.
    /// The task that handles what this node sends itself never waits for room in that queue
    /// (it alone empties it): when the queue is full, it handles its own message at once.
    pub(super) async fn send(&self, node: &str, msg: Msg) {
        tracing::trace!(to = node, ?msg, "to a node");
        if node == self.cluster.node {
            let msg = match self.loopback.try_send(msg) {
                Err(mpsc::error::TrySendError::Full(msg)) => msg,
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
            };
            if INBOUND.try_with(|()| ()).is_ok()
                && let Some(router) = self.me.upgrade()
            {
                handle_inline(&router, node, msg).await;
            } else {
                let _ = self.loopback.send(msg).await;
            }
        } else {
            let _ = self
                .out
                .send(super::wire::Outgoing::Msg(node.to_owned(), msg))
                .await;
        }
    }

    /// Sends `msgs` to this node without waiting, in order: while its queue has room, and
    /// what is left from a task of its own, for a sender that the queue's only reader may be
    /// waiting on.
    pub(super) fn send_self_detached(&self, msgs: impl IntoIterator<Item = Msg>) {
        let mut msgs = msgs.into_iter();
        while let Some(msg) = msgs.next() {
            match self.loopback.try_send(msg) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(msg)) => {
                    let rest: Vec<Msg> = std::iter::once(msg).chain(msgs).collect();
                    let loopback = self.loopback.clone();
                    tokio::spawn(async move {
                        for msg in rest {
                            if loopback.send(msg).await.is_err() {
                                return;
                            }
                        }
                    });
                    return;
                }
            }
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
        // In a task of its own, so that a caller that gives up (its client hung up) cannot
        // leave a channel claimed in Redis and unknown here, its held messages not loaded.
        let Some(router) = self.me.upgrade() else {
            return Err(Unrouted("this node is stopping".to_owned()));
        };
        let arn = arn.clone();
        tokio::spawn(async move { router.claim(&arn, fresh).await })
            .await
            .unwrap_or_else(|_| Err(Unrouted("the owner lookup failed".to_owned())))
    }

    /// [`Router::owner`] past what this node knows: the claim script, in turn with this
    /// node's other claims of the channel.
    async fn claim(&self, arn: &ChannelArn, fresh: bool) -> Result<Option<Owner>, Unrouted> {
        let _claiming = self.claiming.lock(arn).await;
        if !fresh && let Some(owner) = self.known_owner(arn) {
            return Ok(Some(owner));
        }
        let _permit = self.claim_permits.acquire().await;
        // Read under the gate: a node that shuts down sets `draining`, then waits for the
        // claims that read it before.
        let _gate = self.claim_gate.read().await;
        let look = self.draining.load(Ordering::Relaxed);
        let ttl_ms = u64::try_from(self.cluster.liveness.node_ttl().as_millis()).unwrap_or(0);
        let keys = &self.cluster.keys;
        let answer: Vec<String> = self
            .cluster
            .retrying(|mut redis| async move {
                let known = lock(&self.owned).contains_key(arn);
                redis::Script::new(CLAIM)
                    .key(keys.channel(arn.as_str()))
                    .key(keys.nodes())
                    .key(keys.epochs())
                    .key(keys.held(arn.as_str()))
                    .arg(&self.cluster.node)
                    .arg(ttl_ms)
                    .arg(if look { "look" } else { "claim" })
                    .arg(if known { "1" } else { "0" })
                    .invoke_async(&mut redis)
                    .await
            })
            .await
            .map_err(|err| Unrouted(format!("the cluster's Redis did not answer: {err}")))?;
        let epoch = |at: usize| answer.get(at).and_then(|e| e.parse::<u64>().ok());
        match answer.first().map(String::as_str) {
            Some("MINE") => {
                let epoch = epoch(1).unwrap_or(0);
                lock(&self.owned).insert(arn.clone(), epoch);
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

    /// [`Router::owner`] for the `attempt`th try of a call: the first trusts what this node
    /// knows; a later one, after a moment for the owner to settle (it may be loading the
    /// channel, or just gone), asks Redis.
    async fn owner_for(&self, arn: &ChannelArn, attempt: u32) -> Result<Option<Owner>, Unrouted> {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
        }
        self.owner(arn, attempt > 0).await
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
        // A record this node does not read gives the messages the default TTL.
        let (ttl, revision) = match super::format::of_json(record)
            .filter(|&format| super::format::readable(format))
            .and_then(|_| serde_json::from_str::<ChannelRecord>(record).ok())
        {
            Some(record) => (record.message_ttl(), record.revision()),
            None => (MessageTtlSeconds::default(), 0),
        };
        let changes = super::held::decode(arn, held, &self.stats.wire.unknown_formats);
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
            let Some(owner) = self.owner_for(&arn, attempt).await? else {
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
            if let Some(refused) = self.refused_behind(&node) {
                return Ok(Err(refused));
            }
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
                paused: false,
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

    /// The refusal of a connect or Alexa offer for a channel `node` owns, while `node` is
    /// behind its inbox: it takes no more work from other nodes (the sockets they held for
    /// it are closed, see `shed`), which would wait in its inbox, and add to it.
    fn refused_behind(&self, node: &str) -> Option<Refused> {
        if !self.cluster.liveness.is_behind(node) {
            return None;
        }
        self.stats.behind_refusals.fetch_add(1, Ordering::Relaxed);
        Some(Refused::new(
            ErrorType::InternalFailure,
            "the channel's node is overloaded; try again",
        ))
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
        let mut rx = rx;
        let verdict = tokio::time::timeout(VERDICT_TIMEOUT, &mut rx).await;
        let unanswered = lock(&self.opens).remove(&req).is_some();
        match verdict {
            Ok(Ok(verdict)) => Ok(verdict),
            // The verdict came as the wait ended: it is being taken (the link recorded or
            // moved), and is answered here, so that the caller acts on it.
            Err(_) if !unanswered => rx.await.map_err(|_| ()),
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
            let Some(owner) = self.owner_for(&arn, attempt).await? else {
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
            if let Some(refused) = self.refused_behind(&node) {
                return Ok(Err(refused));
            }
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

    pub(super) fn forget(&self, arn: &ChannelArn) {
        lock(&self.owned).remove(arn);
        lock(&self.owners).remove(arn);
    }

    /// The other live nodes.
    pub(super) fn others(&self) -> Vec<String> {
        self.cluster
            .liveness
            .membership()
            .alive
            .into_iter()
            .filter(|node| *node != self.cluster.node)
            .collect()
    }
}

fn not_found(arn: &ChannelArn) -> Refused {
    Refused::new(
        ErrorType::ResourceNotFoundException,
        format!("The requested channel is not found or not active: {arn}"),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kvs_signaling_proto::ChannelArn;

    use super::ClaimLocks;

    fn arn(name: &str) -> ChannelArn {
        ChannelArn::new(format!(
            "arn:aws:kinesisvideo:us-west-2:123456789012:channel/{name}/1"
        ))
        .expect("a valid ARN")
    }

    #[tokio::test]
    async fn claims_of_different_channels_run_side_by_side_and_of_one_channel_in_turn() {
        let locks = ClaimLocks::default();
        let one = locks.lock(&arn("one")).await;
        // Another channel's lock is free while the first is held.
        let two = tokio::time::timeout(Duration::from_secs(1), locks.lock(&arn("two")))
            .await
            .expect("another channel's claim does not wait");
        assert_eq!(locks.len(), 2);
        drop(two);
        assert_eq!(locks.len(), 1, "a released lock nobody awaits is forgotten");
        // The same channel's lock waits for the holder.
        let same = arn("one");
        let waiting = tokio::time::timeout(Duration::from_millis(50), locks.lock(&same));
        assert!(
            waiting.await.is_err(),
            "a second claim of one channel waits"
        );
        drop(one);
        let again = tokio::time::timeout(Duration::from_secs(1), locks.lock(&arn("one")))
            .await
            .expect("the lock is free once released");
        drop(again);
        assert_eq!(locks.len(), 0);
    }

    #[tokio::test]
    async fn a_waiter_given_up_after_the_holder_left_is_forgotten_too() {
        let locks = ClaimLocks::default();
        let channel = arn("abandoned");
        let held = locks.lock(&channel).await;
        let mut waiting = Box::pin(locks.lock(&channel));
        // The waiter queues for the lock...
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiting)
                .await
                .is_err()
        );
        // ...the holder leaves, handing it the lock, and the waiter is dropped before it runs.
        drop(held);
        drop(waiting);
        assert_eq!(locks.len(), 0, "nothing holds or awaits the lock");
        let again = tokio::time::timeout(Duration::from_secs(1), locks.lock(&channel))
            .await
            .expect("the lock is free");
        let third = locks.lock(&channel);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), third)
                .await
                .is_err(),
            "a third task waits for the second"
        );
        drop(again);
        assert_eq!(locks.len(), 0);
    }

    #[tokio::test]
    async fn a_waiter_keeps_the_lock_known_until_it_is_done() {
        let locks = std::sync::Arc::new(ClaimLocks::default());
        let held = locks.lock(&arn("busy")).await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter = {
            let locks = std::sync::Arc::clone(&locks);
            tokio::spawn(async move {
                let guard = locks.lock(&arn("busy")).await;
                let _ = tx.send(());
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(guard);
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        // The holder is gone but the waiter has the lock: it stays in the map meanwhile.
        rx.await.expect("the waiter got the lock");
        assert_eq!(locks.len(), 1);
        waiter.await.expect("the waiter ends");
        assert_eq!(locks.len(), 0);
    }
}
