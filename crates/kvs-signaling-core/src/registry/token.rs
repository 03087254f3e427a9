//! The page tokens of ListSignalingChannels: the standard base64 of the last name returned.

use kvs_signaling_proto::{ChannelName, NextToken};

use super::{RegistryError, alphanumeric};

fn base64_digit(value: u32) -> char {
    // Masked to 6 bits, so the cast is lossless.
    match u8::try_from(value & 0x3f).unwrap_or(0) {
        62 => '+',
        63 => '/',
        index => char::from(alphanumeric(index)),
    }
}

fn base64_value(digit: u8) -> Option<u32> {
    let value = match digit {
        b'A'..=b'Z' => digit - b'A',
        b'a'..=b'z' => digit - b'a' + 26,
        b'0'..=b'9' => digit - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// The list token that resumes after `name`: its standard base64 with padding.
pub(super) fn encode_token(name: &ChannelName) -> Result<NextToken, RegistryError> {
    let (mut text, mut acc, mut bits) = (String::new(), 0u32, 0u32);
    for byte in name.as_str().bytes() {
        (acc, bits) = ((acc << 8 | u32::from(byte)) & 0xffff, bits + 8);
        while bits >= 6 {
            bits -= 6;
            text.push(base64_digit(acc >> bits));
        }
    }
    if bits > 0 {
        text.push(base64_digit(acc << (6 - bits)));
    }
    while !text.len().is_multiple_of(4) {
        text.push('=');
    }
    Ok(NextToken::new(text)?)
}

/// The name a token issued by [`encode_token`] resumes after, or `None` when `token` is not
/// exactly what [`encode_token`] writes for some name.
pub(super) fn decode_token(token: &NextToken) -> Option<ChannelName> {
    let (mut bytes, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for digit in token.as_str().trim_end_matches('=').bytes() {
        (acc, bits) = ((acc << 6 | base64_value(digit)?) & 0xffff, bits + 6);
        if bits >= 8 {
            bits -= 8;
            bytes.push(u8::try_from(acc >> bits & 0xff).ok()?);
        }
    }
    let name = ChannelName::new(String::from_utf8(bytes).ok()?).ok()?;
    (encode_token(&name).ok()? == *token).then_some(name)
}
