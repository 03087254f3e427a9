//! The formats of what nodes keep in Redis and send each other, so that a cluster can be
//! upgraded one node at a time across releases that change them.
//!
//! Every inbox entry (its field `v`), held message and channel record (their JSON's `"v"`)
//! says the oldest format a reader must know to read it; one written before formats were
//! stamped says none, and is format 1. A node reads the formats [`OLDEST`] to [`NEWEST`], and
//! publishes that range in `PREFIX:formats` with each heartbeat (so a node the others see
//! alive has published it, and a Redis that lost it has it again). What a format brings
//! is written only where every reader reads it: an inbox entry for a node that reads the
//! format ([`Range::reads`]; only that node reads the entry, and its sender, which replays it
//! if that node dies); what any node may read (held messages, channel records) once the
//! format is the cluster's, the newest every live node reads ([`in_effect`], learnt with
//! each heartbeat).
//!
//! The formats:
//! - 1 ([`FIRST`]): the first.
//! - 2 ([`EVENTS`]): an inbox entry may hold a node's console events (`Msg::Events`), which
//!   a node of format 1 does not know (it would drop the whole entry). Held messages and
//!   channel records are as in format 1, and say 1.
//!
//! What a node cannot read (an entry of a newer release, after a downgrade or with a node of
//! a newer release that wrote too soon) is set aside, counted
//! (`kvs_cluster_unknown_formats_total`) and logged, never misread: an inbox entry or a held
//! message is dropped; a channel record fails the call with an error that names the format.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// The first format.
pub(crate) const FIRST: u32 = 1;
/// The format that brought console events in inboxes.
pub(crate) const EVENTS: u32 = 2;
/// The oldest format this node reads.
pub(crate) const OLDEST: u32 = FIRST;
/// The newest format this node reads.
pub(crate) const NEWEST: u32 = EVENTS;

/// The format of what was written before formats were stamped.
pub(crate) const fn first() -> u32 {
    FIRST
}

/// Whether this node reads format `format`.
pub(crate) fn readable(format: u32) -> bool {
    (OLDEST..=NEWEST).contains(&format)
}

/// The formats a node reads, as it publishes them (`OLDEST-NEWEST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) oldest: u32,
    pub(crate) newest: u32,
}

impl Range {
    /// This node's.
    pub(crate) const OURS: Self = Self {
        oldest: OLDEST,
        newest: NEWEST,
    };

    /// A range as published; `None` when it is not one.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (oldest, newest) = text.split_once('-')?;
        let range = Self {
            oldest: oldest.parse().ok()?,
            newest: newest.parse().ok()?,
        };
        (range.oldest >= 1 && range.oldest <= range.newest).then_some(range)
    }
}

impl Range {
    /// Whether a node of this range reads `format`.
    pub(crate) fn reads(self, format: u32) -> bool {
        (self.oldest..=self.newest).contains(&format)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.oldest, self.newest)
    }
}

/// The format every live node reads and writes, the newest such: from each live node's
/// published range (`None` for a node that published none, a release from before formats,
/// which reads format 1 alone). `Err` names the nodes when no format is read by all of them.
pub(crate) fn in_effect(nodes: &BTreeMap<String, Option<Range>>) -> Result<u32, String> {
    const BEFORE_FORMATS: Range = Range {
        oldest: 1,
        newest: 1,
    };
    let mut oldest = OLDEST;
    let mut newest = NEWEST;
    for range in nodes.values() {
        let range = range.unwrap_or(BEFORE_FORMATS);
        oldest = oldest.max(range.oldest);
        newest = newest.min(range.newest);
    }
    if oldest <= newest {
        return Ok(newest);
    }
    let ranges: Vec<String> = nodes
        .iter()
        .map(|(node, range)| format!("{node} {}", range.unwrap_or(BEFORE_FORMATS)))
        .collect();
    Err(format!(
        "no format is read by every live node (this node reads {}; {}): messages between \
         them are set aside; finish the upgrade, or roll it back",
        Range::OURS,
        ranges.join(", ")
    ))
}

