//! Character-level rules shared by the validated newtypes, and the macro that declares them.

use crate::error::Violation;

/// The allowed set of `[a-zA-Z0-9_.-]`, in words.
pub(crate) const ID_CHARS: &str = "letters a-z and A-Z, digits 0-9, '_', '.', '-'";

/// The allowed set of `[a-zA-Z0-9]`, in words.
pub(crate) const ALNUM_CHARS: &str = "letters a-z and A-Z, digits 0-9";

/// The number of characters in `value`, checked against `min..=max`.
pub(crate) fn check_length(value: &str, min: usize, max: usize) -> Result<usize, Violation> {
    // Every character takes one to four bytes: skip counting when the byte length decides.
    let bytes = value.len();
    let found = if bytes >= min && bytes <= max && value.is_ascii() {
        bytes
    } else {
        value.chars().count()
    };
    if found < min || found > max {
        return Err(Violation::Length { min, max, found });
    }
    Ok(found)
}

/// The violation for the character at byte offset `at` of `value`.
pub(crate) fn bad_char_at(value: &str, at: usize, allowed: &'static str) -> Violation {
    let (head, tail) = value.split_at(at.min(value.len()));
    Violation::Character {
        ch: tail.chars().next().unwrap_or('\u{FFFD}'),
        position: head.chars().count(),
        allowed,
    }
}

/// Checks that every character of `value` is ASCII and passes `ok`.
pub(crate) fn check_ascii_chars(
    value: &str,
    ok: impl Fn(u8) -> bool,
    allowed: &'static str,
) -> Result<(), Violation> {
    match value.bytes().position(|b| !ok(b)) {
        Some(at) => Err(bad_char_at(value, at, allowed)),
        None => Ok(()),
    }
}

/// `[a-zA-Z0-9_.-]`.
pub(crate) const fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// `[a-zA-Z0-9_.-]{min,max}`: the rule of channel names, client ids and correlation ids.
pub(crate) fn check_id(value: &str, min: usize, max: usize) -> Result<(), Violation> {
    check_length(value, min, max)?;
    check_ascii_chars(value, is_id_byte, ID_CHARS)
}

/// Declares a validated string newtype: the type, its fallible constructor, conversions,
/// formatting and serde support that cannot skip validation.
macro_rules! string_newtype {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal, validate = $validate:path
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Box<str>);

        impl $name {
            #[doc = concat!("Validates `value` as a `", $field, "`.")]
            pub fn new(value: impl AsRef<str> + Into<String>) -> Result<Self, $crate::Error> {
                match $validate(value.as_ref()) {
                    Ok(()) => Ok(Self(value.into().into_boxed_str())),
                    Err(violation) => Err($crate::Error::Invalid {
                        field: $crate::Field::new($field),
                        violation,
                    }),
                }
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::Error;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::Error;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = $crate::Error;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0.into()
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = <::std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::new(value).map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }

        impl $crate::json::FromJson for $name {
            fn from_json(
                value: ::serde_json::Value,
                field: &$crate::Field,
            ) -> Result<Self, $crate::Error> {
                let text = $crate::json::string(value, field)?;
                Self::new(text).map_err(|err| err.with_field(field.clone()))
            }
        }
    };
}

pub(crate) use string_newtype;

/// Declares an enumeration fixed by the API model: wire names, parsing with a violation that
/// lists the allowed values, and serde support.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal, allowed = $allowed:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $wire, )+
                }
            }

            /// The value with this wire name, which is case-sensitive.
            pub fn from_wire(name: &str) -> Result<Self, $crate::Violation> {
                match name {
                    $( $wire => Ok(Self::$variant), )+
                    other => Err($crate::Violation::unknown_value(other, $allowed)),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::Error;
            fn from_str(name: &str) -> Result<Self, $crate::Error> {
                Self::from_wire(name).map_err(|violation| $crate::Error::Invalid {
                    field: $crate::Field::new($field),
                    violation,
                })
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = <::std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::from_wire(&name).map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }

        impl $crate::json::FromJson for $name {
            fn from_json(
                value: ::serde_json::Value,
                field: &$crate::Field,
            ) -> Result<Self, $crate::Error> {
                let name = $crate::json::string(value, field)?;
                Self::from_wire(&name).map_err(|violation| $crate::Error::Invalid {
                    field: field.clone(),
                    violation,
                })
            }
        }
    };
}

pub(crate) use wire_enum;
