//! What nodes tell each other, through their inboxes: one Redis stream per node
//! (`PREFIX:inbox:NODE`), each entry a batch of messages from one node, in order.
//!
//! A node reads its inbox on a connection of its own (`XREAD BLOCK`), and trims it as it goes
//! (`XTRIM MINID`, in one pipeline with the next read, or at once when the node is behind;
//! on each new connection, up to everything it has read, in case Redis came back from older
//! data), so
//! that the inbox of a node that died holds the frames it never read (what the senders replay
//! to the channels' next owners) and, but for the read in flight, none it did. What holds no
//! frame (deliveries to this node's sockets, verdicts, answers) is not replayed, so its trim
//! waits for the next read that holds a frame, or for [`TRIM_LAG`], [`TRIM_ENTRIES`] or
//! [`TRIM_BYTES`]: a node that only hosts sockets trims about once a second, not once a read.
//! Writes are batched per destination: a message waits at most for the messages already
//! queued, so that a burst goes out in one `XADD`. Each entry says its format (`v`, see
//! `format`); one this node does not read is set aside and counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kvs_signaling_core::OpenConnection;
use kvs_signaling_proto::{ChannelArn, ClientId, MessageTtlSeconds};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::Liveness;
use super::keys::Keys;

/// A message between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub(crate) enum Msg {
    /// To a channel's owner: open a connection whose socket the sender holds as `link`.
    Open {
        req: u64,
        link: u64,
        open: OpenParams,
    },
    /// To the owner: a text message on `conn`, read off its socket at `at` (Unix
    /// milliseconds), by which its connection's rates are judged.
    Frame { conn: u64, text: String, at: u64 },
    /// To the owner: the client of `conn` pinged.
    Keepalive { conn: u64 },
    /// To the owner: the socket of `conn` is closed.
    Closed { conn: u64 },
    /// To the owner: a tracked frame of `conn` was written (or never will be).
    Acked {
        conn: u64,
        token: u64,
        written: bool,
    },
    /// To the owner: a SendAlexaOfferToMaster call.
    Alexa {
        req: u64,
        arn: String,
        sender: String,
        payload: String,
        ttl: u32,
        rev: u64,
    },
    /// To a socket's node: the owner's verdict on its `Open`.
    Verdict { req: u64, verdict: Verdict },
    /// To a socket's node: write `frame` to the socket `link` (the owner's connection
    /// `conn`).
    Deliver {
        link: u64,
        conn: u64,
        frame: String,
        token: Option<u64>,
    },
    /// To a socket's node: close the socket `link` (the owner's connection `conn`).
    Close {
        link: u64,
        conn: u64,
        code: u16,
        reason: String,
    },
    /// To a socket's node: the owner knows no connection `conn` (it was closed there, or the
    /// channel moved away): its socket is to be closed.
    Gone { conn: u64 },
    /// To the caller's node: the answer of an Alexa offer.
    AlexaAnswer { req: u64, verdict: Verdict },
    /// To a node: what its hubs hold now, for a console (answered with `State`).
    States { req: u64 },
    /// To the asking node: this node's hubs, as the console shows them (JSON).
    State { req: u64, state: String },
    /// To every node: a channel's TTL changed.
    Updated { arn: String, ttl: u32, rev: u64 },
    /// To every node: a channel was deleted.
    Deleted { arn: String },
    /// To the nodes holding sockets of a channel its owner is giving up: hold their frames
    /// (behind those already sent) and answer `Paused`.
    Pause { arn: String, req: u64 },
    /// To the owner: every frame of the channel's sockets here was sent before this.
    Paused { req: u64 },
    /// To the nodes holding sockets of a channel: its owner gave it up, with its held
    /// messages in Redis; open the sockets at its next owner and send what was held.
    Moved { arn: String },
    /// To a node whose console watches the cluster's events: the sender's events (the
    /// console's JSON, each naming its node), and how many it skipped since its last
    /// (format 2, [`super::format::EVENTS`]).
    Events { events: Vec<String>, skipped: u64 },
}

impl Msg {
    /// About how many bytes the message takes in a batch: its text, payload or state, and a
    /// fixed allowance for the rest.
    pub(crate) fn weight(&self) -> usize {
        const FIELDS: usize = 64;
        FIELDS
            + match self {
                Self::Frame { text, .. } => text.len(),
                Self::Deliver { frame, .. } => frame.len(),
                Self::Alexa { payload, arn, .. } => payload.len() + arn.len(),
                Self::State { state, .. } => state.len(),
                Self::Events { events, .. } => events.iter().map(String::len).sum(),
                Self::Close { reason, .. } => reason.len(),
                Self::Open { open, .. } => open.arn.len(),
                Self::Updated { arn, .. }
                | Self::Deleted { arn }
                | Self::Pause { arn, .. }
                | Self::Moved { arn } => arn.len(),
                Self::AlexaAnswer { verdict, .. } | Self::Verdict { verdict, .. } => {
                    match verdict {
                        Verdict::Ok(text) => text.len(),
                        Verdict::Refused { message, .. } => message.len(),
                        Verdict::NotOwner { .. } => 0,
                    }
                }
                Self::Keepalive { .. }
                | Self::Closed { .. }
                | Self::Acked { .. }
                | Self::Gone { .. }
                | Self::States { .. }
                | Self::Paused { .. } => 0,
            }
    }
}

/// A connect, as its socket's node asks the owner to open it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OpenParams {
    pub(crate) arn: String,
    pub(crate) client: Option<String>,
    pub(crate) ttl: u32,
    pub(crate) rev: u64,
    pub(crate) indications: bool,
    pub(crate) delivery: bool,
    pub(crate) addr: Option<String>,
    /// For a connection moving to a new owner: how long it has been open, in milliseconds.
    pub(crate) restored_ms: Option<u64>,
}

