//! A Redis server's own counters, read with `INFO all` over a plain RESP connection at both
//! ends of a measurement: the commands it ran, by name, and its CPU time. For servers that
//! keep their shared state in Redis (a kvs-signaling cluster), this is Redis's share of the
//! work.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use crate::report::RedisReport;

/// How long one reading may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The largest `INFO` answer read (a few KB in practice).
const MAX_INFO: usize = 1 << 20;

/// `host:port` from `host:port` or `redis://host:port[/db]`; credentials are not supported.
pub(crate) fn address(text: &str) -> Result<String, String> {
    let rest = text.strip_prefix("redis://").unwrap_or(text);
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err("a password is not supported; use a Redis without one".to_owned());
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(authority.to_owned())
        }
        _ => Err(format!("{text:?} is not host:port or redis://host:port")),
    }
}

/// One reading of a Redis server's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Sample {
    /// When it was read.
    at: Option<Instant>,
    /// `INFO commandstats`: calls by command name (`xadd`, `evalsha`, `config|get`, …).
    calls: BTreeMap<String, u64>,
    /// `used_cpu_user + used_cpu_sys`, seconds.
    cpu_seconds: f64,
    /// `total_reads_processed`: the reads of client sockets Redis processed.
    reads: u64,
}

impl Sample {
    /// The figures of an `INFO all` answer.
    pub(crate) fn parse(info: &str) -> Self {
        let mut sample = Self::default();
        for line in info.lines() {
            let Some((key, value)) = line.trim().split_once(':') else {
                continue;
            };
            if let Some(name) = key.strip_prefix("cmdstat_") {
                let calls = value
                    .split(',')
                    .find_map(|field| field.strip_prefix("calls="))
                    .and_then(|calls| calls.parse().ok());
                if let Some(calls) = calls {
                    sample.calls.insert(name.to_owned(), calls);
                }
                continue;
            }
            match key {
                "used_cpu_user" | "used_cpu_sys" => {
                    sample.cpu_seconds += value.parse::<f64>().unwrap_or(0.0);
                }
                "total_reads_processed" => sample.reads = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        sample
    }

    /// What happened between `before` and `self`; `messages` and `connects` are what the
    /// generator counted over the same time (for the ratios, where they apply). The
    /// generator's own `INFO` calls are left out.
    pub(crate) fn since(
        &self,
        before: &Self,
        addr: &str,
        messages: Option<u64>,
        connects: Option<u64>,
    ) -> RedisReport {
        let commands: BTreeMap<String, u64> = self
            .calls
            .iter()
            .filter(|(name, _)| name.as_str() != "info")
            .map(|(name, &calls)| {
                let earlier = before.calls.get(name).copied().unwrap_or(0);
                (name.clone(), calls.saturating_sub(earlier))
            })
            .filter(|&(_, calls)| calls > 0)
            .collect();
        let calls: u64 = commands.values().sum();
        let seconds = match (before.at, self.at) {
            (Some(before), Some(after)) => after.saturating_duration_since(before).as_secs_f64(),
            _ => 0.0,
        };
        let cpu_seconds = round((self.cpu_seconds - before.cpu_seconds).max(0.0), 6);
        let ratio = |count: Option<u64>, value: f64, scale: f64| match count {
            Some(count) if count > 0 => Some(round(value * scale / count as f64, 3)),
            _ => None,
        };
        RedisReport {
            addr: addr.to_owned(),
            seconds: round(seconds, 3),
            calls,
            calls_per_second: if seconds > 0.0 {
                round(calls as f64 / seconds, 1)
            } else {
                0.0
            },
            calls_per_message: ratio(messages, calls as f64, 1.0),
            calls_per_connect: ratio(connects, calls as f64, 1.0),
            reads: self.reads.saturating_sub(before.reads),
            cpu_seconds,
            cpu_us_per_message: ratio(messages, cpu_seconds, 1e6),
            cpu_us_per_connect: ratio(connects, cpu_seconds, 1e6),
            commands,
        }
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10_f64.powi(digits);
    (value * scale).round() / scale
}

/// Reads the counters of the Redis at `addr` (`host:port`); `None` when it cannot be had.
pub(crate) async fn sample(addr: &str) -> Option<Sample> {
    let read = async {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut stream = BufReader::new(stream);
        stream
            .get_mut()
            .write_all(b"*2\r\n$4\r\nINFO\r\n$3\r\nall\r\n")
            .await
            .ok()?;
        // A bulk string: `$<length>\r\n<bytes>\r\n`.
        let mut header = String::new();
        stream.read_line(&mut header).await.ok()?;
        let length: usize = header.trim_end().strip_prefix('$')?.parse().ok()?;
        if length > MAX_INFO {
            return None;
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.ok()?;
        String::from_utf8(body).ok()
    };
    let info = tokio::time::timeout(TIMEOUT, read).await.ok()??;
    let mut sample = Sample::parse(&info);
    sample.at = Some(Instant::now());
    Some(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(address("127.0.0.1:6379").unwrap(), "127.0.0.1:6379");
        assert_eq!(address("redis://cache:7000/0").unwrap(), "cache:7000");
        assert!(address("redis://:secret@cache:7000").is_err());
        assert!(address("cache").is_err());
        assert!(address(":6379").is_err());
    }

    #[test]
    fn counters_are_the_difference_of_two_readings() {
        let page = |xadd: u64, info: u64, cpu: f64, reads: u64| {
            format!(
                "# CPU\r\nused_cpu_sys:{cpu}\r\nused_cpu_user:{cpu}\r\n\
                 used_cpu_sys_children:9.0\r\n# Stats\r\ntotal_reads_processed:{reads}\r\n\
                 # Commandstats\r\ncmdstat_xadd:calls={xadd},usec=10,usec_per_call=1.00,\
                 rejected_calls=0,failed_calls=0\r\n\
                 cmdstat_info:calls={info},usec=3,usec_per_call=1.00\r\n\
                 cmdstat_config|get:calls=1,usec=3,usec_per_call=3.00\r\n"
            )
        };
        let before = Sample::parse(&page(10, 1, 0.5, 100));
        assert_eq!(before.calls.get("xadd"), Some(&10));
        assert_eq!(before.calls.get("config|get"), Some(&1));
        let after = Sample::parse(&page(30, 2, 0.75, 140));
        let report = after.since(&before, "127.0.0.1:6379", Some(40), None);
        // The INFO calls are the generator's; unchanged counters are left out.
        assert_eq!(report.commands, BTreeMap::from([("xadd".to_owned(), 20)]));
        assert_eq!(report.calls, 20);
        assert_eq!(report.calls_per_message, Some(0.5));
        assert_eq!(report.calls_per_connect, None);
        assert_eq!(report.reads, 40);
        // User and system time, children left out.
        assert_eq!(report.cpu_seconds, 0.5);
        assert_eq!(report.cpu_us_per_message, Some(12_500.0));
    }
}
