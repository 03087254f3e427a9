//! `kvs-signaling connect`: an interactive signaling client for debugging, against AWS or this
//! server. It prints every event as one line of JSON (relayed payloads decoded from base64)
//! and sends what the user types.

use std::io::Write as _;
use std::path::PathBuf;

use kvs_ice_rest::{Credentials, RestClient, TlsTrust};
use kvs_signaling_core::{ClientSessionConfig, RequestKind, SessionEvent, SessionState};
use kvs_signaling_proto::{
    Action, ChannelName, ClientId, ClientMessage, CorrelationId, ErrorType, MessagePayload, PeerId,
    Role,
};
use kvs_transport_tokio::{ClientConfig, ClientEvent, Sent, SignalingClient};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

/// What `connect --help` says after the options: how to type messages.
const TYPING: &str = "\
Joins a signaling channel as its master or as a viewer, prints every event as a line of
JSON (payloads decoded from base64) and sends what you type, one message a line:

  offer [to=ID] [id=CID] JSON
                            an SDP offer; JSON is the payload, such as
                            {\"type\":\"offer\",\"sdp\":\"v=0...\"}; it is base64-encoded for you
  answer [to=ID] JSON       an SDP answer
  candidate [to=ID] JSON    an ICE candidate, such as
                            {\"candidate\":\"candidate:...\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}
  raw JSON                  a whole message envelope, sent as it is
  quit                      close and exit (so does end of input)

The master must name the viewer with to=ID; a viewer's messages go to the master. id=CID
sets a correlation id: a failure is then answered with a STATUS_RESPONSE, and with
--delivery-status, what became of the message is reported (HELD, DELIVERED, EXPIRED,
OVERWRITTEN).
Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.";

/// Which side `connect` joins as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RoleArg {
    /// The channel's master.
    Master,
    /// A viewer, with its client id.
    Viewer,
}

/// The options of `kvs-signaling connect`.
#[derive(Debug, clap::Args)]
#[command(after_help = TYPING)]
pub(crate) struct ConnectOptions {
    /// The signaling channel.
    #[arg(long, value_name = "NAME", value_parser = parse_channel)]
    channel: ChannelName,
    /// Which side to join as.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// The viewer's client id (viewers only, and required for them).
    #[arg(long, value_name = "ID", value_parser = parse_client_id)]
    client_id: Option<ClientId>,
    /// The control-plane endpoint [default: `https://kinesisvideo.REGION.amazonaws.com`].
    #[arg(long, value_name = "URL", env = "KVS_ENDPOINT")]
    endpoint: Option<String>,
    /// The region [default: AWS_REGION or AWS_DEFAULT_REGION, else us-west-2].
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Also trust this CA (PEM), such as a kvs-signaling server's development CA,
    /// .kvs-signaling/tls/ca.pem.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Create the channel when it does not exist.
    #[arg(long)]
    create: bool,
    /// Ask a kvs-signaling server for delivery status of messages sent with id=CID (an
    /// extension; the real service does not offer it).
    #[arg(long)]
    delivery_status: bool,
}

fn parse_channel(text: &str) -> Result<ChannelName, String> {
    ChannelName::new(text).map_err(|err| err.to_string())
}

fn parse_client_id(text: &str) -> Result<ClientId, String> {
    ClientId::new(text).map_err(|err| err.to_string())
}

impl ConnectOptions {
    /// The role, checked against the client id: a viewer needs one, a master has none.
    fn role(&self) -> Result<Role, String> {
        match (self.role, &self.client_id) {
            (RoleArg::Viewer, None) => Err("--client-id is required for a viewer".to_owned()),
            (RoleArg::Master, Some(_)) => {
                Err("--client-id is for viewers; the master has none".to_owned())
            }
            (RoleArg::Master, None) => Ok(Role::Master),
            (RoleArg::Viewer, Some(_)) => Ok(Role::Viewer),
        }
    }
}

/// One typed line: what to send.
fn parse_line(line: &str, is_master: bool) -> Result<Option<ClientMessage<'static>>, String> {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let action = match word {
        "" => return Ok(None),
        "offer" => Action::SdpOffer,
        "answer" => Action::SdpAnswer,
        "candidate" => Action::IceCandidate,
        "raw" => {
            let message = ClientMessage::decode(rest.trim()).map_err(|err| err.to_string())?;
            return Ok(Some(message.into_owned()));
        }
        other => {
            return Err(format!(
                "{other:?}: type offer, answer, candidate, raw or quit"
            ));
        }
    };
    let mut rest = rest.trim_start();
    let mut recipient = None;
    let mut correlation_id = None;
    loop {
        if let Some(after) = rest.strip_prefix("to=") {
            let (id, tail) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
            recipient = Some(PeerId::new(id).map_err(|err| format!("to=: {err}"))?);
            rest = tail.trim_start();
        } else if let Some(after) = rest.strip_prefix("id=") {
            let (id, tail) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
            correlation_id = Some(CorrelationId::new(id).map_err(|err| format!("id=: {err}"))?);
            rest = tail.trim_start();
        } else {
            break;
        }
    }
    if is_master && recipient.is_none() {
        return Err("the master must name the viewer: offer to=ID {...}".to_owned());
    }
    serde_json::from_str::<Value>(rest)
        .map_err(|err| format!("the payload must be JSON: {err}"))?;
    let mut message = ClientMessage::new(action, MessagePayload::encode(rest.as_bytes()));
    message.recipient_client_id = recipient;
    message.correlation_id = correlation_id;
    Ok(Some(message))
}

