//! The console's event stream across nodes. A node whose console streams events says so with
//! its heartbeat (`PREFIX:watchers`); every other node, while some node watches, sends its
//! hubs' observations, as the console shows them and naming the node, to the inboxes of the
//! watchers that read them (format 2, [`super::format::EVENTS`]): batched, at most
//! [`FORWARD_RATE`] a second, the rest skipped and counted so that the page says so. A node
//! nobody watches does not even make observations.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kvs_transport_tokio::Telemetry;
use tokio::sync::broadcast;

use super::node::Watching;
use super::route::Router;
use super::wire::Msg;

/// Events a node sends the watching nodes a second, at most; the rest are skipped, and
/// counted.
pub(crate) const FORWARD_RATE: u64 = 1_000;
/// Events in one message to a watcher, at most.
const FORWARD_BATCH: usize = 64;
/// Other nodes' events waiting for this node's console streams, at most: a stream that falls
/// further behind skips some, and is told.
pub(crate) const REMOTE_EVENTS: usize = 1_024;
/// The longest event taken from another node; a longer one is dropped.
const MAX_EVENT_BYTES: usize = 16 * 1024;

/// Another node's event, for this node's console streams.
#[derive(Debug, Clone)]
pub(crate) enum RemoteEvent {
    /// An event, as its JSON text.
    Event(Arc<str>),
    /// A node skipped this many events (it had more than [`FORWARD_RATE`] a second).
    Skipped(u64),
}

impl Router {
    /// A console stream of this node watches the cluster's events: the other nodes' events
    /// come on the receiver while the guard lives, from the time they hear of it (with this
    /// node's next heartbeat and theirs).
    pub(crate) fn watch_events(&self) -> (Watching, broadcast::Receiver<RemoteEvent>) {
        (
            self.cluster.liveness.watch_events(),
            self.remote_events.subscribe(),
        )
    }

    /// Another node's events, for this node's console streams: each a JSON object on one
    /// line (it becomes a `data:` line of the stream as it is), else dropped and counted
    /// as skipped.
    pub(super) fn remote_events(&self, events: Vec<String>, skipped: u64) {
        let mut skipped = skipped;
        let mut taken = Vec::with_capacity(events.len());
        for event in events {
            if is_event(&event) {
                taken.push(RemoteEvent::Event(event.into()));
            } else {
                skipped += 1;
            }
        }
        if skipped > 0 {
            let _ = self.remote_events.send(RemoteEvent::Skipped(skipped));
        }
        for event in taken {
            let _ = self.remote_events.send(event);
        }
    }

    /// The nodes to send this node's events to: the live ones that watch and read them.
    fn event_watchers(&self) -> BTreeSet<String> {
        let membership = self.cluster.liveness.membership();
        membership
            .watchers
            .into_iter()
            .filter(|node| {
                membership
                    .formats
                    .get(node)
                    .copied()
                    .flatten()
                    .is_some_and(|range| range.reads(super::format::EVENTS))
            })
            .collect()
    }
}

/// Whether `event` is what a node sends: a JSON object on one line, not too long.
fn is_event(event: &str) -> bool {
    event.len() <= MAX_EVENT_BYTES
        && !event.contains(['\r', '\n'])
        && serde_json::from_str::<serde_json::Value>(event).is_ok_and(|value| value.is_object())
}

/// What one node may send in the current second.
#[derive(Debug)]
struct Budget {
    since: Instant,
    sent: u64,
}

impl Budget {
    /// Gives back what [`Budget::take`] took, for an event that was not sent.
    fn give_back(&mut self) {
        self.sent = self.sent.saturating_sub(1);
    }

    /// Whether one more event may go at `now`.
    fn take(&mut self, now: Instant) -> bool {
        if now.duration_since(self.since) >= Duration::from_secs(1) {
            self.since = now;
            self.sent = 0;
        }
        if self.sent >= FORWARD_RATE {
            return false;
        }
        self.sent += 1;
        true
    }
}

/// Sends this node's events to the nodes whose consoles watch, while any does.
pub(super) fn spawn_forwarder(router: &Arc<Router>, telemetry: Arc<Telemetry>) {
    let weak = Arc::downgrade(router);
    let mut membership = router.cluster.liveness.watch();
    tokio::spawn(async move {
        loop {
            // No live node that reads the events watches: nothing is observed.
            let mut watchers = loop {
                membership.borrow_and_update();
                let Some(router) = weak.upgrade() else { return };
                let watchers = router.event_watchers();
                if !watchers.is_empty() {
                    break watchers;
                }
                drop(router);
                if membership.changed().await.is_err() {
                    return;
                }
            };
            let mut observations = telemetry.subscribe();
            let mut budget = Budget {
                since: Instant::now(),
                sent: 0,
            };
            let mut skipped = 0;
            while !watchers.is_empty() {
                tokio::select! {
                    observed = observations.recv() => {
                        let Some(first) = observed else { return };
                        let Some(router) = weak.upgrade() else { return };
                        let node = router.node().to_owned();
                        let mut events = Vec::new();
                        let mut next = Some(first);
                        while let Some(observed) = next {
                            match observed {
                                Ok(observation) => {
                                    // Past the budget, skipped without being written out.
                                    if !budget.take(Instant::now()) {
                                        skipped += 1;
                                    } else if let Some(mut event) = crate::console::observation_json(
                                        &observation,
                                        SystemTime::now(),
                                    ) {
                                        event["node"] = serde_json::Value::from(node.as_str());
                                        events.push(event.to_string());
                                    } else {
                                        // Not an event the console shows.
                                        budget.give_back();
                                    }
                                }
                                Err(lagged) => skipped += lagged,
                            }
                            if events.len() >= FORWARD_BATCH {
                                break;
                            }
                            next = observations.try_recv();
                        }
                        if events.is_empty() {
                            continue;
                        }
                        for watcher in &watchers {
                            let msg = Msg::Events { events: events.clone(), skipped };
                            router.send(watcher, msg).await;
                        }
                        skipped = 0;
                    }
                    changed = membership.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let Some(router) = weak.upgrade() else { return };
                        watchers = router.event_watchers();
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Budget, FORWARD_RATE, is_event};

    #[test]
    fn a_node_sends_at_most_its_rate_of_events_a_second() {
        let start = Instant::now();
        let mut budget = Budget {
            since: start,
            sent: 0,
        };
        let sent = (0..FORWARD_RATE * 2)
            .filter(|_| budget.take(start + Duration::from_millis(10)))
            .count() as u64;
        assert_eq!(sent, FORWARD_RATE);
        // A second later, as many again.
        assert!(budget.take(start + Duration::from_millis(1_010)));
        assert_eq!(budget.sent, 1);
        budget.give_back();
        assert_eq!(budget.sent, 0);
    }

    #[test]
    fn only_one_line_json_objects_are_taken_from_other_nodes() {
        assert!(is_event(r#"{"type":"relayed","node":"n"}"#));
        // A line break would start another server-sent event on the page.
        assert!(!is_event("{\"type\":\"x\"}\ndata: {\"type\":\"forged\"}"));
        assert!(!is_event("{\"type\":\"x\"}\r"));
        assert!(!is_event("[1]"));
        assert!(!is_event("not json"));
        assert!(!is_event(&format!(
            r#"{{"pad":"{}"}}"#,
            "x".repeat(16 * 1024)
        )));
    }
}
