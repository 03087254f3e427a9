//! Routing: relayed messages from a connection to their recipient, now or from the buffer,
//! and the STATUS_RESPONSE answers to refused ones.

use std::borrow::Cow;
use std::time::Instant;

use kvs_signaling_proto::{
    Action, ClientMessage, CorrelationId, DeliveryState, ErrorType, Role, ServerEvent,
    StatusResponse,
};

use super::{
    ConnId, Frame, Hub, Observation, Output, Pending, Recipient, Standing, Timer, Tracked, Tracking,
};

impl Hub {
    /// A text frame arrived on `conn`.
    pub fn handle_frame(&mut self, now: Instant, conn: ConnId, text: &str) {
        self.handle_frame_read_at(now, now, conn, text);
    }

    /// [`Hub::handle_frame`] for a frame its socket read at `read_at`, before it reached the
    /// hub (another process read it, and it waited on the way: bunched by a stall, or sent
    /// again after its first hub died). The connection's message rates are judged by when
    /// its frames were read, so that a client that kept to them is not throttled for the
    /// delay. A time after `now` counts as `now`.
    pub fn handle_frame_read_at(
        &mut self,
        now: Instant,
        read_at: Instant,
        conn: ConnId,
        text: &str,
    ) {
        let read_at = read_at.min(now);
        let Some(c) = self.conns.get_mut(conn.slot, conn.generation) else {
            return;
        };
        c.last_activity = now;
        match c.standing {
            Standing::Current => {}
            Standing::Superseded(_) => {
                self.counters.dropped_from_superseded += 1;
                return;
            }
            Standing::Opening => {
                self.counters.dropped_before_established += 1;
                return;
            }
        }
        // A viewer's recipient is ignored: its messages always go to the master.
        let options = match c.role {
            Role::Viewer => &self.viewer_decoding,
            Role::Master => &self.master_decoding,
        };
        let message = match ClientMessage::decode_with(text, options) {
            Ok(message) => message,
            Err(err) => {
                self.counters.invalid += 1;
                let (error_type, description) = (err.error.error_type(), err.error.to_string());
                self.reject(conn, err.correlation_id, error_type, description);
                return;
            }
        };
        let config = &self.config;
        let (rate, bucket) = match (message.action, c.role) {
            (Action::SdpOffer | Action::SdpAnswer, Role::Viewer) => (config.sdp_rate, &mut c.sdp),
            (Action::SdpOffer | Action::SdpAnswer, Role::Master) => {
                (config.master_sdp_rate, &mut c.sdp)
            }
            (Action::IceCandidate, Role::Viewer) => (config.ice_candidate_rate, &mut c.ice),
            (Action::IceCandidate, Role::Master) => (config.master_ice_candidate_rate, &mut c.ice),
        };
        if !bucket.try_take(rate, read_at) {
            self.counters.throttled += 1;
            let description = format!(
                "{}: more than {} per second on this connection",
                message.action, rate.per_second
            );
            self.reject(
                conn,
                message.correlation_id,
                ErrorType::ClientLimitExceededException,
                description,
            );
            return;
        }
        let channel_index = c.channel;
        c.messages_in += 1;
        match c.role {
            Role::Viewer => {
                // The viewer's id goes into the frame; it is copied only if the frame waits.
                let frame = ServerEvent::relay(
                    message.action.message_type(),
                    c.client_id.as_ref(),
                    message.message_payload,
                )
                .encode();
                self.route_to_master(
                    now,
                    conn,
                    channel_index,
                    frame,
                    message.action,
                    message.correlation_id,
                );
            }
            Role::Master => self.route_to_viewer(now, conn, channel_index, message),
        }
    }

    fn route_to_master(
        &mut self,
        now: Instant,
        from: ConnId,
        channel_index: u32,
        frame: String,
        action: Action,
        correlation_id: Option<CorrelationId>,
    ) {
        let master = self.channels.at(channel_index).and_then(|ch| ch.master);
        let held = master.is_none();
        self.observe(|hub| {
            Some(Observation::Relayed {
                channel: hub.arn_of(channel_index)?,
                message_type: action.message_type(),
                from: hub
                    .conns
                    .get(from.slot, from.generation)
                    .and_then(|c| c.client_id.clone()),
                to: None,
                held,
            })
        });
        let tracking = self.tracking(from, correlation_id.as_ref());
        let sender = || {
            self.conns
                .get(from.slot, from.generation)
                .and_then(|c| c.client_id.clone())
        };
        match master {
            Some(to) => {
                let tracked = tracking.map(|tracking| Tracked {
                    channel: channel_index,
                    recipient: Recipient::Master,
                    sender_id: sender(),
                    action,
                    tracking,
                });
                self.deliver_maybe_tracked(to, Frame(Cow::Owned(frame)), tracked);
            }
            None => {
                let sender = sender();
                self.buffer_or_refuse(
                    now,
                    from,
                    channel_index,
                    Recipient::Master,
                    Pending {
                        frame: Frame(Cow::Owned(frame)),
                        sender,
                        action,
                        expires: now,
                        held_at: now,
                        tracking,
                        moved_tracking: None,
                    },
                    correlation_id,
                );
            }
        }
    }

