//! What nodes tell each other, through their inboxes: one Redis stream per node
//! (`PREFIX:inbox:NODE`), each entry a batch of messages from one node, in order.
//!
//! A node reads its inbox on a connection of its own (`XREAD BLOCK`), and trims it as it goes
//! (`XTRIM MINID`), so that the inbox of a node that died holds exactly what it never read.
//! Writes are batched per destination: a message waits at most for the messages already
//! queued, so that a burst goes out in one `XADD`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::keys::Keys;

/// A message between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub(crate) enum Msg {
    /// To a channel's owner: open a connection whose socket the sender holds as `link`.
    Open {
        req: u64,
        link: u64,
        arn: String,
        client: Option<String>,
        ttl: u32,
        rev: u64,
        indications: bool,
        delivery: bool,
        addr: Option<String>,
    },
    /// To the owner: a text message on `conn`.
    Frame { conn: u64, text: String },
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
    /// To a socket's node: close the socket `link`.
    Close {
        link: u64,
        code: u16,
        reason: String,
    },
    /// To the caller's node: the answer of an Alexa offer.
    AlexaAnswer { req: u64, verdict: Verdict },
    /// To every node: a channel's TTL changed.
    Updated { arn: String, ttl: u32, rev: u64 },
    /// To every node: a channel was deleted.
    Deleted { arn: String },
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
}

/// Messages waiting for the writer, at most: past it, senders wait.
pub(crate) const OUTBOUND_QUEUE: usize = 16_384;
/// An inbox keeps at most about this many entries whatever its reader does (a node that
/// stopped reading); what is trimmed past it is lost, and counted.
const INBOX_MAXLEN: usize = 100_000;
/// A batch is sent when it holds this many bytes, or when nothing more is queued.
const BATCH_BYTES: usize = 64 * 1024;
/// Attempts of a write to the inboxes (about 3 s in all) before its messages are given up.
const RETRIES: usize = 7;

/// Writes messages to other nodes' inboxes, batched per destination. Returns the sender of
/// `(node, message)` pairs.
pub(crate) fn spawn_writer(
    redis: super::keys::Redis,
    keys: Keys,
    me: String,
) -> mpsc::Sender<(String, Msg)> {
    let (tx, mut rx) = mpsc::channel::<(String, Msg)>(OUTBOUND_QUEUE);
    tokio::spawn(async move {
        let mut redis = redis;
        let mut first = Vec::new();
        let mut seqs: BTreeMap<String, u64> = BTreeMap::new();
        while rx.recv_many(&mut first, 1024).await > 0 {
            let mut batches: BTreeMap<String, (Vec<Msg>, usize)> = BTreeMap::new();
            for (node, msg) in first.drain(..) {
                let entry = batches.entry(node).or_default();
                entry.1 += 64;
                entry.0.push(msg);
            }
            // Whatever else is queued goes in the same round.
            while let Ok((node, msg)) = rx.try_recv() {
                let entry = batches.entry(node).or_default();
                entry.1 += 64;
                entry.0.push(msg);
                if entry.1 > BATCH_BYTES {
                    break;
                }
            }
            let mut pipe = redis::pipe();
            for (node, (msgs, _)) in batches {
                let seq = seqs.entry(node.clone()).or_insert(0);
                *seq += 1;
                let batch = Batch {
                    from: me.clone(),
                    seq: *seq,
                    msgs,
                };
                let Ok(json) = serde_json::to_string(&batch) else {
                    continue;
                };
                pipe.cmd("XADD")
                    .arg(keys.inbox(&node))
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(INBOX_MAXLEN)
                    .arg("*")
                    .arg("b")
                    .arg(json)
                    .ignore();
            }
            // Sent again while the connection mends (Redis restarted, the connection was
            // killed): a batch that did get in the first time is read once, by its `seq`.
            let mut backoff = Duration::from_millis(50);
            for attempt in 0..RETRIES {
                match pipe.query_async::<()>(&mut redis).await {
                    Ok(()) => break,
                    Err(err) => {
                        if attempt + 1 == RETRIES {
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
    });
    tx
}

static SEND_FAILED: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(Duration::from_secs(10));
static READ_FAILED: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(Duration::from_secs(10));

/// Reads this node's inbox on a connection of its own, from the start of its stream (a new
/// node's is empty), handing each batch to `deliver` in order, and trims what it has read.
pub(crate) fn spawn_reader(
    client: super::keys::Connector,
    keys: Keys,
    me: String,
    deliver: mpsc::Sender<Batch>,
) {
    tokio::spawn(async move {
        let inbox = keys.inbox(&me);
        let mut last = "0-0".to_owned();
        let mut backoff = Duration::from_millis(50);
        loop {
            let config = redis::AsyncConnectionConfig::new()
                .set_response_timeout(None)
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
            backoff = Duration::from_millis(50);
            loop {
                let read: redis::RedisResult<redis::streams::StreamReadReply> = redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(256)
                    .arg("BLOCK")
                    .arg(1000)
                    .arg("STREAMS")
                    .arg(&inbox)
                    .arg(&last)
                    .query_async(&mut conn)
                    .await;
                let reply = match read {
                    Ok(reply) => reply,
                    Err(err) => {
                        if let Some(suppressed) = READ_FAILED.check() {
                            tracing::warn!(%err, suppressed, "reading this node's inbox failed");
                        }
                        break;
                    }
                };
                let mut read_any = false;
                for stream in reply.keys {
                    for entry in stream.ids {
                        read_any = true;
                        last.clone_from(&entry.id);
                        let Some(redis::Value::BulkString(bytes)) = entry.map.get("b") else {
                            continue;
                        };
                        match serde_json::from_slice::<Batch>(bytes) {
                            Ok(batch) => {
                                if deliver.send(batch).await.is_err() {
                                    return;
                                }
                            }
                            Err(err) => {
                                if let Some(suppressed) = READ_FAILED.check() {
                                    tracing::warn!(%err, suppressed, "an unreadable inbox entry");
                                }
                            }
                        }
                    }
                }
                if read_any {
                    // What is read is done with: trimmed, so that the inbox holds only what
                    // this node has not processed.
                    let _: redis::RedisResult<()> = redis::cmd("XTRIM")
                        .arg(&inbox)
                        .arg("MINID")
                        .arg(&last)
                        .query_async(&mut conn)
                        .await;
                }
            }
        }
    });
}
