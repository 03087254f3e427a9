//! The fast path of [`ClientMessage::decode`]: one pass over a flat envelope that validates
//! the base64 payload while it looks for the payload's closing quote, where the general path
//! would scan the payload twice (once as JSON, once as base64).
//!
//! It decodes only what it fully understands: a JSON object whose known members are strings
//! without escapes (or `null`), whose other members are any JSON value, and whose fields all
//! pass validation. Anything else (escapes, duplicates, values of the wrong type, invalid
//! fields, malformed JSON) returns `None`, and the general path decodes the frame and reports
//! the exact error. Both paths give the same message for every frame the fast path accepts;
//! a property test and the fuzz target check it.

use serde::de::IgnoredAny;

use super::client::CLIENT_KEYS;
use super::{Action, ClientMessage, DecodeOptions};
use crate::ids::{CorrelationId, PeerId};
use crate::payload::{self, MessagePayload};

/// Decodes `text` when it is a well-formed, valid, flat envelope.
pub(super) fn decode<'a>(text: &'a str, options: &DecodeOptions) -> Option<ClientMessage<'a>> {
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut fields: [Option<&str>; 4] = [None; 4];
    let mut payload_scan = None;
    let mut seen = [false; 4];

    cursor.skip_ws();
    cursor.expect(b'{')?;
    cursor.skip_ws();
    if cursor.peek() == Some(b'}') {
        return None; // No members: the general path reports the missing ones.
    }
    loop {
        cursor.expect(b'"')?;
        let key = cursor.plain_string(text)?;
        cursor.skip_ws();
        cursor.expect(b':')?;
        cursor.skip_ws();
        match CLIENT_KEYS.iter().position(|k| k.eq_ignore_ascii_case(key)) {
            Some(index) => {
                let slot = seen.get_mut(index)?;
                if *slot {
                    return None;
                }
                *slot = true;
                match cursor.peek()? {
                    b'"' => {
                        cursor.at += 1;
                        if index == 2 {
                            let start = cursor.at;
                            let scan = payload::scan_quoted(cursor.bytes, start)?;
                            cursor.at = scan.end + 1;
                            *fields.get_mut(index)? = Some(text.get(start..scan.end)?);
                            payload_scan = Some(scan);
                        } else {
                            *fields.get_mut(index)? = Some(cursor.plain_string(text)?);
                        }
                    }
                    b'n' => {
                        cursor.literal(b"null")?;
                    }
                    _ => return None,
                }
            }
            None => cursor.skip_value(text)?,
        }
        cursor.skip_ws();
        match cursor.next()? {
            b',' => cursor.skip_ws(),
            b'}' => break,
            _ => return None,
        }
    }
    cursor.skip_ws();
    if cursor.at != cursor.bytes.len() {
        return None;
    }

    let [action, recipient, payload, correlation] = fields;
    // The general path reads "" as absent, so an empty string takes it there.
    let correlation_id = match non_empty(correlation)? {
        Some(id) => Some(CorrelationId::new(id).ok()?),
        None => None,
    };
    let action = Action::from_wire(action?).ok()?;
    let recipient_client_id = match non_empty(recipient)? {
        _ if options.ignore_recipient => None,
        Some(id) => Some(PeerId::new(id).ok()?),
        None => None,
    };
    let message_payload =
        MessagePayload::from_scan(payload?, payload_scan?, options.max_payload_len)?;
    Some(ClientMessage {
        action,
        recipient_client_id,
        message_payload,
        correlation_id,
    })
}

/// The field, `None` when it is the empty string (which the general path reads as absent).
fn non_empty(field: Option<&str>) -> Option<Option<&str>> {
    match field {
        Some("") => None,
        other => Some(other),
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn literal(&mut self, want: &[u8]) -> Option<()> {
        let end = self.at.checked_add(want.len())?;
        (self.bytes.get(self.at..end)? == want).then(|| self.at = end)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// The rest of a string whose opening quote was consumed, when it has no escapes and no
    /// control characters; consumes the closing quote.
    fn plain_string<'t>(&mut self, text: &'t str) -> Option<&'t str> {
        let start = self.at;
        loop {
            match self.next()? {
                b'"' => return text.get(start..self.at - 1),
                b'\\' | 0..=0x1f => return None,
                _ => {}
            }
        }
    }

    /// Skips one JSON value of any kind, with serde_json's own parser.
    fn skip_value(&mut self, text: &str) -> Option<()> {
        let rest = text.get(self.at..)?;
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<IgnoredAny>();
        values.next()?.ok()?;
        self.at += values.byte_offset();
        Some(())
    }
}
