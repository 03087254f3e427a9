//! What a node says of itself: its health for `/health` and `/ready`, its metrics, the
//! settings it shares with the others, and its hubs' state for the consoles of other nodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

use super::format::{self, Range};
use super::route::{Router, lock};
use super::wire::Msg;

/// What the router counts, for the metrics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Bridged sockets opened at a channel's next owner.
    pub(crate) moved_links: AtomicU64,
    /// Bridged sockets closed because their channel could not be moved.
    pub(crate) unmoved_links: AtomicU64,
    /// Frames sent again to a next owner from a dead owner's inbox.
    pub(crate) replayed: AtomicU64,
    /// Frames lost while their channel moved: a socket's queue was full, or the socket
    /// closed, or could not move, with frames waiting.
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
    /// Reassertions of this node's claims and held messages after Redis restarted or failed
    /// over.
    pub(crate) reasserts: AtomicU64,
    /// Bridged sockets closed because their channel's owner fell behind its inbox.
    pub(crate) shed: AtomicU64,
    /// Opens refused because they waited too long in this node's inbox.
    pub(crate) stale_opens: AtomicU64,
    /// Connects and Alexa offers refused here because their channel's owner fell behind its
    /// inbox.
    pub(crate) behind_refusals: AtomicU64,
    /// The inboxes' writer and reader.
    pub(crate) wire: Arc<super::wire::WireStats>,
}

impl Router {
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

    /// What `/health` says of the live nodes' formats (see `format`), as of the last
    /// heartbeat: `None` when every live node reads what this one does; a note while they differ
    /// (a rolling upgrade), a warning when no format is read by all of them.
    pub(crate) fn formats(&self) -> Option<String> {
        let nodes = self.cluster.liveness.membership().formats;
        let others: Vec<String> = nodes
            .iter()
            .filter(|(_, range)| **range != Some(Range::OURS))
            .map(|(node, range)| match range {
                Some(range) => format!("{node} ({range})"),
                None => format!("{node} (none published: an older release, 1-1)"),
            })
            .collect();
        if others.is_empty() {
            return None;
        }
        Some(match format::in_effect(&nodes) {
            Ok(format) => format!(
                "note: nodes read other formats than this node ({}): {}; the cluster writes \
                 format {format}, the newest every live node reads",
                Range::OURS,
                others.join(", ")
            ),
            Err(trouble) => format!("warning: {trouble}"),
        })
    }

    /// What `/health` says of nodes that fell behind their inboxes, as of the last
    /// heartbeat: `None` when none did.
    pub(crate) fn behind(&self) -> Option<String> {
        let membership = self.cluster.liveness.membership();
        if membership.behind.is_empty() {
            return None;
        }
        let nodes: Vec<&str> = membership.behind.iter().map(String::as_str).collect();
        Some(format!(
            "warning: nodes {} fell behind their inboxes ({} entries wait unread in this \
             node's): the other nodes close the sockets they hold for those nodes' channels \
             (1008)",
            nodes.join(", "),
            membership.backlog
        ))
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
            "shed_sockets_total",
            "Sockets of this node closed (1008) because their channel's owner fell behind its \
             inbox, or because this node, their channel's owner, had its queue to itself full.",
            get(&stats.shed) as f64,
        );
        metric(
            counter,
            "behind_refusals_total",
            "Connects and Alexa offers to this node refused because their channel's owner fell \
             behind its inbox.",
            get(&stats.behind_refusals) as f64,
        );
        metric(
            counter,
            "stale_opens_total",
            "Connects from other nodes refused because they waited over 1.5 s in this node's \
             inbox (their node gives up at 2 s).",
            get(&stats.stale_opens) as f64,
        );
        metric(
            gauge,
            "inbox_unread_entries",
            "Entries in this node's inbox it had not read, at its last heartbeat.",
            membership.backlog as f64,
        );
        metric(
            gauge,
            "inbox_behind",
            "1 while this node has fallen behind its inbox (its high-water mark at two \
             heartbeats in a row): the other nodes close the sockets they hold for its \
             channels.",
            f64::from(u8::from(membership.behind.contains(&self.cluster.node))),
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
            "Messages lost while their channel moved: a socket's queue was full, or the socket \
             closed, or could not move, with messages waiting.",
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
            "reasserts_total",
            "Times this node reasserted its claims and rewrote its held messages after Redis \
             restarted or failed over.",
            get(&stats.reasserts) as f64,
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
            "inbox_trims_total",
            "Trims of this node's inbox (XTRIM): one per read that held frames; reads of other messages are trimmed together, about once a second.",
            get(&wire.trims) as f64,
        );
        metric(
            counter,
            "inbox_lag_seconds_total",
            "Time entries spent in this node's inbox before it read them (divide by the entries read).",
            get(&wire.lag_ms) as f64 / 1e3,
        );
        metric(
            counter,
            "inbox_entries_missing_total",
            "Entries other nodes wrote to this node's inbox that never reached it (trimmed \
             unread past the inbox's cap, lost by Redis, or given up by their sender; an entry \
             set aside for its format counts here too).",
            get(&wire.batches_missing) as f64,
        );
        metric(
            counter,
            "unknown_formats_total",
            "Inbox entries and held messages set aside because they are in a format this node \
             does not read (written by a newer release).",
            get(&wire.unknown_formats) as f64,
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
}