impl OpenParams {
    pub(crate) fn new(open: &OpenConnection) -> Self {
        Self {
            arn: open.channel_arn.as_str().to_owned(),
            client: open.client_id.as_ref().map(|id| id.as_str().to_owned()),
            ttl: open.message_ttl.get(),
            rev: open.ttl_revision,
            indications: open.indications,
            delivery: open.delivery_status,
            addr: open.remote_addr.map(|addr| addr.to_string()),
            restored_ms: open
                .restored
                .map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// The connect, or what is wrong with it (a node of another version, or a damaged entry).
    pub(crate) fn open(&self) -> Result<OpenConnection, String> {
        let arn = ChannelArn::new(&self.arn).map_err(|err| format!("X-Amz-ChannelARN: {err}"))?;
        let ttl =
            MessageTtlSeconds::new(self.ttl).map_err(|err| format!("MessageTtlSeconds: {err}"))?;
        let open = match &self.client {
            Some(client) => {
                let id = ClientId::new(client).map_err(|err| format!("X-Amz-ClientId: {err}"))?;
                OpenConnection::viewer(arn, id, ttl)
            }
            None => OpenConnection::master(arn, ttl),
        };
        Ok(open
            .ttl_revision(self.rev)
            .indications(self.indications)
            .delivery_status(self.delivery)
            .remote_addr(self.addr.as_deref().and_then(|addr| addr.parse().ok()))
            .restored(self.restored_ms.map(Duration::from_millis)))
    }
}

/// An owner's answer to an `Open` or an `Alexa`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Verdict {
    /// Accepted: the owner's connection id, or the Alexa answer's payload.
    Ok(String),
    /// Refused with the service's error (its name) and message.
    Refused { error: String, message: String },
    /// The node does not own the channel (any more); the owner it knows, if any.
    NotOwner { owner: Option<String> },
}

/// One entry of an inbox: messages from one node, in order. `seq` counts the sender's
/// batches to this node: a batch written twice (a retry after a lost answer) is read once.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub(crate) from: String,
    pub(crate) seq: u64,
    pub(crate) msgs: Vec<Msg>,
    /// When it was written to this node's inbox (its entry id's Unix milliseconds, by Redis's
    /// clock), as read; 0 for a batch not read off this node's inbox.
    #[serde(skip)]
    pub(crate) written_ms: u64,
}

/// Messages waiting for the writer, at most: past it, senders wait.
pub(crate) const OUTBOUND_QUEUE: usize = 16_384;
/// A batch is sent when it holds about this many bytes (its messages' [`Msg::weight`]), or
/// when nothing more is queued: what bounds an inbox entry, and the time one takes to write.
pub(crate) const BATCH_BYTES: usize = 512 * 1024;
/// Batches read off the inbox and not yet handled, at most: with [`BATCH_BYTES`], what bounds
/// the memory they take (past it, the reader waits).
pub(crate) const READ_QUEUE: usize = 64;
/// How long one read of the inbox waits for entries.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// Inbox entries one read takes, at most: with [`BATCH_BYTES`], what bounds a read's answer.
const READ_COUNT: usize = 16;
/// How long entries without a frame may stay in the inbox once read before the next read
/// trims them (their trim waits for a read that holds a frame); a quiet inbox trims them when
/// its read times out, so they stay at most about `TRIM_LAG + READ_BLOCK`.
const TRIM_LAG: Duration = READ_BLOCK;
/// How many entries without a frame may stay in the inbox once read, at most.
const TRIM_ENTRIES: usize = 256;
/// How many bytes of entries without a frame may stay in the inbox once read, at most.
const TRIM_BYTES: usize = 4 * 1024 * 1024;
/// Attempts of a write to the inboxes (about 3 s in all) before its messages are given up.
const RETRIES: usize = 7;

/// What the inbox writer and reader count, for the metrics.
#[derive(Debug, Default)]
pub(crate) struct WireStats {
    /// Inbox entries written (one `XADD` each), and the messages in them.
    pub(crate) batches_written: AtomicU64,
    pub(crate) messages_written: AtomicU64,
    /// Messages given up: not written after every retry, or not sent while this node's
    /// heartbeat was stale (console events not counted).
    pub(crate) messages_lost: AtomicU64,
    /// Write rounds (one pipeline each) and their total time, in microseconds.
    pub(crate) write_rounds: AtomicU64,
    pub(crate) write_us: AtomicU64,
    /// Inbox entries read, the messages in them, and their total time in the inbox
    /// (milliseconds, from the entry's id to its reading).
    pub(crate) batches_read: AtomicU64,
    pub(crate) messages_read: AtomicU64,
    pub(crate) lag_ms: AtomicU64,
    /// Trims of this node's inbox done (`XTRIM` commands that succeeded).
    pub(crate) trims: AtomicU64,
    /// Inbox entries and held messages set aside because they are in a format this node does
    /// not read (written by a newer release).
    pub(crate) unknown_formats: AtomicU64,
    /// Batches other nodes wrote to this node's inbox that never reached its reader: trimmed
    /// unread past the inbox's cap (`ClusterConfig::inbox_max_entries`), lost by Redis, or
    /// given up by their sender (found as gaps in each sender's batch numbers).
    pub(crate) batches_missing: AtomicU64,
}

