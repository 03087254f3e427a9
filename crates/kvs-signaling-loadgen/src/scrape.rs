//! The server's own view of a run: its relay-latency histogram, read from its `/metrics` at
//! both ends of the measurement window, so that the generator's latency can be told apart
//! from the server's.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::connect::{Stream, Target};
use crate::report::ServerLatencyReport;

/// The name of the histogram a kvs-signaling server exports.
const HISTOGRAM: &str = "kvs_relay_latency_seconds_bucket";

/// Cumulative counts by upper bound (seconds; `f64::INFINITY` for `+Inf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Buckets(Vec<(f64, u64)>);

impl Buckets {
    /// The histogram in a Prometheus text page; empty when the page has none.
    pub(crate) fn parse(page: &str) -> Self {
        let mut buckets: Vec<(f64, u64)> = page
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(HISTOGRAM)?.strip_prefix("{le=\"")?;
                let (bound, rest) = rest.split_once("\"}")?;
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().ok()?
                };
                Some((bound, rest.trim().parse().ok()?))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Self(buckets)
    }

    /// What was counted between `before` and `self`, as a latency report in microseconds
    /// (quantiles interpolated within their bucket); `None` when nothing was.
    pub(crate) fn since(&self, before: &Self) -> Option<ServerLatencyReport> {
        let counts: Vec<(f64, f64, u64)> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, &(bound, cumulative))| {
                let earlier = before.0.get(i).map_or(0, |&(_, c)| c);
                let low = if i == 0 { 0.0 } else { self.0[i - 1].0 };
                (low, bound, cumulative.saturating_sub(earlier))
            })
            .collect();
        // Cumulative counts: each bucket's own is the difference with the one below.
        let mut own = Vec::with_capacity(counts.len());
        let mut previous = 0;
        for &(low, high, cumulative) in &counts {
            own.push((low, high, cumulative.saturating_sub(previous)));
            previous = cumulative;
        }
        let total = counts.last().map_or(0, |&(_, _, c)| c);
        if total == 0 {
            return None;
        }
        let quantile = |q: f64| -> u64 {
            let rank = (q * total as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for &(low, high, n) in &own {
                if n > 0 && seen + n >= rank {
                    let high = if high.is_finite() { high } else { low * 2.0 };
                    let within = (rank - seen) as f64 / n as f64;
                    return ((low + (high - low) * within) * 1e6).round() as u64;
                }
                seen += n;
            }
            0
        };
        Some(ServerLatencyReport {
            count: total,
            p50: quantile(0.5),
            p90: quantile(0.9),
            p99: quantile(0.99),
            p999: quantile(0.999),
        })
    }
}

/// Reads the server's `/metrics`; `None` when it cannot be had.
pub(crate) async fn scrape(target: &Target) -> Option<Buckets> {
    let tcp = tokio::net::TcpStream::connect(target.addr).await.ok()?;
    let mut stream = match &target.tls {
        None => Stream::Plain(tcp),
        Some((name, config)) => Stream::Tls(Box::new(
            tokio_rustls::TlsConnector::from(std::sync::Arc::clone(config))
                .connect(name.clone(), tcp)
                .await
                .ok()?,
        )),
    };
    let request = format!(
        "GET /metrics HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        target.addr
    );
    let read = async {
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut page = String::new();
        stream.read_to_string(&mut page).await.ok()?;
        Some(page)
    };
    let page = tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .ok()??;
    Some(Buckets::parse(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_difference_of_two_pages() {
        let page = |a: u64, b: u64, c: u64| {
            format!(
                "# TYPE kvs_relay_latency_seconds histogram\n\
                 {HISTOGRAM}{{le=\"0.0001\"}} {a}\n{HISTOGRAM}{{le=\"0.001\"}} {b}\n\
                 {HISTOGRAM}{{le=\"+Inf\"}} {c}\nkvs_relay_latency_seconds_count {c}\n"
            )
        };
        let before = Buckets::parse(&page(10, 10, 10));
        let after = Buckets::parse(&page(10 + 90, 10 + 99, 10 + 100));
        let report = after.since(&before).unwrap();
        assert_eq!(report.count, 100);
        // 90 at most 100 µs, 9 between 100 µs and 1 ms, 1 above.
        assert!(report.p50 <= 100, "{report:?}");
        assert!((100..=1000).contains(&report.p99), "{report:?}");
        assert!(report.p999 > 1000, "{report:?}");
        assert_eq!(after.since(&after), None);
        assert_eq!(Buckets::parse("nothing here"), Buckets::default());
    }
}
