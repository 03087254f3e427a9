#![cfg(test)]

//! The Rust `SignalingClient` against the server over real sockets: both roles, every event
//! type, reconnects after the server drops the socket, after GO_AWAY and after a restart, and
//! messages queued while reconnecting.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvs_ice_rest::{Credentials, ProxyConfig, RestClient, TlsTrust, TurnConfig, TurnSecret};
use kvs_signaling_core::{ClientSessionConfig, HubConfig, SessionEvent, SessionState};
use kvs_signaling_proto::{
    Action, ChannelName, ClientId, ClientMessage, CorrelationId, IceCandidate, IceServerTtl,
    IceUri, MessagePayload, PeerId, Role, SdpType, SessionDescription,
};
use kvs_signaling_server::{Server, ServerConfig};
use kvs_transport_tokio::{ClientConfig, ClientEvent, Events, Sent, SignalingClient};

const KEY: &str = "AKIDCLIENTTEST";
const SECRET: &str = "client-test-secret";

fn server_config(listen: SocketAddr, hub: HubConfig) -> ServerConfig {
    let ice = TurnConfig::new(
        vec![IceUri::new("turn:127.0.0.1:3478?transport=udp").unwrap()],
        vec![IceUri::new("stun:127.0.0.1:3478").unwrap()],
        vec![TurnSecret::new("turn-secret")],
        IceServerTtl::default(),
    )
    .unwrap();
    ServerConfig::new(listen, vec![Credentials::new(KEY, SECRET)], ice)
        .hub(hub)
        .shards(1)
}

async fn start(hub: HubConfig) -> Server {
    Server::start(server_config("127.0.0.1:0".parse().unwrap(), hub))
        .await
        .unwrap()
}

/// A client of `server` for `channel`: the master when `client_id` is `None`.
fn client(
    endpoint: &str,
    channel: &str,
    client_id: Option<&str>,
    tune: impl FnOnce(ClientSessionConfig) -> ClientSessionConfig,
) -> (SignalingClient, Events) {
    proxied_client(endpoint, channel, client_id, tune, ProxyConfig::none())
}

/// [`client`] through the proxies of `proxy`.
fn proxied_client(
    endpoint: &str,
    channel: &str,
    client_id: Option<&str>,
    tune: impl FnOnce(ClientSessionConfig) -> ClientSessionConfig,
    proxy: ProxyConfig,
) -> (SignalingClient, Events) {
    let role = if client_id.is_some() {
        Role::Viewer
    } else {
        Role::Master
    };
    let mut session = ClientSessionConfig::new(ChannelName::new(channel).unwrap(), role)
        .create_if_missing(client_id.is_none())
        .backoff_initial(Duration::from_millis(50))
        .backoff_max(Duration::from_millis(400));
    if let Some(id) = client_id {
        session = session.client_id(ClientId::new(id).unwrap());
    }
    let rest = RestClient::new(
        endpoint,
        "us-west-2",
        Credentials::new(KEY, SECRET),
        TlsTrust::default(),
    )
    .unwrap()
    .with_proxy(proxy)
    .unwrap();
    SignalingClient::start(ClientConfig::new(tune(session), rest)).unwrap()
}

/// The next event that `pick` accepts, skipping the others; fails after 10 s.
async fn until<T>(events: &mut Events, mut pick: impl FnMut(ClientEvent) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("no such event within 10 s")
            .expect("the client stopped");
        // Shown when a test fails: the events that led there.
        eprintln!("event: {event:?}");
        if let Some(found) = pick(event) {
            return found;
        }
    }
}

async fn connected(events: &mut Events) {
    until(events, |e| {
        (e == ClientEvent::Session(SessionEvent::StateChanged(SessionState::Connected)))
            .then_some(())
    })
    .await;
}

fn offer(text: &str) -> SessionDescription {
    SessionDescription::new(SdpType::Offer, format!("v=0\r\ns={text}\r\n"))
}

