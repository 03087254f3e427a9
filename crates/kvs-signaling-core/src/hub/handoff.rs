//! Moving channels between hubs, for a transport that runs several (a cluster's nodes, each
//! the owner of some channels): held messages exported as they change and restored into
//! another hub, connections restored there without losing their place, and a channel evicted
//! from a hub that no longer owns it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kvs_signaling_proto::{
    Action, ChannelArn, CorrelationId, ErrorType, MessageTtlSeconds, PeerId,
};

use super::{CloseReason, ConnId, Frame, Hub, Output, Pending, Recipient, Refused};

/// A held message, as it moves to another hub.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldMessage {
    /// Its sender's client id; `None` for the master.
    pub sender: Option<PeerId>,
    /// What it is: a newer offer or answer from the same sender replaces it.
    pub action: Action,
    /// The frame its recipient gets.
    pub frame: Frame,
    /// How long it is still kept.
    pub expires_in: Duration,
    /// Its correlation id, when its sender asked to be told what becomes of it (delivery
    /// status): the sender's connection, once it moves to the hub this message is restored
    /// into, hears of it there.
    pub correlation_id: Option<CorrelationId>,
}

impl HeldMessage {
    /// A held message.
    pub fn new(sender: Option<PeerId>, action: Action, frame: Frame, expires_in: Duration) -> Self {
        Self {
            sender,
            action,
            frame,
            expires_in,
            correlation_id: None,
        }
    }

    /// The message, its sender asking to be told what becomes of it, with `correlation_id`.
    #[must_use]
    pub fn tracked(mut self, correlation_id: Option<CorrelationId>) -> Self {
        self.correlation_id = correlation_id;
        self
    }
}

/// What a recipient's held messages are now, after a change
/// ([`Hub::take_held_changes`]), or when exported or restored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldChange {
    /// The channel.
    pub channel: ChannelArn,
    /// The recipient's client id; `None` for the master.
    pub recipient: Option<PeerId>,
    /// Its held messages, oldest first; none when nothing is held for it any more.
    pub messages: Vec<HeldMessage>,
}

impl HeldChange {
    /// The held messages of `recipient` on `channel`.
    pub fn new(channel: ChannelArn, recipient: Option<PeerId>, messages: Vec<HeldMessage>) -> Self {
        Self {
            channel,
            recipient,
            messages,
        }
    }
}

impl Recipient {
    fn to_peer(&self) -> Option<PeerId> {
        match self {
            Self::Master => None,
            Self::Viewer(id) => Some(id.clone()),
        }
    }

    fn from_peer(peer: Option<PeerId>) -> Self {
        peer.map_or(Self::Master, Self::Viewer)
    }
}

impl Hub {
    /// Turns on (or off) the record of which recipients' held messages changed, for
    /// [`Hub::take_held_changes`]: a transport that keeps a copy of them elsewhere (so that
    /// another hub can take the channel over) turns it on. Off unless set; off costs nothing.
    pub fn set_tracking_held(&mut self, on: bool) {
        self.held_changes = on.then(BTreeSet::new);
    }

    /// The held messages of every recipient whose held messages changed since the last call
    /// (held, replaced, delivered, expired), as they are now. Empty unless
    /// [`Hub::set_tracking_held`] is on. Messages changed by [`Hub::restore_held`] or dropped
    /// by [`Hub::evict_channel`] and [`Hub::handle_channel_deleted`] are not reported: the
    /// caller made those changes.
    pub fn take_held_changes(&mut self, now: Instant) -> Vec<HeldChange> {
        let Some(changed) = self.held_changes.as_mut().map(std::mem::take) else {
            return Vec::new();
        };
        changed
            .into_iter()
            .map(|(arn, recipient)| self.held_snapshot(now, arn, recipient))
            .collect()
    }

    /// The held messages of every recipient of `channel`, as they are now: what a hub taking
    /// the channel over is to restore.
    pub fn export_held(&self, now: Instant, channel: &ChannelArn) -> Vec<HeldChange> {
        let recipients: Vec<Recipient> = self
            .by_arn
            .get(channel)
            .and_then(|&index| self.channels.at(index))
            .map(|ch| ch.pending.keys().cloned().collect())
            .unwrap_or_default();
        recipients
            .into_iter()
            .map(|recipient| self.held_snapshot(now, channel.clone(), recipient))
            .filter(|change| !change.messages.is_empty())
            .collect()
    }

