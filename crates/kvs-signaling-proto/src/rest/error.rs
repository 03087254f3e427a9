//! [`ErrorBody`], the body of an error answer.

use serde_json::Value;

use crate::error::{Error, ErrorType, Field};
use crate::json::FromJson;

/// The body of an error answer: `{"__type": "ResourceNotFoundException", "Message": "…"}`.
///
/// The real service sends `Message` (lowercase `message` for the two errors whose model
/// spells it so) and names the type in the `x-amzn-ErrorType` header; `__type` in the body
/// is added for clients that read the type from there. Decoding accepts `__type` or `code`,
/// `Message` or `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorBody {
    /// The error's name, when the body has one.
    pub error_type: Option<String>,
    /// The message.
    pub message: Option<String>,
}

impl ErrorBody {
    /// The body of an answer with `error_type` and `message`.
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        Self {
            error_type: Some(error_type.name().to_owned()),
            message: Some(message.into()),
        }
    }

    /// The error type, when the body names one this crate knows. A `__type` of the form
    /// `namespace#Name` or `Name:url` is reduced to `Name`.
    pub fn known_error_type(&self) -> Option<ErrorType> {
        let name = self.error_type.as_deref()?;
        let name = name.rsplit_once('#').map_or(name, |(_, name)| name);
        ErrorType::from_header_value(name)
    }

    /// Encodes the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut map = serde_json::Map::new();
        if let Some(error_type) = &self.error_type {
            map.insert("__type".to_owned(), Value::String(error_type.clone()));
        }
        if let Some(message) = &self.message {
            let key = match self.known_error_type() {
                Some(t) if t.lowercase_message() => "message",
                _ => "Message",
            };
            map.insert(key.to_owned(), Value::String(message.clone()));
        }
        serde_json::to_vec(&Value::Object(map)).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// Decodes a body.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let value: Value = crate::json::decode_body(bytes)?;
        let mut obj = crate::json::Obj::new(value, &Field::new(""))?;
        let error_type = match obj.optional::<String>("__type")? {
            Some(name) => Some(name),
            None => obj.optional("code")?,
        };
        let message = match obj.optional::<String>("Message")? {
            Some(message) => Some(message),
            None => obj.optional("message")?,
        };
        Ok(Self {
            error_type,
            message,
        })
    }
}

impl FromJson for Value {
    fn from_json(value: Value, _: &Field) -> Result<Self, Error> {
        Ok(value)
    }
}