#[tokio::test]
async fn master_and_viewer_exchange_every_message_type() {
    let server = start(HubConfig::default()).await;
    let url = server.public_url().to_owned();
    let (master, mut master_events) = client(&url, "rust-client", None, |s| s);
    // The ICE configuration comes before the connect.
    let servers = until(&mut master_events, |e| match e {
        ClientEvent::Session(SessionEvent::IceServersUpdated(servers)) => Some(servers),
        _ => None,
    })
    .await;
    assert!(
        servers.iter().any(|s| s
            .uris
            .iter()
            .flatten()
            .any(|u| u.as_str().starts_with("turn:"))),
        "{servers:?}"
    );
    connected(&mut master_events).await;
    assert_eq!(master.state(), SessionState::Connected);
    assert_eq!(
        master.ice_servers(),
        servers,
        "the getter keeps what the event said"
    );
    let (viewer, mut viewer_events) = client(&url, "rust-client", Some("viewer-1"), |s| s);
    connected(&mut viewer_events).await;

    // Viewer to master: the offer and a candidate, with the viewer's id as sender.
    assert_eq!(
        viewer.send_offer(None, &offer("hello")).await,
        Ok(Sent::Written)
    );
    let candidate = IceCandidate::new(
        "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
        "0",
        0,
    );
    viewer.send_ice_candidate(None, &candidate).await.unwrap();
    let got = until(&mut master_events, |e| match e {
        ClientEvent::Offer(received) => Some(received),
        _ => None,
    })
    .await;
    let viewer_id = PeerId::new("viewer-1").unwrap();
    assert_eq!(got.sender.as_ref(), Some(&viewer_id));
    assert_eq!(got.body, offer("hello"));
    let got = until(&mut master_events, |e| match e {
        ClientEvent::IceCandidate(received) => Some(received),
        _ => None,
    })
    .await;
    assert_eq!(
        (got.sender.as_ref(), &got.body),
        (Some(&viewer_id), &candidate)
    );

    // Master to viewer: the answer and a candidate; the service names no sender.
    let answer = SessionDescription::new(SdpType::Answer, "v=0\r\ns=answer\r\n");
    master.send_answer(Some(&viewer_id), &answer).await.unwrap();
    master
        .send_ice_candidate(Some(&viewer_id), &candidate)
        .await
        .unwrap();
    let got = until(&mut viewer_events, |e| match e {
        ClientEvent::Answer(received) => Some(received),
        _ => None,
    })
    .await;
    assert_eq!((got.sender, got.body), (None, answer));
    let got = until(&mut viewer_events, |e| match e {
        ClientEvent::IceCandidate(received) => Some(received),
        _ => None,
    })
    .await;
    assert_eq!(got.body, candidate);

    // The master must name its recipient; the client says so before sending anything.
    assert!(master.send_offer(None, &offer("x")).await.is_err());

    // A STATUS_RESPONSE: a payload over the service's limit, with a correlation id.
    let mut too_big = ClientMessage::new(
        Action::SdpOffer,
        MessagePayload::with_max_len("A".repeat(12_000), 20_000).unwrap(),
    );
    too_big.correlation_id = Some(CorrelationId::new("big-1").unwrap());
    viewer.send(too_big).await.unwrap();
    let status = until(&mut viewer_events, |e| match e {
        ClientEvent::Session(SessionEvent::StatusResponse(status)) => Some(status),
        _ => None,
    })
    .await;
    assert_eq!(
        status.correlation_id.as_ref().map(|c| c.as_str()),
        Some("big-1")
    );

    viewer.close().await;
    master.close().await;
    assert!(viewer.send_offer(None, &offer("late")).await.is_err());
    // The event streams end once the clients have stopped.
    while viewer_events.next().await.is_some() {}
}

