//! A load generator for KVS WebRTC signaling servers, and a minimal reference relay to compare
//! them with.
//!
//! [`run`] measures a server with the real protocol, as the official SDKs speak it: it creates
//! signaling channels through the control plane (SigV4-signed [`kvs_ice_rest::RestClient`]
//! calls), connects a master and viewers per channel over WebSocket with presigned URLs
//! ([`kvs_ice_rest::presign_connect_url`]), then drives one of three [`Mode`]s:
//!
//! - [`Mode::Hold`]: connect everything, probe every master–viewer pair at the start and at the
//!   end, hold in between; reports connections held, the connect rate and, given the server's
//!   pid, its resident memory per connection.
//! - [`Mode::Saturate`]: a closed loop with a window of messages in flight per pair; reports
//!   relayed messages per second and the server's CPU time per message.
//! - [`Mode::Rate`]: an open loop at a fixed total rate, each payload carrying its send time;
//!   reports the one-way latency distribution, the achieved rate, lost and late messages.
//!
//! Everything is bounded by [`RunConfig::deadline`], even against a server that stalls. The
//! result is a [`Report`], which the `kvs-signaling-loadgen` binary prints as one JSON object.
//!
//! [`ReferenceRelay`] is the ceiling of the stack: a plain tokio-tungstenite server that routes
//! the same frames with no validation, no authentication and no semantics beyond routing.
//!
//! ```no_run
//! use std::time::Duration;
//! use kvs_signaling_loadgen::{Mode, RunConfig, run};
//!
//! # async fn go() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RunConfig::new("http://127.0.0.1:18443", "AKIDLOAD", "secret", Mode::Saturate)
//!     .channels(500)
//!     .duration(Duration::from_secs(10));
//! let report = run(config).await?;
//! println!("{} messages/s", report.messages.per_second);
//! # Ok(())
//! # }
//! ```

mod channel;
mod cli;
mod config;
mod connect;
mod error;
mod payload;
mod redis_info;
mod relay;
mod report;
mod run;
mod scrape;
mod setup;
mod stats;
mod sys;

pub use cli::{Command, USAGE, parse_args};
pub use config::{Mode, PayloadKind, RunConfig};
pub use error::LoadError;
pub use relay::ReferenceRelay;
pub use report::{
    ConnectReport, LatencyReport, MessagesReport, ProbeReport, ProbeRound, ProcessReport,
    RateReport, RedisReport, Report, ServerLatencyReport, SetupReport,
};
pub use run::run;
