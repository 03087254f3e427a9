//! The base64 `messagePayload` of WebSocket messages.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::error::{Error, Field, Violation};
use crate::limits;

/// The allowed set of a base64 payload, in words.
const BASE64_CHARS: &str =
    "the base64 alphabet: letters, digits, '+' and '/' (or URL-safe '-' and '_'), '=' padding";

/// A `messagePayload`: base64 text of 1 to 10,240 characters (or a configured cap).
///
/// Both alphabets are accepted, padded or not, because official clients send both: the
/// Android SDK sends URL-safe base64 without padding. Receivers only parse the standard
/// padded form, so [`MessagePayload::normalized`] gives that form, borrowing the text
/// unchanged when it already is standard, which it is for most senders.
///
/// It borrows from the decoded frame where it can (`MessagePayload<'a>`); the text is kept
/// as received, so a relay can forward it byte for byte.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MessagePayload<'a> {
    text: Cow<'a, str>,
    standard: bool,
}

impl<'a> MessagePayload<'a> {
    /// Validates `text` against the default cap, [`limits::MAX_MESSAGE_PAYLOAD_LEN`].
    pub fn new(text: impl Into<Cow<'a, str>>) -> Result<Self, Error> {
        Self::with_max_len(text, limits::MAX_MESSAGE_PAYLOAD_LEN)
    }

    /// Validates `text` against the cap `max_len`, in characters.
    pub fn with_max_len(text: impl Into<Cow<'a, str>>, max_len: usize) -> Result<Self, Error> {
        let text = text.into();
        match check_base64(&text, max_len) {
            Ok(standard) => Ok(Self { text, standard }),
            Err(violation) => Err(Error::invalid(Field::new("messagePayload"), violation)),
        }
    }

    /// Encodes `bytes` as standard padded base64.
    pub fn encode(bytes: &[u8]) -> MessagePayload<'static> {
        MessagePayload {
            text: Cow::Owned(base64::engine::general_purpose::STANDARD.encode(bytes)),
            standard: true,
        }
    }

    /// The text as received.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The length of the text in characters (and bytes: base64 is ASCII).
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// Always false: a payload has at least one character.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Whether the text already is standard padded base64, the form every receiver parses.
    pub fn is_standard(&self) -> bool {
        self.standard
    }

    /// The payload as standard padded base64: the text itself when it already is, else the
    /// URL-safe characters swapped for standard ones and the padding added. The bits are
    /// kept as they are, so a receiver decodes the same bytes the sender encoded.
    pub fn normalized(&self) -> Cow<'_, str> {
        if self.standard {
            return Cow::Borrowed(&self.text);
        }
        Cow::Owned(to_standard(&self.text))
    }

    /// Like [`MessagePayload::normalized`], consuming the payload.
    #[must_use]
    pub fn into_normalized(self) -> Self {
        if self.standard {
            return self;
        }
        Self {
            text: Cow::Owned(to_standard(&self.text)),
            standard: true,
        }
    }

    /// The payload with its own copy of the text.
    pub fn into_owned(self) -> MessagePayload<'static> {
        MessagePayload {
            text: Cow::Owned(self.text.into_owned()),
            standard: self.standard,
        }
    }

    /// Whether the text borrows from the decoded input.
    #[cfg(test)]
    pub(crate) fn is_borrowed(&self) -> bool {
        matches!(self.text, Cow::Borrowed(_))
    }

    /// The bytes the text encodes.
    pub fn decode(&self) -> Result<Vec<u8>, Error> {
        LENIENT.decode(self.normalized().as_bytes()).map_err(|err| {
            Error::invalid(
                Field::new("messagePayload"),
                Violation::Payload {
                    reason: err.to_string(),
                },
            )
        })
    }
}

/// Standard alphabet, padding optional, non-zero trailing bits tolerated (as browsers' `atob`
/// tolerates them): the text was validated already, so this only turns it into bytes.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn to_standard(text: &str) -> String {
    let body = text.trim_end_matches('=');
    let mut out = String::with_capacity(body.len() + 3);
    out.extend(body.chars().map(|ch| match ch {
        '-' => '+',
        '_' => '/',
        other => other,
    }));
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

