//! What the transport measures for an operator: the relay latency inside the server (from
//! the moment a frame is read off its sender's socket to the moment its relay is written to
//! the recipient's), and the bytes and frames in and out. Lock-free counters, shared by the
//! shard and the connection tasks of one server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kvs_signaling_core::Observation;
use tokio::sync::broadcast;

/// Upper bounds of the latency buckets, in nanoseconds: ten a decade (the R10 series) from
/// 1 µs to 10 s, so that a quantile read from them is within about 25%.
const BOUNDS_NS: [u64; 71] = {
    const STEPS: [u64; 10] = [100, 125, 160, 200, 250, 320, 400, 500, 630, 800];
    let mut bounds = [0u64; 71];
    let mut i = 0;
    let mut decade = 10u64; // 1 µs is 100 × 10 ns.
    while i < 70 {
        bounds[i] = STEPS[i % 10] * decade;
        i += 1;
        if i % 10 == 0 {
            decade *= 10;
        }
    }
    bounds[70] = 10_000_000_000;
    bounds
};

/// A histogram of durations with fixed buckets, updated without locks.
#[derive(Debug)]
pub struct LatencyHistogram {
    /// One more than the bounds: the last bucket counts what is above every bound.
    buckets: [AtomicU64; 72],
    sum_ns: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    /// Counts one duration.
    pub fn record(&self, duration: Duration) {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NS.partition_point(|&bound| bound < ns);
        if let Some(counter) = self.buckets.get(bucket) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// The counts of a [`LatencyHistogram`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistogramSnapshot {
    /// The count of each bucket, in the order of [`HistogramSnapshot::bounds`], then the
    /// count above the last bound.
    pub counts: Vec<u64>,
    /// The sum of every duration counted, in nanoseconds.
    pub sum_ns: u64,
}

impl HistogramSnapshot {
    /// The upper bound of each bucket but the last (which is unbounded).
    pub fn bounds() -> impl Iterator<Item = Duration> {
        BOUNDS_NS.iter().map(|&ns| Duration::from_nanos(ns))
    }

    /// Durations counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The duration below which the fraction `q` of the counted ones are, interpolated
    /// within its bucket; `None` when nothing was counted.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            if seen + n >= rank && n > 0 {
                let low = if i == 0 { 0 } else { BOUNDS_NS[i - 1] };
                let high = BOUNDS_NS.get(i).copied().unwrap_or(low.saturating_mul(2));
                let within = (rank - seen) as f64 / n as f64;
                return Some(Duration::from_nanos(
                    low + ((high - low) as f64 * within) as u64,
                ));
            }
            seen += n;
        }
        None
    }
}

/// The transport's measurements for one server, and what its hubs do, for whoever watches
/// ([`Telemetry::subscribe`]).
#[derive(Debug)]
pub struct Telemetry {
    /// From a frame read to its relay written, for messages relayed at once (not those held
    /// for an absent recipient).
    pub relay_latency: LatencyHistogram,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    /// The hubs' observations, to every subscriber; the hubs make them only while someone
    /// subscribes.
    observations: broadcast::Sender<Observation>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            relay_latency: LatencyHistogram::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            observations: broadcast::channel(OBSERVATIONS_QUEUED).0,
        }
    }
}

/// Observations waiting for the slowest subscriber; a subscriber further behind skips what
/// it missed, and is told how many.
const OBSERVATIONS_QUEUED: usize = 1024;

/// What the hubs of a server do, as they do it: [`Telemetry::subscribe`].
#[derive(Debug)]
pub struct Observations(broadcast::Receiver<Observation>);

impl Observations {
    /// The next observation; `Some(Err(n))` when this subscriber fell behind and `n` were
    /// skipped; `None` when the server is gone.
    pub async fn recv(&mut self) -> Option<Result<Observation, u64>> {
        match self.0.recv().await {
            Ok(observation) => Some(Ok(observation)),
            Err(broadcast::error::RecvError::Lagged(skipped)) => Some(Err(skipped)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next observation if one waits, without waiting: `Some(Err(n))` when this
    /// subscriber fell behind and `n` were skipped; `None` when none waits, or the server is
    /// gone.
    pub fn try_recv(&mut self) -> Option<Result<Observation, u64>> {
        match self.0.try_recv() {
            Ok(observation) => Some(Ok(observation)),
            Err(broadcast::error::TryRecvError::Lagged(skipped)) => Some(Err(skipped)),
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed) => {
                None
            }
        }
    }
}

impl Telemetry {
    /// Every observation of the hubs from now on, each subscriber holding at most about a
    /// thousand it has not read. The hubs make observations only while someone subscribes.
    pub fn subscribe(&self) -> Observations {
        Observations(self.observations.subscribe())
    }

    /// Whether anyone subscribes.
    pub(crate) fn observing(&self) -> bool {
        self.observations.receiver_count() > 0
    }

    /// Hands `observation` to the subscribers.
    pub(crate) fn observed(&self, observation: Observation) {
        let _ = self.observations.send(observation);
    }

    pub(crate) fn read(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn frame_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn wrote(&self, bytes: usize, frames: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
        self.frames_out.fetch_add(frames as u64, Ordering::Relaxed);
    }

    /// WebSocket bytes read from clients, frame headers included.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    /// WebSocket bytes written to clients, frame headers included.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }

    /// Text messages read from clients.
    pub fn frames_in(&self) -> u64 {
        self.frames_in.load(Ordering::Relaxed)
    }

    /// Text frames written to clients.
    pub fn frames_out(&self) -> u64 {
        self.frames_out.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_the_r10_series_and_quantiles_fall_in_their_bucket() {
        let bounds: Vec<Duration> = HistogramSnapshot::bounds().collect();
        assert_eq!(bounds[0], Duration::from_micros(1));
        assert_eq!(bounds[10], Duration::from_micros(10));
        assert_eq!(bounds[27], Duration::from_micros(500));
        assert_eq!(bounds[70], Duration::from_secs(10));
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        let histogram = LatencyHistogram::default();
        for us in 1..=1000u64 {
            histogram.record(Duration::from_micros(us));
        }
        histogram.record(Duration::from_secs(60));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count(), 1001);
        let p50 = snapshot.quantile(0.5).unwrap();
        assert!(
            p50 >= Duration::from_micros(400) && p50 <= Duration::from_micros(630),
            "{p50:?}"
        );
        let p99 = snapshot.quantile(0.99).unwrap();
        assert!(
            p99 >= Duration::from_micros(800) && p99 <= Duration::from_micros(1000),
            "{p99:?}"
        );
        assert!(snapshot.quantile(1.0).unwrap() >= Duration::from_secs(10));
        assert_eq!(LatencyHistogram::default().snapshot().quantile(0.5), None);
    }
}