/// The payload decoded from base64, as JSON when it is JSON, else as text.
fn decoded(payload: &MessagePayload<'_>) -> Value {
    match payload.decode() {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        Err(err) => json!({ "undecodable": err.to_string(), "base64": payload.as_str() }),
    }
}

/// A session state as `connect` prints it.
fn state_name(state: SessionState) -> &'static str {
    match state {
        SessionState::New => "new",
        SessionState::Describing => "describing",
        SessionState::Creating => "creating",
        SessionState::GettingEndpoints => "getting-endpoints",
        SessionState::GettingIceConfig => "getting-ice-config",
        SessionState::Connecting => "connecting",
        SessionState::Connected => "connected",
        SessionState::WaitingToRetry => "waiting-to-retry",
        SessionState::Closed => "closed",
        SessionState::Failed => "failed",
        _ => "other",
    }
}

/// A request as `connect` prints it: the operation's name.
fn request_name(request: RequestKind) -> &'static str {
    match request {
        RequestKind::Describe => "DescribeSignalingChannel",
        RequestKind::Create => "CreateSignalingChannel",
        RequestKind::GetEndpoints => "GetSignalingChannelEndpoint",
        RequestKind::GetIceConfig => "GetIceServerConfig",
        RequestKind::Connect => "Connect",
        _ => "other",
    }
}

