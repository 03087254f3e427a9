//! This node's identity, its heartbeat, and which nodes are alive.
//!
//! Node liveness is the only lease of the cluster. Each node heartbeats into a sorted set
//! scored by Redis `TIME`; a peer is dead only when its last heartbeat is older than the TTL
//! relative to this node's own previous heartbeat, so a Redis stall (a fork, a pause,
//! `SIGSTOP`) kills nobody: every score is equally late. A node whose own heartbeats have not
//! been acknowledged for the TTL (less a margin) fences itself: it takes no opens and claims
//! until Redis answers again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::format::Range;
use super::keys::Keys;

/// One heartbeat: score this node with Redis's clock, and read who is alive and who is dead,
/// relative to this node's previous heartbeat; after a stall (this heartbeat came more than
/// half the TTL after the previous, or less than half an interval after it, queued behind
/// the stall), nobody is judged, since the others' heartbeats may be queued behind the same
/// stall. The nodes judged dead are recorded (`KEYS[2]`, a set), so that a node that was
/// judged dead and comes back learns it (the last answer, 1), and is taken off it. Nodes dead
/// for an hour are forgotten (their published settings and formats, `KEYS[3]` and `KEYS[4]`,
/// too). The answer goes on with
/// the Redis server's run id (empty where `INFO` is refused): a new one is a restart or a
/// failover, either of which may have lost the last writes; then the formats the live nodes
/// read (`KEYS[4]`, in the order of the live nodes; nil for a node that published none: each
/// node publishes its own, `ARGV[5]`, with every heartbeat, so that a Redis that lost it has
/// it again), the nodes whose consoles watch the cluster's events (`KEYS[5]`, scored by
/// their last heartbeat while `ARGV[4]` is `1`), the entries of this node's inbox (`KEYS[6]`)
/// it has not read (its length, less the `ARGV[8]` entries read and not yet trimmed), and the
/// nodes that fell behind their inboxes (`KEYS[7]`, scored by their last heartbeat while they
/// are: this node is when at least `ARGV[6]` entries wait unread, `0` never, at this heartbeat
/// and at the previous one, `ARGV[7]` then `1`: a node that only catches up after a pause is
/// not).
const HEARTBEAT: &str = r"
local info = redis.pcall('INFO', 'server')
local run = type(info) == 'string' and string.match(info, 'run_id:(%w+)') or ''
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local previous = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or now)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[5] then
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[5])
end
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[5], now, ARGV[1])
else
  redis.call('ZREM', KEYS[5], ARGV[1])
end
local backlog = math.max(redis.call('XLEN', KEYS[6]) - tonumber(ARGV[8]), 0)
local high = tonumber(ARGV[6])
if high > 0 and backlog >= high and ARGV[7] == '1' then
  redis.call('ZADD', KEYS[7], now, ARGV[1])
else
  redis.call('ZREM', KEYS[7], ARGV[1])
end
local forgotten = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
if #forgotten > 0 then
  redis.call('ZREM', KEYS[1], unpack(forgotten))
  redis.call('SREM', KEYS[2], unpack(forgotten))
  redis.call('HDEL', KEYS[3], unpack(forgotten))
  redis.call('HDEL', KEYS[4], unpack(forgotten))
  redis.call('ZREM', KEYS[5], unpack(forgotten))
  redis.call('ZREM', KEYS[7], unpack(forgotten))
end
local function known(alive)
  local formats = {}
  if #alive > 0 then formats = redis.call('HMGET', KEYS[4], unpack(alive)) end
  return formats, redis.call('ZRANGEBYSCORE', KEYS[5], now - ttl, '+inf'),
    redis.call('ZRANGEBYSCORE', KEYS[7], now - ttl, '+inf')
end
local buried = redis.call('SREM', KEYS[2], ARGV[1])
local gap = now - previous
if gap > ttl / 2 or gap < tonumber(ARGV[3]) / 2 then
  -- This node, or Redis, stalled since its previous heartbeat (or this one was queued
  -- behind such a stall with others): the others' heartbeats may still be queued behind the
  -- same stall. Nobody is judged this round.
  local all = redis.call('ZRANGE', KEYS[1], 0, -1)
  local formats, watchers, behind = known(all)
  return {now, all, {}, buried, run, formats, watchers, backlog, behind}
