//! Integers with the service's ranges: message TTLs, credential TTLs, page sizes.

use serde_json::Value;

use crate::error::{Error, Field, JsonType, Violation};
use crate::json::{FromJson, wrong_type};
use crate::limits;

/// Declares an integer newtype that can only hold values in `min..=max`.
macro_rules! ranged_u32 {
    ($(#[$meta:meta])* $name:ident, field = $field:literal, min = $min:expr, max = $max:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(u32);

        impl $name {
            /// The smallest value.
            pub const MIN: u32 = $min;
            /// The largest value.
            pub const MAX: u32 = $max;

            #[doc = concat!("Checks that `value` is a valid `", $field, "`.")]
            pub fn new(value: u32) -> Result<Self, Error> {
                check_range(i128::from(value), Self::MIN, Self::MAX)
                    .map(|()| Self(value))
                    .map_err(|violation| Error::invalid(Field::new($field), violation))
            }

            /// The value.
            pub const fn get(self) -> u32 {
                self.0
            }
        }

        impl TryFrom<u32> for $name {
            type Error = Error;
            fn try_from(value: u32) -> Result<Self, Error> {
                Self::new(value)
            }
        }

        impl From<$name> for u32 {
            fn from(value: $name) -> u32 {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = i128::deserialize(deserializer)?;
                check_range(value, Self::MIN, Self::MAX)
                    .map_err(<D::Error as serde::de::Error>::custom)?;
                u32::try_from(value)
                    .map(Self)
                    .map_err(<D::Error as serde::de::Error>::custom)
            }
        }

        impl FromJson for $name {
            fn from_json(value: Value, field: &Field) -> Result<Self, Error> {
                let found = integer(&value, field)?;
                check_range(found, Self::MIN, Self::MAX)
                    .map_err(|violation| Error::invalid(field.clone(), violation))?;
                u32::try_from(found)
                    .map(Self)
                    .map_err(|_| Error::invalid(field.clone(), range(found, Self::MIN, Self::MAX)))
            }
        }
    };
}

fn range(found: impl ToString, min: u32, max: u32) -> Violation {
    Violation::Range {
        min: i64::from(min),
        max: i64::from(max),
        found: found.to_string(),
    }
}

fn check_range(value: i128, min: u32, max: u32) -> Result<(), Violation> {
    if value < i128::from(min) || value > i128::from(max) {
        return Err(range(value, min, max));
    }
    Ok(())
}

/// The integer in `value`: a JSON number without a fraction.
fn integer(value: &Value, field: &Field) -> Result<i128, Error> {
    let Value::Number(number) = value else {
        return Err(wrong_type(field, JsonType::Number, value));
    };
    if let Some(n) = number.as_i64() {
        return Ok(i128::from(n));
    }
    if let Some(n) = number.as_u64() {
        return Ok(i128::from(n));
    }
    Err(Error::invalid(
        field.clone(),
        Violation::NotInteger {
            found: number.to_string(),
        },
    ))
}

ranged_u32! {
    /// How long a channel keeps undelivered messages, in seconds: 5 to 120.
    MessageTtlSeconds, field = "MessageTtlSeconds",
    min = limits::MIN_MESSAGE_TTL_SECONDS, max = limits::MAX_MESSAGE_TTL_SECONDS
}

impl Default for MessageTtlSeconds {
    fn default() -> Self {
        Self(limits::DEFAULT_MESSAGE_TTL_SECONDS)
    }
}

ranged_u32! {
    /// How long ICE server credentials stay valid, in seconds: 30 to 86400.
    IceServerTtl, field = "Ttl",
    min = limits::MIN_ICE_SERVER_TTL_SECONDS, max = limits::MAX_ICE_SERVER_TTL_SECONDS
}

impl Default for IceServerTtl {
    fn default() -> Self {
        Self(limits::DEFAULT_ICE_SERVER_TTL_SECONDS)
    }
}

ranged_u32! {
    /// The page size of ListSignalingChannels: 1 to 10000.
    MaxResults, field = "MaxResults",
    min = limits::MIN_LIST_MAX_RESULTS, max = limits::MAX_LIST_MAX_RESULTS
}

impl Default for MaxResults {
    fn default() -> Self {
        Self(limits::DEFAULT_LIST_MAX_RESULTS)
    }
}

ranged_u32! {
    /// How long a presigned connect URL stays valid (`X-Amz-Expires`), in seconds: 1 to 604800.
    PresignExpires, field = "X-Amz-Expires",
    min = limits::MIN_PRESIGN_EXPIRES_SECONDS, max = limits::MAX_PRESIGN_EXPIRES_SECONDS
}

#[cfg(test)]
mod tests;