/// An event as one line of JSON.
fn line(event: &ClientEvent) -> Value {
    let relayed = |kind: &str, sender: &Option<PeerId>, payload: &MessagePayload<'_>| {
        json!({
            "event": kind,
            "sender": sender.as_ref().map(|s| s.as_str()),
            "payload": decoded(payload),
        })
    };
    match event {
        ClientEvent::Offer(r) => relayed("SDP_OFFER", &r.sender, &r.payload),
        ClientEvent::Answer(r) => relayed("SDP_ANSWER", &r.sender, &r.payload),
        ClientEvent::IceCandidate(r) => relayed("ICE_CANDIDATE", &r.sender, &r.payload),
        ClientEvent::Undecodable {
            message_type,
            sender,
            payload,
            error,
        } => json!({
            "event": "undecodable",
            "messageType": message_type.as_str(),
            "sender": sender.as_ref().map(|s| s.as_str()),
            "payload": payload.as_ref().map(decoded),
            "error": error,
        }),
        ClientEvent::Session(SessionEvent::StatusResponse(status)) => json!({
            "event": "STATUS_RESPONSE",
            "correlationId": status.correlation_id.as_ref().map(|c| c.as_str()),
            "errorType": status.error_type,
            "statusCode": status.status_code,
            "description": status.description,
        }),
        ClientEvent::Session(SessionEvent::IceServersUpdated(servers)) => json!({
            "event": "ice-servers",
            "servers": servers.iter().map(|s| json!({
                "uris": s.uris.iter().flatten().map(|u| u.as_str()).collect::<Vec<_>>(),
                "username": s.username.as_ref().map(|u| u.as_str()),
                "password": s.password.as_ref().map(|p| p.as_str()),
                "ttl": s.ttl.map(|t| t.get()),
            })).collect::<Vec<_>>(),
        }),
        ClientEvent::Session(SessionEvent::StateChanged(state)) => {
            json!({ "event": "state", "state": state_name(*state) })
        }
        ClientEvent::Session(SessionEvent::GoAway) => json!({ "event": "GO_AWAY" }),
        ClientEvent::Session(SessionEvent::ReconnectIceServer) => {
            json!({ "event": "RECONNECT_ICE_SERVER" })
        }
        ClientEvent::Session(SessionEvent::RequestFailed { request, error }) => json!({
            "event": "request-failed",
            "request": request_name(*request),
            "statusCode": error.status,
            "errorType": error.error_type.map(ErrorType::name),
            "error": error.to_string(),
        }),
        ClientEvent::Session(SessionEvent::CredentialsRejected) => {
            json!({ "event": "credentials-rejected" })
        }
        ClientEvent::Session(SessionEvent::RetryScheduled { attempt, at }) => json!({
            "event": "retry",
            "attempt": attempt,
            "inMilliseconds": at
                .saturating_duration_since(std::time::Instant::now())
                .as_millis(),
        }),
        ClientEvent::Session(SessionEvent::Failed(reason)) => {
            json!({ "event": "failed", "reason": reason.to_string() })
        }
        ClientEvent::Session(other) => {
            json!({ "event": "session", "detail": format!("{other:?}") })
        }
        ClientEvent::DeliveryStatus(status) => json!({
            "event": "DELIVERY_STATUS",
            "correlationId": status.correlation_id.as_str(),
            "recipient": status.recipient_client_id.as_ref().map(|id| id.as_str()),
            "status": status.status.as_str(),
        }),
        ClientEvent::Undelivered(messages) => json!({
            "event": "undelivered",
            "messages": messages.iter().map(ClientMessage::encode).collect::<Vec<_>>(),
        }),
        other => json!({ "event": "other", "detail": format!("{other:?}") }),
    }
}

