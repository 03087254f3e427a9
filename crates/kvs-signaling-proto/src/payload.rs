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

    /// The payload `text` that [`scan_quoted`] classified, when it is valid base64 of at most
    /// `max_len` characters. `None` sends the caller to the general path for the error.
    pub(crate) fn from_scan(text: &'a str, scan: PayloadScan, max_len: usize) -> Option<Self> {
        let len = text.len();
        let url_safe = scan.classes & URL_SAFE_ONLY != 0;
        if len == 0 || len > max_len || (url_safe && scan.classes & STANDARD_ONLY != 0) {
            return None;
        }
        match scan.first_equals {
            Some(first) => {
                let padding = text.as_bytes().get(first..)?;
                if padding.len() > 2 || !padding.iter().all(|&b| b == b'=') {
                    return None;
                }
                if !len.is_multiple_of(4) {
                    return None;
                }
            }
            None if len % 4 == 1 => return None,
            None => {}
        }
        Some(Self {
            text: Cow::Borrowed(text),
            standard: !url_safe && len.is_multiple_of(4),
        })
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

/// Class bits of a byte: [`NOT_BASE64`] when it is in neither alphabet nor `=`,
/// [`STANDARD_ONLY`] for `+` and `/`, [`URL_SAFE_ONLY`] for `-` and `_`, [`EQUALS`] for `=`.
///
/// Plain arithmetic on `u8`, so that a loop OR-ing the classes of a slice vectorizes.
#[inline(always)]
fn classify(b: u8) -> u8 {
    let letter = u8::from((b | 0x20).wrapping_sub(b'a') < 26);
    let digit = u8::from(b.wrapping_sub(b'0') < 10);
    let standard = u8::from(b == b'+') | u8::from(b == b'/');
    let url_safe = u8::from(b == b'-') | u8::from(b == b'_');
    let equals = u8::from(b == b'=');
    (1 ^ (letter | digit | standard | url_safe | equals))
        | (standard << 1)
        | (url_safe << 2)
        | (equals << 3)
}

/// Whether every byte of `chunk` is in the standard alphabet `[A-Za-z0-9+/]` (`None` when
/// not), and whether one of them is `+` or `/`, which only the standard alphabet has. Tested
/// over 16 lanes at a time with the fewest operations: `b | 4 == b'/'` holds for `+` and `/`
/// only.
fn standard_chunk(chunk: &[u8]) -> Option<bool> {
    let mut valid = [1u8; 16];
    let mut symbols = [0u8; 16];
    let mut parts = chunk.chunks_exact(16);
    for part in &mut parts {
        for ((valid, symbols), &b) in valid.iter_mut().zip(&mut symbols).zip(part) {
            let letter = u8::from((b | 0x20).wrapping_sub(b'a') < 26);
            let digit = u8::from(b.wrapping_sub(b'0') < 10);
            let symbol = u8::from(b | 4 == b'/');
            *valid &= letter | digit | symbol;
            *symbols |= symbol;
        }
    }
    let tail = parts
        .remainder()
        .iter()
        .fold(0, |acc, &b| acc | classify(b));
    let all_valid = valid.iter().all(|&v| v == 1) && tail & !STANDARD_ONLY == 0;
    all_valid.then(|| symbols.iter().any(|&s| s != 0) || tail != 0)
}

/// The OR of the classes of every byte of `body`, over 16 lanes at a time: a fixed-width
/// inner loop the compiler unrolls into vector instructions.
fn classes_of(body: &[u8]) -> u8 {
    let mut lanes = [0u8; 16];
    let mut chunks = body.chunks_exact(16);
    for chunk in &mut chunks {
        for (lane, &b) in lanes.iter_mut().zip(chunk) {
            *lane |= classify(b);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(0, |acc, &b| acc | classify(b));
    lanes.iter().fold(tail, |acc, &lane| acc | lane)
}

const NOT_BASE64: u8 = 1;
const STANDARD_ONLY: u8 = 2;
const URL_SAFE_ONLY: u8 = 4;
const EQUALS: u8 = 8;

/// Where a payload string ends and what it holds, found in one pass by [`scan_quoted`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PayloadScan {
    /// The byte offset of the closing quote.
    pub(crate) end: usize,
    /// The OR of the class bits of every byte before the quote.
    classes: u8,
    /// The offset, from the string's start, of the first `=`.
    first_equals: Option<usize>,
}

/// Scans a JSON string that starts at `start` (after its opening quote) for its closing
/// quote, classifying every byte on the way. `None` when the string holds a byte that is not
/// base64 (an escape, a control character, anything else): the caller then takes the general
/// path, which reports it.
pub(crate) fn scan_quoted(bytes: &[u8], start: usize) -> Option<PayloadScan> {
    const WIDTH: usize = 32;
    let mut at = start;
    let mut classes = 0;
    // Whole chunks of the standard alphabet, the bulk of almost every payload, with the
    // cheapest test; from the first chunk with anything else (the closing quote, the padding,
    // a URL-safe character) on, the byte loop below classifies fully.
    while let Some(chunk) = bytes.get(at..at + WIDTH) {
        match standard_chunk(chunk) {
            Some(true) => classes |= STANDARD_ONLY,
            Some(false) => {}
            None => break,
        }
        at += WIDTH;
    }
    let mut first_equals = None;
    loop {
        let b = *bytes.get(at)?;
        if b == b'"' {
            return Some(PayloadScan {
                end: at,
                classes,
                first_equals,
            });
        }
        let class = classify(b);
        if class & NOT_BASE64 != 0 {
            return None;
        }
        if class & EQUALS != 0 && first_equals.is_none() {
            first_equals = Some(at - start);
        }
        classes |= class;
        at += 1;
    }
}

/// Checks `text` as base64 of at most `max_len` characters and tells whether it is standard
/// padded base64.
///
/// The common case, valid text, runs as branch-free scans that the compiler vectorizes: the
/// cheapest test while chunks hold only the standard alphabet, the full classification from
/// the first chunk that does not. Only a failure goes back to find the culprit.
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

    let mut classes = 0;
    let mut rest = body;
    while let Some((chunk, tail)) = rest.split_at_checked(32) {
        match standard_chunk(chunk) {
            Some(true) => classes |= STANDARD_ONLY,
            Some(false) => {}
            None => break,
        }
        rest = tail;
    }
    classes |= classes_of(rest);
    let any_url_safe = classes & URL_SAFE_ONLY != 0;
    if classes & (NOT_BASE64 | EQUALS) != 0 || (classes & STANDARD_ONLY != 0 && any_url_safe) {
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
        let class = classify(b);
        if class & NOT_BASE64 != 0 {
            return crate::text::bad_char_at(text, at, BASE64_CHARS);
        }
        let url_safe = class & URL_SAFE_ONLY != 0;
        if class != 0 {
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
