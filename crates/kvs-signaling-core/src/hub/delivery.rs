//! Delivery status, an extension of this project: a connection that asks for it
//! ([`OpenConnection::delivery_status`](crate::OpenConnection::delivery_status)) hears what
//! became of each message it sends with a correlation id: `HELD` when its recipient is not
//! connected, then exactly one of `DELIVERED` (written to the recipient's socket),
//! `EXPIRED` or `OVERWRITTEN`.
//!
//! "Written to the socket" is the transport's to say: a tracked message goes out as
//! [`Output::DeliverTracked`] with a [`Receipt`], which the caller hands back through
//! [`Hub::handle_written`] once the frame is written, or [`Hub::handle_unwritten`] with the
//! frame when its connection ended first; the message is then held again (or sent to the
//! recipient's newer connection), so a message whose sender asked is never lost between the
//! hub and the socket.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use kvs_signaling_proto::{
    Action, ChannelArn, CorrelationId, DeliveryState, DeliveryStatus, ErrorType, PeerId,
    ServerEvent,
};

use super::{ConnId, Frame, Hub, Output, Pending, Recipient, Standing};

/// Whom to tell what became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tracking {
    pub(super) sender: ConnId,
    pub(super) correlation_id: CorrelationId,
}

/// A tracked message: where it goes, and what a held copy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tracked {
    pub(super) channel: u32,
    pub(super) recipient: Recipient,
    /// The sender's viewer id and the action, which decide what a newer offer or answer
    /// replaces if the message is held.
    pub(super) sender_id: Option<PeerId>,
    pub(super) action: Action,
    pub(super) tracking: Tracking,
}

/// A tracked message on its way to a socket: hand it back with [`Hub::handle_written`] once
/// the frame is written, or [`Hub::handle_unwritten`] if it never will be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The channel, by ARN with its TTL and revision: if its connections all end before the
    /// receipt comes back, the hub may have let the channel go, and takes it up again.
    pub(super) arn: ChannelArn,
    pub(super) ttl: Duration,
    pub(super) ttl_revision: u64,
    pub(super) recipient: Recipient,
    /// The connection the frame was handed to.
    pub(super) to: ConnId,
    /// The sender's viewer id and the action, which decide what a newer offer or answer
    /// replaces if the message is held again.
    pub(super) sender_id: Option<PeerId>,
    pub(super) action: Action,
    pub(super) tracking: Tracking,
}

impl Receipt {
    /// The connection the frame was handed to.
    pub fn conn(&self) -> ConnId {
        self.to
    }
}

impl Hub {
    /// The tracking of a message from `from` with `correlation_id`, if its sender asked for
    /// delivery status.
    pub(super) fn tracking(
        &self,
        from: ConnId,
        correlation_id: Option<&CorrelationId>,
    ) -> Option<Tracking> {
        let correlation_id = correlation_id?;
        self.conns
            .get(from.slot, from.generation)
            .filter(|c| c.delivery_status)
            .map(|_| Tracking {
                sender: from,
                correlation_id: correlation_id.clone(),
            })
    }

    /// The messages held in channel `channel_index` that `sender` (a viewer id; `None` for
    /// the master) sent with a correlation id while the channel was another hub's
    /// ([`Hub::restore_held`](crate::Hub::restore_held)) are tracked for `conn`, the sender's
    /// connection moved here, if it asked for delivery status.
    pub(super) fn take_up_moved_tracking(
        &mut self,
        channel_index: u32,
        sender: Option<&PeerId>,
        conn: ConnId,
    ) {
        let asked = self
            .conns
            .get(conn.slot, conn.generation)
            .is_some_and(|c| c.delivery_status);
        let Some(channel) = self.channels.at_mut(channel_index) else {
            return;
        };
        for queue in channel.pending.values_mut() {
            for pending in queue.messages.iter_mut() {
                if pending.sender.as_ref() != sender {
                    continue;
                }
                if let Some(correlation_id) = pending.moved_tracking.take()
                    && asked
                {
                    pending.tracking = Some(Tracking {
                        sender: conn,
                        correlation_id,
                    });
                }
            }
        }
    }

