//! Decode and validation errors, and the service's error types they map to.

use std::borrow::Cow;
use std::fmt;

/// The name of the field an error is about: a JSON member path such as `ChannelName` or
/// `Tags[3].Key`, a WebSocket envelope key such as `messagePayload`, or a connect query
/// parameter such as `X-Amz-ClientId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field(Cow<'static, str>);

impl Field {
    /// A field with a fixed name.
    pub const fn new(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }

    /// The member `name` of the object this field names (`Tags[3]` + `Key` = `Tags[3].Key`).
    #[must_use]
    pub fn member(&self, name: &str) -> Self {
        if self.0.is_empty() {
            return Self(Cow::Owned(name.to_owned()));
        }
        Self(Cow::Owned(format!("{}.{name}", self.0)))
    }

    /// The element `index` of the list this field names (`Tags` + 3 = `Tags[3]`).
    #[must_use]
    pub fn element(&self, index: usize) -> Self {
        Self(Cow::Owned(format!("{}[{index}]", self.0)))
    }

    /// The field's name as written in messages.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("request body")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// The kind of a JSON value, for errors that found one kind where another was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[expect(
    clippy::exhaustive_enums,
    reason = "JSON has exactly these kinds of value"
)]
pub enum JsonType {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonType {
    pub(crate) fn of(value: &serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Bool(_) => Self::Bool,
            serde_json::Value::Number(_) => Self::Number,
            serde_json::Value::String(_) => Self::String,
            serde_json::Value::Array(_) => Self::Array,
            serde_json::Value::Object(_) => Self::Object,
        }
    }
}

impl fmt::Display for JsonType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Null => "null",
            Self::Bool => "a boolean",
            Self::Number => "a number",
            Self::String => "a string",
            Self::Array => "an array",
            Self::Object => "an object",
        })
    }
}

/// The rule a value broke, with the culprit: the length found, the offending character and its
/// position, the number out of range.
///
/// Positions count characters (Unicode scalar values) from 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// The value's length in characters is outside `min..=max`.
    #[error("must be {min} to {max} characters long, found {found}")]
    Length {
        /// The shortest allowed length.
        min: usize,
        /// The longest allowed length.
        max: usize,
        /// The length found.
        found: usize,
    },
    /// A character outside the allowed set.
    #[error("character {ch:?} (U+{code:04X}) at position {position} is not allowed; allowed: {allowed}", code = u32::from(*ch))]
    Character {
        /// The first disallowed character.
        ch: char,
        /// Its position in the value.
        position: usize,
        /// The allowed set, in words.
        allowed: &'static str,
    },
    /// The value starts with a prefix the service reserves for itself.
    #[error("must not start with {prefix:?} in any letter case, found {found:?}")]
    ReservedPrefix {
        /// The reserved prefix.
        prefix: &'static str,
        /// The value's first characters.
        found: String,
    },
    /// A structured value (an ARN, a date) does not have the expected shape at `position`.
    #[error("expected {expected} at position {position}")]
    Format {
        /// What the position should hold, in words.
        expected: &'static str,
        /// Where the value went wrong.
        position: usize,
    },
    /// A number outside `min..=max`.
    #[error("must be between {min} and {max}, found {found}")]
    Range {
        /// The smallest allowed value.
        min: i64,
        /// The largest allowed value.
        max: i64,
        /// The value found.
        found: String,
    },
    /// A number with a fraction where an integer is required.
    #[error("must be an integer, found {found}")]
    NotInteger {
        /// The number found.
        found: String,
    },
    /// A list with too few or too many items.
    #[error("must have {min} to {max} items, found {found}")]
    Count {
        /// The fewest items allowed.
        min: usize,
        /// The most items allowed.
        max: usize,
        /// The number of items found.
        found: usize,
    },
    /// A value that is not one of the enumeration's values.
    #[error("{found:?} is not one of {allowed}")]
    UnknownValue {
        /// The value found (its first 64 characters).
        found: String,
        /// The allowed values, comma separated.
        allowed: &'static str,
    },
    /// Base64 padding (`=`) somewhere other than the last two positions, or padding that does
    /// not complete a group of four characters.
    #[error("base64 padding '=' at position {position} is misplaced")]
    Base64Padding {
        /// The position of the first misplaced `=`.
        position: usize,
    },
    /// A base64 text whose length leaves a lone character in its last group.
    #[error("a base64 text cannot be {found} characters long (one character left over)")]
    Base64Length {
        /// The length found.
        found: usize,
    },
    /// A base64 text that uses both the standard (`+`, `/`) and the URL-safe (`-`, `_`)
    /// alphabet.
    #[error(
        "character {ch:?} at position {position} mixes the URL-safe and standard base64 alphabets"
    )]
    Base64MixedAlphabets {
        /// The first character of the second alphabet.
        ch: char,
        /// Its position.
        position: usize,
    },
    /// A payload that is valid base64 but does not decode to what its type requires (UTF-8
    /// JSON of the expected shape).
    #[error("decoded payload is not valid: {reason}")]
    Payload {
        /// What was wrong, in words.
        reason: String,
    },
}

