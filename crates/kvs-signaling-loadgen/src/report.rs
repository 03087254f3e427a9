//! The result of a run: [`Report`], printed by the binary as one JSON object.
//!
//! Every field below is a JSON member of the same name. Times are seconds (`f64`) unless the
//! name says `_us` (microseconds) or `_ms`; memory is KiB (`_kib`) or bytes (`_bytes`). A
//! figure that does not apply to the mode, or could not be read, is `null`.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{Mode, PayloadKind};

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// `"hold"`, `"saturate"` or `"rate"`.
    pub mode: Mode,
    /// The control-plane endpoint given.
    pub endpoint: String,
    /// The WebSocket endpoint connected to (by the masters, and by the viewers unless
    /// `viewer_ws_endpoint` says otherwise).
    pub ws_endpoint: String,
    /// Where the viewers connected, with `--viewer-ws-endpoint`; `null` when with the
    /// masters.
    pub viewer_ws_endpoint: Option<String>,
    /// `"offer"` or `"candidate"`.
    pub payload: PayloadKind,
    /// Characters of a viewer's `messagePayload` (base64).
    pub payload_len: usize,
    /// Bytes of a viewer's whole frame.
    pub frame_len: usize,
    /// Channels asked for.
    pub channels: usize,
    /// Viewers per channel asked for.
    pub viewers_per_channel: usize,
    /// Master–viewer pairs asked for: `channels * viewers_per_channel`.
    pub pairs: usize,
    /// Worker threads of the generator's runtime, when known.
    pub threads: Option<usize>,
    /// Wall time of the whole run, setup included.
    pub elapsed_seconds: f64,
    /// Whether the run was cut short by `--deadline`; the figures are then partial.
    pub deadline_hit: bool,
    /// Creating the channels.
    pub setup: SetupReport,
    /// Connecting.
    pub connect: ConnectReport,
    /// The start and end probes of `hold`; `null` in other modes.
    pub probes: Option<ProbeReport>,
    /// Relayed messages.
    pub messages: MessagesReport,
    /// One-way latency of `rate` messages sent inside the measurement window; `null` in other
    /// modes.
    pub latency_us: Option<LatencyReport>,
    /// The open loop of `rate`; `null` in other modes.
    pub rate: Option<RateReport>,
    /// The server process, with `--server-pid`; `null` without.
    pub server: Option<ProcessReport>,
    /// The processes of `--extra-pid`, in order, measured as `server` is.
    pub extra_processes: Vec<ProcessReport>,
    /// The Redis of `--redis-stats`: what it did during the measurement; `null` without, or
    /// when it could not be read.
    pub redis: Option<RedisReport>,
    /// The server's own relay latency over the measurement window, from its `/metrics`,
    /// with `--server-metrics`; `null` without, or when the server exports none.
    pub server_relay_latency_us: Option<ServerLatencyReport>,
    /// The generator's own process, measured the same way (the server's figures are only
    /// meaningful when the generator is not the bottleneck).
    pub loadgen: ProcessReport,
    /// Anything worth knowing about the run, in words (limits hit, phases cut short).
    pub notes: Vec<String>,
}

/// A latency histogram read from a server, in microseconds, quantiles interpolated within
/// its buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ServerLatencyReport {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
}

/// What a Redis server did during the measurement (`saturate`, `rate`: the window; `hold`:
/// the connecting), from its `INFO` read at both ends (`redis`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RedisReport {
    /// The Redis read, `host:port`.
    pub addr: String,
    /// Time between the two readings.
    pub seconds: f64,
    /// Calls by command, as `INFO commandstats` names and counts them (`xadd`, `evalsha`,
    /// `xread`, …): the commands that scripts run are counted under their own names too, and
    /// the generator's own `INFO` calls are left out. Commands not called are absent.
    pub commands: BTreeMap<String, u64>,
    /// The sum of `commands`.
    pub calls: u64,
    /// `calls / seconds`.
    pub calls_per_second: f64,
    /// `calls / messages.received` (`saturate`, `rate`).
    pub calls_per_message: Option<f64>,
    /// `calls / connect.connected` (`hold`).
    pub calls_per_connect: Option<f64>,
    /// Reads of client sockets Redis processed (`total_reads_processed`): a pipeline that
    /// arrives at once is one read.
    pub reads: u64,
    /// Redis's user plus system CPU time (`used_cpu_user + used_cpu_sys`).
    pub cpu_seconds: f64,
    /// `cpu_seconds / messages.received`, in microseconds (`saturate`, `rate`).
    pub cpu_us_per_message: Option<f64>,
    /// `cpu_seconds / connect.connected`, in microseconds (`hold`).
    pub cpu_us_per_connect: Option<f64>,
}

/// Creating the channels (`setup`).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct SetupReport {
    /// Whether channels were created (false with `--no-create`).
    pub created_channels: bool,
    /// Channels CreateSignalingChannel created.
    pub created: u64,
    /// Channels that existed already (ResourceInUseException).
    pub existed: u64,
    /// Channels that could not be created or described; their connections are not tried.
    pub failed: u64,
    /// Failures by kind (the service's error type, or the HTTP status).
    pub errors: BTreeMap<String, u64>,
    /// Wall time of the setup.
    pub seconds: f64,
}