    /// Tells the sender of a tracked message what became of it, if it is still the current
    /// connection of its identity (a superseded connection gets nothing more).
    pub(super) fn report(
        &mut self,
        tracking: &Tracking,
        recipient: &Recipient,
        state: DeliveryState,
    ) {
        let Some(c) = self
            .conns
            .get(tracking.sender.slot, tracking.sender.generation)
        else {
            return;
        };
        if !c.delivery_status || c.standing != Standing::Current {
            return;
        }
        let recipient = match recipient {
            Recipient::Master => None,
            Recipient::Viewer(id) => Some(id.clone()),
        };
        let event = ServerEvent::delivery_status(DeliveryStatus::new(
            tracking.correlation_id.clone(),
            recipient,
            state,
        ));
        self.counters.delivery_statuses += 1;
        self.outputs.push_back(Output::Deliver {
            conn: tracking.sender,
            frame: Frame(Cow::Owned(event.encode())),
        });
    }

    /// Hands `frame` to `to`, with a receipt when it is tracked.
    pub(super) fn deliver_maybe_tracked(
        &mut self,
        to: ConnId,
        frame: Frame,
        tracked: Option<Tracked>,
    ) {
        let Some(Tracked {
            channel,
            recipient,
            sender_id,
            action,
            tracking,
        }) = tracked
        else {
            self.deliver(to, frame);
            return;
        };
        let Some((arn, ttl, ttl_revision)) = self
            .channels
            .at(channel)
            .map(|channel| (channel.arn.clone(), channel.ttl, channel.ttl_revision))
        else {
            return;
        };
        self.counters.delivered += 1;
        if let Some(c) = self.conns.get_mut(to.slot, to.generation) {
            c.messages_out += 1;
        }
        self.outputs.push_back(Output::DeliverTracked {
            conn: to,
            frame,
            receipt: Receipt {
                arn,
                ttl,
                ttl_revision,
                recipient,
                to,
                sender_id,
                action,
                tracking,
            },
        });
    }

    /// The frame of a tracked message ([`Output::DeliverTracked`]) is written to its
    /// recipient's socket: its sender hears `DELIVERED`.
    pub fn handle_written(&mut self, _now: Instant, receipt: Receipt) {
        self.report(
            &receipt.tracking,
            &receipt.recipient,
            DeliveryState::Delivered,
        );
    }

    /// The frame of a tracked message ([`Output::DeliverTracked`]) was not written: its
    /// connection ended first. It goes to the recipient's newer connection if there is one,
    /// and is held for the channel's TTL otherwise (its sender hears `HELD`); if the holds
    /// are full, its sender gets a STATUS_RESPONSE.
    pub fn handle_unwritten(&mut self, now: Instant, receipt: Receipt, frame: Frame) {
        let Receipt {
            arn,
            ttl,
            ttl_revision,
            recipient,
            to,
            sender_id,
            action,
            tracking,
        } = receipt;
        let channel = self.channel_with_ttl(now, &arn, ttl, ttl_revision);
        let current = self.channels.at(channel).and_then(|ch| match &recipient {
            Recipient::Master => ch.master,
            Recipient::Viewer(id) => ch.viewers.get(id.as_str()),
        });
        match current.filter(|&conn| conn != to) {
            Some(newer) => self.deliver_maybe_tracked(
                newer,
                frame,
                Some(Tracked {
                    channel,
                    recipient,
                    sender_id,
                    action,
                    tracking,
                }),
            ),
            None => {
                let pending = Pending {
                    frame,
                    sender: sender_id,
                    action,
                    expires: now,
                    held_at: now,
                    tracking: Some(tracking.clone()),
                    moved_tracking: None,
                };
                match self.buffer(now, channel, recipient.clone(), pending) {
                    Ok(()) => self.report(&tracking, &recipient, DeliveryState::Held),
                    Err(description) => {
                        self.counters.buffer_full += 1;
                        self.reject(
                            tracking.sender,
                            Some(tracking.correlation_id),
                            ErrorType::ClientLimitExceededException,
                            description,
                        );
                        self.release_channel_if_unused(now, channel);
                    }
                }
            }
        }
    }
}
