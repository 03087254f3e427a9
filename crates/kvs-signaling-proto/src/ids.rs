//! Validated identifiers: channel names and ARNs, client and correlation ids, versions, tokens.

use crate::error::Violation;
use crate::limits;
use crate::text::{ALNUM_CHARS, check_ascii_chars, check_id, check_length, string_newtype};

string_newtype! {
    /// A signaling channel's name: 1 to 256 characters of `[a-zA-Z0-9_.-]`.
    ChannelName, field = "ChannelName", validate = validate_channel_name
}

fn validate_channel_name(value: &str) -> Result<(), Violation> {
    check_id(value, 1, limits::MAX_CHANNEL_NAME_LEN)
}

string_newtype! {
    /// A client id that a client chooses for itself when it connects as a viewer
    /// (`X-Amz-ClientId`): 1 to 256 characters of `[a-zA-Z0-9_.-]` that do not start with
    /// `AWS_` in any letter case, a prefix the service keeps for its own clients.
    ///
    /// Ids that name a peer in a message use [`PeerId`], which has no reserved prefix.
    ClientId, field = "ClientId", validate = validate_client_id
}

fn validate_client_id(value: &str) -> Result<(), Violation> {
    check_id(value, 1, limits::MAX_CLIENT_ID_LEN)?;
    let prefix = limits::RESERVED_CLIENT_ID_PREFIX;
    match value.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => Err(Violation::ReservedPrefix {
            prefix,
            found: head.to_owned(),
        }),
        _ => Ok(()),
    }
}

string_newtype! {
    /// The id of a peer named in a message: the `recipientClientId` a sender addresses, the
    /// `senderClientId` the service stamps on a delivery, the `SenderClientId` of
    /// SendAlexaOfferToMaster and the `ClientId` of GetIceServerConfig. 1 to 256 characters of
    /// `[a-zA-Z0-9_.-]`.
    ///
    /// Unlike [`ClientId`] it may start with `AWS_`: the service's own senders use that prefix.
    PeerId, field = "recipientClientId", validate = validate_peer_id
}

fn validate_peer_id(value: &str) -> Result<(), Violation> {
    check_id(value, 1, limits::MAX_CLIENT_ID_LEN)
}

impl From<ClientId> for PeerId {
    fn from(id: ClientId) -> Self {
        Self(id.0)
    }
}

string_newtype! {
    /// The id a client puts on a WebSocket message so that a failure is answered with a
    /// STATUS_RESPONSE: 1 to 256 characters of `[a-zA-Z0-9_.-]`.
    CorrelationId, field = "correlationId", validate = validate_correlation_id
}

fn validate_correlation_id(value: &str) -> Result<(), Violation> {
    check_id(value, 1, limits::MAX_CORRELATION_ID_LEN)
}

string_newtype! {
    /// A channel's version, which changes on every update: 1 to 64 characters of
    /// `[a-zA-Z0-9]`.
    Version, field = "Version", validate = validate_version
}

fn validate_version(value: &str) -> Result<(), Violation> {
    check_length(value, 1, limits::MAX_VERSION_LEN)?;
    check_ascii_chars(value, |b| b.is_ascii_alphanumeric(), ALNUM_CHARS)
}

string_newtype! {
    /// A pagination token: 0 to 1024 characters of `[a-zA-Z0-9+/=]`.
    NextToken, field = "NextToken", validate = validate_next_token
}

fn validate_next_token(value: &str) -> Result<(), Violation> {
    check_length(value, 0, limits::MAX_NEXT_TOKEN_LEN)?;
    check_ascii_chars(
        value,
        |b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='),
        "letters a-z and A-Z, digits 0-9, '+', '/', '='",
    )
}

string_newtype! {
    /// A signaling channel's ARN, 1 to 1024 characters matching
    /// `arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+`, as in
    /// `arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1657142193914`.
    ///
    /// The accessors return its parts; the last part is the channel's creation time in
    /// milliseconds since the Unix epoch in the ARNs the service mints.
    ChannelArn, field = "ChannelARN", validate = validate_arn
}

/// The byte ranges of an ARN's parts, or the first place it breaks the pattern.
struct ArnParts<'a> {
    partition: &'a str,
    region: &'a str,
    account: &'a str,
    resource_type: &'a str,
    name: &'a str,
    suffix: &'a str,
}