/// What the writer is given: a message for a node, or a request to say when everything
/// given before is written (or given up).
#[derive(Debug)]
pub(crate) enum Outgoing {
    Msg(String, Msg),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Writes messages to other nodes' inboxes, batched per destination. Returns the sender of
/// what to write.
pub(crate) fn spawn_writer(redis: super::keys::Redis, writer: Writer) -> mpsc::Sender<Outgoing> {
    let (tx, mut rx) = mpsc::channel::<Outgoing>(OUTBOUND_QUEUE);
    tokio::spawn(async move {
        let mut redis = redis;
        let mut queued = std::collections::VecDeque::new();
        let mut received = Vec::new();
        let mut seqs: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            if queued.is_empty() {
                let taken = rx.recv_many(&mut received, RECEIVE_MANY).await;
                if taken == 0 {
                    break;
                }
                queued.extend(received.drain(..));
                // What comes meanwhile joins this round: fewer, larger entries, each message
                // later by up to the linger. Only for traffic: never with a backlog (more was
                // waiting than one take), nor for a flush or a message of the routing itself
                // (opens, verdicts, pauses...), which hand-overs and connects wait for.
                if !writer.linger.is_zero() && taken < RECEIVE_MANY && queued.iter().all(lingers) {
                    linger(&mut rx, &mut queued, writer.linger).await;
                }
            }
            let (batches, flushes) = gather(&mut queued, &mut rx);
            let started = std::time::Instant::now();
            write_round(&mut redis, &writer, &mut seqs, batches).await;
            let stats = &writer.stats;
            stats.write_rounds.fetch_add(1, Ordering::Relaxed);
            stats.write_us.fetch_add(
                u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            for done in flushes {
                let _ = done.send(());
            }
        }
    });
    tx
}

/// What the writer takes off its queue at once, at most.
const RECEIVE_MANY: usize = 256;

/// Whether `item` may wait for the batch linger: the clients' traffic, not the routing's.
fn lingers(item: &Outgoing) -> bool {
    matches!(
        item,
        Outgoing::Msg(
            _,
            Msg::Frame { .. }
                | Msg::Deliver { .. }
                | Msg::Keepalive { .. }
                | Msg::Acked { .. }
                | Msg::Events { .. }
        )
    )
}

/// Waits out the batch linger `wait`, taking what comes meanwhile into `queued`; ends at
/// once when a flush or a routing message comes (neither waits), or a take's worth has come.
async fn linger(
    rx: &mut mpsc::Receiver<Outgoing>,
    queued: &mut std::collections::VecDeque<Outgoing>,
    wait: Duration,
) {
    let deadline = tokio::time::Instant::now() + wait;
    while queued.len() < RECEIVE_MANY {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(item)) => {
                let done = !lingers(&item);
                queued.push_back(item);
                if done {
                    return;
                }
            }
            // The linger is over, or the writer's senders are gone.
            Ok(None) | Err(_) => return,
        }
    }
}

/// Batches per destination, with their messages' weight.
type Batches = BTreeMap<String, (Vec<Msg>, usize)>;

/// The next round: what is queued and what else `rx` holds now, until one destination's
/// batch reaches [`BATCH_BYTES`] (the rest stays in `queued` for the next round); with the
/// flush requests among them.
fn gather(
    queued: &mut std::collections::VecDeque<Outgoing>,
    rx: &mut mpsc::Receiver<Outgoing>,
) -> (Batches, Vec<tokio::sync::oneshot::Sender<()>>) {
    let mut batches = Batches::new();
    let mut flushes = Vec::new();
    // Whether a batch is full.
    let mut take = |item: Outgoing, batches: &mut Batches| match item {
        Outgoing::Msg(node, msg) => {
            let entry = batches.entry(node).or_default();
            entry.1 += msg.weight();
            entry.0.push(msg);
            entry.1 >= BATCH_BYTES
        }
        Outgoing::Flush(done) => {
            flushes.push(done);
            false
        }
    };
    let mut full = false;
    while let Some(item) = queued.pop_front() {
        if take(item, &mut batches) {
            full = true;
            break;
        }
    }
    while !full && let Ok(item) = rx.try_recv() {
        full = take(item, &mut batches);
    }
    (batches, flushes)
}

/// What the inbox writer writes with.
pub(crate) struct Writer {
    pub(crate) keys: Keys,
    /// This node.
    pub(crate) me: String,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) stats: Arc<WireStats>,
    /// The entries an inbox keeps at most (`ClusterConfig::inbox_max_entries`): what is
    /// trimmed past it is lost, and counted by its reader, which finds the senders' batch
    /// numbers (`seq`) skip.
    pub(crate) inbox_cap: usize,
    /// How long a round waits, once it has a message, for more to join it
    /// (`ClusterConfig::batch_linger`): none by default.
    pub(crate) linger: Duration,
}

