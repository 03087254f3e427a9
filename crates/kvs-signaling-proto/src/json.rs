//! Reading JSON request and response bodies member by member, so that every error names the
//! member's path (`Tags[3].Key`) and the rule it broke.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{Error, Field, JsonType};

/// A value that can be read from a JSON value found at `field`.
pub(crate) trait FromJson: Sized {
    /// Reads `value`, naming `field` in any error.
    fn from_json(value: Value, field: &Field) -> Result<Self, Error>;
}

/// The string inside `value`, or the error for another kind of value.
pub(crate) fn string(value: Value, field: &Field) -> Result<String, Error> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(wrong_type(field, JsonType::String, &other)),
    }
}

pub(crate) fn wrong_type(field: &Field, expected: JsonType, found: &Value) -> Error {
    Error::WrongType {
        field: field.clone(),
        expected,
        found: JsonType::of(found),
    }
}

/// A JSON object whose members are taken one by one. Members nobody takes are ignored, as the
/// service ignores unknown input members.
pub(crate) struct Obj {
    map: Map<String, Value>,
    field: Field,
}

impl Obj {
    pub(crate) fn new(value: Value, field: &Field) -> Result<Self, Error> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                field: field.clone(),
            }),
            other => Err(wrong_type(field, JsonType::Object, &other)),
        }
    }

    /// The member `key`, which must be present and not `null`.
    pub(crate) fn required<T: FromJson>(&mut self, key: &str) -> Result<T, Error> {
        let field = self.field.member(key);
        match self.map.remove(key) {
            None | Some(Value::Null) => Err(Error::Missing { field }),
            Some(value) => T::from_json(value, &field),
        }
    }

    /// The member `key`, absent when missing or `null`.
    pub(crate) fn optional<T: FromJson>(&mut self, key: &str) -> Result<Option<T>, Error> {
        let field = self.field.member(key);
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => T::from_json(value, &field).map(Some),
        }
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(value: Value, field: &Field) -> Result<Self, Error> {
        match value {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(index, item)| T::from_json(item, &field.element(index)))
                .collect(),
            other => Err(wrong_type(field, JsonType::Array, &other)),
        }
    }
}

impl<K: FromJson + Ord, V: FromJson> FromJson for BTreeMap<K, V> {
    fn from_json(value: Value, field: &Field) -> Result<Self, Error> {
        match value {
            Value::Object(map) => map
                .into_iter()
                .map(|(key, value)| {
                    let member = field.member(&key);
                    Ok((
                        K::from_json(Value::String(key), &member)?,
                        V::from_json(value, &member)?,
                    ))
                })
                .collect(),
            other => Err(wrong_type(field, JsonType::Object, &other)),
        }
    }
}

impl FromJson for String {
    fn from_json(value: Value, field: &Field) -> Result<Self, Error> {
        string(value, field)
    }
}

impl FromJson for bool {
    fn from_json(value: Value, field: &Field) -> Result<Self, Error> {
        match value {
            Value::Bool(b) => Ok(b),
            other => Err(wrong_type(field, JsonType::Bool, &other)),
        }
    }
}

/// Reads a whole body. An empty body reads as `{}`, as the service treats it.
pub(crate) fn decode_body<T: FromJson>(bytes: &[u8]) -> Result<T, Error> {
    let value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(bytes).map_err(|err| Error::syntax(&err))?
    };
    T::from_json(value, &Field::new(""))
}
