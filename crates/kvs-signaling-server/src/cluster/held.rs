//! The copy of a channel's held messages in Redis, which the channel's next owner loads.
//!
//! The owner's hub is the truth; Redis keeps a copy: the hash `PREFIX:held:ARN`, one field
//! per recipient (`m` for the master, `v:ID` for a viewer) holding its messages as JSON, each
//! with its absolute expiry (Unix milliseconds). The hubs report each recipient's messages as
//! they change (held, replaced, delivered, expired); a task writes them, the newest state of
//! each recipient once, with one fenced script per channel: a node that lost its claim writes
//! nothing, and lets the channel go. A message changed in the last write's round trip before
//! its owner dies is lost (held, not yet written) or delivered twice (delivered, its removal
//! not yet written).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_signaling_core::{Frame, HeldChange, HeldMessage};
use kvs_signaling_proto::{Action, ChannelArn, CorrelationId, PeerId};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::route::{Router, lock};

/// Writes recipients' held messages (`ARGV[5..]`: field and JSON by turns; an empty JSON
/// removes the field) if `ARGV[1]` still owns the channel at epoch `ARGV[2]`; keeps the hash
/// until the latest expiry `ARGV[3]` (Unix ms). With `ARGV[3]` prefixed `replace:`, the hash
/// is replaced whole; with `release:`, too, and the claim given up in the same step (a
/// hand-over). Answers `OK`, `FENCED`, or, when the claim is not as the writer holds it and
/// the Redis server is not the one whose data it last checked (its run id, `ARGV[4]`),
/// `CHANGED`: Redis restarted or failed over and may have lost the claim's last writes,
/// which the writer reasserts before it believes the fence.
const HELD_PUT: &str = r"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] then
  local info = redis.pcall('INFO', 'server')
  local run = type(info) == 'string' and string.match(info, 'run_id:(%w+)') or ''
  if run ~= ARGV[4] then return 'CHANGED' end
  return 'FENCED'
end
local until_ms = ARGV[3]
local release = false
local mode = string.sub(until_ms, 1, 8)
if mode == 'release:' or mode == 'replace:' then
  release = mode == 'release:'
  until_ms = string.sub(until_ms, 9)
  redis.call('DEL', KEYS[2])
end
for i = 5, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[2], ARGV[i])
  else
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  local at = tonumber(until_ms)
  if at > 0 and redis.call('PEXPIRETIME', KEYS[2]) < at then
    redis.call('PEXPIREAT', KEYS[2], at)
  end
end
if release then redis.call('HSET', KEYS[1], 'owner', '') end
return 'OK'
";

/// Changes waiting for the writer, at most (batches of them, from the shards).
const QUEUE: usize = 1024;

/// One held message, as stored.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// Its format (see `format`).
    #[serde(default = "super::format::first")]
    v: u32,
    /// The sender's client id; none for the master.
    #[serde(rename = "s")]
    sender: Option<String>,
    /// The action (`SDP_OFFER`...).
    #[serde(rename = "a")]
    action: String,
    /// The frame its recipient gets.
    #[serde(rename = "f")]
    frame: String,
    /// When it expires, Unix milliseconds.
    #[serde(rename = "x")]
    expires: u64,
    /// Its correlation id, when its sender asked for delivery status.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    correlation: Option<String>,
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn field(recipient: Option<&PeerId>) -> String {
    match recipient {
        None => "m".to_owned(),
        Some(id) => format!("v:{}", id.as_str()),
    }
}

/// A recipient's messages as stored, and their latest expiry; empty when none.
fn encode(messages: &[HeldMessage], now: SystemTime) -> (String, u64) {
    if messages.is_empty() {
        return (String::new(), 0);
    }
    let stored: Vec<Stored> = messages
        .iter()
        .map(|message| Stored {
            v: super::format::FIRST,
            sender: message.sender.as_ref().map(|id| id.as_str().to_owned()),
            action: message.action.as_str().to_owned(),
            frame: message.frame.as_str().to_owned(),
            expires: unix_ms(now + message.expires_in),
            correlation: message
                .correlation_id
                .as_ref()
                .map(|id| id.as_str().to_owned()),
        })
        .collect();
    let until = stored.iter().map(|s| s.expires).max().unwrap_or(0);
    (serde_json::to_string(&stored).unwrap_or_default(), until)
}