impl Violation {
    /// The error for `value` when it is not one of `allowed`.
    pub(crate) fn unknown_value(value: &str, allowed: &'static str) -> Self {
        Self::UnknownValue {
            found: truncate(value, 64),
            allowed,
        }
    }
}

/// Everything that can be wrong with a message, a request body or a value, naming the field,
/// the rule and the culprit.
///
/// Every variant maps to one of the service's error types through [`Error::error_type`], so a
/// server answers with the real service's error name and status code without deciding again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field's value breaks one of its rules.
    #[error("{field}: {violation}")]
    Invalid {
        /// The field.
        field: Field,
        /// The rule it broke, with the culprit.
        violation: Violation,
    },
    /// A required field is absent (or `null`, or an empty string where the service treats
    /// empty as absent).
    #[error("{field}: is required but missing")]
    Missing {
        /// The field.
        field: Field,
    },
    /// A field holds the wrong kind of JSON value.
    #[error("{field}: must be {expected}, found {found}")]
    WrongType {
        /// The field.
        field: Field,
        /// The kind the field must hold.
        expected: JsonType,
        /// The kind found.
        found: JsonType,
    },
    /// A field appears twice (in a JSON object, with keys that differ only in letter case, or
    /// in a query string).
    #[error("{field}: appears more than once")]
    Duplicate {
        /// The field.
        field: Field,
    },
    /// More tags than one resource may carry.
    #[error("{field}: at most {max} tags are allowed on a resource, found {found}")]
    TooManyTags {
        /// The field holding the tags.
        field: Field,
        /// The limit.
        max: usize,
        /// The number found.
        found: usize,
    },
    /// The bytes are not JSON, or not UTF-8.
    #[error("malformed JSON: {reason}")]
    Syntax {
        /// The parser's explanation, with the line and column.
        reason: String,
    },
}

impl Error {
    /// The error type the real service answers this error with.
    pub fn error_type(&self) -> ErrorType {
        match self {
            Self::TooManyTags { .. } => ErrorType::TagsPerResourceExceededLimitException,
            Self::Invalid { .. }
            | Self::Missing { .. }
            | Self::WrongType { .. }
            | Self::Duplicate { .. }
            | Self::Syntax { .. } => ErrorType::InvalidArgumentException,
        }
    }

    /// The field the error is about, when there is one.
    pub fn field(&self) -> Option<&Field> {
        match self {
            Self::Invalid { field, .. }
            | Self::Missing { field }
            | Self::WrongType { field, .. }
            | Self::Duplicate { field }
            | Self::TooManyTags { field, .. } => Some(field),
            Self::Syntax { .. } => None,
        }
    }

    /// The same error about another field: decoders use it to name the wire path of a value
    /// that a newtype validated under its own name.
    #[must_use]
    pub fn with_field(self, field: Field) -> Self {
        match self {
            Self::Invalid { violation, .. } => Self::Invalid { field, violation },
            Self::Missing { .. } => Self::Missing { field },
            Self::WrongType {
                expected, found, ..
            } => Self::WrongType {
                field,
                expected,
                found,
            },
            Self::Duplicate { .. } => Self::Duplicate { field },
            Self::TooManyTags { max, found, .. } => Self::TooManyTags { field, max, found },
            Self::Syntax { reason } => Self::Syntax { reason },
        }
    }

    pub(crate) fn invalid(field: Field, violation: Violation) -> Self {
        Self::Invalid { field, violation }
    }

    pub(crate) fn syntax(err: &serde_json::Error) -> Self {
        Self::Syntax {
            reason: err.to_string(),
        }
    }
}

