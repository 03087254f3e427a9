//! Token buckets for the service's per-connection and per-channel rates.

use std::time::{Duration, Instant};

/// A rate: `per_second` events a second on average, with bursts of up to `burst` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rate {
    /// Events allowed per second, on average. Zero blocks every event.
    pub per_second: u32,
    /// Events allowed at once, after a quiet spell: `per_second` unless set otherwise.
    pub burst: u32,
}

impl Rate {
    /// `per_second` events a second, in bursts of up to `per_second`.
    pub const fn per_second(per_second: u32) -> Self {
        Self {
            per_second,
            burst: per_second,
        }
    }

    /// The same average rate, in bursts of up to `burst` events.
    #[must_use]
    pub const fn with_burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
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
            milli_tokens: Self::capacity(rate),
            last: now,
        }
    }

    fn capacity(rate: Rate) -> u64 {
        u64::from(rate.burst) * 1000
    }

    /// When the bucket is full again if nothing is taken meanwhile: until then, forgetting it
    /// would hand its owner a fresh burst early.
    pub(crate) fn full_at(&self, rate: Rate) -> Instant {
        let missing = Self::capacity(rate).saturating_sub(self.milli_tokens);
        if missing == 0 || rate.per_second == 0 {
            return self.last;
        }
        // `per_second` thousandths of a token come back every millisecond.
        let millis = missing.div_ceil(u64::from(rate.per_second));
        self.last
            .checked_add(Duration::from_millis(millis))
            .unwrap_or(self.last)
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, rate: Rate, now: Instant) -> bool {
        let capacity = Self::capacity(rate);
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

    #[test]
    fn a_burst_larger_than_the_rate_keeps_the_average() {
        let start = crate::testing::origin();
        let rate = Rate::per_second(20).with_burst(200);
        let mut bucket = Bucket::full(rate, start);
        assert_eq!(
            (0..300).filter(|_| bucket.try_take(rate, start)).count(),
            200
        );
        // Refilled at 20 a second: one token every 50 ms, and full again after 10 s.
        assert_eq!(bucket.full_at(rate), start + Duration::from_secs(10));
        assert!(!bucket.try_take(rate, start + Duration::from_millis(49)));
        assert!(bucket.try_take(rate, start + Duration::from_millis(50)));
        let later = start + Duration::from_secs(10);
        assert_eq!(
            (0..300).filter(|_| bucket.try_take(rate, later)).count(),
            199
        );
        assert_eq!(Bucket::full(rate, start).full_at(rate), start);
    }
}