/// The format a JSON record says it is in: its `"v"`, whatever it holds.
#[derive(Debug, Deserialize)]
struct Stamp {
    #[serde(default)]
    v: Option<serde_json::Value>,
}

/// The format of the JSON record `json`: its `"v"`, or 1 when it has none, or a format no
/// node reads (`u32::MAX`) when it is no such number; `None` when `json` is not a JSON
/// object at all.
pub(crate) fn of_json(json: &str) -> Option<u32> {
    let stamp = serde_json::from_str::<Stamp>(json).ok()?;
    Some(of_stamp(stamp.v.as_ref()))
}

/// The format a record's `"v"` says: 1 without one (or a null), a format no node reads
/// (`u32::MAX`) when it is no such number.
pub(crate) fn of_stamp(v: Option<&serde_json::Value>) -> u32 {
    match v.filter(|v| !v.is_null()) {
        None => FIRST,
        Some(v) => v
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(u32::MAX),
    }
}

/// A record this node does not read, for an error or a log line.
pub(crate) fn unknown(what: &str, format: u32) -> String {
    format!(
        "{what} is in format {format}, and this node reads formats {OLDEST} to {NEWEST}: it was \
         written by a newer release; upgrade this node"
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{NEWEST, Range, in_effect, of_json, readable};

    fn nodes(ranges: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<Range>> {
        ranges
            .iter()
            .map(|(node, range)| ((*node).to_owned(), range.map(|r| Range::parse(r).unwrap())))
            .collect()
    }

    #[test]
    fn a_range_is_read_as_published_and_nothing_else_is_one() {
        assert_eq!(
            Range::parse("1-3"),
            Some(Range {
                oldest: 1,
                newest: 3
            })
        );
        assert_eq!(Range::parse("1-3").unwrap().to_string(), "1-3");
        for bad in ["", "1", "3-1", "0-1", "a-2", "1-", "-1", "1-2-3"] {
            assert_eq!(Range::parse(bad), None, "{bad}");
        }
        let range = Range::parse("2-3").unwrap();
        assert!(!range.reads(1) && range.reads(2) && range.reads(3) && !range.reads(4));
    }

    #[test]
    fn the_cluster_writes_the_newest_format_every_live_node_reads() {
        // Alone, or with nodes like this one: this node's newest.
        assert_eq!(NEWEST, 2);
        assert_eq!(in_effect(&nodes(&[])), Ok(NEWEST));
        assert_eq!(in_effect(&nodes(&[("a", Some("1-2"))])), Ok(2));
        // A node of a newer release that still reads format 2: format 2.
        assert_eq!(in_effect(&nodes(&[("a", Some("2-3"))])), Ok(2));
        // A node that reads format 1 alone, or published nothing (a release from before
        // formats): format 1, whatever the others read.
        assert_eq!(
            in_effect(&nodes(&[("a", Some("1-1")), ("b", Some("1-3"))])),
            Ok(1)
        );
        assert_eq!(in_effect(&nodes(&[("a", None), ("b", Some("1-2"))])), Ok(1));
        // A node that no longer reads what this node writes: no format, and both named.
        let err = in_effect(&nodes(&[("a", Some("1-1")), ("b", Some("3-4"))])).unwrap_err();
        assert!(
            err.contains("a 1-1") && err.contains("b 3-4") && err.contains("this node reads 1-2"),
            "{err}"
        );
    }

    #[test]
    fn a_record_without_a_stamp_is_format_one() {
        assert_eq!(of_json(r#"{"name":"x"}"#), Some(1));
        assert_eq!(of_json(r#"{"v":2,"name":"x"}"#), Some(2));
        for odd in [r#"{"v":"2"}"#, r#"{"v":-1}"#, r#"{"v":4294967296}"#] {
            assert_eq!(of_json(odd), Some(u32::MAX), "{odd}");
        }
        assert_eq!(of_json("3"), None);
        assert!(readable(1) && readable(2));
        assert!(!readable(0) && !readable(NEWEST + 1));
    }
}