/// The error types of the real service, with their names and HTTP status codes.
///
/// The variants mirror the names the service puts in `x-amzn-ErrorType`, in `__type` and in
/// a STATUS_RESPONSE's `errorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorType {
    /// A bad or missing field, a pattern or length violation (400).
    InvalidArgumentException,
    /// Throttling, or too many viewers on a channel (400).
    ClientLimitExceededException,
    /// The account has reached its channel limit (400).
    AccountChannelLimitExceededException,
    /// The channel name is taken, or the channel is not in a state that allows the call (400).
    ResourceInUseException,
    /// A resource would carry more than 50 tags (400).
    TagsPerResourceExceededLimitException,
    /// The `CurrentVersion` given is not the channel's version (400).
    VersionMismatchException,
    /// The client calling GetIceServerConfig is not valid (400).
    InvalidClientException,
    /// The signaling session has expired (400).
    SessionExpiredException,
    /// The caller may not perform the call: 401 on the control plane, 403 on the WebSocket
    /// connect (see [`ErrorType::connect_status`]).
    AccessDeniedException,
    /// The caller is not authorized on the HTTPS data plane (401).
    NotAuthorizedException,
    /// The channel does not exist (404).
    ResourceNotFoundException,
    /// The request's signature is wrong, expired or not yet current (403).
    InvalidSignatureException,
    /// The server failed (500).
    InternalFailure,
}

impl ErrorType {
    /// Every error type, for tables and tests.
    pub const ALL: [Self; 13] = [
        Self::InvalidArgumentException,
        Self::ClientLimitExceededException,
        Self::AccountChannelLimitExceededException,
        Self::ResourceInUseException,
        Self::TagsPerResourceExceededLimitException,
        Self::VersionMismatchException,
        Self::InvalidClientException,
        Self::SessionExpiredException,
        Self::AccessDeniedException,
        Self::NotAuthorizedException,
        Self::ResourceNotFoundException,
        Self::InvalidSignatureException,
        Self::InternalFailure,
    ];

    /// The name the service sends.
    pub const fn name(self) -> &'static str {
        match self {
            Self::InvalidArgumentException => "InvalidArgumentException",
            Self::ClientLimitExceededException => "ClientLimitExceededException",
            Self::AccountChannelLimitExceededException => "AccountChannelLimitExceededException",
            Self::ResourceInUseException => "ResourceInUseException",
            Self::TagsPerResourceExceededLimitException => "TagsPerResourceExceededLimitException",
            Self::VersionMismatchException => "VersionMismatchException",
            Self::InvalidClientException => "InvalidClientException",
            Self::SessionExpiredException => "SessionExpiredException",
            Self::AccessDeniedException => "AccessDeniedException",
            Self::NotAuthorizedException => "NotAuthorizedException",
            Self::ResourceNotFoundException => "ResourceNotFoundException",
            Self::InvalidSignatureException => "InvalidSignatureException",
            Self::InternalFailure => "InternalFailure",
        }
    }

    /// The error type with this name, exactly as the service spells it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The error type named by an `x-amzn-ErrorType` header, whose value is the name
    /// optionally followed by `:` and a documentation URL.
    pub fn from_header_value(value: &str) -> Option<Self> {
        let name = value.split_once(':').map_or(value, |(name, _)| name);
        Self::from_name(name.trim())
    }

    /// The HTTP status of this error on the control plane and the HTTPS data plane; it is also
    /// the `statusCode` of a STATUS_RESPONSE.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgumentException
            | Self::ClientLimitExceededException
            | Self::AccountChannelLimitExceededException
            | Self::ResourceInUseException
            | Self::TagsPerResourceExceededLimitException
            | Self::VersionMismatchException
            | Self::InvalidClientException
            | Self::SessionExpiredException => 400,
            Self::AccessDeniedException | Self::NotAuthorizedException => 401,
            Self::InvalidSignatureException => 403,
            Self::ResourceNotFoundException => 404,
            Self::InternalFailure => 500,
        }
    }

    /// The HTTP status of this error when it refuses a WebSocket connect, before the upgrade:
    /// as [`ErrorType::http_status`] except that access denied is 403 there.
    pub const fn connect_status(self) -> u16 {
        match self {
            Self::AccessDeniedException => 403,
            other => other.http_status(),
        }
    }

    /// Whether the service's error body spells its message member `message` (lowercase)
    /// rather than `Message`: true for the two errors the signaling data-plane model declares
    /// that way.
    pub const fn lowercase_message(self) -> bool {
        matches!(
            self,
            Self::InvalidClientException | Self::SessionExpiredException
        )
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The first `max` characters of `value`, with `…` when it was longer.
pub(crate) fn truncate(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", value.get(..end).unwrap_or(value)),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests;