/// Connecting (`connect`).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ConnectReport {
    /// Connections tried (masters and viewers).
    pub attempted: u64,
    /// Connections upgraded to WebSocket (the server verified the SigV4 connect URL).
    pub connected: u64,
    /// Connections that failed after their retries.
    pub failed: u64,
    /// Connects tried again after a connect-rate refusal.
    pub retries: u64,
    /// Failures by kind: `http_<status>`, `tcp_<error kind>`, `timeout`, `handshake`,
    /// `presign`.
    pub errors: BTreeMap<String, u64>,
    /// Wall time from the first connect to the last answer.
    pub seconds: f64,
    /// Connections per second: `connected / seconds`.
    pub per_second: f64,
    /// Time of one successful connect (TCP connect to the 101 answer).
    pub latency_us: LatencyReport,
    /// Connections still open when the run stopped.
    pub held: u64,
    /// Connections that closed before the run stopped (by the server, or an error).
    pub closed_early: u64,
    /// Those early closes by the close code the server sent (`"1008"`: slow consumer, …),
    /// `"none"` for a connection that ended without a close frame (an error, a reset, a send
    /// blocked for 10 s).
    pub close_codes: BTreeMap<String, u64>,
    /// The generator's limit on open files (`ulimit -n`), when readable.
    pub open_file_limit: Option<u64>,
}

/// The probes of `hold` (`probes`).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ProbeReport {
    /// Right after connecting.
    pub start: ProbeRound,
    /// At the end of the hold.
    pub end: ProbeRound,
}

/// One probe of every pair: an offer from the viewer must reach the master, and the master's
/// answer must reach the viewer.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ProbeRound {
    /// Pairs probed (every pair asked for; a pair missing a connection fails).
    pub pairs: u64,
    /// Pairs whose two messages arrived.
    pub ok: u64,
    /// Pairs that failed.
    pub failed: u64,
    /// Wall time of the round.
    pub seconds: f64,
}

/// Relayed messages (`messages`).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct MessagesReport {
    /// The measurement window: `--duration` (less when the deadline cut it short).
    pub measured_seconds: f64,
    /// Relayed messages received in the window, both directions.
    pub received: u64,
    /// `received / measured_seconds`.
    pub per_second: f64,
    /// Messages sent in the window.
    pub sent: u64,
    /// Relayed messages received over the whole run, warm-up and probes included.
    pub received_total: u64,
    /// Messages sent over the whole run.
    pub sent_total: u64,
    /// STATUS_RESPONSE frames received (the server refused a message that had a correlation
    /// id, such as when throttled).
    pub status_responses: u64,
    /// GO_AWAY frames received.
    pub go_away: u64,
    /// Other frames: RECONNECT_ICE_SERVER, unexpected types or senders.
    pub other_events: u64,
    /// Frames that did not decode as a server event, or whose payload did not decode.
    pub undecodable: u64,
    /// Relayed messages of an earlier run, ignored: a server buffers messages for a client id
    /// that is away and delivers them when it connects again, so a run after another on the
    /// same channels first receives the earlier run's leftovers.
    pub stale: u64,
    /// Times a `saturate` pair had no answer for 2 s and had its window sent again (messages
    /// dropped silently, such as throttled without a correlation id).
    pub window_refills: u64,
}

/// A latency distribution, in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct LatencyReport {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl LatencyReport {
    pub(crate) fn from_histogram(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            min: histogram.min(),
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: (histogram.mean() * 10.0).round() / 10.0,
        }
    }
}

/// The open loop of `rate` (`rate`).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct RateReport {
    /// `--rate`: messages a second asked for.
    pub target_per_second: u64,
    /// Messages a second sent in the window (below the target when the generator fell
    /// behind).
    pub achieved_per_second: f64,
    /// Messages sent in the window.
    pub sent: u64,
    /// Of those, messages received (until the drain ended).
    pub received: u64,
    /// `sent - received`: never arrived by the end of the drain.
    pub lost: u64,
    /// Received, but later than `late_threshold_ms`.
    pub late: u64,
    /// `--late-ms`.
    pub late_threshold_ms: u64,
    /// Ticks skipped because the generator was more than a burst behind.
    pub skipped: u64,
    /// Time waited after the window for messages still in flight.
    pub drain_seconds: f64,
}

/// A process's memory and CPU time, read from `/proc/<pid>` (`server`, `loadgen`).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ProcessReport {
    /// The process id.
    pub pid: u32,
    /// VmRSS before connecting.
    pub rss_before_kib: Option<u64>,
    /// VmRSS when the measurement ended (`hold`: at the end of the hold, before the last
    /// probe).
    pub rss_after_kib: Option<u64>,
    /// `(rss_after - rss_before) * 1024 / connect.held` (`hold` only).
    pub rss_per_connection_bytes: Option<f64>,
    /// User plus system CPU time spent in the measurement window (`hold`: during the whole
    /// run).
    pub cpu_seconds: Option<f64>,
    /// `cpu_seconds / messages.received`, in microseconds (`saturate` and `rate`).
    pub cpu_us_per_message: Option<f64>,
    /// The share of `cpu_seconds` spent in the kernel (system time): on loopback, the TCP
    /// stack's work for both ends is mostly done in the sender's context.
    pub kernel_share: Option<f64>,
    /// Share of one CPU used in the window: `cpu_seconds / measured_seconds`.
    pub cpu_utilization: Option<f64>,
}