/// An HTTP proxy that accepts every `CONNECT` and carries it to `upstream`, keeping, for each
/// tunnel, its `CONNECT` line and the first line the client sent through it.
async fn connect_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<(String, String)>>>) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&tunnels);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            // A tunnel that fails here is one the test's assertions do not find.
            tokio::spawn(async move {
                let mut client = tokio::io::BufReader::new(tcp);
                let mut connect = String::new();
                let mut line = String::new();
                if client.read_line(&mut connect).await.is_err() {
                    return;
                }
                while line != "\r\n" {
                    line.clear();
                    if !matches!(client.read_line(&mut line).await, Ok(1..)) {
                        return;
                    }
                }
                let established = b"HTTP/1.1 200 Connection established\r\n\r\n";
                if client.get_mut().write_all(established).await.is_err() {
                    return;
                }
                let mut first = String::new();
                if client.read_line(&mut first).await.is_err() {
                    return;
                }
                seen.lock()
                    .unwrap()
                    .push((connect.trim_end().to_owned(), first.trim_end().to_owned()));
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                if server.write_all(first.as_bytes()).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (addr, tunnels)
}

#[tokio::test]
async fn behind_an_http_proxy_both_the_calls_and_the_websocket_go_through_its_tunnels() {
    let server = start(HubConfig::default()).await;
    let url = server.public_url().to_owned();
    let target = url.trim_start_matches("http://").trim_end_matches('/');
    let (proxy, tunnels) = connect_proxy(target.parse().unwrap()).await;
    let through = || ProxyConfig::none().with_http(format!("http://{proxy}"));
    let (master, mut master_events) = proxied_client(&url, "proxied", None, |s| s, through());
    connected(&mut master_events).await;
    let (viewer, mut viewer_events) =
        proxied_client(&url, "proxied", Some("viewer-1"), |s| s, through());
    connected(&mut viewer_events).await;
    viewer.send_offer(None, &offer("tunneled")).await.unwrap();
    let got = until(&mut master_events, |e| match e {
        ClientEvent::Offer(received) => Some(received),
        _ => None,
    })
    .await;
    assert_eq!(got.body, offer("tunneled"));

    let tunnels = tunnels.lock().unwrap().clone();
    let connect = format!("CONNECT {target} HTTP/1.1");
    assert!(
        tunnels.iter().all(|(line, _)| *line == connect),
        "{tunnels:?}"
    );
    // Each client: its REST calls in one pooled tunnel, its WebSocket in another.
    let upgrades = tunnels
        .iter()
        .filter(|(_, first)| first.starts_with("GET /?") && first.contains("X-Amz-ChannelARN="))
        .count();
    let calls = tunnels
        .iter()
        .filter(|(_, first)| first.starts_with("POST /"))
        .count();
    // (A client may open a second tunnel for its calls if the first is busy or dropped.)
    assert_eq!(upgrades, 2, "{tunnels:?}");
    assert!(calls >= 2, "{tunnels:?}");
    assert_eq!(upgrades + calls, tunnels.len(), "{tunnels:?}");
    viewer.close().await;
    master.close().await;
}

#[tokio::test]
async fn reconnects_after_go_away_and_after_the_server_drops_the_socket() {
    // Connections last 3 s, with GO_AWAY 1 s before the end.
    let hub = HubConfig::default()
        .max_connection_duration(Duration::from_secs(3))
        .go_away_grace(Duration::from_secs(1));
    let server = start(hub).await;
    let url = server.public_url().to_owned();

    // The master sees GO_AWAY, reconnects, and is reachable on the new connection.
    let (master, mut master_events) = client(&url, "go-away", None, |s| s);
    connected(&mut master_events).await;
    until(&mut master_events, |e| {
        (e == ClientEvent::Session(SessionEvent::GoAway)).then_some(())
    })
    .await;
    connected(&mut master_events).await;
    let (viewer, mut viewer_events) = client(&url, "go-away", Some("after"), |s| s);
    connected(&mut viewer_events).await;
    viewer
        .send_offer(None, &offer("after go away"))
        .await
        .unwrap();
    let got = until(&mut master_events, |e| match e {
        ClientEvent::Offer(received) => Some(received),
        _ => None,
    })
    .await;
    assert_eq!(got.body, offer("after go away"));
    drop(master);
    drop(viewer);

    // A viewer whose pings are too rare for a server that closes connections idle for 1 s:
    // the server drops its socket, and it reconnects.
    let server = start(HubConfig::default().idle_timeout(Duration::from_secs(1))).await;
    let url = server.public_url().to_owned();
    let (_master, mut master_events) = client(&url, "idle", None, |s| s);
    connected(&mut master_events).await;
    let rest = RestClient::new(
        &url,
        "us-west-2",
        Credentials::new(KEY, SECRET),
        TlsTrust::default(),
    )
    .unwrap();
    let session = ClientSessionConfig::new(ChannelName::new("idle").unwrap(), Role::Viewer)
        .client_id(ClientId::new("quiet").unwrap())
        .backoff_initial(Duration::from_millis(50));
    let (_quiet, mut quiet_events) = SignalingClient::start(
        ClientConfig::new(session, rest).ping_interval(Duration::from_secs(60)),
    )
    .unwrap();
    connected(&mut quiet_events).await;
    until(&mut quiet_events, |e| {
        matches!(
            e,
            ClientEvent::Session(
                SessionEvent::StateChanged(SessionState::WaitingToRetry)
                    | SessionEvent::StateChanged(SessionState::GettingIceConfig)
                    | SessionEvent::StateChanged(SessionState::Connecting)
            )
        )
        .then_some(())
    })
    .await;
    connected(&mut quiet_events).await;
}

#[tokio::test]
async fn reconnects_after_a_restart_and_sends_what_was_queued() {
    let dir = std::env::temp_dir().join(format!("kvs-client-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // On 127.0.0.2, which no other test binds, so no test can take the port while the server
    // is down.
    let config = server_config("127.0.0.2:0".parse().unwrap(), HubConfig::default()).data_dir(&dir);
    let server = Server::start(config).await.unwrap();
    let addr = server.local_addr();
    let url = server.public_url().to_owned();
    let (master, mut master_events) = client(&url, "restart", None, |s| s);
    connected(&mut master_events).await;
    let (viewer, mut viewer_events) = client(&url, "restart", Some("patient"), |s| s);
    connected(&mut viewer_events).await;

    server.stop().await;
    until(&mut viewer_events, |e| {
        matches!(e, ClientEvent::Session(SessionEvent::StateChanged(s)) if s != SessionState::Connected)
            .then_some(())
    })
    .await;
    // While the server is down, messages wait in the client's queue.
    assert_eq!(
        viewer.send_offer(None, &offer("queued")).await,
        Ok(Sent::Queued)
    );
    let server = Server::start(server_config(addr, HubConfig::default()).data_dir(&dir))
        .await
        .unwrap();
    connected(&mut master_events).await;
    let got = until(&mut master_events, |e| match e {
        ClientEvent::Offer(received) => Some(received),
        _ => None,
    })
    .await;
    assert_eq!(got.body, offer("queued"));
    assert_eq!(got.sender, Some(PeerId::new("patient").unwrap()));
    master.close().await;
    viewer.close().await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_full_queue_refuses_and_a_closed_client_reports_what_never_went_out() {
    // No server at all: the client keeps retrying, and what the application sends waits.
    let rest = RestClient::new(
        "http://127.0.0.1:9",
        "us-west-2",
        Credentials::new(KEY, SECRET),
        TlsTrust::default(),
    )
    .unwrap();
    let session = ClientSessionConfig::new(ChannelName::new("nowhere").unwrap(), Role::Viewer)
        .client_id(ClientId::new("v").unwrap())
        .backoff_initial(Duration::from_millis(20));
    let (viewer, mut events) =
        SignalingClient::start(ClientConfig::new(session, rest).max_queued_messages(2)).unwrap();
    assert_eq!(viewer.send_offer(None, &offer("1")).await, Ok(Sent::Queued));
    assert_eq!(viewer.send_offer(None, &offer("2")).await, Ok(Sent::Queued));
    let refused = viewer.send_offer(None, &offer("3")).await.unwrap_err();
    assert!(
        refused.to_string().contains("2 messages already wait"),
        "{refused}"
    );
    viewer.close().await;
    let undelivered = until(&mut events, |e| match e {
        ClientEvent::Undelivered(messages) => Some(messages),
        _ => None,
    })
    .await;
    assert_eq!(undelivered.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_ice_configuration_is_refreshed_before_its_ttl_ends() {
    // The server runs on the same paused clock; loopback IO keeps the runtime busy while
    // requests are under way, so only the waits in between are skipped.
    let server = start(HubConfig::default()).await;
    let url = server.public_url().to_owned();
    let (_viewer, mut events) = client(&url, "refresh", None, |s| s);
    let first = until(&mut events, |e| match e {
        ClientEvent::Session(SessionEvent::IceServersUpdated(servers)) => Some(servers),
        _ => None,
    })
    .await;
    connected(&mut events).await;
    let fetched = tokio::time::Instant::now();
    // The next event is the refresh, 270 s later (300 s TTL less the 30 s grace), with the
    // socket up all along: no state change comes first.
    let next = tokio::time::timeout(Duration::from_secs(600), events.next())
        .await
        .expect("no refresh within 600 s")
        .expect("the client stopped");
    let ClientEvent::Session(SessionEvent::IceServersUpdated(second)) = next else {
        panic!("expected the refreshed ICE servers, got {next:?}");
    };
    let waited = fetched.elapsed();
    assert!(
        (Duration::from_secs(265)..=Duration::from_secs(275)).contains(&waited),
        "refreshed after {waited:?}"
    );
    assert_eq!(first.len(), second.len());
}

#[tokio::test]
async fn reconnect_ice_server_fetches_fresh_credentials_at_once() {
    let server = start(HubConfig::default()).await;
    let url = server.public_url().to_owned();
    let (_master, mut events) = client(&url, "rotate", None, |s| s);
    let first = until(&mut events, |e| match e {
        ClientEvent::Session(SessionEvent::IceServersUpdated(servers)) => Some(servers),
        _ => None,
    })
    .await;
    connected(&mut events).await;
    server
        .set_turn_secrets(vec![
            TurnSecret::new("rotated"),
            TurnSecret::new("turn-secret"),
        ])
        .await
        .unwrap();
    until(&mut events, |e| {
        (e == ClientEvent::Session(SessionEvent::ReconnectIceServer)).then_some(())
    })
    .await;
    let second = until(&mut events, |e| match e {
        ClientEvent::Session(SessionEvent::IceServersUpdated(servers)) => Some(servers),
        _ => None,
    })
    .await;
    let turn = |servers: &[kvs_signaling_proto::IceServer]| {
        servers
            .iter()
            .find(|s| {
                s.uris
                    .iter()
                    .flatten()
                    .any(|u| u.as_str().starts_with("turn:"))
            })
            .and_then(|s| s.password.clone())
    };
    assert_ne!(turn(&first), turn(&second), "the password did not change");
}

#[tokio::test]
async fn temporary_credentials_sign_rest_calls_and_the_connect() {
    let ice = TurnConfig::new(
        vec![],
        vec![IceUri::new("stun:127.0.0.1:3478").unwrap()],
        vec![],
        IceServerTtl::default(),
    )
    .unwrap();
    let temporary = Credentials::new("ASIATEMPORARY", "temporary-secret")
        .with_session_token("FwoGZXIvYXdzEXAMPLE+token/with=signs");
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), vec![temporary.clone()], ice);
    let server = Server::start(config).await.unwrap();
    let start_with = |credentials: Credentials| {
        let rest = RestClient::new(
            server.public_url(),
            "us-west-2",
            credentials,
            TlsTrust::default(),
        )
        .unwrap();
        let session = ClientSessionConfig::new(ChannelName::new("temp").unwrap(), Role::Master)
            .create_if_missing(true)
            .max_reconnect_attempts(Some(0));
        SignalingClient::start(ClientConfig::new(session, rest)).unwrap()
    };
    let (_client, mut events) = start_with(temporary);
    connected(&mut events).await;
    // The same key without its token is refused, and the session says why.
    let (_client, mut events) = start_with(Credentials::new("ASIATEMPORARY", "temporary-secret"));
    until(&mut events, |e| {
        (e == ClientEvent::Session(SessionEvent::CredentialsRejected)).then_some(())
    })
    .await;
}

/// A client of `server` for `channel` that asks for delivery status.
fn tracking_client(
    endpoint: &str,
    channel: &str,
    client_id: Option<&str>,
) -> (SignalingClient, Events) {
    let role = if client_id.is_some() {
        Role::Viewer
    } else {
        Role::Master
    };
    let mut session = ClientSessionConfig::new(ChannelName::new(channel).unwrap(), role)
        .create_if_missing(client_id.is_none());
    if let Some(id) = client_id {
        session = session.client_id(ClientId::new(id).unwrap());
    }
    let rest = RestClient::new(
        endpoint,
        "us-west-2",
        Credentials::new(KEY, SECRET),
        TlsTrust::default(),
    )
    .unwrap();
    SignalingClient::start(ClientConfig::new(session, rest).delivery_status(true)).unwrap()
}

#[tokio::test]
async fn delivery_status_comes_back_as_typed_events() {
    use kvs_signaling_proto::DeliveryState;

    let server = start(HubConfig::default()).await;
    let url = server.public_url().to_owned();
    let (master, mut master_events) = tracking_client(&url, "tracked", None);
    connected(&mut master_events).await;
    // A viewer that is not there yet: held.
    let mut answer = ClientMessage::new(
        Action::SdpAnswer,
        MessagePayload::encode(br#"{"type":"answer","sdp":"v=0"}"#),
    );
    answer.recipient_client_id = Some(PeerId::new("phone").unwrap());
    answer.correlation_id = Some(CorrelationId::new("answer-1").unwrap());
    assert_eq!(master.send(answer).await, Ok(Sent::Written));
    let held = until(&mut master_events, |e| match e {
        ClientEvent::DeliveryStatus(status) => Some(status),
        _ => None,
    })
    .await;
    assert_eq!(held.correlation_id.as_str(), "answer-1");
    assert_eq!(held.recipient_client_id.unwrap().as_str(), "phone");
    assert_eq!(held.status, DeliveryState::Held);
    // It connects: delivered.
    let (_viewer, mut viewer_events) = client(&url, "tracked", Some("phone"), |s| s);
    until(&mut viewer_events, |e| match e {
        ClientEvent::Answer(received) => Some(received),
        _ => None,
    })
    .await;
    let delivered = until(&mut master_events, |e| match e {
        ClientEvent::DeliveryStatus(status) => Some(status),
        _ => None,
    })
    .await;
    assert_eq!(delivered.correlation_id.as_str(), "answer-1");
    assert_eq!(delivered.status, DeliveryState::Delivered);
}