end
local alive = redis.call('ZRANGEBYSCORE', KEYS[1], previous - ttl, '+inf')
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (previous - ttl))
if #dead > 0 then redis.call('SADD', KEYS[2], unpack(dead)) end
local formats, watchers, behind = known(alive)
return {now, alive, dead, buried, run, formats, watchers, backlog, behind}
";

/// A fresh node id for this process: the host name and random bytes, so that a restarted
/// node is a new node (its predecessor's channels are claimed anew).
pub(crate) fn fresh_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    let bytes: [u8; 6] = ring::rand::generate(&ring::rand::SystemRandom::new())
        .map(|random| random.expose())
        .unwrap_or_else(|_| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let mut out = [0u8; 6];
            for (i, b) in out.iter_mut().enumerate() {
                *b = (nanos >> (i * 8)) as u8;
            }
            out
        });
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}-{}-{suffix}", std::process::id())
}

/// What this node knows of the cluster's nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Membership {
    /// Nodes heard from within the TTL of this node's previous heartbeat, this one included.
    pub(crate) alive: BTreeSet<String>,
    /// Nodes not heard from for longer.
    pub(crate) dead: BTreeSet<String>,
    /// Redis's clock at this node's last acknowledged heartbeat, in milliseconds.
    pub(crate) last_beat_ms: u64,
    /// Until when this node may act (take opens, claim channels, write): its last
    /// acknowledged heartbeat's sending time, plus the TTL, less a margin.
    pub(crate) valid_until: Option<Instant>,
    /// Heartbeats that failed in a row.
    pub(crate) failures: u32,
    /// Times this node's validity lapsed (no heartbeat acknowledged until past
    /// `valid_until`) and came back: each time, it must check what it still owns.
    pub(crate) lapses: u64,
    /// Whether, at the last lapse, a peer took this node for dead (and acted on it: closed
    /// the connections of its sockets, moved the channels it owned).
    pub(crate) lapse_buried: bool,
    /// The Redis server's run id at the last heartbeat (empty where `INFO` is refused): when
    /// it changes (Redis restarted, or another server took over), Redis may have lost the last
    /// writes, and this node reasserts its claims and rewrites its held messages.
    pub(crate) redis_id: String,
    /// The formats each other live node reads (`None`: it published none, a release from
    /// before formats).
    pub(crate) formats: BTreeMap<String, Option<Range>>,
    /// The other nodes whose consoles watch the cluster's events: this node sends them its
    /// own.
    pub(crate) watchers: BTreeSet<String>,
    /// The entries in this node's inbox it had not read at its last heartbeat.
    pub(crate) backlog: u64,
    /// Redis's clock less this node's, in milliseconds, as of the last heartbeat (within
    /// half its round trip): to tell how long an inbox entry waited by its id.
    pub(crate) redis_offset_ms: i64,
    /// The nodes, this one too, whose inboxes held at least their high-water mark at their
    /// last two heartbeats: they fell behind, and the others close the sockets they bridge
    /// to them.
    pub(crate) behind: BTreeSet<String>,
}

/// One heartbeat's answer.
struct Beat {
    sent: Instant,
    now: u64,
    alive: Vec<String>,
    dead: Vec<String>,
    buried: bool,
    redis_id: String,
    formats: BTreeMap<String, Option<Range>>,
    watchers: BTreeSet<String>,
    backlog: u64,
    behind: BTreeSet<String>,
    offset: i64,
}

/// This node's heartbeat and its view of the others.
#[derive(Debug)]
pub(crate) struct Liveness {
    membership: watch::Sender<Membership>,
    node_ttl: Duration,
    /// This node's console streams watching the cluster's events (see [`Liveness::watch_events`]).
    watching: Arc<AtomicUsize>,
    /// The entries this node read that are still in its inbox (their trim waits): what the
    /// heartbeat takes off the inbox's length to tell how many wait unread.
    read_untrimmed: Arc<AtomicU64>,
}

