//! Counters every task adds to, and the latency histogram, shared by the run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;

/// The largest latency recorded exactly, in microseconds: 10 minutes. Longer ones are
/// recorded as this.
const MAX_LATENCY_US: u64 = 600_000_000;

/// A counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn inc(&self) {
        self.add(1);
    }

    pub(crate) fn dec(&self) {
        // Never below zero, whatever the order of the tasks' updates.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The counters of one probe round.
#[derive(Debug, Default)]
pub(crate) struct ProbeCounters {
    pub(crate) ok: Counter,
    pub(crate) failed: Counter,
    /// Channels done with the round.
    pub(crate) channels_done: Counter,
}

/// Everything counted during a run.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) connect_attempted: Counter,
    pub(crate) connected: Counter,
    pub(crate) connect_failed: Counter,
    pub(crate) connect_retries: Counter,
    /// Connections open now.
    pub(crate) open: Counter,
    pub(crate) closed_early: Counter,
    /// Relayed messages received, and messages sent, over the whole run.
    pub(crate) received: Counter,
    pub(crate) sent: Counter,
    /// `rate`: messages sent, and received, with a send time inside the window.
    pub(crate) sent_window: Counter,
    pub(crate) received_window: Counter,
    pub(crate) late: Counter,
    pub(crate) skipped: Counter,
    pub(crate) status_responses: Counter,
    pub(crate) go_away: Counter,
    pub(crate) other_events: Counter,
    pub(crate) undecodable: Counter,
    pub(crate) stale: Counter,
    pub(crate) window_refills: Counter,
    pub(crate) probes: [ProbeCounters; 2],
    /// Early closes by close code (`none` without a close frame).
    close_codes: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    pub(crate) fn record_close(&self, code: Option<u16>) {
        let key = code.map_or_else(|| "none".to_owned(), |code| code.to_string());
        *self
            .close_codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default() += 1;
    }

    pub(crate) fn close_codes(&self) -> BTreeMap<String, u64> {
        self.close_codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// An empty histogram of microseconds, 1 µs to 10 minutes at 3 significant digits.
#[expect(
    clippy::expect_used,
    reason = "the bounds are constants that hdrhistogram accepts"
)]
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("1 <= 2 * 1 < 600e6, 3 digits")
}

/// Records `micros` in `histogram`, clamped to its range.
pub(crate) fn record(histogram: &mut Histogram<u64>, micros: u64) {
    histogram.saturating_record(micros.clamp(1, MAX_LATENCY_US));
}

/// One-way latencies in microseconds, shared by every receiving task.
#[derive(Debug)]
pub(crate) struct Latencies(Mutex<Histogram<u64>>);

impl Latencies {
    pub(crate) fn new() -> Self {
        Self(Mutex::new(histogram()))
    }

    pub(crate) fn record(&self, micros: u64) {
        record(
            &mut self.0.lock().unwrap_or_else(PoisonError::into_inner),
            micros,
        );
    }

    pub(crate) fn snapshot(&self) -> Histogram<u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