/// Reads the run of bytes at the head of `rest` that pass `ok`, requiring at least one, then
/// the separator `sep` (or the end when `sep` is `None`).
fn arn_part<'a>(
    value: &'a str,
    offset: &mut usize,
    ok: fn(u8) -> bool,
    what: &'static str,
    sep: Option<u8>,
) -> Result<&'a str, Violation> {
    let rest = value.get(*offset..).unwrap_or_default();
    let len = rest.bytes().position(|b| !ok(b)).unwrap_or(rest.len());
    if len == 0 {
        return Err(Violation::Format {
            expected: what,
            position: char_position(value, *offset),
        });
    }
    let part = rest.get(..len).unwrap_or_default();
    *offset += len;
    match (sep, value.as_bytes().get(*offset)) {
        (None, None) => Ok(part),
        (Some(sep), Some(&b)) if b == sep => {
            *offset += 1;
            Ok(part)
        }
        (Some(sep), _) => Err(Violation::Format {
            expected: if sep == b':' { "':'" } else { "'/'" },
            position: char_position(value, *offset),
        }),
        (None, Some(_)) => Err(Violation::Format {
            expected: "the end of the ARN after the creation time digits",
            position: char_position(value, *offset),
        }),
    }
}

fn char_position(value: &str, byte_offset: usize) -> usize {
    value
        .get(..byte_offset)
        .map_or(byte_offset, |head| head.chars().count())
}

fn parse_arn(value: &str) -> Result<ArnParts<'_>, Violation> {
    if !value.starts_with("arn:") {
        return Err(Violation::Format {
            expected: "\"arn:\"",
            position: 0,
        });
    }
    let mut at = "arn:".len();
    let lower_digit_dash = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    let partition = arn_part(
        value,
        &mut at,
        lower_digit_dash,
        "a partition of [a-z0-9-]",
        Some(b':'),
    )?;
    let service = "kinesisvideo:";
    if value.get(at..at + service.len()) != Some(service) {
        return Err(Violation::Format {
            expected: "\"kinesisvideo:\"",
            position: char_position(value, at),
        });
    }
    at += service.len();
    let region = arn_part(
        value,
        &mut at,
        lower_digit_dash,
        "a region of [a-z0-9-]",
        Some(b':'),
    )?;
    let account = arn_part(
        value,
        &mut at,
        |b| b.is_ascii_digit(),
        "an account id of digits",
        Some(b':'),
    )?;
    let resource_type = arn_part(
        value,
        &mut at,
        |b| b.is_ascii_lowercase(),
        "a resource type of [a-z]",
        Some(b'/'),
    )?;
    let name = arn_part(
        value,
        &mut at,
        crate::text::is_id_byte,
        "a channel name of [a-zA-Z0-9_.-]",
        Some(b'/'),
    )?;
    let suffix = arn_part(
        value,
        &mut at,
        |b| b.is_ascii_digit(),
        "creation time digits",
        None,
    )?;
    Ok(ArnParts {
        partition,
        region,
        account,
        resource_type,
        name,
        suffix,
    })
}

fn validate_arn(value: &str) -> Result<(), Violation> {
    check_length(value, 1, limits::MAX_ARN_LEN)?;
    parse_arn(value).map(|_| ())
}

impl ChannelArn {
    /// Mints the ARN the service gives a channel: `arn:<partition>:kinesisvideo:<region>:
    /// <account>:channel/<name>/<creation time in ms>`.
    pub fn for_channel(
        partition: &str,
        region: &str,
        account: &str,
        name: &ChannelName,
        creation_millis: u64,
    ) -> Result<Self, crate::Error> {
        Self::new(format!(
            "arn:{partition}:kinesisvideo:{region}:{account}:channel/{name}/{creation_millis}"
        ))
    }

    fn parts(&self) -> Option<ArnParts<'_>> {
        // Construction validated the pattern, so parsing again cannot fail.
        parse_arn(&self.0).ok()
    }

    /// The partition, `aws` for the commercial regions.
    pub fn partition(&self) -> &str {
        self.parts().map_or("", |p| p.partition)
    }

    /// The region, such as `us-west-2`.
    pub fn region(&self) -> &str {
        self.parts().map_or("", |p| p.region)
    }

    /// The account id.
    pub fn account(&self) -> &str {
        self.parts().map_or("", |p| p.account)
    }

    /// The resource type, `channel` for signaling channels.
    pub fn resource_type(&self) -> &str {
        self.parts().map_or("", |p| p.resource_type)
    }

    /// The channel name the ARN was minted for.
    pub fn channel_name(&self) -> &str {
        self.parts().map_or("", |p| p.name)
    }

    /// The digits after the name: the creation time in milliseconds in minted ARNs.
    pub fn suffix(&self) -> &str {
        self.parts().map_or("", |p| p.suffix)
    }
}

#[cfg(test)]
mod tests;