/// Writes one round of batches, one `XADD` per destination, in one pipeline.
async fn write_round(
    redis: &mut super::keys::Redis,
    writer: &Writer,
    seqs: &mut BTreeMap<String, u64>,
    batches: Batches,
) {
    let Writer {
        keys,
        me,
        liveness,
        stats,
        inbox_cap,
        ..
    } = writer;
    if batches.is_empty() {
        return;
    }
    let messages: usize = batches.values().map(|(msgs, _)| msgs.len()).sum();
    let messages = messages as u64;
    // Console events given up are no signaling lost: they are not counted as lost.
    let events: usize = batches
        .values()
        .map(|(msgs, _)| {
            msgs.iter()
                .filter(|msg| matches!(msg, Msg::Events { .. }))
                .count()
        })
        .sum();
    let signaling = messages - events as u64;
    // A node that may have been taken for dead forwards nothing: what it would send
    // may be stale (it was paused, or cut off from Redis), and its peers act without it.
    if !liveness.is_valid() {
        let dropped = signaling;
        stats.messages_lost.fetch_add(dropped, Ordering::Relaxed);
        if let Some(suppressed) = SEND_FAILED.check() {
            tracing::warn!(
                dropped,
                suppressed,
                "not sending to other nodes while this node's heartbeat is stale"
            );
        }
        return;
    }
    let mut pipe = redis::pipe();
    let entries = batches.len() as u64;
    for (node, (msgs, _)) in batches {
        let seq = seqs.entry(node.clone()).or_insert(0);
        *seq += 1;
        // The oldest format that reads the entry.
        let format = if msgs.iter().any(|msg| matches!(msg, Msg::Events { .. })) {
            super::format::EVENTS
        } else {
            super::format::FIRST
        };
        let batch = Batch {
            from: me.to_owned(),
            seq: *seq,
            msgs,
            written_ms: 0,
        };
        let Ok(json) = serde_json::to_string(&batch) else {
            // Never expected; its node finds the gap in the batch numbers, and this one counts
            // what it could not send.
            stats
                .messages_lost
                .fetch_add(batch.msgs.len() as u64, Ordering::Relaxed);
            continue;
        };
        pipe.cmd("XADD")
            .arg(keys.inbox(&node))
            .arg("MAXLEN")
            .arg("~")
            .arg(*inbox_cap)
            .arg("*")
            .arg("v")
            .arg(format)
            .arg("b")
            .arg(json)
            .ignore();
    }
    // Sent again while the connection mends (Redis restarted, the connection was
    // killed): a batch that did get in the first time is read once, by its `seq`.
    let mut backoff = Duration::from_millis(50);
    for attempt in 0..RETRIES {
        match pipe.query_async::<()>(redis).await {
            Ok(()) => {
                stats.batches_written.fetch_add(entries, Ordering::Relaxed);
                stats
                    .messages_written
                    .fetch_add(messages, Ordering::Relaxed);
                break;
            }
            Err(err) => {
                if attempt + 1 == RETRIES {
                    stats.messages_lost.fetch_add(signaling, Ordering::Relaxed);
                    if let Some(suppressed) = SEND_FAILED.check() {
                        tracing::warn!(%err, suppressed, "messages to other nodes were lost");
                    }
                } else {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

static SEND_FAILED: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(Duration::from_secs(10));
static READ_FAILED: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(Duration::from_secs(10));
static TRIM_FAILED: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(Duration::from_secs(10));
static UNREADABLE: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(Duration::from_secs(10));

/// Reads this node's inbox on a connection of its own, from the start of its stream (a new
/// node's is empty), handing each batch to `deliver` in order, and trims what it has read: in
/// one pipeline with the next read, once the batches read are handed on; or, when `deliver`
/// is full, at once, before waiting (then past the read's batches not yet handed on, which,
/// like those queued, are lost if the node dies before it handles them).
pub(crate) fn spawn_reader(
    client: super::keys::Connector,
    keys: Keys,
    me: String,
    deliver: mpsc::Sender<Batch>,
    stats: Arc<WireStats>,
    read_untrimmed: Arc<AtomicU64>,
) {
    tokio::spawn(async move {
        let inbox = keys.inbox(&me);
        let mut last = "0-0".to_owned();
        let mut backoff = Duration::from_millis(50);
        let mut untrimmed = Untrimmed::default();
        // The entries read and still in the inbox, which the heartbeat takes off its length
        // to tell how many wait unread (`read_untrimmed`).
        let mut unacked = Unacked {
            published: read_untrimmed,
            ..Unacked::default()
        };
        // Where to trim with the next read: what is read is taken, so that the inbox of a
        // node that dies holds the frames it never read, which the senders replay to the
        // channels' next owners, and none it did.
        let mut trim: Option<String> = None;
        loop {
            // A read blocks for at most `READ_BLOCK`: an answer that takes much longer means a
            // connection cut off without a reset (a partition); the reader connects again.
            let config = redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(READ_BLOCK + Duration::from_secs(2)))
                .set_connection_timeout(Some(Duration::from_secs(2)));
            let mut conn = match client.dedicated(&config).await {
                Ok(conn) => conn,
                Err(err) => {
                    if let Some(suppressed) = READ_FAILED.check() {
                        tracing::warn!(%err, suppressed, "this node's inbox cannot be read");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            // On a new connection, everything read so far is trimmed with the first read: Redis
            // may have come back from older data (a failover to a lagging replica, an older
            // AOF), with entries this node had read and trimmed, which would be replayed, a
            // second time, if it died.
            if last != "0-0" {
                untrimmed.take();
                trim = Some(after(&last));
            }
            loop {
                let mut pipe = redis::pipe();
                // Each answer on its own: a refused trim (a primary being demoted, writes
                // refused for want of disk or replicas) does not cost the read.
                pipe.ignore_errors();
                if let Some(after) = &trim {
                    pipe.add_command(xtrim(&inbox, after));
                }
                pipe.cmd("XREAD")
                    .arg("COUNT")
                    .arg(READ_COUNT)
                    .arg("BLOCK")
                    .arg(READ_BLOCK.as_millis().to_string())
                    .arg("STREAMS")
                    .arg(&inbox)
                    .arg(&last);
                let answers: redis::RedisResult<Vec<redis::RedisResult<redis::Value>>> =
                    pipe.query_async(&mut conn).await;
                let mut answers = match answers {
                    Ok(answers) => answers.into_iter(),
                    // No answer at all (the connection failed): the trim waits for the next
                    // connection, the read is done again from where it was.
                    Err(err) => {
                        read_failed(&client, &err, &mut backoff).await;
                        break;
                    }
                };
                // What a refused trim leaves to trim, under whatever comes next.
                let refused = trim.take().and_then(|after| {
                    let answer = answers.next().unwrap_or_else(|| Err(unanswered()));
                    let done = position(&after);
                    let refused = trimmed(answer, after, &client, &stats);
                    if refused.is_none() {
                        unacked.trimmed(done);
                    }
                    refused
                });
                let read = answers.next().unwrap_or_else(|| Err(unanswered()));
                let entries = match read.and_then(read_reply) {
                    Ok(entries) => {
                        backoff = Duration::from_millis(50);
                        entries
                    }
                    Err(err) => {
                        trim = refused;
                        read_failed(&client, &err, &mut backoff).await;
                        break;
                    }
                };
                let Some(newest) = entries.last().map(|entry| entry.id.clone()) else {
                    // A quiet inbox: what waits for its trim waits no longer.
                    trim = untrimmed.take().or(refused);
                    continue;
                };
                let read = entries.len();
                let bytes = entries
                    .iter()
                    .map(|entry| entry.batch.as_ref().map_or(0, Vec::len))
                    .sum();
                let batches: Vec<(u64, Batch)> = entries
                    .into_iter()
                    .filter_map(|entry| {
                        let batch = readable(&entry, &stats)?;
                        Some((entry_ms(&entry.id), batch))
                    })
                    .collect();
                let frames = batches.iter().any(|(_, batch)| {
                    batch
                        .msgs
                        .iter()
                        .any(|msg| matches!(msg, Msg::Frame { .. }))
                });
                // A later trim covers an earlier one (`MINID` drops everything before it).
                trim = untrimmed
                    .read(after(&newest), read, bytes, frames)
                    .or(refused);
                unacked.read(&after(&newest), read);
                last = newest;
                for (written_ms, mut batch) in batches {
                    batch.written_ms = written_ms;
                    stats.batches_read.fetch_add(1, Ordering::Relaxed);
                    stats
                        .messages_read
                        .fetch_add(batch.msgs.len() as u64, Ordering::Relaxed);
                    stats
                        .lag_ms
                        .fetch_add(unix_ms_now().saturating_sub(written_ms), Ordering::Relaxed);
                    let batch = match deliver.try_send(batch) {
                        Ok(()) => continue,
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                        Err(mpsc::error::TrySendError::Full(batch)) => batch,
                    };
                    // The node is behind: what it has read is trimmed now, not once it has
                    // caught up, so that what it handles meanwhile is not replayed if it dies.
                    if let Some(after) = trim.take() {
                        let answer = xtrim(&inbox, &after).query_async(&mut conn).await;
                        let done = position(&after);
                        trim = trimmed(answer, after, &client, &stats);
                        if trim.is_none() {
                            unacked.trimmed(done);
                        }
                    }
                    if deliver.send(batch).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// `XTRIM` of `inbox` up to (not including) the id `after`.
fn xtrim(inbox: &str, after: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("XTRIM");
    cmd.arg(inbox).arg("MINID").arg(after);
    cmd
}

/// Takes a trim's answer: counted when done; when refused, logged, reported (a demoted
/// primary refuses writes) and returned, still to do.
fn trimmed(
    answer: redis::RedisResult<redis::Value>,
    after: String,
    client: &super::keys::Connector,
    stats: &WireStats,
) -> Option<String> {
    match answer {
        Ok(_) => {
            stats.trims.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(err) => {
            client.lost(&err);
            if let Some(suppressed) = TRIM_FAILED.check() {
                tracing::warn!(%err, suppressed, "trimming this node's inbox failed");
            }
            Some(after)
        }
    }
}

/// A read of the inbox failed: logged, reported, and the next one waits (an error that
/// persists, such as a refused command or a primary that is not one yet, is not retried in a
/// tight loop).
async fn read_failed(
    client: &super::keys::Connector,
    err: &redis::RedisError,
    backoff: &mut Duration,
) {
    client.lost(err);
    if let Some(suppressed) = READ_FAILED.check() {
        tracing::warn!(%err, suppressed, "reading this node's inbox failed");
    }
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(Duration::from_secs(1));
}

/// A pipeline's answer that is not there.
fn unanswered() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "an inbox read without an answer",
    ))
}

/// The entries of an `XREAD` answer for one stream, oldest first: each id with its batch's
/// bytes (its `b` field; `None` for an entry without one) and its format (`v`). A read that
/// timed out (nil) has none. Taken apart in place: the answer can be megabytes, and is not
/// copied.
fn read_reply(reply: redis::Value) -> redis::RedisResult<Vec<Entry>> {
    use redis::Value;
    fn malformed(what: &str) -> redis::RedisError {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "an XREAD answer of an unexpected shape",
            what.to_owned(),
        ))
    }
    fn text(value: Value) -> Option<String> {
        match value {
            Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
            Value::SimpleString(text) => Some(text),
            _ => None,
        }
    }
    // RESP2: [[stream, entries]]; RESP3: {stream: entries}.
    let streams: Vec<Value> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => pair
                    .pop()
                    .ok_or_else(|| malformed("a stream without entries")),
                _ => Err(malformed("a stream is not a name and its entries")),
            })
            .collect::<redis::RedisResult<_>>()?,
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        _ => return Err(malformed("not an array or a map")),
    };
    let mut out = Vec::new();
    for entries in streams {
        let Value::Array(entries) = entries else {
            return Err(malformed("a stream's entries are not an array"));
        };
        for entry in entries {
            let Value::Array(entry) = entry else {
                return Err(malformed("an entry is not an array"));
            };
            let mut parts = entry.into_iter();
            let id = parts
                .next()
                .and_then(text)
                .ok_or_else(|| malformed("an entry without an id"))?;
            let mut batch = None;
            let mut format = super::format::first();
            if let Some(Value::Array(fields)) = parts.next() {
                let mut fields = fields.into_iter();
                while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
                    let Value::BulkString(name) = name else {
                        continue;
                    };
                    match (name.as_slice(), value) {
                        (b"b", Value::BulkString(bytes)) => batch = Some(bytes),
                        (b"v", value) => format = format_of(Some(&value)),
                        _ => {}
                    }
                }
            }
            out.push(Entry { id, format, batch });
        }
    }
    Ok(out)
}

/// An inbox entry as read: its id, its format, and its batch's JSON.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    id: String,
    format: u32,
    batch: Option<Vec<u8>>,
}

/// An entry's format from its `v` field: 1 without one; one that is not a number is no
/// format this node reads.
fn format_of(field: Option<&redis::Value>) -> u32 {
    let text = match field {
        None => return super::format::first(),
        Some(redis::Value::BulkString(bytes)) => std::str::from_utf8(bytes).ok(),
        Some(redis::Value::SimpleString(text)) => Some(text.as_str()),
        Some(_) => None,
    };
    text.and_then(|v| v.parse().ok()).unwrap_or(u32::MAX)
}

/// The batch of `entry`, if it has one this node reads; what it does not read is counted and
/// logged.
fn readable(entry: &Entry, stats: &WireStats) -> Option<Batch> {
    if !super::format::readable(entry.format) {
        stats.unknown_formats.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = UNREADABLE.check() {
            let what = format!("inbox entry {}", entry.id);
            tracing::warn!(
                suppressed,
                "{}",
                super::format::unknown(&what, entry.format)
            );
        }
        return None;
    }
    match serde_json::from_slice::<Batch>(entry.batch.as_deref()?) {
        Ok(batch) => Some(batch),
        Err(err) => {
            if let Some(suppressed) = UNREADABLE.check() {
                tracing::warn!(%err, suppressed, id = %entry.id, "an unreadable inbox entry");
            }
            None
        }
    }
}

/// What the reader has read and not trimmed yet: entries that hold no frame.
#[derive(Debug, Default)]
struct Untrimmed {
    /// Where the trim is to go (`XTRIM MINID`), if anything waits for it.
    after: Option<String>,
    /// Entries waiting, their bytes, and since when.
    entries: usize,
    bytes: usize,
    since: Option<std::time::Instant>,
}

impl Untrimmed {
    /// `entries` more were read (`bytes` of batches), up to `after`: where to trim now, if it
    /// is time (the read holds a frame, or what waits is old, many or large enough).
    fn read(
        &mut self,
        after: String,
        entries: usize,
        bytes: usize,
        frames: bool,
    ) -> Option<String> {
        self.after = Some(after);
        self.entries += entries;
        self.bytes = self.bytes.saturating_add(bytes);
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        if frames
            || self.entries >= TRIM_ENTRIES
            || self.bytes >= TRIM_BYTES
            || since.elapsed() >= TRIM_LAG
        {
            self.take()
        } else {
            None
        }
    }

    /// Where to trim, if anything waits for it; nothing waits afterwards.
    fn take(&mut self) -> Option<String> {
        self.entries = 0;
        self.bytes = 0;
        self.since = None;
        self.after.take()
    }
}

/// The entries the reader read that are still in the inbox (their trim waits, or was
/// refused), by the read that took them.
#[derive(Debug, Default)]
struct Unacked {
    /// Each read's trim position (the id after its newest entry) and entries, oldest first.
    reads: std::collections::VecDeque<((u64, u64), u64)>,
    /// Their entries in all.
    total: u64,
    /// Where `total` is published, with every change (for the heartbeat).
    published: Arc<AtomicU64>,
}

/// Reads [`Unacked`] tells apart, at most: past it, the oldest two count as one (whose
/// entries then leave with the later's trim).
const UNACKED_READS: usize = 1024;

/// A stream id (`MS-SEQ`) as numbers, to compare; `(0, 0)` for what is not one.
fn position(id: &str) -> (u64, u64) {
    id.split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)))
        .unwrap_or((0, 0))
}

impl Unacked {
    /// A read took `entries`, up to the trim position `after`.
    fn read(&mut self, after: &str, entries: usize) {
        let entries = entries as u64;
        self.total += entries;
        self.reads.push_back((position(after), entries));
        if self.reads.len() > UNACKED_READS
            && let Some((_, oldest)) = self.reads.pop_front()
            && let Some((_, next)) = self.reads.front_mut()
        {
            *next += oldest;
        }
        self.published.store(self.total, Ordering::Relaxed);
    }

    /// The inbox was trimmed up to (not including) `position`: the reads it covers are gone.
    fn trimmed(&mut self, position: (u64, u64)) {
        while let Some((after, entries)) = self.reads.front()
            && *after <= position
        {
            self.total -= entries;
            self.reads.pop_front();
        }
        self.published.store(self.total, Ordering::Relaxed);
    }
}

/// The Unix milliseconds of a stream id (`MS-SEQ`): when it was written.
fn entry_ms(id: &str) -> u64 {
    id.split_once('-')
        .and_then(|(ms, _)| ms.parse::<u64>().ok())
        .unwrap_or(0)
}

/// The time now, in Unix milliseconds.
pub(crate) fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `read_at`, a time of this process, in Unix milliseconds.
pub(crate) fn unix_ms_of(read_at: std::time::Instant) -> u64 {
    unix_ms_now().saturating_sub(u64::try_from(read_at.elapsed().as_millis()).unwrap_or(0))
}

/// Unix milliseconds `at` (another node's reading time), as a time of this process: at most
/// a minute ago, and not after now.
pub(crate) fn instant_of(at: u64) -> std::time::Instant {
    let ago = Duration::from_millis(unix_ms_now().saturating_sub(at)).min(Duration::from_secs(60));
    let now = std::time::Instant::now();
    now.checked_sub(ago).unwrap_or(now)
}

/// The batch of an inbox entry: `None` when it has none, or one in a format this node does
/// not read.
pub(crate) fn decode(entry: &redis::streams::StreamId) -> Option<serde_json::Result<Batch>> {
    let Some(redis::Value::BulkString(bytes)) = entry.map.get("b") else {
        return None;
    };
    let format = format_of(entry.map.get("v"));
    if !super::format::readable(format) {
        return None;
    }
    Some(serde_json::from_slice::<Batch>(bytes))
}

/// The smallest stream id after `id` (`MS-SEQ`), for `XTRIM MINID`.
fn after(id: &str) -> String {
    match id.split_once('-') {
        Some((ms, seq)) => match seq.parse::<u64>() {
            Ok(seq) if seq < u64::MAX => format!("{ms}-{}", seq + 1),
            _ => format!(
                "{}-0",
                ms.parse::<u64>().map_or(0, |ms| ms.saturating_add(1))
            ),
        },
        None => id.to_owned(),
    }
}

/// What node `node` never read of what this node (`me`) sent it, oldest first: the batches
/// still in its inbox, at most `max` entries.
pub(crate) async fn unread(
    redis: &mut super::keys::Redis,
    keys: &Keys,
    node: &str,
    me: &str,
    max: usize,
) -> redis::RedisResult<Vec<Msg>> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(keys.inbox(node))
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(max)
        .query_async(redis)
        .await?;
    Ok(reply
        .ids
        .iter()
        .filter_map(decode)
        .filter_map(Result::ok)
        .filter(|batch| batch.from == me)
        .flat_map(|batch| batch.msgs)
        .collect())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use tokio::sync::mpsc;

    use redis::Value;

    use std::sync::atomic::Ordering;

    use super::{
        BATCH_BYTES, Entry, Msg, Outgoing, TRIM_ENTRIES, UNACKED_READS, Unacked, Untrimmed,
        WireStats, after, entry_ms, gather, read_reply, readable,
    };

    fn frame(conn: u64, bytes: usize) -> Outgoing {
        Outgoing::Msg(
            "b".to_owned(),
            Msg::Frame {
                conn,
                text: "x".repeat(bytes),
                at: 0,
            },
        )
    }

    #[tokio::test]
    async fn a_linger_takes_traffic_until_its_end_and_ends_at_once_for_routing_or_a_flush() {
        use std::time::{Duration, Instant};

        // Traffic waits out the linger, and what comes meanwhile joins it.
        let (tx, mut rx) = mpsc::channel(16);
        let mut queued = VecDeque::from([frame(1, 10)]);
        tx.send(frame(2, 10)).await.unwrap();
        let started = Instant::now();
        super::linger(&mut rx, &mut queued, Duration::from_millis(100)).await;
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(queued.len(), 2);

        // A routing message, or a flush, that comes during a long linger ends it at once.
        let routing = Outgoing::Msg("b".to_owned(), Msg::Closed { conn: 1 });
        let (done, _written) = tokio::sync::oneshot::channel();
        for last in [routing, Outgoing::Flush(done)] {
            let (tx, mut rx) = mpsc::channel(16);
            let mut queued = VecDeque::from([frame(1, 10)]);
            let sender = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                tx.send(frame(2, 10)).await.unwrap();
                tx.send(last).await.unwrap();
                // Held open: the linger ends for the message, not for a closed queue.
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
            let started = Instant::now();
            super::linger(&mut rx, &mut queued, Duration::from_secs(30)).await;
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{:?}",
                started.elapsed()
            );
            assert_eq!(queued.len(), 3);
            assert!(!super::lingers(queued.back().unwrap()));
            sender.abort();
        }
    }

    #[test]
    fn a_round_takes_what_is_queued_until_a_batch_holds_its_bytes() {
        let (tx, mut rx) = mpsc::channel(64);
        // 40 frames of 64 KiB: a batch is full after 8 of them, by their bytes, not their count.
        let mut queued: VecDeque<Outgoing> = (0..24).map(|i| frame(i, 64 * 1024)).collect();
        for i in 24..40 {
            tx.try_send(frame(i, 64 * 1024)).expect("room in the queue");
        }
        let mut rounds = Vec::new();
        loop {
            let (batches, _) = gather(&mut queued, &mut rx);
            if batches.is_empty() {
                break;
            }
            let (msgs, bytes) = &batches["b"];
            assert!(
                *bytes < BATCH_BYTES + 64 * 1024 + 64,
                "{bytes} bytes in one batch"
            );
            rounds.push(msgs.len());
            // In order, across rounds.
            let first = match &msgs[0] {
                Msg::Frame { conn, .. } => *conn,
                other => panic!("not a frame: {other:?}"),
            };
            assert_eq!(
                first,
                rounds[..rounds.len() - 1].iter().sum::<usize>() as u64
            );
        }
        assert_eq!(rounds, [8, 8, 8, 8, 8]);
    }

    #[test]
    fn a_flush_behind_a_full_batch_waits_for_the_round_that_writes_what_came_before_it() {
        let (_tx, mut rx) = mpsc::channel(8);
        let (done, _written) = tokio::sync::oneshot::channel();
        let mut queued: VecDeque<Outgoing> = (0..8).map(|i| frame(i, 64 * 1024)).collect();
        queued.push_back(frame(8, 10));
        queued.push_back(Outgoing::Flush(done));
        queued.push_back(frame(9, 10));
        let (first, flushes) = gather(&mut queued, &mut rx);
        assert_eq!(first["b"].0.len(), 8);
        assert!(
            flushes.is_empty(),
            "frame 8 is not in this round: the flush waits"
        );
        let (second, flushes) = gather(&mut queued, &mut rx);
        assert_eq!(second["b"].0.len(), 2);
        assert_eq!(flushes.len(), 1);
        assert!(queued.is_empty());
    }

    #[test]
    fn small_messages_go_out_in_one_round_with_the_flushes_among_them() {
        let (tx, mut rx) = mpsc::channel(2048);
        let (done, _written) = tokio::sync::oneshot::channel();
        let mut queued: VecDeque<Outgoing> = VecDeque::from([frame(0, 1500)]);
        tx.try_send(Outgoing::Flush(done)).expect("room");
        for i in 1..300 {
            tx.try_send(frame(i, 1500)).expect("room");
        }
        let (batches, flushes) = gather(&mut queued, &mut rx);
        assert_eq!(batches["b"].0.len(), 300);
        assert_eq!(flushes.len(), 1);
        assert!(rx.try_recv().is_err(), "everything was taken");
    }

    #[test]
    fn entries_read_count_until_a_trim_covers_their_read() {
        let mut unacked = Unacked::default();
        unacked.read("5-1", 3);
        unacked.read("5-4", 2);
        unacked.read("7-0", 4);
        assert_eq!(unacked.total, 9);
        // A trim short of a read's position leaves it.
        unacked.trimmed(super::position("5-3"));
        assert_eq!(unacked.total, 6);
        unacked.trimmed(super::position("6-0"));
        assert_eq!(unacked.total, 4);
        assert_eq!(unacked.published.load(Ordering::Relaxed), 4);
        unacked.trimmed(super::position("7-0"));
        assert_eq!(unacked.total, 0);
        assert_eq!(unacked.published.load(Ordering::Relaxed), 0);
        // Past the reads it tells apart, the oldest merge: their entries stay counted, and
        // leave with the later read's trim.
        for n in 0..=UNACKED_READS as u64 {
            unacked.read(&format!("{}-0", 10 + n), 1);
        }
        assert_eq!(unacked.reads.len(), UNACKED_READS);
        assert_eq!(unacked.total, UNACKED_READS as u64 + 1);
        unacked.trimmed(super::position("10-0"));
        assert_eq!(unacked.total, UNACKED_READS as u64 + 1);
        unacked.trimmed(super::position("11-0"));
        assert_eq!(unacked.total, UNACKED_READS as u64 - 1);
    }

    #[test]
    fn the_id_after_an_id() {
        assert_eq!(after("1700000000000-0"), "1700000000000-1");
        assert_eq!(after("5-41"), "5-42");
        assert_eq!(after(&format!("5-{}", u64::MAX)), "6-0");
    }

    #[test]
    fn a_read_with_a_frame_is_trimmed_at_once_with_what_waited_before_it() {
        let mut untrimmed = Untrimmed::default();
        assert_eq!(untrimmed.read("5-1".to_owned(), 3, 10, false), None);
        assert_eq!(untrimmed.read("5-4".to_owned(), 2, 10, false), None);
        // A frame: trimmed now, past everything read so far.
        assert_eq!(
            untrimmed.read("6-0".to_owned(), 1, 10, true),
            Some("6-0".to_owned())
        );
        // Nothing waits afterwards.
        assert_eq!(untrimmed.take(), None);
    }

    #[test]
    fn reads_without_frames_are_trimmed_once_enough_of_them_wait() {
        let mut untrimmed = Untrimmed::default();
        for n in 1..TRIM_ENTRIES {
            assert_eq!(
                untrimmed.read(format!("7-{n}"), 1, 10, false),
                None,
                "entry {n}"
            );
        }
        assert_eq!(
            untrimmed.read(format!("7-{TRIM_ENTRIES}"), 1, 10, false),
            Some(format!("7-{TRIM_ENTRIES}"))
        );
        // A quiet inbox trims what waits.
        assert_eq!(untrimmed.read("8-0".to_owned(), 1, 10, false), None);
        assert_eq!(untrimmed.take(), Some("8-0".to_owned()));
    }

    #[test]
    fn reads_without_frames_are_trimmed_once_their_bytes_add_up() {
        let mut untrimmed = Untrimmed::default();
        let half = super::TRIM_BYTES / 2;
        assert_eq!(untrimmed.read("4-0".to_owned(), 1, half, false), None);
        assert_eq!(
            untrimmed.read("4-1".to_owned(), 1, half, false),
            Some("4-1".to_owned())
        );
    }

    #[test]
    fn reads_without_frames_are_trimmed_once_the_oldest_waited_long_enough() {
        let mut untrimmed = Untrimmed::default();
        assert_eq!(untrimmed.read("9-0".to_owned(), 1, 10, false), None);
        untrimmed.since = std::time::Instant::now().checked_sub(super::TRIM_LAG);
        assert_eq!(
            untrimmed.read("9-1".to_owned(), 1, 10, false),
            Some("9-1".to_owned())
        );
    }

    #[test]
    fn an_entry_id_gives_its_writing_time() {
        assert_eq!(entry_ms("1700000000000-3"), 1_700_000_000_000);
        assert_eq!(entry_ms("bogus"), 0);
    }

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[(&str, &str)]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(
                fields
                    .iter()
                    .flat_map(|(name, value)| [bulk(name), bulk(value)])
                    .collect(),
            ),
        ])
    }

    #[test]
    fn an_xread_answer_gives_each_entry_with_its_batch_and_format_in_order() {
        let entries = Value::Array(vec![
            entry("5-0", &[("b", "{one}")]),
            entry("5-1", &[("x", "y"), ("v", "1"), ("b", "{two}")]),
            entry("6-0", &[("x", "no batch")]),
            entry("6-1", &[("v", "2"), ("b", "{three}")]),
            entry("6-2", &[("v", "two"), ("b", "{four}")]),
        ]);
        let at = |id: &str, format: u32, batch: Option<&str>| Entry {
            id: id.to_owned(),
            format,
            batch: batch.map(|b| b.as_bytes().to_vec()),
        };
        let want = vec![
            at("5-0", 1, Some("{one}")),
            at("5-1", 1, Some("{two}")),
            at("6-0", 1, None),
            at("6-1", 2, Some("{three}")),
            at("6-2", u32::MAX, Some("{four}")),
        ];
        // RESP2: [[stream, entries]].
        let resp2 = Value::Array(vec![Value::Array(vec![
            bulk("kvs:inbox:a"),
            entries.clone(),
        ])]);
        assert_eq!(read_reply(resp2).unwrap(), want);
        // RESP3: {stream: entries}.
        let resp3 = Value::Map(vec![(bulk("kvs:inbox:a"), entries)]);
        assert_eq!(read_reply(resp3).unwrap(), want);
        // A read that timed out.
        assert_eq!(read_reply(Value::Nil).unwrap(), Vec::new());
    }

    #[test]
    fn an_entry_in_a_format_this_node_does_not_read_is_set_aside_and_counted() {
        let stats = WireStats::default();
        let batch = r#"{"from":"n","seq":1,"msgs":[{"t":"Closed","conn":7}]}"#;
        let entry = |format: u32| Entry {
            id: "5-0".to_owned(),
            format,
            batch: Some(batch.as_bytes().to_vec()),
        };
        let read = readable(&entry(1), &stats).expect("format 1 is read");
        assert_eq!((read.from.as_str(), read.seq), ("n", 1));
        assert_eq!(read.msgs, vec![Msg::Closed { conn: 7 }]);
        assert!(readable(&entry(2), &stats).is_some());
        assert!(readable(&entry(3), &stats).is_none());
        assert!(readable(&entry(u32::MAX), &stats).is_none());
        assert_eq!(stats.unknown_formats.load(Ordering::Relaxed), 2);
        // An unreadable batch in a known format is no unknown format.
        let damaged = Entry {
            batch: Some(b"{".to_vec()),
            ..entry(1)
        };
        assert!(readable(&damaged, &stats).is_none());
        assert_eq!(stats.unknown_formats.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn an_xread_answer_of_another_shape_is_an_error_not_a_panic() {
        for bad in [
            Value::Int(3),
            Value::Array(vec![Value::Array(vec![bulk("k"), Value::Int(1)])]),
            Value::Array(vec![Value::Array(vec![
                bulk("k"),
                Value::Array(vec![Value::Int(1)]),
            ])]),
            Value::Array(vec![Value::Array(vec![
                bulk("k"),
                Value::Array(vec![Value::Array(vec![Value::Nil])]),
            ])]),
        ] {
            assert!(read_reply(bad.clone()).is_err(), "{bad:?}");
        }
    }
}
