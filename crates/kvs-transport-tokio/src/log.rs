//! Rate limits for log lines that a peer, or a failing resource, can repeat at will: a server
//! out of descriptors, or under a flood of bad handshakes, must not write gigabytes of the same
//! line.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lets one line through per period and counts the ones held back, which the next line that
/// passes reports. Meant as a `static` beside the line it limits:
///
/// ```
/// use std::time::Duration;
/// use kvs_transport_tokio::LogLimiter;
///
/// static ACCEPT_FAILED: LogLimiter = LogLimiter::new(Duration::from_secs(10));
/// if let Some(suppressed) = ACCEPT_FAILED.check() {
///     eprintln!("accept failed ({suppressed} more like this not shown)");
/// }
/// assert_eq!(ACCEPT_FAILED.check(), None, "within the period");
/// ```
#[derive(Debug)]
pub struct LogLimiter {
    period_millis: u64,
    /// When the next line may pass, in milliseconds since the process's first check.
    next_millis: AtomicU64,
    suppressed: AtomicU64,
}

/// Milliseconds since the first call, on the monotonic clock.
fn now_millis() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl LogLimiter {
    /// A limiter letting one line through per `period`.
    pub const fn new(period: Duration) -> Self {
        let millis = period.as_millis();
        Self {
            period_millis: if millis > u64::MAX as u128 {
                u64::MAX
            } else {
                millis as u64
            },
            next_millis: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being how many were held back since the
    /// last one; `None` when this one is to be held back.
    pub fn check(&self) -> Option<u64> {
        self.check_at(now_millis())
    }

    fn check_at(&self, now: u64) -> Option<u64> {
        let next = self.next_millis.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_millis
                .compare_exchange(
                    next,
                    now.saturating_add(self.period_millis),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_and_the_count_of_the_rest() {
        let limiter = LogLimiter::new(Duration::from_millis(40));
        assert_eq!(limiter.check_at(5), Some(0));
        let held = (0..1000)
            .filter(|i| limiter.check_at(5 + i / 100).is_none())
            .count();
        assert_eq!(held, 1000);
        assert_eq!(limiter.check_at(44), None);
        assert_eq!(limiter.check_at(45), Some(1001));
        assert_eq!(limiter.check_at(46), None);
        assert_eq!(limiter.check_at(85), Some(1));
    }
}
