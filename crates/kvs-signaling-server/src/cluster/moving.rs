//! Channels moving between nodes, so that losing or stopping a node costs only its own
//! clients a reconnect.
//!
//! - **A node dies.** Every owner closes the remote connections whose sockets it held, as if
//!   their clients had closed them (freeing viewer slots; what is then sent to those ids is
//!   held). Every node holding sockets of channels the dead node owned moves them: it claims
//!   the channel (or finds who did), opens each socket at the new owner as a restored
//!   connection, sends first what it had sent the dead owner that it never read (its inbox
//!   keeps exactly that), then what the sockets sent meanwhile. The new owner loaded the
//!   channel's held messages from Redis when it claimed it. The dead node's inbox is deleted
//!   once every node had time to read it.
//! - **A node shuts down** (SIGTERM). It sends GO_AWAY to its own clients (or closes them,
//!   as one server drains), waits for them to leave, then hands over each channel it owns:
//!   the nodes holding its sockets pause them (a barrier behind their frames in flight), it
//!   writes the channel's held messages to Redis and gives up its claim in one script, and
//!   tells those nodes to move the sockets.
//! - **A node's heartbeat lapsed** (it was paused, or cut off from Redis): before acting on
//!   anything queued for it, it checks which claims it still holds; the channels it lost are
//!   closed here (their clients reconnect to the new owner). If the lapse was long enough for
//!   its peers to take it for dead, its owners have closed its bridged sockets' connections:
//!   it closes those sockets too.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kvs_signaling_core::ConnId;
use kvs_signaling_proto::ChannelArn;
use kvs_transport_tokio::CloseCommand;
use tokio::sync::oneshot;

use super::held::HandOver;
use super::route::{Link, Owner, Router, VERDICT_TIMEOUT, lock};
use super::wire::{Msg, Verdict};

/// Entries of a dead node's inbox read for replay, at most.
const REPLAY_MAX: usize = 100_000;
/// Attempts to move a channel's sockets to a new owner before they are closed.
const MOVE_ATTEMPTS: usize = 4;

/// Whether the current owner still claims each channel with the epoch given: `1` or `0` per
/// key, in order.
const CHECK: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('HGET', key, 'owner')
  local epoch = redis.call('HGET', key, 'epoch')
  if owner == ARGV[1] and epoch == ARGV[i + 1] then out[i] = 1 else out[i] = 0 end
end
return out
";

