//! Routing across nodes: each live channel has one owner node, whose hub decides everything
//! for it; a socket on another node is bridged to the owner's hub through the nodes' inboxes.
//!
//! - A connect looks up the channel's owner, claiming the channel (one Lua script: the
//!   channel exists, and its owner is none or dead) when it has none. On the owner it is an
//!   ordinary connect; elsewhere the node registers the socket with its bridge, asks the owner
//!   to open it, and answers the upgrade request with the owner's verdict: `101`, or the
//!   owner's refusal as one server would give it.
//! - Frames, pings and closes of a bridged socket go to the owner's hub; what the hub sends
//!   the connection comes back to the socket's node.
//! - A node that dies loses its sockets: every owner closes the connections it held, as if
//!   their clients had closed them (freeing viewer slots; what is sent to those ids is held).
//!   Sockets on other nodes whose channel's owner died are closed with 1001, and their clients
//!   reconnect: the channel is claimed anew on their next connect.

#![allow(
    clippy::result_large_err,
    reason = "the error of these helpers is the ready HTTP answer, returned once per call"
)]

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kvs_signaling_core::{AlexaOffer, ConnId, Frame, OpenConnection, Refused};
use kvs_signaling_proto::{
    ChannelArn, ClientId, ErrorType, MessagePayload, MessageTtlSeconds, PeerId,
};
use kvs_transport_tokio::{
    Bridge, BridgeEvent, CloseCommand, Registration, RemoteOutput, RemoteOutputKind,
};
use tokio::sync::{mpsc, oneshot};

use super::Cluster;
use super::wire::{Msg, Verdict};
use crate::app::Shards;

/// Claims a channel for `ARGV[1]` unless a live node owns it: it exists, and its owner is
/// none, or dead (its last heartbeat older than the TTL relative to the claimer's own).
/// Answers `MISSING`, `{MINE, epoch, previous owner}` or `{OTHER, owner, epoch}`.
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'MISSING'} end
local owner = redis.call('HGET', KEYS[1], 'owner')
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if owner and owner ~= '' then
  if owner == ARGV[1] then return {'MINE', epoch, owner} end
  local mine = redis.call('ZSCORE', KEYS[2], ARGV[1])
  local theirs = redis.call('ZSCORE', KEYS[2], owner)
  if theirs and mine and tonumber(theirs) >= tonumber(mine) - tonumber(ARGV[2]) then
    return {'OTHER', owner, epoch}
  end
end
local e = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', e)
return {'MINE', tostring(e), owner or ''}
";

/// How long a socket's node waits for the owner's verdict on an open: the C SDK waits 5 s
/// for its upgrade.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the caller's node waits for an Alexa answer: the hub's own timeout, and a margin.
const ALEXA_TIMEOUT: Duration = Duration::from_secs(12);
/// Outputs of the local hubs for remote connections, waiting to be sent, at most: past it, a
/// connection is closed as a slow consumer.
const REMOTE_QUEUE: usize = 65_536;

/// Where a channel's hub is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// Here.
    Me,
    /// On this other node.
    Node(String),
}

/// A bridged socket of this node: its channel's owner and the owner's connection.
#[derive(Debug, Clone)]
struct Link {
    owner: String,
    conn: u64,
    arn: ChannelArn,
}

/// A connection of a local hub whose socket another node holds.
#[derive(Debug, Clone)]
struct Remote {
    node: String,
    link: u64,
    arn: ChannelArn,
}

/// Pending requests to other nodes, answered by their verdicts.
type Pending = Mutex<HashMap<u64, oneshot::Sender<Verdict>>>;

/// An open waiting for the owner's verdict: the bridged socket it is for.
#[derive(Debug)]
struct PendingOpen {
    link: Link,
    link_id: u64,
    verdict: oneshot::Sender<Verdict>,
}