    fn route_to_viewer(
        &mut self,
        now: Instant,
        from: ConnId,
        channel_index: u32,
        message: ClientMessage<'_>,
    ) {
        let Some(recipient) = message.recipient_client_id else {
            self.counters.invalid += 1;
            self.reject(
                from,
                message.correlation_id,
                ErrorType::InvalidArgumentException,
                "recipientClientId: is required on messages from the master".to_owned(),
            );
            return;
        };
        let Some(channel) = self.channels.at_mut(channel_index) else {
            return;
        };
        if message.action == Action::SdpAnswer
            && let Some(request) = channel.alexa.remove(&recipient)
        {
            self.counters.alexa_answered += 1;
            self.outputs.push_back(Output::AlexaAnswer {
                request,
                result: Ok(message.message_payload.into_normalized().into_owned()),
            });
            // The answer is the HTTP call's reply: as delivered as it gets.
            if let Some(tracking) = self.tracking(from, message.correlation_id.as_ref()) {
                self.report(
                    &tracking,
                    &Recipient::Viewer(recipient),
                    DeliveryState::Delivered,
                );
            }
            self.release_channel_if_unused(now, channel_index);
            return;
        }
        if channel.alexa.contains_key(&recipient) {
            // The HTTP call of SendAlexaOfferToMaster carries only the answer.
            self.counters.dropped_for_alexa += 1;
            return;
        }
        let frame = Frame(Cow::Owned(
            ServerEvent::relay(message.action.message_type(), None, message.message_payload)
                .encode(),
        ));
        let to = channel.viewers.get(recipient.as_str());
        self.observe(|hub| {
            Some(Observation::Relayed {
                channel: hub.arn_of(channel_index)?,
                message_type: message.action.message_type(),
                from: None,
                to: Some(recipient.clone()),
                held: to.is_none(),
            })
        });
        let tracking = self.tracking(from, message.correlation_id.as_ref());
        match to {
            Some(to) => {
                let tracked = tracking.map(|tracking| Tracked {
                    channel: channel_index,
                    recipient: Recipient::Viewer(recipient),
                    sender_id: None,
                    action: message.action,
                    tracking,
                });
                self.deliver_maybe_tracked(to, frame, tracked);
            }
            None => self.buffer_or_refuse(
                now,
                from,
                channel_index,
                Recipient::Viewer(recipient),
                Pending {
                    frame,
                    sender: None,
                    action: message.action,
                    expires: now,
                    held_at: now,
                    tracking,
                    moved_tracking: None,
                },
                message.correlation_id,
            ),
        }
    }

    pub(super) fn deliver(&mut self, to: ConnId, frame: Frame) {
        self.counters.delivered += 1;
        if let Some(c) = self.conns.get_mut(to.slot, to.generation) {
            c.messages_out += 1;
        }
        self.outputs.push_back(Output::Deliver { conn: to, frame });
    }

    /// Keeps `pending` for `recipient` for the channel's TTL (`pending.expires` is set here),
    /// or says why it cannot: the recipient's queue or the channel's recipients are at their
    /// limit.
    pub(super) fn buffer(
        &mut self,
        now: Instant,
        channel_index: u32,
        recipient: Recipient,
        pending: Pending,
    ) -> Result<(), String> {
        self.buffer_until(now, channel_index, recipient, pending, None)
    }

