//! The channels of a run: created through the control plane with SigV4, or synthesized.

use std::time::Instant;

use futures_util::StreamExt as _;
use kvs_ice_rest::{RestClient, TlsTrust};
use kvs_signaling_proto::{ChannelArn, ChannelName, ErrorType, Role};

use crate::report::SetupReport;
use crate::{LoadError, RunConfig};

/// The account of synthesized ARNs.
const SYNTHETIC_ACCOUNT: &str = "123456789012";

/// The channels to connect to and the WebSocket endpoint.
#[derive(Debug)]
pub(crate) struct Setup {
    /// By channel index; `None` when the channel could not be created.
    pub(crate) arns: Vec<Option<ChannelArn>>,
    /// `ws://…` or `wss://…`, as presigned.
    pub(crate) ws_endpoint: String,
    /// The TLS configuration `wss://` connects with.
    pub(crate) tls: std::sync::Arc<rustls::ClientConfig>,
    pub(crate) report: SetupReport,
    /// Whether the deadline cut the setup short.
    pub(crate) deadline_hit: bool,
}

/// The control-plane URL and the WebSocket endpoint derived from `--endpoint`: `http://` and
/// `ws://` name each other, a bare `host:port` is `http://`.
pub(crate) fn endpoints(endpoint: &str) -> Result<(String, String), LoadError> {
    let endpoint = endpoint.trim_end_matches('/');
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("http", endpoint));
    let (http, ws) = match scheme {
        "http" | "ws" => ("http", "ws"),
        "https" | "wss" => ("https", "wss"),
        other => {
            return Err(LoadError::Endpoint {
                endpoint: endpoint.to_owned(),
                reason: format!("unknown scheme {other:?}: use http://host:port"),
            });
        }
    };
    Ok((format!("{http}://{rest}"), format!("{ws}://{rest}")))
}

/// The name of channel `i`.
pub(crate) fn channel_name(config: &RunConfig, i: usize) -> Result<ChannelName, LoadError> {
    ChannelName::new(format!("{}{i}", config.channel_prefix))
        .map_err(|err| LoadError::config("--channel-prefix", err.to_string()))
}

/// Creates (or synthesizes) the channels, within `deadline`.
pub(crate) async fn setup(
    config: &RunConfig,
    deadline: tokio::time::Instant,
) -> Result<Setup, LoadError> {
    let started = Instant::now();
    let (control, derived_ws) = endpoints(&config.endpoint)?;
    let mut trust = TlsTrust::default();
    if let Some(pem) = &config.ca_pem {
        trust = trust
            .with_pem(pem)
            .map_err(|err| LoadError::config("--ca-file", err.to_string()))?;
    }
    let rest = RestClient::new(
        &control,
        config.region.clone(),
        config.credentials.clone(),
        trust,
    )
    .map_err(|err| LoadError::Endpoint {
        endpoint: config.endpoint.clone(),
        reason: err.to_string(),
    })?;
    let tls = rest.tls_config();
    let names = (0..config.channels)
        .map(|i| channel_name(config, i))
        .collect::<Result<Vec<_>, _>>()?;
    if config.no_create {
        let arns = names
            .iter()
            .map(|name| {
                ChannelArn::for_channel("aws", &config.region, SYNTHETIC_ACCOUNT, name, 1)
                    .map(Some)
                    .map_err(|err| LoadError::config("--region", err.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Setup {
            arns,
            ws_endpoint: derived_ws,
            tls,
            report: SetupReport::default(),
            deadline_hit: false,
        });
    }
    let mut report = SetupReport {
        created_channels: true,
        ..SetupReport::default()
    };
    let mut arns: Vec<Option<ChannelArn>> = vec![None; names.len()];
    let mut results = futures_util::stream::iter(names.iter().enumerate())
        .map(|(i, name)| {
            let rest = &rest;
            async move { (i, create(rest, name).await) }
        })
        .buffer_unordered(config.setup_concurrency);
    let mut deadline_hit = false;
    let mut done = 0;
    while done < names.len() {
        let Ok(next) = tokio::time::timeout_at(deadline, results.next()).await else {
            deadline_hit = true;
            break;
        };
        let Some((i, result)) = next else { break };
        done += 1;
        match result {
            Ok((arn, created)) => {
                if created {
                    report.created += 1;
                } else {
                    report.existed += 1;
                }
                if let Some(slot) = arns.get_mut(i) {
                    *slot = Some(arn);
                }
            }
            Err(key) => {
                report.failed += 1;
                *report.errors.entry(key).or_default() += 1;
            }
        }
    }
    drop(results);
    let missing = names.len().saturating_sub(done) as u64;
    if missing > 0 {
        report.failed += missing;
        *report.errors.entry("deadline".to_owned()).or_default() += missing;
    }
    let Some(first) = arns.iter().flatten().next().cloned() else {
        return Err(LoadError::Setup {
            reason: format!(
                "no channel could be created or described at {control}: {:?}",
                report.errors
            ),
        });
    };
    // The endpoint the service hands out, as an SDK asks for it.
    let ws_endpoint =
        match tokio::time::timeout_at(deadline, rest.get_endpoints(&first, Role::Master)).await {
            Ok(Ok(endpoints)) => endpoints.wss,
            Ok(Err(err)) => {
                return Err(LoadError::Setup {
                    reason: format!("GetSignalingChannelEndpoint: {err}"),
                });
            }
            Err(_) => {
                deadline_hit = true;
                derived_ws
            }
        };
    report.seconds = started.elapsed().as_secs_f64();
    Ok(Setup {
        arns,
        ws_endpoint,
        tls,
        report,
        deadline_hit,
    })
}

/// Creates `name` (an existing channel is fine) and reads its ARN; the error is the key of
/// the failure in the report.
async fn create(rest: &RestClient, name: &ChannelName) -> Result<(ChannelArn, bool), String> {
    let key = |err: kvs_signaling_core::RequestError| match (err.error_type, err.status) {
        (Some(error_type), _) => error_type.to_string(),
        (None, Some(status)) => format!("http_{status}"),
        (None, None) => "request_failed".to_owned(),
    };
    let created = match rest.create_channel(name).await {
        Ok(()) => true,
        Err(err) if err.error_type == Some(ErrorType::ResourceInUseException) => false,
        Err(err) => return Err(key(err)),
    };
    let info = rest.describe_channel(name).await.map_err(key)?;
    info.channel_arn
        .map(|arn| (arn, created))
        .ok_or_else(|| "no_arn".to_owned())
}