/// The cluster's routing on this node.
#[derive(Debug)]
pub(crate) struct Router {
    cluster: Arc<Cluster>,
    shards: Shards,
    bridge: Bridge,
    /// Where local hubs send the outputs of their remote connections.
    sink: kvs_transport_tokio::RemoteSink,
    out: mpsc::Sender<(String, Msg)>,
    /// Bridged sockets of this node, by their bridge id.
    links: Mutex<HashMap<u64, Link>>,
    /// Remote connections of this node's hubs, by their hub id.
    remotes: Mutex<HashMap<u64, Remote>>,
    /// Channels this node owns.
    owned: Mutex<BTreeSet<ChannelArn>>,
    /// Channels other nodes own, as last seen.
    owners: Mutex<HashMap<ChannelArn, String>>,
    opens: Mutex<HashMap<u64, PendingOpen>>,
    alexa: Pending,
    next_req: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
    /// bridge started, and its watch on the other nodes' lives.
    pub(crate) fn start(
        cluster: Arc<Cluster>,
        shards: Shards,
        config: kvs_transport_tokio::ShardConfig,
        telemetry: Arc<kvs_transport_tokio::Telemetry>,
    ) -> Arc<Self> {
        let (events_tx, mut events) = mpsc::channel(OUTBOUND_EVENTS);
        let (bridge, _) = kvs_transport_tokio::spawn_bridge(config, telemetry, events_tx);
        let (sink, mut remote_outputs) = mpsc::channel(REMOTE_QUEUE);
        let out = super::wire::spawn_writer(
            cluster.redis.clone(),
            cluster.keys.clone(),
            cluster.node.clone(),
        );
        let (batches_tx, mut batches) = mpsc::channel(1024);
        super::wire::spawn_reader(
            cluster.client.clone(),
            cluster.keys.clone(),
            cluster.node.clone(),
            batches_tx,
        );
        let router = Arc::new(Self {
            cluster,
            shards,
            bridge,
            sink,
            out,
            links: Mutex::new(HashMap::new()),
            remotes: Mutex::new(HashMap::new()),
            owned: Mutex::new(BTreeSet::new()),
            owners: Mutex::new(HashMap::new()),
            opens: Mutex::new(HashMap::new()),
            alexa: Mutex::new(HashMap::new()),
            next_req: AtomicU64::new(1),
        });
        let weak = Arc::downgrade(&router);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let Some(router) = weak.upgrade() else { return };
                router.bridged(event).await;
            }
        });
        let weak = Arc::downgrade(&router);
        tokio::spawn(async move {
            while let Some(output) = remote_outputs.recv().await {
                let Some(router) = weak.upgrade() else { return };
                router.to_remote(output).await;
            }
        });
        let weak = Arc::downgrade(&router);
        tokio::spawn(async move {
            // The last batch read from each node: one written twice is read once.
            let mut last: HashMap<String, u64> = HashMap::new();
            while let Some(batch) = batches.recv().await {
                let Some(router) = weak.upgrade() else { return };
                let seen = last.entry(batch.from.clone()).or_insert(0);
                if batch.seq <= *seen {
                    continue;
                }
                *seen = batch.seq;
                for msg in batch.msgs {
                    router.received(&batch.from, msg).await;
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

    async fn send(&self, node: &str, msg: Msg) {
        tracing::trace!(to = node, ?msg, "to another node");
        let _ = self.out.send((node.to_owned(), msg)).await;
    }

    /// The owner of `arn`: as known, or claimed for this node when it has no live one.
    /// `None` when the channel does not exist.
    async fn owner(&self, arn: &ChannelArn, fresh: bool) -> Result<Option<Owner>, Unrouted> {
        if !fresh {
            if lock(&self.owned).contains(arn) {
                return Ok(Some(Owner::Me));
            }
            if let Some(node) = lock(&self.owners).get(arn) {
                return Ok(Some(Owner::Node(node.clone())));
            }
        }
        if !self.cluster.liveness.is_valid() {
            return Err(Unrouted(
                "this node cannot reach the cluster's Redis; connect again (to another node)"
                    .to_owned(),
            ));
        }
        let ttl_ms = u64::try_from(self.cluster.liveness.node_ttl().as_millis()).unwrap_or(0);
        let keys = &self.cluster.keys;
        let answer: Vec<String> = self
            .cluster
            .retrying(|mut redis| async move {
                redis::Script::new(CLAIM)
                    .key(keys.channel(arn.as_str()))
                    .key(keys.nodes())
                    .key(keys.epochs())
                    .arg(&self.cluster.node)
                    .arg(ttl_ms)
                    .invoke_async(&mut redis)
                    .await
            })
            .await
            .map_err(|err| Unrouted(format!("the cluster's Redis did not answer: {err}")))?;
        match answer.first().map(String::as_str) {
            Some("MINE") => {
                lock(&self.owned).insert(arn.clone());
                lock(&self.owners).remove(arn);
                Ok(Some(Owner::Me))
            }
            Some("OTHER") => {
                let node = answer.get(1).cloned().unwrap_or_default();
                lock(&self.owned).remove(arn);
                lock(&self.owners).insert(arn.clone(), node.clone());
                Ok(Some(Owner::Node(node)))
            }
            _ => Ok(None),
        }
    }

    /// A connect: opened in the owner's hub, here or on its node.
    pub(crate) async fn open(
        &self,
        open: OpenConnection,
    ) -> Result<Result<Registration, Refused>, Unrouted> {
        let arn = open.channel_arn.clone();
        for attempt in 0..3 {
            let Some(owner) = self.owner(&arn, attempt > 0).await? else {
                return Ok(Err(Refused::new(
                    ErrorType::ResourceNotFoundException,
                    format!("The requested channel is not found or not active: {arn}"),
                )));
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
            let link = registration.conn().to_raw();
            let req = self.next_req.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            lock(&self.opens).insert(
                req,
                PendingOpen {
                    link: Link {
                        owner: node.clone(),
                        conn: 0,
                        arn: arn.clone(),
                    },
                    link_id: link,
                    verdict: tx,
                },
            );
            self.send(
                &node,
                Msg::Open {
                    req,
                    link,
                    arn: arn.as_str().to_owned(),
                    client: open.client_id.as_ref().map(|id| id.as_str().to_owned()),
                    ttl: open.message_ttl.get(),
                    rev: open.ttl_revision,
                    indications: open.indications,
                    delivery: open.delivery_status,
                    addr: open.remote_addr.map(|addr| addr.to_string()),
                },
            )
            .await;
            let verdict = tokio::time::timeout(VERDICT_TIMEOUT, rx).await;
            lock(&self.opens).remove(&req);
            match verdict {
                // The link was recorded when the verdict was read, before any frame the
                // owner sent after it.
                Ok(Ok(Verdict::Ok(_))) => return Ok(Ok(registration)),
                Ok(Ok(Verdict::Refused { error, message })) => {
                    return Ok(Err(refused(&error, message)));
                }
                // Not (or no longer) the owner, or no answer (it may have died): look again.
                Ok(Ok(Verdict::NotOwner { .. })) | Ok(Err(_)) | Err(_) => {
                    lock(&self.owners).remove(&arn);
                }
            }
        }
        Err(Unrouted(format!(
            "the owner of channel {arn} did not take the connect; try again"
        )))
    }

    /// A SendAlexaOfferToMaster call, answered by the owner's hub.
    pub(crate) async fn alexa_offer(
        &self,
        offer: AlexaOffer,
    ) -> Result<Result<MessagePayload<'static>, Refused>, Unrouted> {
        let arn = offer.channel_arn.clone();
        for attempt in 0..3 {
            let Some(owner) = self.owner(&arn, attempt > 0).await? else {
                return Ok(Err(Refused::new(
                    ErrorType::ResourceNotFoundException,
                    format!("The requested channel is not found or not active: {arn}"),
                )));
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

    /// What a bridged socket did: to its owner.
    async fn bridged(&self, event: BridgeEvent) {
        let (link, text) = match event {
            // The owner counts the socket up from its verdict.
            BridgeEvent::Established(_) => return,
            BridgeEvent::Frame(conn, text) => (conn.to_raw(), text),
            BridgeEvent::Keepalive(conn) => {
                let link = lock(&self.links).get(&conn.to_raw()).cloned();
                if let Some(link) = link {
                    self.send(&link.owner, Msg::Keepalive { conn: link.conn })
                        .await;
                }
                return;
            }
            BridgeEvent::Closed(conn) => {
                let link = lock(&self.links).remove(&conn.to_raw());
                if let Some(link) = link {
                    self.send(&link.owner, Msg::Closed { conn: link.conn })
                        .await;
                }
                return;
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
                return;
            }
            _ => return,
        };
        let Some(found) = lock(&self.links).get(&link).cloned() else {
            return;
        };
        let msg = Msg::Frame {
            conn: found.conn,
            text,
        };
        self.send(&found.owner, msg).await;
    }

    /// What a local hub sends a remote connection: to the node that holds its socket.
    async fn to_remote(&self, output: RemoteOutput) {
        let raw = output.conn.to_raw();
        let remote = match &output.kind {
            RemoteOutputKind::Close(_) => lock(&self.remotes).remove(&raw),
            _ => lock(&self.remotes).get(&raw).cloned(),
        };
        let Some(remote) = remote else { return };
        let msg = match output.kind {
            RemoteOutputKind::Frame { frame, token } => Msg::Deliver {
                link: remote.link,
                conn: raw,
                frame: frame.into_string(),
                token,
            },
            RemoteOutputKind::Close(close) => Msg::Close {
                link: remote.link,
                code: close.code,
                reason: close.reason.to_owned(),
            },
            _ => return,
        };
        self.send(&remote.node, msg).await;
    }

    /// A message from node `from`.
    async fn received(&self, from: &str, msg: Msg) {
        tracing::trace!(from, ?msg, "from another node");
        match msg {
            Msg::Open {
                req,
                link,
                arn,
                client,
                ttl,
                rev,
                indications,
                delivery,
                addr,
            } => {
                let verdict = self
                    .open_for(
                        from,
                        link,
                        &arn,
                        client,
                        ttl,
                        rev,
                        indications,
                        delivery,
                        addr,
                    )
                    .await;
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
            Msg::Frame { conn, text } => {
                if let Some(shard) = self.shard_of_remote(conn) {
                    let _ = shard.frame(ConnId::from_raw(conn), text).await;
                }
            }
            Msg::Keepalive { conn } => {
                if let Some(shard) = self.shard_of_remote(conn) {
                    let _ = shard.keepalive(ConnId::from_raw(conn)).await;
                }
            }
            Msg::Closed { conn } => {
                // Its node reported every tracked frame written before the close: those not
                // reported are held again.
                let remote = lock(&self.remotes).remove(&conn);
                if let Some(remote) = remote {
                    let _ = self
                        .shards
                        .of(&remote.arn)
                        .remote_gone(vec![ConnId::from_raw(conn)])
                        .await;
                }
            }
            Msg::Acked {
                conn,
                token,
                written,
            } => {
                // A frame may come back after its connection closed: its shard is found by
                // the channel the token's frame was for, kept until acknowledged.
                if let Some(shard) = self.shard_of_remote(conn) {
                    let _ = shard
                        .remote_acked(ConnId::from_raw(conn), token, written)
                        .await;
                } else {
                    for shard in self.shards.all() {
                        let _ = shard
                            .remote_acked(ConnId::from_raw(conn), token, written)
                            .await;
                    }
                }
            }
            Msg::Deliver {
                link,
                conn,
                frame,
                token,
            } => {
                let known = lock(&self.links).contains_key(&link);
                if known {
                    let link = ConnId::from_raw(link);
                    let _ = self.bridge.deliver(link, Frame::from(frame), token).await;
                } else if let Some(token) = token {
                    // The socket is gone: the owner holds the message again.
                    let msg = Msg::Acked {
                        conn,
                        token,
                        written: false,
                    };
                    self.send(from, msg).await;
                }
            }
            Msg::Close { link, code, reason } => {
                lock(&self.links).remove(&link);
                let reason = close_reason(code, &reason);
                let _ = self
                    .bridge
                    .close(ConnId::from_raw(link), CloseCommand::new(code, reason))
                    .await;
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
        }
    }

    /// The owner's verdict on open `req`: the link recorded before the opener hears it. A
    /// verdict that comes after its opener gave up opened a connection nobody holds: the
    /// owner hears it closed.
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
            Verdict::Ok(conn) => match conn.parse() {
                Ok(raw) => {
                    let link = Link {
                        conn: raw,
                        ..pending.link
                    };
                    lock(&self.links).insert(pending.link_id, link);
                    Verdict::Ok(conn)
                }
                Err(_) => Verdict::Refused {
                    error: ErrorType::InternalFailure.name().to_owned(),
                    message: format!("the owner's connection id {conn:?}"),
                },
            },
            other => other,
        };
        if let Err(Verdict::Ok(_)) = pending.verdict.send(verdict) {
            // The opener gave up just now: the owner's connection is nobody's.
            let link = lock(&self.links).remove(&pending.link_id);
            if let Some(link) = link {
                self.send(from, Msg::Closed { conn: link.conn }).await;
            }
        }
    }

    fn shard_of_remote(&self, conn: u64) -> Option<kvs_transport_tokio::ShardHandle> {
        let arn = lock(&self.remotes).get(&conn)?.arn.clone();
        Some(self.shards.of(&arn).clone())
    }

    /// Opens, in this node's hub, a connection whose socket node `from` holds as `link`.
    #[expect(clippy::too_many_arguments, reason = "the fields of one message")]
    async fn open_for(
        &self,
        from: &str,
        link: u64,
        arn: &str,
        client: Option<String>,
        ttl: u32,
        rev: u64,
        indications: bool,
        delivery: bool,
        addr: Option<String>,
    ) -> Verdict {
        let bad = |message: String| Verdict::Refused {
            error: ErrorType::InvalidArgumentException.name().to_owned(),
            message,
        };
        let Ok(arn) = ChannelArn::new(arn) else {
            return bad(format!("X-Amz-ChannelARN: {arn:?}"));
        };
        if !lock(&self.owned).contains(&arn) || !self.cluster.liveness.is_valid() {
            let owner = lock(&self.owners).get(&arn).cloned();
            return Verdict::NotOwner { owner };
        }
        let Ok(ttl) = MessageTtlSeconds::new(ttl) else {
            return bad(format!("MessageTtlSeconds: {ttl}"));
        };
        let open = match client {
            Some(client) => match ClientId::new(&client) {
                Ok(id) => OpenConnection::viewer(arn.clone(), id, ttl),
                Err(err) => return bad(err.to_string()),
            },
            None => OpenConnection::master(arn.clone(), ttl),
        }
        .ttl_revision(rev)
        .indications(indications)
        .delivery_status(delivery)
        .remote_addr(addr.and_then(|addr| addr.parse().ok()));
        match self
            .shards
            .of(&arn)
            .open_remote(open, self.sink.clone())
            .await
        {
            Ok(Ok(conn)) => {
                lock(&self.remotes).insert(
                    conn.to_raw(),
                    Remote {
                        node: from.to_owned(),
                        link,
                        arn: arn.clone(),
                    },
                );
                // The socket's node answers 101 as soon as it reads this verdict: the
                // connection is up from here on, so that what is sent to its identity after
                // its client saw the 101 reaches it, not its predecessor. What is sent before
                // the socket is written waits in the socket's queue on that node.
                let _ = self.shards.of(&arn).established(conn).await;
                Verdict::Ok(conn.to_raw().to_string())
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
        if !lock(&self.owned).contains(&arn) || !self.cluster.liveness.is_valid() {
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

    /// Node `node` died: the connections of this node's hubs whose sockets it held are closed
    /// (as if their clients had closed them), and this node's sockets whose channels it owned
    /// are closed with 1001, so that their clients reconnect and the channel is claimed anew.
    async fn node_died(&self, node: &str) {
        tracing::info!(%node, "a node of the cluster died");
        let gone: Vec<(u64, ChannelArn)> = {
            let mut remotes = lock(&self.remotes);
            let gone: Vec<(u64, ChannelArn)> = remotes
                .iter()
                .filter(|(_, remote)| remote.node == node)
                .map(|(conn, remote)| (*conn, remote.arn.clone()))
                .collect();
            for (conn, _) in &gone {
                remotes.remove(conn);
            }
            gone
        };
        let mut by_shard: HashMap<usize, (kvs_transport_tokio::ShardHandle, Vec<ConnId>)> =
            HashMap::new();
        for (conn, arn) in gone {
            let shard = self.shards.of(&arn).clone();
            let key = self.shards.index_of(&arn);
            by_shard
                .entry(key)
                .or_insert_with(|| (shard, Vec::new()))
                .1
                .push(ConnId::from_raw(conn));
        }
        for (_, (shard, conns)) in by_shard {
            let _ = shard.remote_gone(conns).await;
        }
        let orphaned: Vec<(u64, ChannelArn)> = {
            let mut links = lock(&self.links);
            let orphaned: Vec<(u64, ChannelArn)> = links
                .iter()
                .filter(|(_, link)| link.owner == node)
                .map(|(id, link)| (*id, link.arn.clone()))
                .collect();
            for (id, _) in &orphaned {
                links.remove(id);
            }
            orphaned
        };
        lock(&self.owners).retain(|_, owner| owner != node);
        for (link, arn) in orphaned {
            tracing::debug!(%node, %arn, link, "the channel's owner died: closing its socket here");
            let _ = self
                .bridge
                .close(
                    ConnId::from_raw(link),
                    CloseCommand::new(1001, "the channel's node went away"),
                )
                .await;
        }
    }
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
        "slow consumer",
    ]
    .into_iter()
    .find(|known| *known == reason)
    .unwrap_or(if code == 1001 { "going away" } else { "" })
}

/// Bridge events waiting for the router, at most: past it, bridged sockets' reads wait.
const OUTBOUND_EVENTS: usize = 16_384;
