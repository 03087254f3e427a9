//! A simulation harness for the hub: a fake clock, labelled connections, a small script
//! language and a stable text rendering of every output. Shared by the unit tests, the model
//! tests and the fuzz target; not part of the API.

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::exhaustive_enums,
    reason = "a test harness: its panics are failed checks"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use kvs_signaling_proto::{ChannelArn, ClientId, MessagePayload, MessageTtlSeconds, PeerId};

use crate::hub::{
    AlexaOffer, AlexaRequestId, ConnId, Frame, Hub, HubConfig, OpenConnection, Output, Receipt,
};

pub mod model;

/// The one clock read of a simulation: a fixed origin for its fake time.
#[expect(
    clippy::disallowed_methods,
    reason = "the simulation's origin; every later time is derived from it"
)]
pub fn origin() -> Instant {
    Instant::now()
}

/// The ARN of the test channel `name`.
pub fn arn(name: &str) -> ChannelArn {
    ChannelArn::new(format!(
        "arn:aws:kinesisvideo:us-west-2:123456789012:channel/{name}/1"
    ))
    .unwrap_or_else(|err| panic!("test channel {name:?}: {err}"))
}

/// A hub on a fake clock, with connections known by labels.
#[derive(Debug)]
pub struct Sim {
    /// The hub under test.
    pub hub: Hub,
    /// The fake time now.
    pub now: Instant,
    /// The fake time the simulation started at.
    pub start: Instant,
    labels: BTreeMap<String, ConnId>,
    names: BTreeMap<ConnId, String>,
    requests: BTreeMap<AlexaRequestId, usize>,
    /// Tracked frames handed out and not yet reported written or unwritten.
    receipts: Vec<(Receipt, Frame)>,
}

impl Sim {
    /// A simulation of a hub with `config`.
    pub fn new(config: HubConfig) -> Self {
        let start = origin();
        Self {
            hub: Hub::new(config).unwrap_or_else(|err| panic!("config: {err}")),
            now: start,
            start,
            labels: BTreeMap::new(),
            names: BTreeMap::new(),
            requests: BTreeMap::new(),
            receipts: Vec::new(),
        }
    }

    /// The connection labelled `label`.
    pub fn conn(&self, label: &str) -> ConnId {
        *self
            .labels
            .get(label)
            .unwrap_or_else(|| panic!("no connection {label:?}"))
    }

    fn elapsed(&self) -> String {
        render_duration(self.now - self.start)
    }

    /// Renders and returns every pending output.
    pub fn drain(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(output) = self.hub.poll_output() {
            lines.push(self.render(&output));
            if let Output::DeliverTracked { frame, receipt, .. } = output {
                self.receipts.push((receipt, frame));
            }
        }
        lines
    }

    fn render(&self, output: &Output) -> String {
        let name = |conn: &ConnId| {
            self.names
                .get(conn)
                .cloned()
                .unwrap_or_else(|| format!("{conn:?}"))
        };
        match output {
            Output::Deliver { conn, frame } => {
                format!("deliver {} {}", name(conn), shorten(frame.as_str()))
            }
            Output::Close { conn, reason } => format!(
                "close {} {} {}",
                name(conn),
                reason.code(),
                reason.description()
            ),
            Output::AlexaAnswer { request, result } => {
                let n = self.requests.get(request).copied().unwrap_or_default();
                match result {
                    Ok(payload) => format!("alexa #{n} answered {payload}"),
                    Err(refused) => format!("alexa #{n} failed {refused}"),
                }
            }
            Output::DeliverTracked { conn, frame, .. } => {
                format!(
                    "deliver {} {} (tracked)",
                    name(conn),
                    shorten(frame.as_str())
                )
            }
            Output::Observed(observation) => format!("observed {observation:?}"),
        }
    }

    /// Moves the clock forward by `by`, firing timers in order on the way.
    pub fn advance(&mut self, by: Duration) -> Vec<String> {
        let end = self.now + by;
        let mut lines = Vec::new();
        while let Some(at) = self.hub.poll_timeout().filter(|&at| at <= end) {
            assert!(at >= self.now, "a timer went back in time");
            self.now = at;
            self.hub.handle_timeout(at);
            assert!(
                self.hub.poll_timeout().is_none_or(|next| next > at),
                "timers did not move past {at:?}"
            );
            for line in self.drain() {
                lines.push(format!("[{}] {line}", self.elapsed()));
            }
        }
        self.now = end;
        lines
    }