/// Reasserts `ARGV[1]`'s claims after Redis restarted or failed over, when the last writes
/// may be lost. `KEYS[1]` is the nodes' heartbeats, `KEYS[2]` the epoch counter, `KEYS[3..]`
/// the channels, `ARGV[2]` the node TTL (ms), `ARGV[3..]` the epochs of the claims. Answers,
/// for each channel: the epoch the claim holds now (the same, or a new one above both the
/// counter and any epoch seen: the claim had been lost with the last writes, and nobody else
/// holds it), `LOST` (a live node owns it) or `GONE` (the channel does not exist); nothing
/// at all when the node has no heartbeat there yet.
const REASSERT: &str = r"
local out = {}
local mine = redis.call('ZSCORE', KEYS[1], ARGV[1])
-- Without a heartbeat of this node there, nobody's liveness can be judged: nothing.
if not mine then return out end
for i = 3, #KEYS do
  local key = KEYS[i]
  local known = tonumber(ARGV[i])
  if redis.call('EXISTS', key) == 0 then
    out[#out + 1] = 'GONE'
  else
    local owner = redis.call('HGET', key, 'owner')
    local epoch = tonumber(redis.call('HGET', key, 'epoch') or '0') or 0
    local other = false
    if owner and owner ~= '' and owner ~= ARGV[1] then
      local theirs = redis.call('ZSCORE', KEYS[1], owner)
      other = theirs and tonumber(theirs) >= tonumber(mine) - tonumber(ARGV[2])
    end
    if owner == ARGV[1] and epoch == known then
      out[#out + 1] = string.format('%d', known)
    elseif other then
      out[#out + 1] = 'LOST'
    else
      local e = redis.call('INCR', KEYS[2])
      local floor = math.max(known, epoch) + 1
      if e < floor then
        e = floor
        redis.call('SET', KEYS[2], e)
      end
      redis.call('HSET', key, 'owner', ARGV[1], 'epoch', e)
      out[#out + 1] = string.format('%d', e)
    end
  end
end
return out
";

/// Gives up `ARGV[1]`'s claim of the channel `KEYS[1]` if it still holds it at epoch
/// `ARGV[2]`.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and redis.call('HGET', KEYS[1], 'epoch') == ARGV[2] then
  redis.call('HSET', KEYS[1], 'owner', '')
end
return 0
";

/// Claims reasserted in one script, at most.
const REASSERT_CHUNK: usize = 256;

static SHED: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(Duration::from_secs(10));

static REASSERT_FAILED: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(Duration::from_secs(10));

impl Router {
    /// Node `node` died: the connections of this node's hubs whose sockets it held are closed
    /// (as if their clients had closed them), and this node's sockets whose channels it owned
    /// move to new owners.
    pub(super) async fn node_died(self: &Arc<Self>, node: &str) {
        tracing::info!(%node, "a node of the cluster died");
        let gone = lock(&self.remotes).take(|remote| remote.node == node);
        self.close_remotes(gone).await;
        lock(&self.owners).retain(|_, owner| owner != node);
        let orphaned = self.hold_links(node, None);
        if !orphaned.is_empty() {
            let started = Instant::now();
            // What the sockets sent before they were held and the writer still has is written
            // first, so that the read below finds it: else it would land in the dead inbox
            // after the read, neither replayed nor counted.
            self.flush_out().await;
            // What this node sent the dead owner that it never read, to send the next owners.
            let mut redis = self.cluster.redis.clone();
            let unread = super::wire::unread(
                &mut redis,
                &self.cluster.keys,
                node,
                &self.cluster.node,
                REPLAY_MAX,
            )
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(%node, %err, "the dead node's inbox could not be read: what it never read is lost");
                Vec::new()
            });
            let mut replay: HashMap<u64, Vec<(String, u64)>> = HashMap::new();
            for msg in unread {
                if let Msg::Frame { conn, text, at } = msg {
                    replay.entry(conn).or_default().push((text, at));
                }
            }
            let mut by_channel: HashMap<ChannelArn, HashMap<u64, Vec<(String, u64)>>> =
                HashMap::new();
            for (arn, old_conn) in orphaned {
                let frames = replay.remove(&old_conn).unwrap_or_default();
                by_channel.entry(arn).or_default().insert(old_conn, frames);
            }
            for (arn, replay) in by_channel {
                let router = Arc::clone(self);
                let from = node.to_owned();
                tokio::spawn(async move { router.rehome(arn, from, replay, started).await });
            }
        }
        // Its inbox, once every node had time to replay from it.
        let router = Arc::downgrade(self);
        let node = node.to_owned();
        let wait = self.cluster.liveness.node_ttl() * 2;
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let Some(router) = router.upgrade() else {
                return;
            };
            if router.cluster.liveness.membership().dead.contains(&node) {
                let mut redis = router.cluster.redis.clone();
                let _: redis::RedisResult<()> = redis::cmd("DEL")
                    .arg(router.cluster.keys.inbox(&node))
                    .query_async(&mut redis)
                    .await;
            }
        });
    }

    /// Closes remote connections of this node's hubs, taken out of the table already (their
    /// sockets closed, their node died), batched per shard: their tracked frames not
    /// acknowledged are held again.
    pub(super) async fn close_remotes(&self, gone: Vec<super::remotes::Remote>) {
        let mut by_shard: HashMap<usize, Vec<ConnId>> = HashMap::new();
        for remote in gone {
            by_shard.entry(remote.shard).or_default().push(remote.conn);
        }
        for (index, conns) in by_shard {
            if let Some(shard) = self.shards.all().get(index) {
                let _ = shard.remote_gone(conns).await;
            }
        }
    }

    /// Takes this node's sockets whose channel `owner` owned (of `arn` only, if given) for a
    /// move: those paused by a hand-over, and the others, whose frames are held from now on;
    /// returns their channels and old connections. Sockets another move has taken already
    /// are left to it.
    fn hold_links(&self, owner: &str, arn: Option<&ChannelArn>) -> Vec<(ChannelArn, u64)> {
        let mut links = lock(&self.links);
        links
            .values_mut()
            .filter(|link| {
                link.owner == owner
                    && (link.moving.is_none() || link.paused)
                    && arn.is_none_or(|arn| link.arn == *arn)
            })
            .map(|link| {
                link.moving.get_or_insert_with(Vec::new);
                link.paused = false;
                (link.arn.clone(), link.conn)
            })
            .collect()
    }

    /// The owner of `arn` asks to pause this node's sockets of it: their frames are held
    /// from now on (those sent before are ahead of the answer, in order), until the owner's
    /// `Moved`, or its death, moves them.
    pub(super) fn pause(&self, owner: &str, arn: &ChannelArn) {
        let mut links = lock(&self.links);
        for link in links
            .values_mut()
            .filter(|link| link.owner == owner && link.arn == *arn && link.moving.is_none())
        {
            link.moving = Some(Vec::new());
            link.paused = true;
        }
    }

    /// The owner of `arn` gave it up: this node's sockets of it move to the next owner.
    pub(super) fn moved(self: &Arc<Self>, owner: &str, arn: ChannelArn) {
        // The paused sockets, and those opened since.
        let replay: HashMap<u64, Vec<(String, u64)>> = self
            .hold_links(owner, Some(&arn))
            .into_iter()
            .map(|(_, conn)| (conn, Vec::new()))
            .collect();
        if replay.is_empty() {
            return;
        }
        let router = Arc::clone(self);
        let owner = owner.to_owned();
        tokio::spawn(async move { router.rehome(arn, owner, replay, Instant::now()).await });
    }

    /// Moves this node's held sockets of `arn`, whose owner was `from`, to the channel's next
    /// owner: each opened there as a restored connection, then sent `replay` (its frames the
    /// old owner never read, by old connection) and what it sent meanwhile. Sockets that
    /// cannot be moved are closed with 1001; their clients reconnect.
    async fn rehome(
        self: Arc<Self>,
        arn: ChannelArn,
        from: String,
        mut replay: HashMap<u64, Vec<(String, u64)>>,
        started: Instant,
    ) {
        for attempt in 0..MOVE_ATTEMPTS {
            let waiting = || -> Vec<(u64, Link)> {
                lock(&self.links)
                    .iter()
                    .filter(|(_, link)| {
                        link.arn == arn
                            && link.owner == from
                            && link.moving.is_some()
                            && !link.paused
                    })
                    .map(|(id, link)| (*id, link.clone()))
                    .collect()
            };
            if attempt > 0 && !waiting().is_empty() {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let waiting = waiting();
            if waiting.is_empty() {
                break;
            }
            if self.draining.load(Ordering::Relaxed) {
                break;
            }
            let owner = match self.owner(&arn, true).await {
                Ok(Some(owner)) => owner,
                Ok(None) => {
                    // Deleted meanwhile (or nobody to take it while this node shuts down).
                    break;
                }
                Err(err) => {
                    tracing::debug!(%arn, err = err.0, "moving sockets: no owner yet");
                    continue;
                }
            };
            let node = match owner {
                Owner::Me => self.cluster.node.clone(),
                Owner::Node(node) => node,
            };
            let mut tasks = tokio::task::JoinSet::new();
            for (link_id, mut link) in waiting {
                link.open = link.open.clone().restored(Some(link.since.elapsed()));
                let router = Arc::clone(&self);
                let node = node.clone();
                tasks.spawn(async move {
                    let verdict = router.reopen(&node, link_id, link.clone()).await;
                    (link_id, link.conn, verdict)
                });
            }
            while let Some(Ok((link_id, old_conn, verdict))) = tasks.join_next().await {
                match verdict {
                    Ok(Verdict::Ok(_)) => {
                        let frames = replay.remove(&old_conn).unwrap_or_default();
                        self.flush(link_id, frames).await;
                        self.stats.moved_links.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Verdict::Refused { error, message }) => {
                        tracing::info!(%arn, error, message, "a socket could not move: closing it");
                        self.close_link(link_id).await;
                    }
                    Ok(Verdict::NotOwner { .. }) | Err(()) => {}
                }
            }
        }
        // What could not move is closed: its client reconnects.
        let left: Vec<u64> = lock(&self.links)
            .iter()
            .filter(|(_, link)| {
                link.arn == arn && link.owner == from && link.moving.is_some() && !link.paused
            })
            .map(|(id, _)| *id)
            .collect();
        for link in left {
            self.close_link(link).await;
        }
        // What the old owner never read of sockets that did not move (closed, by their
        // clients or here) is lost with them.
        let unsent: usize = replay.values().map(Vec::len).sum();
        self.stats
            .lost_moving
            .fetch_add(unsent as u64, Ordering::Relaxed);
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.last_move_us.store(took, Ordering::Relaxed);
        tracing::info!(%arn, from, took_ms = took / 1000, "a channel's sockets here moved");
    }

    /// Opens a moving socket at `node` (this node or another); the link is updated when the
    /// verdict is read.
    async fn reopen(self: &Arc<Self>, node: &str, link_id: u64, link: Link) -> Result<Verdict, ()> {
        if node != self.cluster.node {
            return self.open_at(node, link_id, link, true).await;
        }
        let params = super::wire::OpenParams::new(&link.open);
        let accepted = match self.open_for(node, link_id, &params).await {
            Ok(accepted) => accepted,
            Err(verdict) => return Ok(verdict),
        };
        let conn = accepted.wire;
        // The link first, then the connection up (see `establish`).
        let kept = {
            let mut links = lock(&self.links);
            match links.get_mut(&link_id) {
                Some(found) => {
                    found.owner = node.to_owned();
                    found.conn = conn;
                    true
                }
                None => false,
            }
        };
        if kept {
            self.establish(&accepted).await;
        } else {
            self.received(node, Msg::Closed { conn }).await;
        }
        Ok(Verdict::Ok(conn.to_string()))
    }

    /// A moved socket: `replay` first, then what it sent while moving, to its new owner; its
    /// frames go straight there from then on.
    async fn flush(&self, link_id: u64, replay: Vec<(String, u64)>) {
        let Some((owner, conn)) = lock(&self.links)
            .get(&link_id)
            .map(|link| (link.owner.clone(), link.conn))
        else {
            return;
        };
        self.stats
            .replayed
            .fetch_add(replay.len() as u64, Ordering::Relaxed);
        for (text, at) in replay {
            self.send(&owner, Msg::Frame { conn, text, at }).await;
        }
        loop {
            let queued = {
                let mut links = lock(&self.links);
                let Some(link) = links.get_mut(&link_id) else {
                    return;
                };
                match link.moving.as_mut().map(std::mem::take) {
                    Some(queued) if !queued.is_empty() => queued,
                    _ => {
                        link.moving = None;
                        return;
                    }
                }
            };
            for (text, at) in queued {
                self.send(&owner, Msg::Frame { conn, text, at }).await;
            }
        }
    }

    /// Closes a bridged socket with 1001: its client reconnects.
    async fn close_link(&self, link_id: u64) {
        let link = lock(&self.links).remove(&link_id);
        if let Some(link) = link {
            self.stats.unmoved_links.fetch_add(1, Ordering::Relaxed);
            // What its client sent while it waited to move is lost with it.
            let held = link.moving.map_or(0, |held| held.len());
            self.stats
                .lost_moving
                .fetch_add(held as u64, Ordering::Relaxed);
            let _ = self
                .bridge
                .close(
                    ConnId::from_raw(link_id),
                    CloseCommand::new(1001, "going away"),
                )
                .await;
        }
    }

    /// Closes every bridged socket of this node with 1001 and `reason`, telling their owners.
    /// Telling this node never waits for room in its queue: after a lapse, the task that
    /// empties it waits for this recovery to end.
    async fn close_all_links(&self, reason: &'static str) {
        let links: Vec<(u64, Link)> = lock(&self.links).drain().collect();
        for (id, link) in links {
            if link.moving.is_none() {
                self.closed_to_owner(&link).await;
            }
            let _ = self
                .bridge
                .close(ConnId::from_raw(id), CloseCommand::new(1001, reason))
                .await;
        }
    }

    /// Node `node` fell behind its inbox (see `ClusterConfig::inbox_high_water`): this node's
    /// sockets whose channels it owns are closed with 1008, telling it, so that it catches up
    /// instead of falling further behind; their clients connect again.
    pub(super) async fn shed(&self, node: &str) {
        let shed: Vec<(u64, Link)> = lock(&self.links)
            .extract_if(|_, link| link.owner == node && link.moving.is_none())
            .collect();
        if shed.is_empty() {
            return;
        }
        self.stats
            .shed
            .fetch_add(shed.len() as u64, Ordering::Relaxed);
        if let Some(suppressed) = SHED.check() {
            tracing::warn!(
                %node,
                sockets = shed.len(),
                suppressed,
                "a node fell behind its inbox: closing the sockets this node holds for its \
                 channels"
            );
        }
        for (id, link) in shed {
            self.closed_to_owner(&link).await;
            let _ = self
                .bridge
                .close(
                    ConnId::from_raw(id),
                    CloseCommand::new(1008, "the channel's node is overloaded"),
                )
                .await;
        }
    }

    /// This node no longer owns `arn` (another node claimed it while this one could not act):
    /// its connections here are closed with 1001 (their clients reconnect to the new owner),
    /// and those of other nodes forgotten (those nodes moved them, or will close them when
    /// they are answered `Gone`).
    pub(super) async fn lose(&self, arn: &ChannelArn) {
        if lock(&self.owned).remove(arn).is_none() {
            return;
        }
        self.stats.lost.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%arn, "this node lost a channel to another node");
        lock(&self.remotes).take(|remote| remote.arn == *arn);
        let _ = self.shards.of(arn).evict(arn.clone()).await;
    }

    /// After this node's heartbeat lapsed: the channels it no longer owns are let go, and,
    /// if a peer took it for dead (`buried`), its bridged sockets are closed, since their
    /// owners closed their connections.
    pub(super) async fn recover(&self, buried: bool) {
        let owned: Vec<(ChannelArn, u64)> = lock(&self.owned)
            .iter()
            .map(|(arn, epoch)| (arn.clone(), *epoch))
            .collect();
        if !owned.is_empty() {
            let check = redis::Script::new(CHECK);
            let mut script = check.prepare_invoke();
            for (arn, _) in &owned {
                script.key(self.cluster.keys.channel(arn.as_str()));
            }
            script.arg(&self.cluster.node);
            for (_, epoch) in &owned {
                script.arg(*epoch);
            }
            let mut redis = self.cluster.redis.clone();
            match script.invoke_async::<Vec<u8>>(&mut redis).await {
                Ok(still) => {
                    for ((arn, _), mine) in owned.iter().zip(still) {
                        if mine == 0 {
                            self.lose(arn).await;
                        }
                    }
                }
                Err(err) => {
                    // Acting on a claim it may have lost is what must not happen: let all go.
                    tracing::warn!(%err, "could not check this node's claims: letting them go");
                    for (arn, _) in &owned {
                        self.lose(arn).await;
                    }
                }
            }
        }
        if buried {
            tracing::warn!(
                sockets = lock(&self.links).len(),
                "this node was taken for dead: closing its bridged sockets"
            );
            self.close_all_links("going away").await;
        }
    }

    /// Redis restarted or failed over (its run id is now `redis_id`) and may have lost the
    /// last writes: this node's claims are reasserted (taken again where nobody else holds
    /// them, let go where a live node does or the channel is gone) and the held messages of
    /// the channels it keeps are rewritten whole from its hubs. Once that is done, held
    /// writes that find their claim changed believe the fence again. `false` when it could
    /// not be done (Redis did not answer, or changed again): it is tried again at the next
    /// heartbeat.
    pub(super) async fn reassert(&self, redis_id: &str) -> bool {
        let _serial = self.reasserting.lock().await;
        self.reassert_locked(redis_id).await
    }

    /// [`Router::reassert`], `reasserting` held: no hand-over runs meanwhile.
    async fn reassert_locked(&self, redis_id: &str) -> bool {
        if *lock(&self.asserted) == redis_id {
            return true;
        }
        let owned: Vec<(ChannelArn, u64)> = lock(&self.owned)
            .iter()
            .map(|(arn, epoch)| (arn.clone(), *epoch))
            .collect();
        let keys = &self.cluster.keys;
        let ttl_ms =
            u64::try_from(self.cluster.liveness.node_ttl().as_millis()).unwrap_or(u64::MAX);
        let mut kept = Vec::new();
        let mut stray = Vec::new();
        let (mut taken, mut lost) = (0usize, 0usize);
        for chunk in owned.chunks(REASSERT_CHUNK) {
            let script = redis::Script::new(REASSERT);
            let mut invoke = script.prepare_invoke();
            invoke.key(keys.nodes()).key(keys.epochs());
            for (arn, _) in chunk {
                invoke.key(keys.channel(arn.as_str()));
            }
            invoke.arg(&self.cluster.node).arg(ttl_ms);
            for (_, epoch) in chunk {
                invoke.arg(*epoch);
            }
            let mut redis = self.cluster.redis.clone();
            let answers = match invoke.invoke_async::<Vec<String>>(&mut redis).await {
                Ok(answers) if answers.len() == chunk.len() => answers,
                Ok(_) => return false, // No heartbeat of this node there yet.
                Err(err) => {
                    if let Some(suppressed) = REASSERT_FAILED.check() {
                        tracing::warn!(
                            %err,
                            suppressed,
                            "could not reassert this node's claims: trying again"
                        );
                    }
                    return false;
                }
            };
            for ((arn, known), answer) in chunk.iter().zip(answers) {
                match answer.parse::<u64>() {
                    Ok(epoch) => {
                        if epoch != *known {
                            taken += 1;
                        }
                        // Unless it was let go meanwhile: a claim this node no longer holds
                        // is given up again. (A claim made meanwhile has the newer epoch.)
                        let mut owned = lock(&self.owned);
                        match owned.get_mut(arn) {
                            Some(held) => {
                                *held = (*held).max(epoch);
                                kept.push((arn.clone(), *held));
                            }
                            None => stray.push((arn.clone(), epoch)),
                        }
                    }
                    Err(_) => {
                        lost += 1;
                        if answer == "GONE" {
                            tracing::warn!(
                                %arn,
                                "a channel this node owned is not in Redis any more (lost with \
                                 its last writes, or deleted): letting it go"
                            );
                        }
                        self.lose(arn).await;
                    }
                }
            }
        }
        for (arn, epoch) in stray {
            // Not while this node claims it again (a connect sent here).
            let _claiming = self.claiming.lock(&arn).await;
            if lock(&self.owned).contains_key(&arn) {
                continue;
            }
            let mut redis = self.cluster.redis.clone();
            let _: redis::RedisResult<()> = redis::Script::new(RELEASE)
                .key(keys.channel(arn.as_str()))
                .arg(&self.cluster.node)
                .arg(epoch)
                .invoke_async(&mut redis)
                .await;
        }
        if !super::held::rewrite(self, kept.clone(), redis_id).await {
            return false;
        }
        self.stats.reasserts.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            kept = kept.len(),
            taken_again = taken,
            lost,
            "reasserted this node's claims and rewrote their held messages"
        );
        *lock(&self.asserted) = redis_id.to_owned();
        true
    }

    /// The run id of the Redis server this node's heartbeat finds, once it is another than
    /// the one its claims were last asserted on; `None` if that does not happen `within`.
    async fn changed_redis(&self, within: Duration) -> Option<String> {
        let mut membership = self.cluster.liveness.watch();
        let changed = async {
            loop {
                let redis_id = membership.borrow_and_update().redis_id.clone();
                if *lock(&self.asserted) != redis_id {
                    return Some(redis_id);
                }
                if membership.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(within, changed).await.ok().flatten()
    }

    /// This node shuts down, its own clients gone: it hands every channel it owns to the
    /// cluster (see [`Router::hand_off`]).
    pub(crate) async fn leave(&self) {
        self.draining.store(true, Ordering::Relaxed);
        // Its own sockets still open (past the GO_AWAY grace) close now, their owners told.
        self.close_all_links("server going away").await;
        // Claims that read `draining` before it was set are in `owned` once they are done.
        drop(self.claim_gate.write().await);
        let owned: Vec<ChannelArn> = lock(&self.owned).keys().cloned().collect();
        tracing::info!(channels = owned.len(), "handing this node's channels over");
        for arn in owned {
            self.hand_off(&arn).await;
        }
        // The last word to the other nodes is out before the process ends.
        self.flush_out().await;
    }

    /// Stops taking connects, and sends GO_AWAY to this node's own clients (or closes those
    /// that do not handle it), as one server drains; the sockets other nodes hold for its
    /// channels go on until the channels are handed over ([`Router::leave`]).
    pub(crate) async fn drain_local(&self) {
        self.draining.store(true, Ordering::Relaxed);
        tracing::debug!("draining this node's own sockets");
        for shard in self.shards.all() {
            let _ = shard.go_away_local().await;
        }
        let links: Vec<(u64, bool)> = lock(&self.links)
            .iter()
            .map(|(id, link)| (*id, link.open.indications))
            .collect();
        for (id, handles) in links {
            let conn = ConnId::from_raw(id);
            if handles {
                let frame = kvs_signaling_core::Frame::from(GO_AWAY.to_owned());
                let _ = self.bridge.deliver(conn, frame, None).await;
                continue;
            }
            let link = lock(&self.links).remove(&id);
            if let Some(link) = link {
                let _ = self
                    .bridge
                    .close(conn, CloseCommand::new(1001, "server going away"))
                    .await;
                self.closed_to_owner(&link).await;
            }
        }
    }

    /// Hands `arn` to the cluster: the nodes holding its sockets pause them, its held
    /// messages are written to Redis and the claim given up in one fenced script, then those
    /// nodes move the sockets to whoever claims the channel next.
    async fn hand_off(&self, arn: &ChannelArn) {
        // No reassertion runs while a claim is handed over (it would take the released claim
        // back); one that is due runs first, so that the hand-over's fence holds.
        let _serial = self.reasserting.lock().await;
        let redis_id = self.cluster.liveness.membership().redis_id;
        self.reassert_locked(&redis_id).await;
        let Some(epoch) = lock(&self.owned).get(arn).copied() else {
            return;
        };
        let nodes: BTreeSet<String> = lock(&self.remotes).nodes_of(arn);
        let mut paused = Vec::new();
        for node in &nodes {
            let req = self.next_req.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            lock(&self.pauses).insert(req, tx);
            self.send(
                node,
                Msg::Pause {
                    arn: arn.as_str().to_owned(),
                    req,
                },
            )
            .await;
            paused.push((req, rx));
        }
        for (req, rx) in paused {
            // Their frames sent before the pause are read before its answer.
            let _ = tokio::time::timeout(VERDICT_TIMEOUT, rx).await;
            lock(&self.pauses).remove(&req);
        }
        let shard = self.shards.of(arn).clone();
        let held = shard.export_held(arn.clone()).await.unwrap_or_default();
        let mut handed = super::held::hand_over(self, arn, epoch, &held).await;
        if handed == HandOver::Changed {
            // Redis restarted or failed over, and this node's heartbeat has not told it yet:
            // it waits for that (a heartbeat), reasserts its claims, and tries once more.
            if let Some(redis_id) = self.changed_redis(self.cluster.liveness.node_ttl()).await {
                self.reassert_locked(&redis_id).await;
                let epoch = lock(&self.owned).get(arn).copied();
                if let Some(epoch) = epoch {
                    handed = super::held::hand_over(self, arn, epoch, &held).await;
                }
            }
        }
        match handed {
            HandOver::Done => {}
            HandOver::Refused => {
                tracing::warn!(%arn, "the channel's hand-over was refused (another node owns it)");
            }
            HandOver::Changed => tracing::warn!(
                %arn,
                "the channel's hand-over found Redis changed, and this node could not reassert \
                 its claims there: its held messages are lost"
            ),
        }
        lock(&self.owned).remove(arn);
        lock(&self.remotes).take(|remote| remote.arn == *arn);
        let _ = shard.evict(arn.clone()).await;
        for node in nodes {
            self.send(
                &node,
                Msg::Moved {
                    arn: arn.as_str().to_owned(),
                },
            )
            .await;
        }
    }
}

const GO_AWAY: &str = r#"{"messageType":"GO_AWAY"}"#;
