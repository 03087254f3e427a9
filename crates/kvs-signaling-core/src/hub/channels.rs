//! Channel-level operations: a channel's creation and release, its TTL update, its
//! deletion, and RECONNECT_ICE_SERVER to its connections.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kvs_signaling_proto::{ChannelArn, ErrorType, MessageTtlSeconds};

use super::{Channel, CloseReason, ConnId, Frame, Hub, Output, Refused, Timer, Viewers};
use crate::throttle::Bucket;

const RECONNECT_ICE_SERVER: &str = r#"{"messageType":"RECONNECT_ICE_SERVER"}"#;

impl Hub {
    /// The channel's index, created when new; its TTL is refreshed unless the hub knows a
    /// later revision of it.
    pub(super) fn channel_for(
        &mut self,
        now: Instant,
        arn: &ChannelArn,
        ttl: MessageTtlSeconds,
        revision: u64,
    ) -> u32 {
        self.channel_with_ttl(
            now,
            arn,
            Duration::from_secs(u64::from(ttl.get())),
            revision,
        )
    }

    /// [`Hub::channel_for`] with the TTL as a duration.
    pub(super) fn channel_with_ttl(
        &mut self,
        now: Instant,
        arn: &ChannelArn,
        ttl: Duration,
        revision: u64,
    ) -> u32 {
        if let Some(&index) = self.by_arn.get(arn)
            && let Some(channel) = self.channels.at_mut(index)
        {
            if revision >= channel.ttl_revision {
                channel.ttl = ttl;
                channel.ttl_revision = revision;
            }
            return index;
        }
        let config = &self.config;
        let (index, generation) = self.channels.insert(Channel {
            generation: 0,
            arn: arn.clone(),
            ttl,
            ttl_revision: revision,
            master: None,
            viewers: Viewers::default(),
            members: BTreeSet::new(),
            pending: BTreeMap::new(),
            master_connects: Bucket::full(config.connect_rate, now),
            viewer_connects: Bucket::full(config.connect_rate, now),
            alexa_calls: Bucket::full(config.alexa_rate, now),
            alexa: BTreeMap::new(),
            release_timer: None,
        });
        if let Some(channel) = self.channels.at_mut(index) {
            channel.generation = generation;
        }
        self.by_arn.insert(arn.clone(), index);
        index
    }

    /// Forgets the channel at `index` if nothing uses it: no connection, held message or
    /// Alexa call, and rate buckets that are full again. A channel kept only by its buckets
    /// is forgotten when they are full, so that connecting and closing in a loop cannot reset
    /// the channel's connect rate.
    pub(super) fn release_channel_if_unused(&mut self, now: Instant, index: u32) {
        let Some(channel) = self.channels.at(index) else {
            return;
        };
        if !channel.is_idle() {
            return;
        }
        let at = channel.forgettable_at(&self.config);
        if at <= now {
            if let Some(channel) = self.channels.remove(index) {
                if let Some(key) = channel.release_timer {
                    self.timers.remove(&key);
                }
                self.by_arn.remove(&channel.arn);
            }
            return;
        }
        let generation = channel.generation;
        if channel.release_timer.is_some_and(|(due, _)| due <= at) {
            return;
        }
        let old = channel.release_timer;
        let key = self.schedule(
            at,
            Timer::Release {
                channel: index,
                generation,
            },
        );
        if let Some(old) = old {
            self.timers.remove(&old);
        }
        if let Some(channel) = self.channels.at_mut(index) {
            channel.release_timer = Some(key);
        }
    }

    /// Sends RECONNECT_ICE_SERVER to the current connections of `channel_arn` that handle it
    /// ([`OpenConnection::indications`](crate::OpenConnection::indications)), so that they
    /// fetch fresh ICE servers; the others refresh on their own before their credentials expire.
    pub fn reconnect_ice_servers(&mut self, _now: Instant, channel_arn: &ChannelArn) {
        if let Some(&index) = self.by_arn.get(channel_arn) {
            self.reconnect_ice_servers_of(index);
        }
    }

    /// Sends RECONNECT_ICE_SERVER to every current connection that handles it, on every
    /// channel, as after a TURN secret rotation.
    pub fn reconnect_ice_servers_all(&mut self, _now: Instant) {
        let indexes: Vec<u32> = self.by_arn.values().copied().collect();
        for index in indexes {
            self.reconnect_ice_servers_of(index);
        }
    }

    fn reconnect_ice_servers_of(&mut self, index: u32) {
        let Some(channel) = self.channels.at(index) else {
            return;
        };
        let targets: Vec<ConnId> = channel
            .master
            .iter()
            .copied()
            .chain(channel.viewers.conns())
            .filter(|conn| {
                self.conns
                    .get(conn.slot, conn.generation)
                    .is_some_and(|c| c.indications)
            })
            .collect();
        for conn in targets {
            self.counters.reconnect_ice_servers += 1;
            self.outputs.push_back(Output::Deliver {
                conn,
                frame: Frame(Cow::Borrowed(RECONNECT_ICE_SERVER)),
            });
        }
    }

    /// The channel's TTL changed at configuration revision `revision` (see
    /// [`OpenConnection::ttl_revision`](crate::OpenConnection::ttl_revision)); messages
    /// already buffered keep their expiry. An older revision than the hub knows is ignored.
    pub fn handle_channel_updated(
        &mut self,
        _now: Instant,
        channel_arn: &ChannelArn,
        message_ttl: MessageTtlSeconds,
        revision: u64,
    ) {
        if let Some(channel) = self
            .by_arn
            .get(channel_arn)
            .and_then(|&index| self.channels.at_mut(index))
            && revision >= channel.ttl_revision
        {
            channel.ttl = Duration::from_secs(u64::from(message_ttl.get()));
            channel.ttl_revision = revision;
        }
    }

    /// The channel was deleted: its connections are closed, its buffered messages dropped and
    /// its Alexa calls failed.
    pub fn handle_channel_deleted(&mut self, now: Instant, channel_arn: &ChannelArn) {
        let Some(&index) = self.by_arn.get(channel_arn) else {
            return;
        };
        let Some(channel) = self.channels.at_mut(index) else {
            return;
        };
        let dropped: usize = channel.pending.values().map(|q| q.messages.len()).sum();
        let bytes: usize = channel
            .pending
            .values()
            .flat_map(|q| &q.messages)
            .map(|p| p.frame.as_str().len())
            .sum();
        self.held_bytes = self.held_bytes.saturating_sub(bytes);
        let timers: Vec<(Instant, u64)> =
            channel.pending.values().filter_map(|q| q.timer).collect();
        channel.pending.clear();
        let alexa = std::mem::take(&mut channel.alexa);
        let members: Vec<u32> = channel.members.iter().copied().collect();
        self.counters.dropped_channel_deleted += dropped as u64;
        for key in timers {
            self.timers.remove(&key);
        }
        for (_, request) in alexa {
            self.counters.alexa_failed += 1;
            self.outputs.push_back(Output::AlexaAnswer {
                request,
                result: Err(Refused::new(
                    ErrorType::ResourceNotFoundException,
                    "the channel was deleted",
                )),
            });
        }
        for slot in members {
            let conn = ConnId {
                slot,
                generation: self.conns.generation(slot),
            };
            self.close(now, conn, CloseReason::ChannelDeleted);
        }
        self.release_channel_if_unused(now, index);
    }
}