    /// Runs one script line and returns what it printed.
    pub fn step(&mut self, line: &str) -> Vec<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let now = self.now;
        let ttl = |words: &[&str]| {
            words
                .iter()
                .find_map(|w| w.strip_prefix("ttl="))
                .map_or_else(MessageTtlSeconds::default, |t| {
                    MessageTtlSeconds::new(t.parse().unwrap_or(60)).unwrap_or_default()
                })
        };
        let revision = |words: &[&str]| {
            words
                .iter()
                .find_map(|w| w.strip_prefix("rev="))
                .map_or(0, |r| r.parse().unwrap_or(0))
        };
        // `indications`: the client handles GO_AWAY; `pending`: its socket is not up yet
        // (`establish LABEL` later).
        // `delivery`: it asks for delivery status.
        let options = |open: OpenConnection, words: &[&str]| {
            open.indications(words.contains(&"indications"))
                .delivery_status(words.contains(&"delivery"))
                .ttl_revision(revision(words))
        };
        let mut out = Vec::new();
        match words.as_slice() {
            ["open", label, "master", channel, rest @ ..] => {
                let open = options(OpenConnection::master(arn(channel), ttl(rest)), rest);
                out.push(self.open(label, open, !rest.contains(&"pending")));
            }
            ["open", label, "viewer", channel, client, rest @ ..] => {
                let client = ClientId::new(*client).unwrap_or_else(|err| panic!("{err}"));
                let open = options(
                    OpenConnection::viewer(arn(channel), client, ttl(rest)),
                    rest,
                );
                out.push(self.open(label, open, !rest.contains(&"pending")));
            }
            ["establish", label] => {
                let conn = self.conn(label);
                self.hub.handle_established(now, conn);
            }
            ["send", label, ..] => {
                let text = line.split_once(label).map_or("", |(_, rest)| rest.trim());
                let conn = self.conn(label);
                self.hub.handle_frame(now, conn, text);
            }
            ["keepalive", label] => {
                let conn = self.conn(label);
                self.hub.handle_keepalive(now, conn);
            }
            ["close", label] => {
                let conn = self.conn(label);
                self.hub.handle_close(now, conn);
            }
            // The transport reports the tracked frames handed to LABEL written, or not.
            ["written" | "unwritten", label] => {
                let conn = self.conn(label);
                let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.receipts)
                    .into_iter()
                    .partition(|(receipt, _)| receipt.conn() == conn);
                self.receipts = rest;
                for (receipt, frame) in mine {
                    if words[0] == "written" {
                        self.hub.handle_written(now, receipt);
                    } else {
                        self.hub.handle_unwritten(now, receipt, frame);
                    }
                }
            }
            ["advance", amount] => {
                let lines = self.advance(parse_duration(amount));
                out.extend(lines);
            }
            ["drain"] => self.hub.drain(now),
            ["reconnect-ice", channel] => self.hub.reconnect_ice_servers(now, &arn(channel)),
            ["reconnect-ice-all"] => self.hub.reconnect_ice_servers_all(now),
            ["update", channel, rest @ ..] => {
                self.hub
                    .handle_channel_updated(now, &arn(channel), ttl(rest), revision(rest));
            }
            ["delete", channel] => self.hub.handle_channel_deleted(now, &arn(channel)),
            ["alexa", channel, sender, payload] => {
                let offer = AlexaOffer::new(
                    arn(channel),
                    PeerId::new(*sender).unwrap_or_else(|err| panic!("{err}")),
                    MessagePayload::new((*payload).to_owned())
                        .unwrap_or_else(|err| panic!("{err}")),
                    MessageTtlSeconds::default(),
                );
                let n = self.requests.len() + 1;
                match self.hub.handle_alexa_offer(now, offer) {
                    Ok(request) => {
                        self.requests.insert(request, n);
                        out.push(format!("alexa #{n} pending"));
                    }
                    Err(refused) => out.push(format!("alexa #{n} refused {refused}")),
                }
            }
            _ => panic!("unknown script line {line:?}"),
        }
        out.extend(self.drain());
        out
    }

    /// Opens a connection, and establishes it (its `101` written) when `established`.
    fn open(&mut self, label: &str, open: OpenConnection, established: bool) -> String {
        match self.hub.handle_open(self.now, open) {
            Ok(conn) => {
                self.labels.insert(label.to_owned(), conn);
                self.names.insert(conn, label.to_owned());
                if established {
                    self.hub.handle_established(self.now, conn);
                }
                format!("opened {label}")
            }
            Err(refused) => format!("refused {label}: {refused}"),
        }
    }

    /// Runs a script, one command per line, and returns the transcript: each command after
    /// `>`, then what it printed, indented.
    pub fn run(&mut self, script: &str) -> String {
        let mut transcript = String::new();
        for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let _ = writeln!(transcript, "> {}", shorten(line));
            for output in self.step(line) {
                let _ = writeln!(transcript, "  {output}");
            }
        }
        transcript
    }
}

/// `text`, with anything past 120 characters replaced by a count, so that transcripts of big
/// frames stay readable.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(120) {
        Some((end, _)) => format!(
            "{}…({} bytes)",
            text.get(..end).unwrap_or_default(),
            text.len()
        ),
        None => text.to_owned(),
    }
}

/// `90s`, `250ms`, `10m`, `1h`.
pub fn parse_duration(text: &str) -> Duration {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("bad duration {text:?}"));
    match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => panic!("bad duration unit in {text:?}"),
    }
}

fn render_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