/// A console stream of this node watching the cluster's events: while one lives, the node's
/// heartbeat asks the other nodes for theirs.
#[derive(Debug)]
pub(crate) struct Watching(Arc<AtomicUsize>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Liveness {
    /// Heartbeats once (so that the node starts alive, or fails to start), then every
    /// `interval` on a task of its own.
    pub(crate) async fn start(
        mut redis: super::keys::Redis,
        keys: Keys,
        node: String,
        interval: Duration,
        ttl: Duration,
        high_water: usize,
    ) -> Result<Arc<Self>, String> {
        let script = redis::Script::new(HEARTBEAT);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        // The node may act until a heartbeat's sending time plus the TTL, less this: its
        // peers judge it by Redis's clock, which the margin keeps ahead of.
        let margin = (ttl / 5).max(Duration::from_millis(200));
        let watching = Arc::new(AtomicUsize::new(0));
        let watchers = Arc::clone(&watching);
        let read_untrimmed = Arc::new(AtomicU64::new(0));
        let read = Arc::clone(&read_untrimmed);
        // Whether this node's inbox held its high-water mark at the previous heartbeat.
        let above = Arc::new(AtomicBool::new(false));
        let beat = move |redis: &mut super::keys::Redis| {
            let script = script.clone();
            let keys = keys.clone();
            let node = node.clone();
            let watching = watchers.load(Ordering::Acquire) > 0;
            let above = Arc::clone(&above);
            let read = read.load(Ordering::Relaxed);
            let mut redis = redis.clone();
            async move {
                let sent = Instant::now();
                type Answer = (
                    u64,
                    Vec<String>,
                    Vec<String>,
                    u8,
                    String,
                    Vec<Option<String>>,
                    Vec<String>,
                    u64,
                    Vec<String>,
                );
                // A failed heartbeat measured nothing: two in a row past the mark are two
                // answered ones.
                let was_above = above.swap(false, Ordering::AcqRel);
                let (now, alive, dead, buried, redis_id, formats, watchers, backlog, behind): Answer =
                    script
                        .key(keys.nodes())
                        .key(keys.buried())
                        .key(keys.settings())
                        .key(keys.formats())
                        .key(keys.watchers())
                        .key(keys.inbox(&node))
                        .key(keys.behind())
                        .arg(&node)
                        .arg(ttl_ms)
                        .arg(interval_ms)
                        .arg(if watching { "1" } else { "0" })
                        .arg(Range::OURS.to_string())
                        .arg(high_water)
                        .arg(if was_above { "1" } else { "0" })
                        .arg(read)
                        .invoke_async(&mut redis)
                        .await
                        .map_err(|err| err.to_string())?;
                above.store(
                    high_water > 0 && backlog >= high_water as u64,
                    Ordering::Release,
                );
                let mine = super::wire::unix_ms_now();
                let offset = i64::try_from(now).unwrap_or(i64::MAX)
                    - i64::try_from(mine).unwrap_or(i64::MAX);
                let formats = alive
                    .iter()
                    .zip(formats)
                    .filter(|(other, _)| **other != node)
                    .map(|(other, range)| (other.clone(), range.as_deref().and_then(Range::parse)))
                    .collect();
                let watchers = watchers
                    .into_iter()
                    .filter(|other| *other != node)
                    .collect();
                Ok::<_, String>(Beat {
                    sent,
                    now,
                    alive,
                    dead,
                    buried: buried == 1,
                    redis_id,
                    formats,
                    watchers,
                    backlog,
                    behind: behind.into_iter().collect(),
                    offset,
                })
            }
        };
        let Beat {
            sent,
            now,
            alive,
            dead,
            redis_id,
            formats,
            watchers,
            backlog,
            behind,
            offset,
            ..
        } = beat(&mut redis).await?;
        if redis_id.is_empty() {
            tracing::warn!(
                "Redis does not tell its run id (INFO refused to this node's user?): this node \
                 cannot tell when a restart or failover loses Redis's last writes, and does \
                 not reassert its claims and held messages then"
            );
        }
        let membership = Membership {
            alive: alive.into_iter().collect(),
            dead: dead.into_iter().collect(),
            last_beat_ms: now,
            valid_until: (sent + ttl).checked_sub(margin),
            failures: 0,
            lapses: 0,
            lapse_buried: false,
            redis_id,
            formats,
            watchers,
            backlog,
            behind,
            redis_offset_ms: offset,
        };
        let (tx, _) = watch::channel(membership);
        let liveness = Arc::new(Self {
            membership: tx,
            node_ttl: ttl,
            watching,
            read_untrimmed,
        });
        let weak = Arc::downgrade(&liveness);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(liveness) = weak.upgrade() else {
                    return;
                };
                match beat(&mut redis).await {
                    Ok(Beat {
                        sent,
                        now,
                        alive,
                        dead,
                        buried,
                        redis_id,
                        formats,
                        watchers,
                        backlog,
                        behind,
                        offset,
                    }) => {
                        liveness.membership.send_modify(|m| {
                            let lapsed = m.valid_until.is_none_or(|until| Instant::now() >= until);
                            if lapsed || buried {
                                m.lapses += 1;
                                m.lapse_buried = buried;
                                tracing::warn!(
                                    gap_ms = now.saturating_sub(m.last_beat_ms),
                                    taken_for_dead = buried,
                                    "this node's cluster heartbeat lapsed and is back: checking \
                                     what it still owns"
                                );
                            }
                            if redis_id != m.redis_id {
                                tracing::warn!(
                                    was = %m.redis_id,
                                    now = %redis_id,
                                    "Redis restarted or failed over, and may have lost its last \
                                     writes: reasserting this node's claims and held messages"
                                );
                                m.redis_id = redis_id;
                            }
                            m.alive = alive.into_iter().collect();
                            m.dead = dead.into_iter().collect();
                            m.formats = formats;
                            m.watchers = watchers;
                            m.backlog = backlog;
                            m.behind = behind;
                            m.redis_offset_ms = offset;
                            m.last_beat_ms = now;
                            m.valid_until = (sent + ttl).checked_sub(margin);
                            m.failures = 0;
                        });
                    }
                    Err(err) => {
                        liveness.membership.send_modify(|m| m.failures += 1);
                        if let Some(suppressed) = HEARTBEAT_FAILED.check() {
                            tracing::warn!(%err, suppressed, "cluster heartbeat failed");
                        }
                    }
                }
            }
        });
        Ok(liveness)
    }

    /// What this node knows now.
    pub(crate) fn membership(&self) -> Membership {
        self.membership.borrow().clone()
    }

    /// Times this node's validity lapsed and came back (see [`Membership::lapses`]), without
    /// a copy of the rest: read once for every batch read off the inbox.
    pub(crate) fn lapses(&self) -> u64 {
        self.membership.borrow().lapses
    }

    /// Now, by Redis's clock as of the last heartbeat, in Unix milliseconds.
    pub(crate) fn redis_now_ms(&self) -> u64 {
        let offset = self.membership.borrow().redis_offset_ms;
        super::wire::unix_ms_now().saturating_add_signed(offset)
    }

    /// Whether `node` fell behind its inbox, as of this node's last heartbeat, and that
    /// heartbeat is recent enough to act on.
    pub(crate) fn is_behind(&self, node: &str) -> bool {
        let membership = self.membership.borrow();
        membership.failures == 0
            && membership
                .valid_until
                .is_some_and(|until| Instant::now() < until)
            && membership.behind.contains(node)
    }

    /// Changes of what this node knows.
    pub(crate) fn watch(&self) -> watch::Receiver<Membership> {
        self.membership.subscribe()
    }

    /// Whether this node may act now: its heartbeat is recent enough that no peer can take
    /// it for dead.
    pub(crate) fn is_valid(&self) -> bool {
        self.membership
            .borrow()
            .valid_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// Waits until this node may act ([`Liveness::is_valid`]).
    pub(crate) async fn wait_valid(&self) {
        let mut watch = self.membership.subscribe();
        loop {
            let until = watch.borrow_and_update().valid_until;
            if until.is_some_and(|until| Instant::now() < until) {
                return;
            }
            if watch.changed().await.is_err() {
                return;
            }
        }
    }

    /// A console stream of this node starts watching the cluster's events; it stops when the
    /// answer is dropped. The other nodes hear of it with this node's next heartbeat.
    pub(crate) fn watch_events(&self) -> Watching {
        self.watching.fetch_add(1, Ordering::AcqRel);
        Watching(Arc::clone(&self.watching))
    }

    /// Where the inbox's reader says how many entries it read are still in the inbox.
    pub(crate) fn read_untrimmed(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.read_untrimmed)
    }

    /// The TTL after which a silent node is dead.
    pub(crate) fn node_ttl(&self) -> Duration {
        self.node_ttl
    }
}

static HEARTBEAT_FAILED: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(Duration::from_secs(10));