/// A channel's held messages as the arguments of a whole write (field and JSON by turns, the
/// recipients without messages left out), and their latest expiry.
fn whole(held: &[HeldChange], now: SystemTime) -> (Vec<String>, u64) {
    let mut args = Vec::new();
    let mut until = 0;
    for change in held {
        let (json, last) = encode(&change.messages, now);
        if json.is_empty() {
            continue;
        }
        until = until.max(last);
        args.push(field(change.recipient.as_ref()));
        args.push(json);
    }
    (args, until)
}

/// The held messages of `arn` from its hash's fields and values (by turns), those not expired.
/// A message in a format this node does not read is left out, and counted in `unknown`.
pub(super) fn decode(arn: &ChannelArn, fields: &[String], unknown: &AtomicU64) -> Vec<HeldChange> {
    let now = unix_ms(SystemTime::now());
    fields
        .chunks_exact(2)
        .filter_map(|pair| {
            let recipient = match pair[0].as_str() {
                "m" => None,
                other => Some(PeerId::new(other.strip_prefix("v:")?).ok()?),
            };
            let stored: Vec<serde_json::Value> = serde_json::from_str(&pair[1]).ok()?;
            let messages = stored
                .into_iter()
                .filter_map(|value| {
                    let format = super::format::of_stamp(value.get("v"));
                    if super::format::readable(format) {
                        return serde_json::from_value::<Stored>(value).ok();
                    }
                    unknown.fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = UNKNOWN_FORMAT.check() {
                        let what = format!("a message held for channel {arn}");
                        tracing::warn!(suppressed, "{}", super::format::unknown(&what, format));
                    }
                    None
                })
                .filter(|s| s.expires > now)
                .filter_map(|s| {
                    let sender = match s.sender {
                        Some(id) => Some(PeerId::new(&id).ok()?),
                        None => None,
                    };
                    let correlation = s.correlation.and_then(|id| CorrelationId::new(id).ok());
                    Some(
                        HeldMessage::new(
                            sender,
                            Action::from_wire(&s.action).ok()?,
                            Frame::from(s.frame),
                            Duration::from_millis(s.expires - now),
                        )
                        .tracked(correlation),
                    )
                })
                .collect();
            Some(HeldChange::new(arn.clone(), recipient, messages))
        })
        .collect()
}

static UNKNOWN_FORMAT: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(Duration::from_secs(10));

