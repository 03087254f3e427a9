//! The first read of a frame's members, shared by both decoders: strings borrowed where
//! possible, known keys matched in any letter case, everything else skipped.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::{Error, Field, JsonType};

/// A string that borrows from the input when it has no escapes.
pub(crate) struct CowStr<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A member's value as first read: a string (borrowed where possible), `null`, or anything
/// else kept for a later type error (or, for `statusResponse`, for reading).
pub(super) enum Raw<'a> {
    Str(Cow<'a, str>),
    Null,
    Other(Value),
}

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Raw::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Raw::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Raw::Str(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Raw::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Raw::Other(Value::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Raw::Other(Value::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Raw::Other(Value::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Raw::Other(Value::from(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Raw::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Raw::Other)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The members of a JSON object that match `N` known keys in any letter case; other members
/// are skipped without being stored.
pub(super) struct RawObject<'a, const N: usize> {
    pub(super) values: [Option<Raw<'a>>; N],
    /// Which known keys were seen more than once.
    pub(super) duplicates: [bool; N],
}

/// The top level of a frame: an object, or the kind of value it was instead.
enum TopLevel<'a, const N: usize> {
    Object(RawObject<'a, N>),
    Other(JsonType),
}

impl<'a, const N: usize> RawObject<'a, N> {
    pub(super) fn is_duplicate(&self, index: usize) -> bool {
        self.duplicates.get(index).copied().unwrap_or(false)
    }

    pub(super) fn parse(text: &'a str, keys: &'static [&'static str; N]) -> Result<Self, Error> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let top = ObjectSeed { keys }
            .deserialize(&mut deserializer)
            .and_then(|top| deserializer.end().map(|()| top))
            .map_err(|err| Error::syntax(&err))?;
        match top {
            TopLevel::Object(object) => Ok(object),
            TopLevel::Other(found) => Err(Error::WrongType {
                field: Field::new("message"),
                expected: JsonType::Object,
                found,
            }),
        }
    }
}

struct ObjectSeed<const N: usize> {
    keys: &'static [&'static str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for ObjectSeed<N> {
    type Value = TopLevel<'de, N>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for ObjectSeed<N> {
    type Value = TopLevel<'de, N>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = RawObject {
            values: std::array::from_fn(|_| None),
            duplicates: [false; N],
        };
        while let Some(key) = map.next_key_seed(KeySeed { keys: self.keys })? {
            let Some(index) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value = map.next_value::<Raw<'de>>()?;
            match object.values.get_mut(index) {
                Some(slot @ None) => *slot = Some(value),
                Some(Some(_)) => {
                    if let Some(flag) = object.duplicates.get_mut(index) {
                        *flag = true;
                    }
                }
                None => {}
            }
        }
        Ok(TopLevel::Object(object))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(TopLevel::Other(JsonType::Bool))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other(JsonType::Number))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other(JsonType::Number))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other(JsonType::Number))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(TopLevel::Other(JsonType::String))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(TopLevel::Other(JsonType::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Other(JsonType::Array))
    }
}

/// Matches a member name against the known keys in any letter case, without allocating.
struct KeySeed<const N: usize> {
    keys: &'static [&'static str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for KeySeed<N> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for KeySeed<N> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.keys.iter().position(|key| key.eq_ignore_ascii_case(v)))
    }
}

fn wrong_type(field: &'static str, found: &Value) -> Error {
    Error::WrongType {
        field: Field::new(field),
        expected: JsonType::String,
        found: JsonType::of(found),
    }
}

/// A required string member: absent, `null` and `""` are missing.
pub(super) fn required_str<'a>(
    raw: Option<Raw<'a>>,
    field: &'static str,
) -> Result<Cow<'a, str>, Error> {
    optional_str(raw, field)?.ok_or(Error::Missing {
        field: Field::new(field),
    })
}

/// An optional string member: absent, `null` and `""` are absent.
pub(super) fn optional_str<'a>(
    raw: Option<Raw<'a>>,
    field: &'static str,
) -> Result<Option<Cow<'a, str>>, Error> {
    match raw {
        None | Some(Raw::Null) => Ok(None),
        Some(Raw::Str(text)) if text.is_empty() => Ok(None),
        Some(Raw::Str(text)) => Ok(Some(text)),
        Some(Raw::Other(value)) => Err(wrong_type(field, &value)),
    }
}

/// An optional validated id member.
pub(super) fn optional_id<T>(
    raw: Option<Raw<'_>>,
    field: &'static str,
    new: fn(String) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    match optional_str(raw, field)? {
        Some(text) => new(text.into_owned())
            .map(Some)
            .map_err(|err| err.with_field(Field::new(field))),
        None => Ok(None),
    }
}
