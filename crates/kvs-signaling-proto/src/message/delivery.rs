//! [`DeliveryStatus`]: what became of a message a sender sent with a correlation id. An
//! extension of this project: a connection that asks for it (the connect parameter
//! [`DELIVERY_STATUS_PARAM`](crate::DELIVERY_STATUS_PARAM)`=true`) receives, for each message
//! it sends with a `correlationId`,
//!
//! ```text
//! {"deliveryStatus":{"correlationId":"c1","recipientClientId":"v1","status":"DELIVERED"},"messageType":"DELIVERY_STATUS"}
//! ```
//!
//! with `status` one of `DELIVERED` (written to the recipient's socket), `HELD` (the
//! recipient is not connected: held for the channel's TTL; `DELIVERED` follows when it is
//! delivered), `EXPIRED` (the TTL ran out and the message was dropped) or `OVERWRITTEN` (a
//! newer offer or answer from the same sender replaced it while it was held). The recipient is
//! the viewer's id on messages from the master, and absent on messages to the master, which
//! has none. Errors stay STATUS_RESPONSE.

use std::fmt;

use serde_json::Value;

use crate::error::{Error, Field, Violation};
use crate::ids::{CorrelationId, PeerId};

/// What became of a message ([`DeliveryStatus::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DeliveryState {
    /// `DELIVERED`: written to the recipient's socket.
    Delivered,
    /// `HELD`: the recipient is not connected; the message waits for the channel's TTL.
    Held,
    /// `EXPIRED`: the TTL ran out before the recipient connected; the message is dropped.
    Expired,
    /// `OVERWRITTEN`: a newer offer or answer from the same sender replaced it while held.
    Overwritten,
}

impl DeliveryState {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "DELIVERED",
            Self::Held => "HELD",
            Self::Expired => "EXPIRED",
            Self::Overwritten => "OVERWRITTEN",
        }
    }

    /// The state with this wire name, which is case-sensitive.
    pub fn from_wire(name: &str) -> Result<Self, Violation> {
        match name {
            "DELIVERED" => Ok(Self::Delivered),
            "HELD" => Ok(Self::Held),
            "EXPIRED" => Ok(Self::Expired),
            "OVERWRITTEN" => Ok(Self::Overwritten),
            other => Err(Violation::unknown_value(
                other,
                "DELIVERED, HELD, EXPIRED, OVERWRITTEN",
            )),
        }
    }

    /// Whether nothing more will be said of the message: every state but `HELD`.
    pub const fn is_final(self) -> bool {
        !matches!(self, Self::Held)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of the message sent with `correlation_id`: the `deliveryStatus` member of a
/// `DELIVERY_STATUS` event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryStatus {
    /// The message's correlation id.
    pub correlation_id: CorrelationId,
    /// The recipient: the viewer's id on messages from the master; absent on messages to the
    /// master, which has no id.
    pub recipient_client_id: Option<PeerId>,
    /// What became of it.
    pub status: DeliveryState,
}

impl DeliveryStatus {
    /// The status of the message `correlation_id` to `recipient`.
    pub fn new(
        correlation_id: CorrelationId,
        recipient_client_id: Option<PeerId>,
        status: DeliveryState,
    ) -> Self {
        Self {
            correlation_id,
            recipient_client_id,
            status,
        }
    }

    /// Writes the member's object, keys sorted; every value needs no escaping (validated
    /// ids and wire names).
    pub(super) fn write_json(&self, out: &mut String) {
        out.push_str("{\"correlationId\":\"");
        out.push_str(self.correlation_id.as_str());
        out.push('"');
        if let Some(recipient) = &self.recipient_client_id {
            super::push_member(out, "recipientClientId", recipient.as_str());
        }
        super::push_member(out, "status", self.status.as_str());
        out.push('}');
    }

    pub(super) fn from_value(value: Value) -> Result<Self, Error> {
        use crate::json::Obj;
        let field = Field::new("deliveryStatus");
        let mut obj = Obj::new(value, &field)?;
        let correlation_id = obj.required::<CorrelationId>("correlationId")?;
        let recipient_client_id = obj.optional::<PeerId>("recipientClientId")?;
        let status: String = obj.required("status")?;
        let status = DeliveryState::from_wire(&status)
            .map_err(|violation| Error::invalid(field.member("status"), violation))?;
        Ok(Self {
            correlation_id,
            recipient_client_id,
            status,
        })
    }
}
