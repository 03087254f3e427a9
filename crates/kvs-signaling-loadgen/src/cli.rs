//! The command line of `kvs-signaling-loadgen`.

use std::net::SocketAddr;
use std::time::Duration;

use kvs_ice_rest::Credentials;

use crate::{Mode, PayloadKind, RunConfig};

/// The help text.
pub const USAGE: &str = "\
kvs-signaling-loadgen: measure a KVS WebRTC signaling server with the real protocol

USAGE:
  kvs-signaling-loadgen run --endpoint URL --access-key-id K --secret-access-key S \\
      --mode hold|saturate|rate [OPTIONS]
  kvs-signaling-loadgen reference-relay [--listen ADDR] [--threads N]

run: creates CHANNELS channels (load-0, load-1, ...) through the control plane with SigV4,
connects a master and VIEWERS viewers (v0, v1, ...) to each over WebSocket with presigned
URLs, drives the mode, and prints one JSON object with every figure on stdout (a progress
line goes to stderr every second).

  --endpoint URL             the control plane, http://host:port (ws:// with --no-create)
  --access-key-id K          the access key to sign with     [AWS_ACCESS_KEY_ID]
  --secret-access-key S      its secret                      [AWS_SECRET_ACCESS_KEY]
  --region R                 region of signatures and ARNs   (us-west-2)
  --mode M                   hold: connect, probe each pair, hold --duration, probe again
                             saturate: closed loop, --window messages in flight per pair
                             rate: open loop at --rate messages/s, one-way latency
  --payload P                offer (SDP offer/answer, ~1 KB JSON), large (an SDP of
                             many codecs, ~9.5 KB payload) or candidate (~300 B)
                                                             (offer)
  --channels N               channels                        (100)
  --viewers V                viewers per channel             (1)
  --channel-prefix P         channel name prefix             (load-)
  --no-create                do not create channels; synthesize their ARNs (reference relay)
  --ws-endpoint URL          connect to this ws:// or wss:// endpoint instead of the one
                             GetSignalingChannelEndpoint returns (a cluster node's own
                             address when the nodes hand out a balancer's URL); /metrics
                             is read there too
  --viewer-ws-endpoint URL   connect the viewers here, the masters where --ws-endpoint (or
                             the service) says: a channel split across two cluster nodes
  --ca-file PATH             a CA (PEM) to trust for https:// and wss:// endpoints
  --server-metrics           saturate/rate: read the server's relay-latency histogram from
                             its /metrics at both ends of the measurement window
  --setup-concurrency N      channel creations in flight     (32)
  --connect-concurrency N    WebSocket connects in flight    (256)
  --connect-timeout SECS     per connect                     (10)
  --connect-retries N        retries of a rate-limited connect, 400 ms apart (3)
  --source-ips K             bind sources round-robin to 127.0.0.1..127.0.0.K (0: the
                             system chooses); for more connections than one address's
                             ephemeral ports
  --duration SECS            hold time, or measurement window (10)
  --warmup SECS              saturate/rate: run before measuring (1)
  --window W                 saturate: messages in flight per pair (8)
  --rate R                   rate: messages/s in total, both directions (1000)
  --late-ms MS               rate: a message slower than this is late (1000)
  --probe-timeout SECS       hold: time for a probe round    (10)
  --deadline SECS            hard cap on the whole run       (120)
  --server-pid PID           read the server's memory and CPU time from /proc/PID
  --extra-pid PID            measure another process the same way (repeatable; reported
                             in extra_processes, in order): the other cluster nodes
  --redis-stats HOST:PORT    read this Redis's INFO (commands by name, CPU time) at both
                             ends of the window (hold: of the connecting); reported in
                             redis, per message or per connect
  --correlation-ids          put a correlationId on messages, so refusals come back as
                             STATUS_RESPONSE instead of silent drops
  --threads N                runtime worker threads          (one per CPU)
  --quiet                    no progress lines

reference-relay: a plain tokio-tungstenite relay with no validation and no authentication,
routing the same frames by the connect URL's X-Amz-ChannelARN and X-Amz-ClientId; prints
its listen address on stdout's first line, then serves until killed.

  --listen ADDR              where to listen                 (127.0.0.1:0)

The generator needs one open file per connection: check `ulimit -n` (it cannot raise the
limit itself).
";

/// What the command line asks for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Command {
    /// `run`: a measurement.
    Run {
        /// The run.
        config: Box<RunConfig>,
        /// Runtime worker threads; one per CPU when `None`.
        threads: Option<usize>,
    },
    /// `reference-relay`.
    ReferenceRelay {
        /// Where to listen.
        listen: SocketAddr,
        /// Runtime worker threads; one per CPU when `None`.
        threads: Option<usize>,
    },
    /// `--help`, or no arguments.
    Help,
}

