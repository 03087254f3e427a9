//! SendAlexaOfferToMaster: an offer from outside the channel, answered by its master.

use std::borrow::Cow;
use std::time::Instant;

use kvs_signaling_proto::{Action, ErrorType, MessageType, PeerId, ServerEvent};

use super::{AlexaOffer, AlexaRequestId, Frame, Hub, Output, Pending, Recipient, Refused, Timer};

impl Hub {
    /// A SendAlexaOfferToMaster call: the offer goes to the master (or waits for it for the
    /// channel's TTL), and the call completes with the master's answer to the sender, or with
    /// an error after [`HubConfig::alexa_timeout`](crate::HubConfig::alexa_timeout).
    pub fn handle_alexa_offer(
        &mut self,
        now: Instant,
        offer: AlexaOffer,
    ) -> Result<AlexaRequestId, Refused> {
        if self.draining {
            return Err(Refused::new(
                ErrorType::InternalFailure,
                "the server is shutting down; call again",
            ));
        }
        let index = self.channel_for(
            now,
            &offer.channel_arn,
            offer.message_ttl,
            offer.ttl_revision,
        );
        let viewer_known = self.viewer_known(index, &offer.sender_client_id);
        let config = &self.config;
        let Some(channel) = self.channels.at_mut(index) else {
            return Err(Refused::new(ErrorType::InternalFailure, "channel lost"));
        };
        if viewer_known {
            // The master's answer and candidates to that id belong to the viewer.
            self.counters.invalid += 1;
            self.release_channel_if_unused(now, index);
            return Err(Refused::new(
                ErrorType::InvalidArgumentException,
                format!(
                    "SenderClientId: {} is the client id of a viewer connected to the channel; \
                     an Alexa offer needs a client id of its own",
                    offer.sender_client_id
                ),
            ));
        }
        if !channel.alexa_calls.try_take(config.alexa_rate, now) {
            self.counters.throttled += 1;
            let message = format!(
                "SendAlexaOfferToMaster: more than {} calls per second on this channel",
                config.alexa_rate.per_second
            );
            self.release_channel_if_unused(now, index);
            return Err(Refused::new(
                ErrorType::ClientLimitExceededException,
                message,
            ));
        }
        let master = channel.master;
        let frame = Frame(Cow::Owned(
            ServerEvent::relay(
                MessageType::SdpOffer,
                Some(&offer.sender_client_id),
                offer.payload,
            )
            .encode(),
        ));
        match master {
            Some(to) => self.deliver(to, frame),
            None => {
                let pending = Pending {
                    frame,
                    sender: Some(offer.sender_client_id.clone()),
                    action: Action::SdpOffer,
                    expires: now,
                    held_at: now,
                    tracking: None,
                    moved_tracking: None,
                };
                if let Err(description) = self.buffer(now, index, Recipient::Master, pending) {
                    self.counters.buffer_full += 1;
                    self.release_channel_if_unused(now, index);
                    return Err(Refused::new(
                        ErrorType::ClientLimitExceededException,
                        description,
                    ));
                }
            }
        }
        self.next_request += 1;
        let request = AlexaRequestId(self.next_request);
        let Some(channel) = self.channels.at_mut(index) else {
            return Err(Refused::new(ErrorType::InternalFailure, "channel lost"));
        };
        if let Some(older) = channel
            .alexa
            .insert(offer.sender_client_id.clone(), request)
        {
            self.counters.alexa_failed += 1;
            self.outputs.push_back(Output::AlexaAnswer {
                request: older,
                result: Err(Refused::new(
                    ErrorType::ClientLimitExceededException,
                    "superseded by a newer offer from the same sender",
                )),
            });
        }
        let generation = channel.generation;
        let deadline = now + self.config.alexa_timeout;
        self.schedule(
            deadline,
            Timer::Alexa {
                channel: index,
                generation,
                sender: offer.sender_client_id,
                request,
            },
        );
        Ok(request)
    }

    /// Drops the offer of `sender` still waiting for the master, once its call is over.
    fn drop_alexa_offer(&mut self, index: u32, sender: &PeerId) {
        let Some(queue) = self
            .channels
            .at_mut(index)
            .and_then(|ch| ch.pending.get_mut(&Recipient::Master))
        else {
            return;
        };
        let before = queue.messages.len();
        let mut freed = 0;
        queue.messages.retain(|p| {
            let keep = !(p.action == Action::SdpOffer && p.sender.as_ref() == Some(sender));
            if !keep {
                freed += p.frame.as_str().len();
            }
            keep
        });
        self.held_bytes = self.held_bytes.saturating_sub(freed);
        self.counters.expired += (before - queue.messages.len()) as u64;
    }

    pub(super) fn alexa_timeout(
        &mut self,
        now: Instant,
        index: u32,
        generation: u32,
        sender: &PeerId,
        request: AlexaRequestId,
    ) {
        let Some(channel) = self.channels.get_mut(index, generation) else {
            return;
        };
        if channel.alexa.get(sender) != Some(&request) {
            return;
        }
        channel.alexa.remove(sender);
        let master_connected = channel.master.is_some();
        self.drop_alexa_offer(index, sender);
        let message = if master_connected {
            "the channel's master did not answer in time"
        } else {
            "no master is connected to the channel"
        };
        self.counters.alexa_failed += 1;
        self.outputs.push_back(Output::AlexaAnswer {
            request,
            result: Err(Refused::new(ErrorType::ResourceNotFoundException, message)),
        });
        self.release_channel_if_unused(now, index);
    }
}