    /// [`Hub::buffer`], with the expiry `expires` instead of the channel's TTL from now.
    pub(super) fn buffer_until(
        &mut self,
        now: Instant,
        channel_index: u32,
        recipient: Recipient,
        mut pending: Pending,
        expires: Option<Instant>,
    ) -> Result<(), String> {
        self.held_changed(channel_index, &recipient);
        let Some(channel) = self.channels.at_mut(channel_index) else {
            return Err("the channel is gone".to_owned());
        };
        pending.expires = expires.unwrap_or(now + channel.ttl);
        // Messages that expired but wait behind newer ones (after a TTL decrease) do not
        // count against the limits.
        let mut expired: Vec<Tracking> = Vec::new();
        if let Some(queue) = channel.pending.get_mut(&recipient) {
            let before = queue.messages.len();
            let mut freed = 0;
            queue.messages.retain_mut(|p| {
                let keep = p.expires > now;
                if !keep {
                    freed += p.frame.as_str().len();
                    expired.extend(p.tracking.take());
                }
                keep
            });
            self.held_bytes = self.held_bytes.saturating_sub(freed);
            self.counters.expired += (before - queue.messages.len()) as u64;
        }
        for tracking in &expired {
            self.report(tracking, &recipient, DeliveryState::Expired);
        }
        let config = &self.config;
        let Some(channel) = self.channels.at_mut(channel_index) else {
            return Err("the channel is gone".to_owned());
        };
        let known = channel.pending.contains_key(&recipient);
        if !known && channel.pending.len() >= config.max_pending_recipients_per_channel {
            return Err(format!(
                "too many recipients with undelivered messages on this channel (at most {})",
                config.max_pending_recipients_per_channel
            ));
        }
        let queue = channel.pending.entry(recipient.clone()).or_default();
        // A newer offer (or answer) from the same sender replaces an undelivered one.
        let replaced = if matches!(pending.action, Action::SdpOffer | Action::SdpAnswer) {
            queue
                .messages
                .iter()
                .position(|p| p.action == pending.action && p.sender == pending.sender)
        } else {
            None
        };
        let len = pending.frame.as_str().len();
        let freed = replaced
            .and_then(|at| queue.messages.get(at))
            .map_or(0, |p| p.frame.as_str().len());
        let held = self.held_bytes.saturating_sub(freed).saturating_add(len);
        if held > config.max_held_bytes {
            if queue.messages.is_empty() {
                channel.pending.remove(&recipient);
            }
            return Err(format!(
                "the server holds {} bytes of undelivered messages, its limit \
                 (max_held_bytes); this one has {len}",
                self.held_bytes
            ));
        }
        let mut overwritten = None;
        if let Some(at) = replaced {
            overwritten = queue.messages.remove(at).and_then(|p| p.tracking);
            self.counters.overwritten += 1;
        }
        if queue.messages.len() >= config.max_pending_per_recipient {
            return Err(format!(
                "the recipient has {} undelivered messages, the most that are kept",
                config.max_pending_per_recipient
            ));
        }
        self.held_bytes = held;
        queue.messages.push_back(pending);
        self.counters.buffered += 1;
        // A restored message may expire before those held already (their expiry is kept):
        // the one timer is due at the earliest.
        let first_expiry = queue.messages.iter().map(|p| p.expires).min();
        let stale = match (queue.timer, first_expiry) {
            (None, Some(_)) => true,
            (Some((at, _)), Some(first)) => first < at,
            _ => false,
        };
        if stale {
            let generation = channel.generation;
            if let Some(old) = queue.timer.take() {
                self.timers.remove(&old);
            }
            if let Some(at) = first_expiry {
                self.arm_expiry(at, channel_index, generation, &recipient);
            }
        }
        if let Some(tracking) = overwritten {
            self.report(&tracking, &recipient, DeliveryState::Overwritten);
        }
        Ok(())
    }

    /// Buffers a relayed message, answering a refusal to its sender.
    fn buffer_or_refuse(
        &mut self,
        now: Instant,
        from: ConnId,
        channel_index: u32,
        recipient: Recipient,
        pending: Pending,
        correlation_id: Option<CorrelationId>,
    ) {
        let tracking = pending.tracking.clone();
        match self.buffer(now, channel_index, recipient.clone(), pending) {
            Ok(()) => {
                if let Some(tracking) = tracking {
                    self.report(&tracking, &recipient, DeliveryState::Held);
                }
            }
            Err(description) => {
                self.counters.buffer_full += 1;
                self.reject(
                    from,
                    correlation_id,
                    ErrorType::ClientLimitExceededException,
                    description,
                );
            }
        }
    }