impl fmt::Debug for MessagePayload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl fmt::Display for MessagePayload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for MessagePayload<'_> {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for MessagePayload<'static> {
    type Error = Error;
    fn try_from(text: String) -> Result<Self, Error> {
        Self::new(text)
    }
}

impl<'a> TryFrom<&'a str> for MessagePayload<'a> {
    type Error = Error;
    fn try_from(text: &'a str) -> Result<Self, Error> {
        Self::new(text)
    }
}

impl std::str::FromStr for MessagePayload<'static> {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::new(text.to_owned())
    }
}

impl serde::Serialize for MessagePayload<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for MessagePayload<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = crate::message::CowStr::deserialize(deserializer)?;
        Self::new(text.0).map_err(<D::Error as serde::de::Error>::custom)
    }
}

/// Bytes that may appear in base64 text before the padding, in either alphabet.
#[inline]
fn classify(b: u8) -> (bool, bool, bool) {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    let standard = (b == b'+') | (b == b'/');
    let url_safe = (b == b'-') | (b == b'_');
    (letter | digit | standard | url_safe, standard, url_safe)
}

/// Checks `text` as base64 of at most `max_len` characters and tells whether it is standard
/// padded base64.
///
/// The common case, valid text, runs as a branch-free scan that the compiler vectorizes; only
/// a failure goes back to find the culprit.
pub(crate) fn check_base64(text: &str, max_len: usize) -> Result<bool, Violation> {
    let bytes = text.as_bytes();
    let len = bytes.len();
    if len == 0 || len > max_len {
        return Err(Violation::Length {
            min: 1,
            max: max_len,
            found: text.chars().count(),
        });
    }
    let body_len = len - bytes.iter().rev().take_while(|&&b| b == b'=').count();
    let padding = len - body_len;
    let body = bytes.get(..body_len).unwrap_or_default();

    let (mut all_ok, mut any_standard, mut any_url_safe) = (true, false, false);
    for chunk in body.chunks(64) {
        let (mut ok, mut standard, mut url_safe) = (true, false, false);
        for &b in chunk {
            let (o, s, u) = classify(b);
            ok &= o;
            standard |= s;
            url_safe |= u;
        }
        all_ok &= ok;
        any_standard |= standard;
        any_url_safe |= url_safe;
    }
    if !all_ok || (any_standard && any_url_safe) {
        return Err(find_culprit(text, body_len));
    }
    if padding > 2 || (padding > 0 && !len.is_multiple_of(4)) {
        return Err(Violation::Base64Padding { position: body_len });
    }
    if padding == 0 && body_len % 4 == 1 {
        return Err(Violation::Base64Length { found: len });
    }
    Ok(!any_url_safe && len.is_multiple_of(4))
}

/// The first bad character, misplaced `=` or alphabet mix in the first `body_len` bytes.
fn find_culprit(text: &str, body_len: usize) -> Violation {
    let mut alphabet: Option<bool> = None; // Some(true) = URL-safe.
    for (position, (at, ch)) in text.char_indices().enumerate() {
        if at >= body_len {
            break;
        }
        let Ok(b) = u8::try_from(ch) else {
            return crate::text::bad_char_at(text, at, BASE64_CHARS);
        };
        if b == b'=' {
            return Violation::Base64Padding { position };
        }
        let (ok, standard, url_safe) = classify(b);
        if !ok {
            return crate::text::bad_char_at(text, at, BASE64_CHARS);
        }
        if standard || url_safe {
            match alphabet {
                Some(seen) if seen != url_safe => {
                    return Violation::Base64MixedAlphabets { ch, position };
                }
                _ => alphabet = Some(url_safe),
            }
        }
    }
    // The scan found a problem, so the loop above returns before this point.
    Violation::Base64Padding { position: body_len }
}

#[cfg(test)]
mod tests;