/// Turns on the report of held messages in every shard, and starts the task that writes them
/// (and, between its rounds, the whole rewrites asked through `rewrites`).
pub(super) async fn start(router: &Arc<Router>, mut rewrites: mpsc::Receiver<Rewrite>) {
    let (sink, mut changes) = mpsc::channel::<Vec<HeldChange>>(QUEUE);
    for shard in router.shards.all() {
        let _ = shard.track_held(sink.clone()).await;
    }
    let weak = Arc::downgrade(router);
    tokio::spawn(async move {
        let mut pending = Round::new();
        loop {
            if pending.is_empty() {
                tokio::select! {
                    batch = changes.recv() => match batch {
                        Some(batch) => merge(&mut pending, batch),
                        None => return,
                    },
                    rewrite = rewrites.recv() => {
                        let (Some(rewrite), Some(router)) = (rewrite, weak.upgrade()) else {
                            return;
                        };
                        rewrite_in_turn(&router, &mut changes, &mut pending, rewrite).await;
                        continue;
                    }
                }
            }
            while let Ok(batch) = changes.try_recv() {
                merge(&mut pending, batch);
            }
            let Some(router) = weak.upgrade() else {
                return;
            };
            if let Ok(rewrite) = rewrites.try_recv() {
                rewrite_in_turn(&router, &mut changes, &mut pending, rewrite).await;
            }
            let round = std::mem::take(&mut pending);
            let failed = write(&router, round).await;
            // What could not be written (Redis unreachable, or changed and not reasserted
            // yet) waits for the next round, under newer changes.
            for (arn, recipients) in failed {
                let entry = pending.entry(arn).or_default();
                for (field, messages) in recipients {
                    entry.entry(field).or_insert(messages);
                }
            }
            if !pending.is_empty() {
                drop(router);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
}

/// A whole rewrite of some channels' held messages (see [`rewrite`]).
#[derive(Debug)]
pub(super) struct Rewrite {
    owned: Vec<(ChannelArn, u64)>,
    redis_id: String,
    done: tokio::sync::oneshot::Sender<bool>,
}

/// Does `rewrite` in the writer's task, between two of its rounds: what changed before it is
/// in the hubs' export it writes (so those changes are not written after it), and what
/// changes after it is written after it.
async fn rewrite_in_turn(
    router: &Router,
    changes: &mut mpsc::Receiver<Vec<HeldChange>>,
    pending: &mut Round,
    rewrite: Rewrite,
) {
    while let Ok(batch) = changes.try_recv() {
        merge(pending, batch);
    }
    for (arn, _) in &rewrite.owned {
        pending.remove(arn);
    }
    let written = write_whole(router, &rewrite.owned, &rewrite.redis_id).await;
    let _ = rewrite.done.send(written);
}

fn merge(pending: &mut Round, batch: Vec<HeldChange>) {
    for change in batch {
        pending
            .entry(change.channel)
            .or_default()
            .insert(field(change.recipient.as_ref()), change.messages);
    }
}

/// Held messages to write: the newest state of each changed recipient (its field), by channel.
type Round = HashMap<ChannelArn, BTreeMap<String, Vec<HeldMessage>>>;

/// [`HELD_PUT`] of `arn`'s held messages (`args`, field and JSON by turns), fenced at
/// `epoch` on the Redis of run id `asserted`; `until` is the latest expiry, with its mode.
fn held_put(
    router: &Router,
    arn: &ChannelArn,
    epoch: u64,
    until: String,
    asserted: &str,
    args: Vec<String>,
) -> redis::Cmd {
    let keys = &router.cluster.keys;
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(HELD_PUT)
        .arg(2)
        .arg(keys.channel(arn.as_str()))
        .arg(keys.held(arn.as_str()))
        .arg(&router.cluster.node)
        .arg(epoch)
        .arg(until)
        .arg(asserted)
        .arg(args);
    cmd
}

/// Writes a round of changes, one fenced script per channel, in one pipeline. Channels this
/// node does not own are skipped; those whose write is fenced are let go. Returns what could
/// not be written (Redis unreachable, or changed and not yet reasserted).
async fn write(router: &Router, round: Round) -> Round {
    let now = SystemTime::now();
    let asserted = lock(&router.asserted).clone();
    let mut pipe = redis::pipe();
    let mut sent = Vec::new();
    for (arn, recipients) in round {
        let Some(epoch) = lock(&router.owned).get(&arn).copied() else {
            continue;
        };
        let mut args: Vec<String> = Vec::new();
        let mut until = 0;
        for (field, messages) in &recipients {
            let (json, last) = encode(messages, now);
            until = until.max(last);
            args.push(field.clone());
            args.push(json);
        }
        pipe.add_command(held_put(
            router,
            &arn,
            epoch,
            until.to_string(),
            &asserted,
            args,
        ));
        sent.push((arn, recipients));
    }
    if sent.is_empty() {
        return HashMap::new();
    }
    let mut redis = router.cluster.redis.clone();
    match pipe.query_async::<Vec<String>>(&mut redis).await {
        Ok(answers) => {
            let mut again = Round::new();
            for ((arn, recipients), answer) in sent.into_iter().zip(answers) {
                match answer.as_str() {
                    "FENCED" => {
                        router.stats.held_writes.fetch_add(1, Ordering::Relaxed);
                        router.stats.held_fenced.fetch_add(1, Ordering::Relaxed);
                        router.lose(&arn).await;
                    }
                    // Written again once this node has reasserted its claims on the new
                    // Redis (which rewrites every held list whole first).
                    "CHANGED" => {
                        again.insert(arn, recipients);
                    }
                    _ => {
                        router.stats.held_writes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            again
        }
        Err(err) => {
            if let Some(suppressed) = WRITE_FAILED.check() {
                tracing::warn!(%err, suppressed, "held messages could not be copied to Redis");
            }
            sent.into_iter().collect()
        }
    }
}

static WRITE_FAILED: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(Duration::from_secs(10));

/// How a hand-over went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HandOver {
    /// Written, and the claim given up.
    Done,
    /// Refused by the fence (another node owns the channel), or Redis did not answer.
    Refused,
    /// The claim is not as this node holds it, on a Redis this node has not reasserted its
    /// claims on yet (see `HELD_PUT`).
    Changed,
}

/// Hands `arn` over: its held messages (all of them) written and its claim at `epoch` given
/// up, in one fenced script.
pub(super) async fn hand_over(
    router: &Router,
    arn: &ChannelArn,
    epoch: u64,
    held: &[HeldChange],
) -> HandOver {
    let (args, until) = whole(held, SystemTime::now());
    let keys = &router.cluster.keys;
    let asserted = lock(&router.asserted).clone();
    let answer: redis::RedisResult<String> = router
        .cluster
        .retrying(|mut redis| {
            let args = args.clone();
            let asserted = asserted.clone();
            async move {
                redis::Script::new(HELD_PUT)
                    .key(keys.channel(arn.as_str()))
                    .key(keys.held(arn.as_str()))
                    .arg(&router.cluster.node)
                    .arg(epoch)
                    .arg(format!("release:{until}"))
                    .arg(asserted)
                    .arg(args)
                    .invoke_async(&mut redis)
                    .await
            }
        })
        .await;
    match answer.as_deref() {
        Ok("OK") => HandOver::Done,
        Ok("CHANGED") => HandOver::Changed,
        _ => HandOver::Refused,
    }
}

/// Held lists rewritten in one pipeline, at most.
const REWRITE_CHUNK: usize = 64;

/// Rewrites whole the copy in Redis of the held messages of each channel of `owned` (with the
/// epoch of this node's claim), from this node's hubs, in the held writer's task: after Redis
/// restarted or failed over, when its copy may have lost the last changes. Channels whose
/// write is fenced are let go. `redis_id` is the run id of the Redis server the claims were
/// just checked on. Returns whether it was done: `false` when Redis did not answer, or changed
/// again (a copy Redis refused to write is logged, and counts as done).
pub(super) async fn rewrite(
    router: &Router,
    owned: Vec<(ChannelArn, u64)>,
    redis_id: &str,
) -> bool {
    let (done, written) = tokio::sync::oneshot::channel();
    let rewrite = Rewrite {
        owned,
        redis_id: redis_id.to_owned(),
        done,
    };
    if router.held_rewrites.send(rewrite).await.is_err() {
        return false;
    }
    written.await.unwrap_or(false)
}

async fn write_whole(router: &Router, owned: &[(ChannelArn, u64)], redis_id: &str) -> bool {
    for chunk in owned.chunks(REWRITE_CHUNK) {
        let now = SystemTime::now();
        let mut pipe = redis::pipe();
        // Each answer on its own: one refused write does not stop the others.
        pipe.ignore_errors();
        for (arn, epoch) in chunk {
            let held = router
                .shards
                .of(arn)
                .export_held(arn.clone())
                .await
                .unwrap_or_default();
            let (args, until) = whole(&held, now);
            let until = format!("replace:{until}");
            pipe.add_command(held_put(router, arn, *epoch, until, redis_id, args));
        }
        let mut redis = router.cluster.redis.clone();
        let answers: Vec<redis::RedisResult<String>> = match pipe.query_async(&mut redis).await {
            Ok(answers) => answers,
            Err(err) => {
                if let Some(suppressed) = WRITE_FAILED.check() {
                    tracing::warn!(%err, suppressed, "held messages could not be rewritten to Redis");
                }
                return false;
            }
        };
        for ((arn, _), answer) in chunk.iter().zip(answers) {
            match answer.as_deref() {
                Ok("FENCED") => {
                    router.stats.held_writes.fetch_add(1, Ordering::Relaxed);
                    router.stats.held_fenced.fetch_add(1, Ordering::Relaxed);
                    router.lose(arn).await;
                }
                Ok("CHANGED") => return false,
                Ok(_) => {
                    router.stats.held_writes.fetch_add(1, Ordering::Relaxed);
                }
                // Refused (not for want of an answer): not tried again whole, which would
                // rewrite every channel at each heartbeat; the recipients' next changes are
                // written as usual.
                Err(err) => {
                    if let Some(suppressed) = WRITE_FAILED.check() {
                        tracing::warn!(%arn, %err, suppressed, "held messages could not be rewritten to Redis");
                    }
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &str, expires_in: Duration) -> HeldMessage {
        HeldMessage::new(
            None,
            Action::SdpOffer,
            Frame::from(format!(r#"{{"messagePayload":"{payload}"}}"#)),
            expires_in,
        )
    }

    #[test]
    fn a_whole_write_names_each_recipient_with_messages_and_keeps_the_latest_expiry() {
        let arn =
            ChannelArn::new("arn:aws:kinesisvideo:us-west-2:123456789012:channel/c/1").unwrap();
        let now = SystemTime::now();
        let v1 = PeerId::new("v1").unwrap();
        let held = [
            HeldChange::new(
                arn.clone(),
                None,
                vec![message("bQ==", Duration::from_secs(5))],
            ),
            // Delivered meanwhile: nothing held for it any more, so it is not written.
            HeldChange::new(arn.clone(), Some(PeerId::new("v0").unwrap()), Vec::new()),
            HeldChange::new(
                arn.clone(),
                Some(v1.clone()),
                vec![
                    message("YQ==", Duration::from_secs(60)),
                    message("Yg==", Duration::from_secs(30)),
                ],
            ),
        ];
        let mut held = held;
        held[2].messages[1] = message("Yg==", Duration::from_secs(30))
            .tracked(Some(CorrelationId::new("c7").unwrap()));
        let (args, until) = whole(&held, now);
        assert_eq!(args.len(), 4);
        assert_eq!(args[0], "m");
        assert_eq!(args[2], "v:v1");
        assert_eq!(until, unix_ms(now + Duration::from_secs(60)));
        // What is written reads back as it was held.
        let unknown = AtomicU64::new(0);
        let read = decode(&arn, &args, &unknown);
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].recipient, Some(v1));
        assert_eq!(read[1].messages.len(), 2);
        assert_eq!(read[1].messages[0].correlation_id, None);
        assert_eq!(
            read[1].messages[1].correlation_id,
            Some(CorrelationId::new("c7").unwrap())
        );
        assert!(!args[1].contains(r#""c":"#), "no id, no field: {}", args[1]);
        assert!(args[1].contains(r#""v":1"#), "{}", args[1]);
        assert_eq!(unknown.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_held_message_in_a_format_this_node_does_not_read_is_left_out_and_counted() {
        let arn =
            ChannelArn::new("arn:aws:kinesisvideo:us-west-2:123456789012:channel/c/1").unwrap();
        let until = unix_ms(SystemTime::now() + Duration::from_secs(60));
        let fields = vec![
            "m".to_owned(),
            format!(
                r#"[{{"a":"SDP_OFFER","s":"v1","f":"old","x":{until}}},
                   {{"v":1,"a":"SDP_OFFER","s":"v2","f":"one","x":{until}}},
                   {{"v":3,"what":"a newer layout"}},
                   {{"v":"3"}}]"#
            ),
        ];
        let unknown = AtomicU64::new(0);
        let read = decode(&arn, &fields, &unknown);
        assert_eq!(read.len(), 1);
        let frames: Vec<&str> = read[0].messages.iter().map(|m| m.frame.as_str()).collect();
        // Unstamped (written before formats) and format 1 are read; a format this node does not
        // know, and a stamp that is no number, are not.
        assert_eq!(frames, ["old", "one"]);
        assert_eq!(unknown.load(Ordering::Relaxed), 2);
    }
}