/// Parses the arguments after the program name.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let args: Vec<String> = args.into_iter().collect();
    let Some((command, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    match command.as_str() {
        "run" => parse_run(rest),
        "reference-relay" => parse_relay(rest),
        "-h" | "--help" | "help" => Ok(Command::Help),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag}: {text:?} is not a valid number"))
}

fn seconds(flag: &str, text: &str) -> Result<Duration, String> {
    let value: f64 = number(flag, text)?;
    Duration::try_from_secs_f64(value).map_err(|_| format!("{flag}: {text:?} is not a duration"))
}

fn parse_run(args: &[String]) -> Result<Command, String> {
    let mut endpoint = None;
    let mut access_key_id = None;
    let mut secret_access_key = None;
    let mut mode = None;
    let mut threads = None;
    let mut config = RunConfig::new("", "", "", Mode::Hold);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .map(String::as_str)
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--endpoint" => endpoint = Some(value()?.to_owned()),
            "--access-key-id" => access_key_id = Some(value()?.to_owned()),
            "--secret-access-key" => secret_access_key = Some(value()?.to_owned()),
            "--region" => config.region = value()?.to_owned(),
            "--mode" => {
                mode = Some(match value()? {
                    "hold" => Mode::Hold,
                    "saturate" => Mode::Saturate,
                    "rate" => Mode::Rate,
                    other => {
                        return Err(format!(
                            "--mode: {other:?} is not one of hold, saturate, rate"
                        ));
                    }
                });
            }
            "--payload" => {
                config.payload = match value()? {
                    "offer" => PayloadKind::Offer,
                    "candidate" => PayloadKind::Candidate,
                    "large" => PayloadKind::Large,
                    other => {
                        return Err(format!(
                            "--payload: {other:?} is not one of offer, candidate, large"
                        ));
                    }
                };
            }
            "--channels" => config.channels = number(flag, value()?)?,
            "--viewers" => config.viewers = number(flag, value()?)?,
            "--channel-prefix" => config.channel_prefix = value()?.to_owned(),
            "--no-create" => config.no_create = true,
            "--ws-endpoint" => config.ws_endpoint = Some(value()?.to_owned()),
            "--viewer-ws-endpoint" => config.viewer_ws_endpoint = Some(value()?.to_owned()),
            "--server-metrics" => config.server_metrics = true,
            "--ca-file" => {
                let path = value()?;
                config.ca_pem =
                    Some(std::fs::read(path).map_err(|err| format!("--ca-file {path}: {err}"))?);
            }
            "--setup-concurrency" => config.setup_concurrency = number(flag, value()?)?,
            "--connect-concurrency" => config.connect_concurrency = number(flag, value()?)?,
            "--connect-timeout" => config.connect_timeout = seconds(flag, value()?)?,
            "--connect-retries" => config.connect_retries = number(flag, value()?)?,
            "--source-ips" => config.source_ips = number(flag, value()?)?,
            "--duration" => config.duration = seconds(flag, value()?)?,
            "--warmup" => config.warmup = seconds(flag, value()?)?,
            "--window" => config.window = number(flag, value()?)?,
            "--rate" => config.rate = number(flag, value()?)?,
            "--late-ms" => {
                config.late_threshold = Duration::from_millis(number(flag, value()?)?);
            }
            "--probe-timeout" => config.probe_timeout = seconds(flag, value()?)?,
            "--deadline" => config.deadline = seconds(flag, value()?)?,
            "--server-pid" => config.server_pid = Some(number(flag, value()?)?),
            "--extra-pid" => config.extra_pids.push(number(flag, value()?)?),
            "--redis-stats" => config.redis_stats = Some(value()?.to_owned()),
            "--correlation-ids" => config.correlation_ids = true,
            "--threads" => threads = Some(number(flag, value()?)?),
            "--quiet" => config.progress = false,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    config.endpoint = endpoint.ok_or("--endpoint is required")?;
    config.mode = mode.ok_or("--mode is required: hold, saturate or rate")?;
    config.credentials = match (access_key_id, secret_access_key) {
        (Some(id), Some(secret)) => Credentials::new(id, secret),
        (None, None) => Credentials::from_env().map_err(|err| {
            format!("--access-key-id and --secret-access-key are required ({err})")
        })?,
        _ => return Err("--access-key-id and --secret-access-key go together".to_owned()),
    };
    if threads == Some(0) {
        return Err("--threads must be at least 1".to_owned());
    }
    Ok(Command::Run {
        config: Box::new(config),
        threads,
    })
}

fn parse_relay(args: &[String]) -> Result<Command, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut threads = None;
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .map(String::as_str)
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                let text = value()?;
                listen = text.parse().map_err(|_| {
                    format!("--listen: {text:?} is not an address such as 127.0.0.1:18444")
                })?;
            }
            "--threads" => threads = Some(number::<usize>(flag, value()?)?.max(1)),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(Command::ReferenceRelay { listen, threads })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn run_flags_set_the_config() {
        let command = parse_args(args(
            "run --endpoint http://127.0.0.1:18443 --access-key-id A --secret-access-key S \
             --mode rate --rate 5000 --duration 2.5 --payload candidate --channels 7 \
             --viewers 2 --server-pid 42 --late-ms 250 --source-ips 4 --quiet --threads 3",
        ))
        .unwrap();
        let Command::Run { config, threads } = command else {
            panic!("{command:?}")
        };
        assert_eq!(threads, Some(3));
        assert_eq!(config.mode, Mode::Rate);
        assert_eq!(config.rate, 5000);
        assert_eq!(config.duration, Duration::from_millis(2500));
        assert_eq!(config.payload, PayloadKind::Candidate);
        assert_eq!((config.channels, config.viewers), (7, 2));
        assert_eq!(config.server_pid, Some(42));
        assert_eq!(config.late_threshold, Duration::from_millis(250));
        assert_eq!(config.source_ips, 4);
        assert!(!config.progress);
        assert_eq!(config.credentials.access_key_id, "A");
        // Without the cluster options, everything connects where the service says.
        assert_eq!(config.ws_endpoint, None);
        assert_eq!(config.viewer_ws_endpoint, None);
        assert!(config.extra_pids.is_empty());
        assert_eq!(config.redis_stats, None);
    }

    #[test]
    fn cluster_flags_split_the_connections_and_add_processes() {
        let command = parse_args(args(
            "run --endpoint http://127.0.0.2:9000 --access-key-id A --secret-access-key S \
             --mode saturate --ws-endpoint ws://127.0.0.2:9000 \
             --viewer-ws-endpoint ws://127.0.0.3:9001 --server-pid 10 --extra-pid 11 \
             --extra-pid 12 --redis-stats 127.0.0.1:6379",
        ))
        .unwrap();
        let Command::Run { config, .. } = command else {
            panic!("{command:?}")
        };
        assert_eq!(config.ws_endpoint.as_deref(), Some("ws://127.0.0.2:9000"));
        assert_eq!(
            config.viewer_ws_endpoint.as_deref(),
            Some("ws://127.0.0.3:9001")
        );
        assert_eq!(config.server_pid, Some(10));
        assert_eq!(config.extra_pids, [11, 12]);
        assert_eq!(config.redis_stats.as_deref(), Some("127.0.0.1:6379"));
        assert!(
            parse_args(args("run --extra-pid x"))
                .unwrap_err()
                .contains("--extra-pid")
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text| parse_args(args(text)).unwrap_err();
        assert!(err("run --endpoint x --access-key-id A --secret-access-key S").contains("--mode"));
        assert!(
            err("run --mode hold --access-key-id A --secret-access-key S").contains("--endpoint")
        );
        assert!(err("run --mode fast").contains("fast"));
        assert!(err("run --channels many").contains("--channels"));
        assert!(err("run --bogus").contains("--bogus"));
        assert!(err("relay").contains("relay"));
        assert!(err("reference-relay --listen nowhere").contains("--listen"));
    }

    #[test]
    fn relay_defaults_to_an_ephemeral_loopback_port() {
        match parse_args(args("reference-relay")).unwrap() {
            Command::ReferenceRelay { listen, threads } => {
                assert_eq!(listen, SocketAddr::from(([127, 0, 0, 1], 0)));
                assert_eq!(threads, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_args(Vec::new()).unwrap(), Command::Help));
    }
}