/// Runs `connect` until the user quits or the session fails.
#[expect(
    clippy::print_stdout,
    reason = "the interactive client prints its events"
)]
pub(crate) async fn run(options: ConnectOptions) -> Result<(), String> {
    let role = options.role()?;
    let credentials = Credentials::from_env().map_err(|err| err.to_string())?;
    let region = options
        .region
        .or_else(|| kvs_ice_rest::region_from_env().ok())
        .unwrap_or_else(|| "us-west-2".to_owned());
    let endpoint = options
        .endpoint
        .unwrap_or_else(|| format!("https://kinesisvideo.{region}.amazonaws.com"));
    let mut trust = TlsTrust::default();
    if let Some(path) = &options.ca_file {
        let pem =
            std::fs::read(path).map_err(|err| format!("--ca-file {}: {err}", path.display()))?;
        trust = trust
            .with_pem(&pem)
            .map_err(|err| format!("--ca-file {}: {err}", path.display()))?;
    }
    let rest =
        RestClient::new(&endpoint, &region, credentials, trust).map_err(|err| err.to_string())?;
    let is_master = role == Role::Master;
    let mut session =
        ClientSessionConfig::new(options.channel, role).create_if_missing(options.create);
    if let Some(id) = options.client_id {
        session = session.client_id(id);
    }
    let (client, mut events) = SignalingClient::start(
        ClientConfig::new(session, rest).delivery_status(options.delivery_status),
    )
    .map_err(|err| err.to_string())?;
    let mut input = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                let _ = writeln!(stdout, "{}", line(&event));
                let _ = stdout.flush();
            }
            typed = input.next_line() => {
                let text = match typed {
                    Ok(Some(text)) => text,
                    Ok(None) => break,
                    Err(err) => return Err(format!("reading input: {err}")),
                };
                if text.trim() == "quit" {
                    break;
                }
                match parse_line(&text, is_master) {
                    Ok(Some(message)) => match client.send(message).await {
                        Ok(sent) => println!("{}", json!({ "event": "sent", "how": match sent { Sent::Written => "written", Sent::Queued => "queued", _ => "other" } })),
                        Err(err) => println!("{}", json!({ "event": "not-sent", "error": err.to_string() })),
                    },
                    Ok(None) => {}
                    Err(err) => println!("{}", json!({ "event": "input-error", "error": err })),
                }
            }
        }
    }
    client.close().await;
    while let Some(event) = events.next().await {
        println!("{}", line(&event));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kvs_signaling_core::FailureReason;

    use super::*;

    /// `connect`'s options as the command line gives them.
    fn parse(list: &[&str]) -> Result<ConnectOptions, String> {
        use clap::Parser as _;
        let mut all = vec!["kvs-signaling", "connect"];
        all.extend_from_slice(list);
        let cli = crate::cli::Cli::try_parse_from(all).map_err(|err| err.to_string())?;
        let crate::cli::Command::Connect(options) = cli.command else {
            unreachable!("connect parses as connect")
        };
        options.role()?;
        Ok(*options)
    }

    #[test]
    fn options_name_what_is_missing_or_wrong() {
        let err = parse(&["--role", "viewer"]).unwrap_err();
        assert!(err.contains("--channel"), "{err}");
        let err = parse(&["--channel", "c", "--role", "viewer"]).unwrap_err();
        assert!(err.contains("--client-id"), "{err}");
        let err = parse(&["--channel", "c", "--role", "master", "--client-id", "m"]).unwrap_err();
        assert!(err.contains("--client-id is for viewers"), "{err}");
        let err = parse(&["--channel", "c", "--role", "boss"]).unwrap_err();
        assert!(err.contains("'boss'") && err.contains("--role"), "{err}");
        let err = parse(&["--channel", "bad name", "--role", "master"]).unwrap_err();
        assert!(err.contains("--channel"), "{err}");
        let ok = parse(&["--channel", "c", "--role", "viewer", "--client-id", "v1"]).unwrap();
        assert_eq!(
            ok.client_id.map(|c| c.as_str().to_owned()).as_deref(),
            Some("v1")
        );
    }

    #[test]
    fn typed_lines_take_a_correlation_id_and_delivery_status_prints_as_json() {
        let message = parse_line(r#"answer to=v1 id=c-7 {"type":"answer","sdp":"v=0"}"#, true)
            .unwrap()
            .unwrap();
        assert_eq!(message.recipient_client_id.unwrap().as_str(), "v1");
        assert_eq!(message.correlation_id.unwrap().as_str(), "c-7");
        let message = parse_line(r#"offer id=o1 to=m {"type":"offer","sdp":"v=0"}"#, false)
            .unwrap()
            .unwrap();
        assert_eq!(message.correlation_id.unwrap().as_str(), "o1");
        let err = parse_line(r#"offer id=bad! {"type":"offer","sdp":"v=0"}"#, false).unwrap_err();
        assert!(err.starts_with("id=: "), "{err}");
        let status = kvs_signaling_proto::DeliveryStatus::new(
            CorrelationId::new("c-7").unwrap(),
            Some(PeerId::new("v1").unwrap()),
            kvs_signaling_proto::DeliveryState::Delivered,
        );
        assert_eq!(
            line(&ClientEvent::DeliveryStatus(status)),
            json!({"event": "DELIVERY_STATUS", "correlationId": "c-7", "recipient": "v1", "status": "DELIVERED"})
        );
        assert!(
            parse(&["--channel", "c", "--role", "master", "--delivery-status"])
                .unwrap()
                .delivery_status
        );
    }

    #[test]
    fn typed_lines_become_messages() {
        let message = parse_line(r#"offer {"type":"offer","sdp":"v=0"}"#, false)
            .unwrap()
            .unwrap();
        assert_eq!(message.action, Action::SdpOffer);
        assert_eq!(
            message.message_payload.decode().unwrap(),
            br#"{"type":"offer","sdp":"v=0"}"#
        );
        let message = parse_line(r#"candidate to=v1 {"candidate":""}"#, true)
            .unwrap()
            .unwrap();
        assert_eq!(
            message
                .recipient_client_id
                .map(|p| p.as_str().to_owned())
                .as_deref(),
            Some("v1")
        );
        assert!(
            parse_line(r#"answer {"type":"answer"}"#, true)
                .unwrap_err()
                .contains("to=ID")
        );
        assert!(
            parse_line("offer not json", false)
                .unwrap_err()
                .contains("JSON")
        );
        assert!(
            parse_line("hello", false)
                .unwrap_err()
                .contains("\"hello\"")
        );
        assert_eq!(parse_line("   ", false).unwrap(), None);
        let raw = parse_line(
            r#"raw {"action":"SDP_OFFER","messagePayload":"e30=","correlationId":"c1"}"#,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            raw.correlation_id.map(|c| c.as_str().to_owned()).as_deref(),
            Some("c1")
        );
    }

    #[test]
    fn payloads_print_as_json() {
        let payload = MessagePayload::encode(br#"{"type":"answer","sdp":"v=0"}"#);
        assert_eq!(decoded(&payload), json!({"type": "answer", "sdp": "v=0"}));
        let text = MessagePayload::encode(b"plain");
        assert_eq!(decoded(&text), json!("plain"));
    }

    #[test]
    fn session_events_print_as_json_not_debug_text() {
        let session = |event| line(&ClientEvent::Session(event));
        assert_eq!(
            session(SessionEvent::StateChanged(SessionState::GettingEndpoints)),
            json!({"event": "state", "state": "getting-endpoints"})
        );
        assert_eq!(session(SessionEvent::GoAway), json!({"event": "GO_AWAY"}));
        assert_eq!(
            session(SessionEvent::ReconnectIceServer),
            json!({"event": "RECONNECT_ICE_SERVER"})
        );
        assert_eq!(
            session(SessionEvent::CredentialsRejected),
            json!({"event": "credentials-rejected"})
        );
        let retry = session(SessionEvent::RetryScheduled {
            attempt: 3,
            at: std::time::Instant::now() + std::time::Duration::from_secs(60),
        });
        assert_eq!(retry["event"], "retry");
        assert_eq!(retry["attempt"], 3);
        let wait = retry["inMilliseconds"].as_u64().unwrap();
        assert!((59_000..=60_000).contains(&wait), "{retry}");
        let failed = session(SessionEvent::Failed(FailureReason::ChannelNotFound {
            name: ChannelName::new("door").unwrap(),
        }));
        assert_eq!(
            failed,
            json!({"event": "failed", "reason": "channel door does not exist"})
        );
        for state in [
            SessionState::New,
            SessionState::Describing,
            SessionState::Creating,
            SessionState::GettingIceConfig,
            SessionState::Connecting,
            SessionState::Connected,
            SessionState::WaitingToRetry,
            SessionState::Closed,
            SessionState::Failed,
        ] {
            assert_ne!(state_name(state), "other", "{state:?}");
        }
    }
}