    fn held_snapshot(&self, now: Instant, arn: ChannelArn, recipient: Recipient) -> HeldChange {
        let messages = self
            .by_arn
            .get(&arn)
            .and_then(|&index| self.channels.at(index))
            .and_then(|ch| ch.pending.get(&recipient))
            .map(|queue| {
                queue
                    .messages
                    .iter()
                    .filter(|p| p.expires > now)
                    .map(|p| HeldMessage {
                        sender: p.sender.clone(),
                        action: p.action,
                        frame: p.frame.clone(),
                        expires_in: p.expires - now,
                        correlation_id: p
                            .tracking
                            .as_ref()
                            .map(|t| t.correlation_id.clone())
                            .or_else(|| p.moved_tracking.clone()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        HeldChange {
            channel: arn,
            recipient: recipient.to_peer(),
            messages,
        }
    }

    /// Held messages another hub held for `channel`, restored here with their expiries: each
    /// is held as if it had been sent here (a newer offer or answer from the same sender
    /// replaces an older one; the limits apply), and delivered at once to a recipient that is
    /// connected. Returns how many were kept. Their senders' delivery-status requests stay
    /// with the hub they were made at.
    pub fn restore_held(
        &mut self,
        now: Instant,
        channel: &ChannelArn,
        message_ttl: MessageTtlSeconds,
        ttl_revision: u64,
        held: Vec<HeldChange>,
    ) -> usize {
        let index = self.channel_for(now, channel, message_ttl, ttl_revision);
        let mut kept = 0;
        let mut recipients = Vec::new();
        for change in held {
            if change.channel != *channel {
                continue;
            }
            let recipient = Recipient::from_peer(change.recipient);
            for message in change.messages {
                if message.expires_in.is_zero() {
                    continue;
                }
                let pending = Pending {
                    frame: message.frame,
                    sender: message.sender,
                    action: message.action,
                    expires: now,
                    held_at: now,
                    tracking: None,
                    moved_tracking: message.correlation_id,
                };
                let expires = now.checked_add(message.expires_in);
                if self
                    .buffer_until(now, index, recipient.clone(), pending, expires)
                    .is_ok()
                {
                    kept += 1;
                }
            }
            recipients.push(recipient);
        }
        for recipient in recipients {
            if let Some(changes) = self.held_changes.as_mut() {
                changes.remove(&(channel.clone(), recipient.clone()));
            }
            let current = self.channels.at(index).and_then(|ch| match &recipient {
                Recipient::Master => ch.master,
                Recipient::Viewer(id) => ch.viewers.get(id.as_str()),
            });
            if let Some(to) = current {
                self.flush_pending(now, index, &recipient, to);
            }
        }
        self.release_channel_if_unused(now, index);
        kept
    }

    /// This hub no longer decides for `channel` (another hub took it over): every connection
    /// of the channel is closed ([`CloseReason::Moved`]: 1001, and its client reconnects),
    /// its held messages dropped (the new hub restored them), and its Alexa calls failed.
    pub fn evict_channel(&mut self, now: Instant, channel: &ChannelArn) {
        let Some(&index) = self.by_arn.get(channel) else {
            return;
        };
        let Some(ch) = self.channels.at_mut(index) else {
            return;
        };
        let bytes: usize = ch
            .pending
            .values()
            .flat_map(|q| &q.messages)
            .map(|p| p.frame.as_str().len())
            .sum();
        let timers: Vec<(Instant, u64)> = ch.pending.values().filter_map(|q| q.timer).collect();
        ch.pending.clear();
        let alexa = std::mem::take(&mut ch.alexa);
        let members: Vec<u32> = ch.members.iter().copied().collect();
        self.held_bytes = self.held_bytes.saturating_sub(bytes);
        for key in timers {
            self.timers.remove(&key);
        }
        if let Some(changes) = self.held_changes.as_mut() {
            changes.retain(|(arn, _)| arn != channel);
        }
        for (_, request) in alexa {
            self.counters.alexa_failed += 1;
            self.outputs.push_back(Output::AlexaAnswer {
                request,
                result: Err(Refused::new(
                    ErrorType::InternalFailure,
                    "the channel moved to another server while the offer waited; send it again",
                )),
            });
        }
        for slot in members {
            let conn = ConnId {
                slot,
                generation: self.conns.generation(slot),
            };
            self.close(now, conn, CloseReason::Moved);
        }
        self.release_channel_if_unused(now, index);
    }

    /// Records that the held messages of `recipient` on channel `index` changed.
    pub(super) fn held_changed(&mut self, index: u32, recipient: &Recipient) {
        if self.held_changes.is_none() {
            return;
        }
        if let Some(arn) = self.channels.at(index).map(|ch| ch.arn.clone()) {
            self.held_changed_at(&arn, recipient);
        }
    }

    /// Records that the held messages of `recipient` on `arn` changed.
    pub(super) fn held_changed_at(&mut self, arn: &ChannelArn, recipient: &Recipient) {
        if let Some(changes) = self.held_changes.as_mut() {
            changes.insert((arn.clone(), recipient.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use kvs_signaling_proto::{Action, ChannelArn, ClientId, MessageTtlSeconds, PeerId};

    use crate::{CloseReason, ConnId, Hub, HubConfig, OpenConnection, Output};

    fn arn() -> ChannelArn {
        ChannelArn::new("arn:aws:kinesisvideo:us-west-2:123456789012:channel/moving/1").unwrap()
    }

    fn ttl(seconds: u32) -> MessageTtlSeconds {
        MessageTtlSeconds::new(seconds).unwrap()
    }

    fn open(hub: &mut Hub, now: Instant, open: OpenConnection) -> ConnId {
        let conn = hub.handle_open(now, open).unwrap();
        hub.handle_established(now, conn);
        conn
    }

    fn viewer(id: &str) -> OpenConnection {
        OpenConnection::viewer(arn(), ClientId::new(id).unwrap(), ttl(60))
    }

    fn outputs(hub: &mut Hub) -> Vec<Output> {
        std::iter::from_fn(|| hub.poll_output()).collect()
    }

    fn delivered(hub: &mut Hub) -> Vec<(ConnId, String)> {
        outputs(hub)
            .into_iter()
            .filter_map(|output| match output {
                Output::Deliver { conn, frame } => Some((conn, frame.into_string())),
                _ => None,
            })
            .collect()
    }

    /// A hub whose master held, for the absent viewer `late`, an offer, then two candidates,
    /// then a newer offer (which replaced the first).
    fn holding(now: Instant) -> Hub {
        let mut hub = Hub::new(HubConfig::default()).unwrap();
        hub.set_tracking_held(true);
        let master = open(&mut hub, now, OpenConnection::master(arn(), ttl(60)));
        for text in [
            r#"{"action":"SDP_OFFER","recipientClientId":"late","messagePayload":"b2xk"}"#,
            r#"{"action":"ICE_CANDIDATE","recipientClientId":"late","messagePayload":"MQ=="}"#,
            r#"{"action":"ICE_CANDIDATE","recipientClientId":"late","messagePayload":"Mg=="}"#,
            r#"{"action":"SDP_OFFER","recipientClientId":"late","messagePayload":"bmV3"}"#,
        ] {
            hub.handle_frame(now, master, text);
        }
        assert!(outputs(&mut hub).is_empty());
        hub
    }

    #[test]
    fn changes_are_reported_only_when_tracked_and_once_per_recipient() {
        #[expect(clippy::disallowed_methods, reason = "a test's clock")]
        let now = Instant::now();
        let mut hub = Hub::new(HubConfig::default()).unwrap();
        let master = open(&mut hub, now, OpenConnection::master(arn(), ttl(60)));
        hub.handle_frame(
            now,
            master,
            r#"{"action":"SDP_OFFER","recipientClientId":"v","messagePayload":"QQ=="}"#,
        );
        assert_eq!(hub.take_held_changes(now), Vec::new(), "off unless set");

        let mut hub = holding(now);
        let changes = hub.take_held_changes(now);
        assert_eq!(changes.len(), 1, "{changes:?}");
        let change = &changes[0];
        assert_eq!(change.channel, arn());
        assert_eq!(change.recipient, Some(PeerId::new("late").unwrap()));
        let held: Vec<(Action, &str)> = change
            .messages
            .iter()
            .map(|m| (m.action, m.frame.as_str()))
            .collect();
        assert_eq!(
            held,
            vec![
                (
                    Action::IceCandidate,
                    r#"{"messagePayload":"MQ==","messageType":"ICE_CANDIDATE"}"#
                ),
                (
                    Action::IceCandidate,
                    r#"{"messagePayload":"Mg==","messageType":"ICE_CANDIDATE"}"#
                ),
                (
                    Action::SdpOffer,
                    r#"{"messagePayload":"bmV3","messageType":"SDP_OFFER"}"#
                ),
            ]
        );
        assert!(change.messages.iter().all(|m| m.sender.is_none()));
        assert!(
            change
                .messages
                .iter()
                .all(|m| m.expires_in == Duration::from_secs(60))
        );
        assert_eq!(hub.take_held_changes(now), Vec::new(), "taken once");

        // Delivered: nothing is held for it any more.
        let later = now + Duration::from_secs(5);
        let late = open(&mut hub, later, viewer("late"));
        assert_eq!(delivered(&mut hub).len(), 3);
        let changes = hub.take_held_changes(later);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].messages.is_empty());
        hub.handle_close(later, late);

        // Expired: reported as gone.
        let mut hub = holding(now);
        let _ = hub.take_held_changes(now);
        hub.handle_timeout(now + Duration::from_secs(61));
        let changes = hub.take_held_changes(now + Duration::from_secs(61));
        assert_eq!(changes.len(), 1);
        assert!(changes[0].messages.is_empty());
    }

    #[test]
    fn exported_messages_restored_elsewhere_keep_their_order_expiry_and_overwrite_rule() {
        #[expect(clippy::disallowed_methods, reason = "a test's clock")]
        let now = Instant::now();
        let old = holding(now);
        let later = now + Duration::from_secs(20);
        let exported = old.export_held(later, &arn());
        assert_eq!(exported.len(), 1);
        assert!(
            exported[0]
                .messages
                .iter()
                .all(|m| m.expires_in == Duration::from_secs(40))
        );

        let mut new = Hub::new(HubConfig::default()).unwrap();
        new.set_tracking_held(true);
        let then = later + Duration::from_millis(1);
        assert_eq!(new.restore_held(then, &arn(), ttl(60), 0, exported), 3);
        assert_eq!(
            new.take_held_changes(then),
            Vec::new(),
            "restoring is no change"
        );
        assert_eq!(new.buffered_count(), 3);
        // A newer offer from the master replaces the restored one, as on the old hub.
        let master = open(&mut new, then, OpenConnection::master(arn(), ttl(60)));
        new.handle_frame(
            then,
            master,
            r#"{"action":"SDP_OFFER","recipientClientId":"late","messagePayload":"bGFzdA=="}"#,
        );
        assert_eq!(new.buffered_count(), 3);
        let late = open(&mut new, then, viewer("late"));
        let got: Vec<String> = delivered(&mut new)
            .into_iter()
            .map(|(conn, text)| {
                assert_eq!(conn, late);
                text
            })
            .collect();
        assert_eq!(
            got,
            vec![
                r#"{"messagePayload":"MQ==","messageType":"ICE_CANDIDATE"}"#,
                r#"{"messagePayload":"Mg==","messageType":"ICE_CANDIDATE"}"#,
                r#"{"messagePayload":"bGFzdA==","messageType":"SDP_OFFER"}"#,
            ]
        );

        // They expire when they would have on the old hub: 60 s after they were sent.
        let mut new = Hub::new(HubConfig::default()).unwrap();
        new.restore_held(later, &arn(), ttl(60), 0, old.export_held(later, &arn()));
        new.handle_timeout(now + Duration::from_secs(60));
        assert_eq!(new.buffered_count(), 0);
        assert_eq!(new.channel_count(), 0, "an empty channel is forgotten");
        assert_eq!(new.held_bytes(), 0);
    }

    #[test]
    fn a_moved_sender_hears_what_becomes_of_what_it_sent_before_the_move() {
        #[expect(clippy::disallowed_methods, reason = "a test's clock")]
        let now = Instant::now();
        let master_open = || OpenConnection::master(arn(), ttl(60)).delivery_status(true);
        // On the old hub, the master, asking for delivery status, sends an offer with a
        // correlation id to a viewer that is not there: it hears HELD.
        let mut old = Hub::new(HubConfig::default()).unwrap();
        let master = open(&mut old, now, master_open());
        old.handle_frame(
            now,
            master,
            r#"{"action":"SDP_OFFER","recipientClientId":"late","messagePayload":"b2xk","correlationId":"c1"}"#,
        );
        let told = delivered(&mut old);
        assert_eq!(told.len(), 1);
        assert!(told[0].1.contains(r#""status":"HELD""#), "{told:?}");
        let exported = old.export_held(now, &arn());
        assert_eq!(
            exported[0].messages[0]
                .correlation_id
                .as_ref()
                .map(|c| c.as_str()),
            Some("c1")
        );

        // The channel moves: the new hub restores the offer, then the master's connection.
        let mut new = Hub::new(HubConfig::default()).unwrap();
        new.restore_held(now, &arn(), ttl(60), 0, exported.clone());
        let moved = open(
            &mut new,
            now,
            master_open().restored(Some(Duration::from_secs(5))),
        );
        assert!(outputs(&mut new).is_empty());
        // The viewer connects and gets the offer; once it is written, the master hears
        // DELIVERED, and nothing else.
        let late = open(&mut new, now, viewer("late"));
        let receipt = outputs(&mut new)
            .into_iter()
            .find_map(|output| match output {
                Output::DeliverTracked { conn, receipt, .. } => {
                    assert_eq!(conn, late);
                    Some(receipt)
                }
                _ => None,
            })
            .expect("the offer, tracked");
        new.handle_written(now, receipt);
        assert_eq!(
            delivered(&mut new),
            vec![(
                moved,
                r#"{"deliveryStatus":{"correlationId":"c1","recipientClientId":"late","status":"DELIVERED"},"messageType":"DELIVERY_STATUS"}"#
                    .to_owned()
            )]
        );

        // A connection of the master's that did not move here (a new connect) takes nothing
        // up: as on one hub, what an older connection sent is told to it alone.
        let mut new = Hub::new(HubConfig::default()).unwrap();
        new.restore_held(now, &arn(), ttl(60), 0, exported);
        open(&mut new, now, master_open());
        open(&mut new, now, viewer("late"));
        assert!(
            outputs(&mut new)
                .iter()
                .all(|output| !matches!(output, Output::DeliverTracked { .. })),
            "nobody to tell"
        );
    }

    #[test]
    fn held_messages_restored_for_a_connected_recipient_are_delivered_at_once() {
        #[expect(clippy::disallowed_methods, reason = "a test's clock")]
        let now = Instant::now();
        let old = holding(now);
        let mut new = Hub::new(HubConfig::default()).unwrap();
        let late = open(&mut new, now, viewer("late"));
        assert!(outputs(&mut new).is_empty());
        new.restore_held(now, &arn(), ttl(60), 0, old.export_held(now, &arn()));
        let got = delivered(&mut new);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|(conn, _)| *conn == late));
        assert_eq!(new.buffered_count(), 0);
    }

    #[test]
    fn a_restored_connection_skips_the_connect_rate_keeps_its_age_and_loses_to_newer_ones() {
        #[expect(clippy::disallowed_methods, reason = "a test's clock")]
        let now = Instant::now();
        let config = HubConfig::default();
        let mut hub = Hub::new(config.clone()).unwrap();
        // Ten restored viewers at once: past the connect rate (3 a second), all taken.
        let restored: Vec<ConnId> = (0..10)
            .map(|i| {
                open(
                    &mut hub,
                    now,
                    viewer(&format!("v{i}")).restored(Some(Duration::from_secs(3000))),
                )
            })
            .collect();
        assert!(restored.iter().all(|&conn| hub.is_current(conn)));
        // The rate was not spent: three fresh connects still pass this second.
        for i in 0..3 {
            let master_or_viewer = if i == 0 {
                OpenConnection::master(arn(), ttl(60))
            } else {
                viewer(&format!("v{i}"))
            };
            assert!(hub.handle_open(now, master_or_viewer).is_ok());
        }
        // Its one-hour cap counts from when it first opened, 3000 s ago: 600 s from now.
        let _ = outputs(&mut hub);
        hub.handle_timeout(now + Duration::from_secs(599));
        assert!(hub.is_current(restored[9]));
        hub.handle_timeout(now + Duration::from_secs(600));
        assert!(!hub.is_current(restored[9]));

        // A connection of its identity opened here wins, whichever is established first.
        let mut hub = Hub::new(config).unwrap();
        let fresh = open(&mut hub, now, viewer("v"));
        let back = open(&mut hub, now, viewer("v").restored(Some(Duration::ZERO)));
        assert!(hub.is_current(fresh));
        assert!(!hub.is_current(back));
        let mut hub = Hub::new(HubConfig::default()).unwrap();
        let back = open(&mut hub, now, viewer("v").restored(Some(Duration::ZERO)));
        let fresh = open(&mut hub, now, viewer("v"));
        assert!(hub.is_current(fresh));
        assert!(!hub.is_current(back));
    }

    #[test]
    fn an_evicted_channel_closes_its_connections_as_moved_and_drops_what_it_held() {
        #[expect(clippy::disallowed_methods, reason = "a test's clock")]
        let now = Instant::now();
        let mut hub = holding(now);
        let _ = hub.take_held_changes(now);
        let v1 = open(&mut hub, now, viewer("v1"));
        let _ = outputs(&mut hub);
        hub.evict_channel(now, &arn());
        let closes: Vec<(ConnId, CloseReason)> = outputs(&mut hub)
            .into_iter()
            .filter_map(|output| match output {
                Output::Close { conn, reason } => Some((conn, reason)),
                _ => None,
            })
            .collect();
        assert_eq!(closes.len(), 2, "{closes:?}");
        assert!(closes.contains(&(v1, CloseReason::Moved)));
        assert_eq!(CloseReason::Moved.code(), 1001);
        assert_eq!(hub.connection_count(), 0);
        assert_eq!(hub.buffered_count(), 0);
        assert_eq!(hub.held_bytes(), 0);
        assert_eq!(
            hub.take_held_changes(now),
            Vec::new(),
            "the mover wrote them"
        );
    }

    #[test]
    fn some_connections_go_away_while_the_hub_takes_more() {
        #[expect(clippy::disallowed_methods, reason = "a test's clock")]
        let now = Instant::now();
        let mut hub = Hub::new(HubConfig::default()).unwrap();
        let handles = open(&mut hub, now, viewer("js").indications(true));
        let c_sdk = open(&mut hub, now, viewer("c"));
        let elsewhere = open(&mut hub, now, viewer("remote").indications(true));
        let _ = outputs(&mut hub);
        hub.go_away_connections(now, &[handles, c_sdk]);
        let got = outputs(&mut hub);
        assert_eq!(
            got,
            vec![
                Output::Deliver {
                    conn: handles,
                    frame: crate::Frame::from(r#"{"messageType":"GO_AWAY"}"#.to_owned()),
                },
                Output::Close {
                    conn: c_sdk,
                    reason: CloseReason::Drained,
                },
            ]
        );
        assert!(hub.is_current(elsewhere));
        assert!(!hub.is_draining());
        // (A second later: the three connects above took this second's connect rate.)
        assert!(
            hub.handle_open(now + Duration::from_secs(1), viewer("new"))
                .is_ok()
        );
        // The one that handles GO_AWAY is closed a grace period later.
        hub.handle_timeout(now + HubConfig::default().go_away_grace);
        assert!(!hub.is_current(handles));
        assert!(hub.is_current(elsewhere));
    }

    #[test]
    fn rates_are_judged_by_when_frames_were_read() {
        #[expect(clippy::disallowed_methods, reason = "a test's clock")]
        let start = Instant::now();
        let relayed = |read_apart: Duration| {
            let mut hub = Hub::new(HubConfig::default()).unwrap();
            let master = open(&mut hub, start, OpenConnection::master(arn(), ttl(60)));
            // A viewer that opened 10 s ago elsewhere, whose 40 candidates, read
            // `read_apart` apart, all arrive now.
            let now = start + Duration::from_secs(10);
            let viewer = open(
                &mut hub,
                now,
                viewer("v").restored(Some(Duration::from_secs(10))),
            );
            let first_read = start + Duration::from_secs(1);
            for i in 0..40u32 {
                let read_at = first_read + read_apart * i;
                hub.handle_frame_read_at(
                    now,
                    read_at,
                    viewer,
                    r#"{"action":"ICE_CANDIDATE","messagePayload":"Yw=="}"#,
                );
            }
            delivered(&mut hub)
                .into_iter()
                .filter(|(conn, _)| *conn == master)
                .count()
        };
        // Read at the service's rate (20 a second): none is throttled.
        assert_eq!(relayed(Duration::from_millis(100)), 40);
        // Read all at once: the burst (20) passes, the rest is throttled.
        assert_eq!(relayed(Duration::ZERO), 20);
    }
}
