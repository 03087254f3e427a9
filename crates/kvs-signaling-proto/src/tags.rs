//! Resource tags: keys, values and the lists that carry them.

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

use crate::error::{Error, Field, Violation};
use crate::json::{FromJson, Obj};
use crate::limits;
use crate::text::{bad_char_at, check_length, string_newtype};

/// The allowed set of tag keys and values, in words.
pub(crate) const TAG_CHARS: &str = r"Unicode letters, separators and numbers (\p{L}, \p{Z}, \p{N}), '_', '.', ':', '/', '=', '+', '-', '@'";

/// `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
fn is_tag_char(ch: char) -> bool {
    if ch.is_ascii() {
        return ch.is_ascii_alphanumeric()
            || matches!(ch, ' ' | '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@');
    }
    matches!(
        ch.general_category_group(),
        GeneralCategoryGroup::Letter
            | GeneralCategoryGroup::Separator
            | GeneralCategoryGroup::Number
    )
}

fn check_tag_chars(value: &str) -> Result<(), Violation> {
    match value.char_indices().find(|&(_, ch)| !is_tag_char(ch)) {
        Some((at, _)) => Err(bad_char_at(value, at, TAG_CHARS)),
        None => Ok(()),
    }
}

string_newtype! {
    /// A tag key: 1 to 128 characters of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
    TagKey, field = "Key", validate = validate_tag_key
}

fn validate_tag_key(value: &str) -> Result<(), Violation> {
    check_length(value, 1, limits::MAX_TAG_KEY_LEN)?;
    check_tag_chars(value)
}

string_newtype! {
    /// A tag value: 0 to 256 characters of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
    TagValue, field = "Value", validate = validate_tag_value
}

fn validate_tag_value(value: &str) -> Result<(), Violation> {
    check_length(value, 0, limits::MAX_TAG_VALUE_LEN)?;
    check_tag_chars(value)
}

/// One tag, `{"Key": …, "Value": …}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Tag {
    /// The key.
    #[serde(rename = "Key")]
    pub key: TagKey,
    /// The value.
    #[serde(rename = "Value")]
    pub value: TagValue,
}

impl Tag {
    /// A tag.
    pub fn new(key: TagKey, value: TagValue) -> Self {
        Self { key, value }
    }
}

impl FromJson for Tag {
    fn from_json(value: serde_json::Value, field: &Field) -> Result<Self, Error> {
        let mut obj = Obj::new(value, field)?;
        Ok(Self {
            key: obj.required("Key")?,
            value: obj.required("Value")?,
        })
    }
}

/// Checks a tag list's length: below `min` is an invalid argument, above the per-resource cap
/// is the service's tag-limit error.
pub(crate) fn check_tag_count(field: &Field, found: usize, min: usize) -> Result<(), Error> {
    let max = limits::MAX_TAGS_PER_RESOURCE;
    if found > max {
        return Err(Error::TooManyTags {
            field: field.clone(),
            max,
            found,
        });
    }
    if found < min {
        return Err(Error::invalid(
            field.clone(),
            Violation::Count { min, max, found },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