    /// Delivers what waits for `recipient`, in order, to `to`.
    pub(super) fn flush_pending(
        &mut self,
        now: Instant,
        channel_index: u32,
        recipient: &Recipient,
        to: ConnId,
    ) {
        let Some(queue) = self
            .channels
            .at_mut(channel_index)
            .and_then(|ch| ch.pending.remove(recipient))
        else {
            return;
        };
        self.held_changed(channel_index, recipient);
        if let Some(key) = queue.timer {
            self.timers.remove(&key);
        }
        for pending in queue.messages {
            self.held_bytes = self.held_bytes.saturating_sub(pending.frame.as_str().len());
            if pending.expires > now {
                let tracked = pending.tracking.map(|tracking| Tracked {
                    channel: channel_index,
                    recipient: recipient.clone(),
                    sender_id: pending.sender,
                    action: pending.action,
                    tracking,
                });
                self.deliver_maybe_tracked(to, pending.frame, tracked);
            } else {
                self.counters.expired += 1;
                if let Some(tracking) = &pending.tracking {
                    self.report(tracking, recipient, DeliveryState::Expired);
                }
            }
        }
    }

    /// Answers a refused message with a STATUS_RESPONSE when it had a correlation id.
    pub(super) fn reject(
        &mut self,
        conn: ConnId,
        correlation_id: Option<CorrelationId>,
        error_type: ErrorType,
        description: String,
    ) {
        self.observe(|hub| {
            let c = hub.conns.get(conn.slot, conn.generation)?;
            Some(Observation::MessageRefused {
                channel: hub.arn_of(c.channel)?,
                conn,
                client_id: c.client_id.clone(),
                error_type,
                description: description.clone(),
            })
        });
        match correlation_id {
            // Its sender may be gone (a message that came back unwritten).
            Some(_) if self.conns.get(conn.slot, conn.generation).is_none() => {
                self.counters.rejected_silently += 1;
            }
            Some(id) => {
                self.counters.status_responses += 1;
                let event =
                    ServerEvent::status_response(StatusResponse::new(id, error_type, description));
                self.outputs.push_back(Output::Deliver {
                    conn,
                    frame: Frame(Cow::Owned(event.encode())),
                });
            }
            None => self.counters.rejected_silently += 1,
        }
    }

    /// Schedules the one expiry timer of `recipient`'s queue at `at`, and records its key in
    /// the queue so that delivering the queue cancels it.
    fn arm_expiry(
        &mut self,
        at: Instant,
        channel_index: u32,
        generation: u32,
        recipient: &Recipient,
    ) {
        let key = self.schedule(
            at,
            Timer::Expiry {
                channel: channel_index,
                generation,
                recipient: recipient.clone(),
            },
        );
        if let Some(queue) = self
            .channels
            .at_mut(channel_index)
            .and_then(|ch| ch.pending.get_mut(recipient))
        {
            queue.timer = Some(key);
        }
    }

    /// A queue's expiry timer fired: drops its expired head and waits for the next expiry.
    pub(super) fn expire(
        &mut self,
        now: Instant,
        channel_index: u32,
        generation: u32,
        recipient: Recipient,
    ) {
        let Some(channel) = self.channels.get_mut(channel_index, generation) else {
            return;
        };
        let Some(queue) = channel.pending.get_mut(&recipient) else {
            return;
        };
        queue.timer = None; // It just fired.
        let arn = (self.observing || self.held_changes.is_some()).then(|| channel.arn.clone());
        if let Some(arn) = &arn {
            self.held_changed_at(arn, &recipient);
        }
        let Some(queue) = self
            .channels
            .get_mut(channel_index, generation)
            .and_then(|channel| channel.pending.get_mut(&recipient))
        else {
            return;
        };
        let mut count = 0;
        let mut expired: Vec<Tracking> = Vec::new();
        while queue.messages.front().is_some_and(|p| p.expires <= now) {
            if let Some(gone) = queue.messages.pop_front() {
                self.held_bytes = self.held_bytes.saturating_sub(gone.frame.as_str().len());
                expired.extend(gone.tracking);
            }
            self.counters.expired += 1;
            count += 1;
        }
        if let Some(arn) = arn.filter(|_| self.observing && count > 0) {
            let observation = Observation::Expired {
                channel: arn,
                to: match &recipient {
                    Recipient::Master => None,
                    Recipient::Viewer(id) => Some(id.clone()),
                },
                count,
            };
            self.outputs.push_back(Output::Observed(observation));
        }
        for tracking in &expired {
            self.report(tracking, &recipient, DeliveryState::Expired);
        }
        let Some(channel) = self.channels.get_mut(channel_index, generation) else {
            return;
        };
        let Some(queue) = channel.pending.get_mut(&recipient) else {
            return;
        };
        match queue.messages.front().map(|p| p.expires) {
            Some(next) => self.arm_expiry(next, channel_index, generation, &recipient),
            None => {
                channel.pending.remove(&recipient);
                self.release_channel_if_unused(now, channel_index);
            }
        }
    }
}
