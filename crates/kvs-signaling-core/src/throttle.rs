//! Token buckets for the service's per-connection and per-channel rates.

use std::time::{Duration, Instant};

/// A rate: `per_second` events a second, with bursts of up to `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rate {
    /// Events allowed per second, and the burst size. Zero blocks every event.
    pub per_second: u32,
}

impl Rate {
    /// `per_second` events a second.
    pub const fn per_second(per_second: u32) -> Self {
        Self { per_second }
    }
}

/// A token bucket counted in thousandths of a token, refilled lazily from the time passed in.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    milli_tokens: u64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn full(rate: Rate, now: Instant) -> Self {
        Self {
            milli_tokens: u64::from(rate.per_second) * 1000,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, rate: Rate, now: Instant) -> bool {
        let capacity = u64::from(rate.per_second) * 1000;
        let elapsed = now.saturating_duration_since(self.last);
        // Every whole millisecond adds `per_second` thousandths of a token.
        let millis = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if millis > 0 {
            self.milli_tokens = self
                .milli_tokens
                .saturating_add(millis.saturating_mul(u64::from(rate.per_second)))
                .min(capacity);
            self.last = self
                .last
                .checked_add(Duration::from_millis(millis))
                .unwrap_or(now);
        }
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let start = crate::testing::origin();
        let rate = Rate::per_second(5);
        let mut bucket = Bucket::full(rate, start);
        let taken = (0..10).filter(|_| bucket.try_take(rate, start)).count();
        assert_eq!(taken, 5);
        // 200 ms later, one token is back; 199 ms is not enough for a second one.
        assert!(bucket.try_take(rate, start + Duration::from_millis(200)));
        assert!(!bucket.try_take(rate, start + Duration::from_millis(399)));
        assert!(bucket.try_take(rate, start + Duration::from_millis(400)));
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.try_take(rate, later)).count(), 5);
        let zero = Rate::per_second(0);
        assert!(!Bucket::full(zero, start).try_take(zero, later));
    }
}
