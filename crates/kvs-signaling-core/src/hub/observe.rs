//! What an operator sees of the hub: a view of every channel's connections and held messages
//! ([`Hub::channel_views`]), and, while someone watches ([`Hub::set_observing`]), an
//! [`Observation`] of each thing the hub does.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kvs_signaling_proto::{ChannelArn, ErrorType, MessageType, PeerId, Role};

use super::{CloseReason, ConnId, Hub, Output, Recipient, Refused, Standing};

/// Something the hub did, for a console or a log. Produced as [`Output::Observed`] only while
/// [`Hub::set_observing`] is on, so that a hub nobody watches pays nothing for them. `None` in
/// a `client_id`, `from` or `to` stands for the channel's master.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Observation {
    /// A connection's socket is up and it took its identity's place.
    Connected {
        /// The channel.
        channel: ChannelArn,
        /// The connection.
        conn: ConnId,
        /// Master or viewer.
        role: Role,
        /// The viewer's id.
        client_id: Option<PeerId>,
        /// Where it connected from, when the caller said.
        remote_addr: Option<SocketAddr>,
    },
    /// A newer connection with the same identity took this one's place.
    Superseded {
        /// The channel.
        channel: ChannelArn,
        /// The connection that lost its place.
        conn: ConnId,
        /// The viewer's id.
        client_id: Option<PeerId>,
    },
    /// A connection ended.
    Closed {
        /// The channel.
        channel: ChannelArn,
        /// The connection.
        conn: ConnId,
        /// The viewer's id.
        client_id: Option<PeerId>,
        /// Why the hub closed it; `None` when its client (or its socket) ended it.
        reason: Option<CloseReason>,
    },
    /// A connect was refused.
    ConnectRefused {
        /// The channel.
        channel: ChannelArn,
        /// Master or viewer.
        role: Role,
        /// The viewer's id.
        client_id: Option<PeerId>,
        /// The service's error.
        error: Refused,
    },
    /// A message was refused (answered with a STATUS_RESPONSE if it had a correlation id).
    MessageRefused {
        /// The channel.
        channel: ChannelArn,
        /// The sender's connection.
        conn: ConnId,
        /// The sender's id.
        client_id: Option<PeerId>,
        /// The service's error.
        error_type: ErrorType,
        /// What was wrong.
        description: String,
    },
    /// A message was relayed to its recipient, or held for it when it was not connected.
    Relayed {
        /// The channel.
        channel: ChannelArn,
        /// The relayed event's type.
        message_type: MessageType,
        /// The sender.
        from: Option<PeerId>,
        /// The recipient.
        to: Option<PeerId>,
        /// Whether it was held rather than delivered.
        held: bool,
    },
    /// Held messages for a recipient ran out of time.
    Expired {
        /// The channel.
        channel: ChannelArn,
        /// The recipient.
        to: Option<PeerId>,
        /// How many.
        count: usize,
    },
}

/// A connection's place, as [`ConnectionView`] shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionStanding {
    /// Accepted; its socket is not up yet.
    Opening,
    /// The channel's master, or its viewer id's connection.
    Current,
    /// Replaced by a newer connection with the same identity; closed after a linger.
    Superseded,
}

/// One connection of a [`ChannelView`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionView {
    /// The connection.
    pub conn: ConnId,
    /// Master or viewer.
    pub role: Role,
    /// The viewer's id.
    pub client_id: Option<PeerId>,
    /// Its place.
    pub standing: ConnectionStanding,
    /// When it opened.
    pub opened: Instant,
    /// When its client last sent something.
    pub last_activity: Instant,
    /// Where it connected from, when the caller said.
    pub remote_addr: Option<SocketAddr>,
    /// Messages it sent that were relayed or held.
    pub messages_in: u64,
    /// Messages relayed to it.
    pub messages_out: u64,
    /// Whether it handles GO_AWAY and RECONNECT_ICE_SERVER.
    pub indications: bool,
}

/// The messages held for one recipient of a [`ChannelView`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldView {
    /// The recipient: a viewer's id, or `None` for the master.
    pub recipient: Option<PeerId>,
    /// How many messages wait.
    pub messages: usize,
    /// Their bytes, as encoded frames.
    pub bytes: usize,
    /// When the oldest was held.
    pub oldest: Instant,
}

/// A channel as the hub holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelView {
    /// The channel.
    pub arn: ChannelArn,
    /// Its message TTL.
    pub message_ttl: Duration,
    /// Its connections, in the order they opened.
    pub connections: Vec<ConnectionView>,
    /// The messages held for recipients that are not connected.
    pub held: Vec<HeldView>,
}

impl Hub {
    /// Turns [`Output::Observed`] on or off.
    pub fn set_observing(&mut self, observing: bool) {
        self.observing = observing;
    }

    /// Whether [`Output::Observed`] is on.
    pub fn is_observing(&self) -> bool {
        self.observing
    }

    /// Reports `observation` if someone watches; `make` runs only then.
    pub(super) fn observe(&mut self, make: impl FnOnce(&Self) -> Option<Observation>) {
        if self.observing
            && let Some(observation) = make(self)
        {
            self.outputs.push_back(Output::Observed(observation));
        }
    }

    /// The ARN of the channel at `index`.
    pub(super) fn arn_of(&self, index: u32) -> Option<ChannelArn> {
        self.channels.at(index).map(|channel| channel.arn.clone())
    }

    /// Every channel the hub holds (with connections, held messages or Alexa calls), with its
    /// connections and held messages, in the order of their ARNs.
    pub fn channel_views(&self) -> Vec<ChannelView> {
        self.by_arn
            .values()
            .filter_map(|&index| {
                let channel = self.channels.at(index)?;
                let mut connections: Vec<(u64, ConnectionView)> = channel
                    .members
                    .iter()
                    .filter_map(|&slot| {
                        let c = self.conns.at(slot)?;
                        let view = ConnectionView {
                            conn: ConnId {
                                slot,
                                generation: self.conns.generation(slot),
                            },
                            role: c.role,
                            client_id: c.client_id.clone(),
                            standing: match c.standing {
                                Standing::Opening => ConnectionStanding::Opening,
                                Standing::Current => ConnectionStanding::Current,
                                Standing::Superseded(_) => ConnectionStanding::Superseded,
                            },
                            opened: c.opened,
                            last_activity: c.last_activity,
                            remote_addr: c.remote_addr,
                            messages_in: c.messages_in,
                            messages_out: c.messages_out,
                            indications: c.indications,
                        };
                        Some((c.seq, view))
                    })
                    .collect();
                connections.sort_by_key(|(seq, _)| *seq);
                let held = channel
                    .pending
                    .iter()
                    .filter_map(|(recipient, queue)| {
                        let oldest = queue.messages.iter().map(|p| p.held_at).min()?;
                        Some(HeldView {
                            recipient: match recipient {
                                Recipient::Master => None,
                                Recipient::Viewer(id) => Some(id.clone()),
                            },
                            messages: queue.messages.len(),
                            bytes: queue.messages.iter().map(|p| p.frame.as_str().len()).sum(),
                            oldest,
                        })
                    })
                    .collect();
                Some(ChannelView {
                    arn: channel.arn.clone(),
                    message_ttl: channel.ttl,
                    connections: connections.into_iter().map(|(_, view)| view).collect(),
                    held,
                })
            })
            .collect()
    }
}
