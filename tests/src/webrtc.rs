//! A real WebRTC connection set up through our signaling: a master and a viewer in one process,
//! each a [str0m](https://docs.rs/str0m) `Rtc` (sans-IO) on a UDP socket, each with its own
//! [`SignalingClient`].
//!
//! [`run_pair`] goes through what a browser pair does:
//!
//! 1. the master's client starts (creating the channel) and connects, then the viewer's;
//! 2. the viewer adds a data channel, sends its SDP offer through the server, then trickles its
//!    local ICE candidates (the SDP holds none, so ICE can only succeed if the trickled
//!    candidates got through);
//! 3. the master accepts the offer, sends its answer to the viewer and trickles its own
//!    candidates;
//! 4. ICE, DTLS and SCTP come up over UDP, the data channel opens, and the viewer sends
//!    `ping 1`, the master replies `pong 1`, and so on for [`PairOptions::rounds`], each message
//!    checked on arrival.
//!
//! Each peer runs on its own tokio task, a loop that feeds the `Rtc` its UDP datagrams, its
//! timeouts and the signaling messages, and sends what it asks to send. The local candidates
//! are listed in [`PairOptions::local_candidates`]: by default one host candidate on the
//! peer's socket ([`LocalCandidate::Host`]).
//!
//! With [`LocalCandidate::Relay`] alone, both peers are relay-only, as a browser with
//! `iceTransportPolicy: "relay"`: each takes the `turn:` URI and the credentials from the ICE
//! servers its [`SignalingClient`] got from GetIceServerConfig, allocates a relay there on its
//! socket (see [`crate::turn`]), and gives str0m the relayed address as its only candidate.
//! str0m's datagrams for the other peer go to the TURN server in Send indications, and the
//! server's Data indications come back to str0m as sent by the other peer to the relayed
//! address, so the media path is peer → TURN → TURN → peer and the peers' sockets only ever
//! talk to the TURN server ([`PeerReport::datagrams_by_address`] shows it).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kvs_ice_rest::{Credentials, RestClient, TlsTrust};
use kvs_signaling_core::{ClientSessionConfig, SessionEvent, SessionState};
use kvs_signaling_proto::{ChannelName, ClientId, IceServer, PeerId, Role};
use kvs_transport_tokio::{ClientConfig, ClientEvent, Events, SignalingClient};
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod peer;

/// The label of the data channel the viewer opens.
pub const CHANNEL_LABEL: &str = "kvs-ping";

/// A local ICE candidate a peer adds to its `Rtc` and trickles to the other side.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalCandidate {
    /// A host candidate: the peer's own UDP socket, bound to [`PairOptions::bind`].
    Host,
    /// A relayed candidate: a UDP allocation on the first TURN server (a `turn:` URI over UDP,
    /// with a username and password) among the ICE servers the peer's signaling client got
    /// from GetIceServerConfig, allocated from the peer's socket. Everything str0m sends from
    /// it goes through the TURN server in Send indications, after a permission for the remote
    /// candidate's address; the server's Data indications come back as received on it.
    Relay,
}

/// Called with each [`Step`] as it happens, from whichever task it happens on.
pub type Observer = Arc<dyn Fn(&Step) + Send + Sync>;

/// How [`run_pair`] runs.
#[derive(Clone)]
#[non_exhaustive]
pub struct PairOptions {
    /// The ping/pong round trips on the data channel: 3.
    pub rounds: u32,
    /// The bound on the whole run, from the first REST call to the last pong: 20 s.
    pub timeout: Duration,
    /// The address both UDP sockets bind to (port 0): 127.0.0.1.
    pub bind: IpAddr,
    /// The candidates each peer adds once it has sent its description, and trickles: a host
    /// candidate. `vec![LocalCandidate::Relay]` makes both peers relay-only.
    pub local_candidates: Vec<LocalCandidate>,
    /// The viewer's client id: `webrtc-viewer`.
    pub viewer_id: String,
    /// The CAs the REST and WebSocket clients trust, for an `https://` endpoint.
    pub trust: TlsTrust,
    /// Told of every step as it happens (the [`Report`] lists them all at the end).
    pub observer: Option<Observer>,
}

impl Default for PairOptions {
    fn default() -> Self {
        Self {
            rounds: 3,
            timeout: Duration::from_secs(20),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            local_candidates: vec![LocalCandidate::Host],
            viewer_id: "webrtc-viewer".to_owned(),
            trust: TlsTrust::default(),
            observer: None,
        }
    }
}

impl fmt::Debug for PairOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairOptions")
            .field("rounds", &self.rounds)
            .field("timeout", &self.timeout)
            .field("bind", &self.bind)
            .field("local_candidates", &self.local_candidates)
            .field("viewer_id", &self.viewer_id)
            .field("trust", &self.trust)
            .field("observer", &self.observer.as_ref().map(|_| "…"))
            .finish()
    }
}

impl PairOptions {
    /// Sets [`PairOptions::rounds`] (at least 1).
    #[must_use]
    pub fn rounds(mut self, rounds: u32) -> Self {
        self.rounds = rounds.max(1);
        self
    }

    /// Sets [`PairOptions::timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`PairOptions::bind`].
    #[must_use]
    pub fn bind(mut self, bind: IpAddr) -> Self {
        self.bind = bind;
        self
    }

    /// Sets [`PairOptions::local_candidates`].
    #[must_use]
    pub fn local_candidates(mut self, candidates: Vec<LocalCandidate>) -> Self {
        self.local_candidates = candidates;
        self
    }

    /// Sets [`PairOptions::viewer_id`].
    #[must_use]
    pub fn viewer_id(mut self, id: impl Into<String>) -> Self {
        self.viewer_id = id.into();
        self
    }

    /// Sets [`PairOptions::trust`].
    #[must_use]
    pub fn trust(mut self, trust: TlsTrust) -> Self {
        self.trust = trust;
        self
    }

    /// Sets [`PairOptions::observer`].
    #[must_use]
    pub fn observer(mut self, observer: impl Fn(&Step) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }
}

/// Something that happened during a run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Step {
    /// When, from the start of the run.
    pub at: Duration,
    /// Which peer it happened to; `None` for the run itself.
    pub peer: Option<Role>,
    /// What happened.
    pub what: String,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.peer {
            Some(Role::Master) => "master",
            Some(Role::Viewer) => "viewer",
            None => "pair",
        };
        write!(
            f,
            "[{:>7.3}s] {who:<6} {}",
            self.at.as_secs_f64(),
            self.what
        )
    }
}

/// The signaling messages one peer sent and received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignalingCounts {
    /// SDP offers sent.
    pub offers_sent: u32,
    /// SDP answers sent.
    pub answers_sent: u32,
    /// ICE candidates sent.
    pub candidates_sent: u32,
    /// SDP offers received.
    pub offers_received: u32,
    /// SDP answers received.
    pub answers_received: u32,
    /// ICE candidates received.
    pub candidates_received: u32,
}

/// What one peer saw.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PeerReport {
    /// The peer's UDP socket.
    pub local_address: Option<SocketAddr>,
    /// The signaling messages sent and received.
    pub signaling: SignalingCounts,
    /// Who the peer's signaling messages came from, as the server named them: the viewer's id
    /// for the master, `None` for the viewer.
    pub remote_peer: Option<PeerId>,
    /// The SDP this peer sent (offer or answer).
    pub local_description: Option<String>,
    /// The SDP this peer received.
    pub remote_description: Option<String>,
    /// The candidate lines this peer trickled.
    pub local_candidates: Vec<String>,
    /// The candidate lines trickled to this peer.
    pub remote_candidates: Vec<String>,
    /// When ICE first reported `Connected` (from the start of the run).
    pub ice_connected_at: Option<Duration>,
    /// When ICE and DTLS were both up.
    pub connected_at: Option<Duration>,
    /// When the data channel opened.
    pub channel_open_at: Option<Duration>,
    /// The label of the data channel.
    pub channel_label: Option<String>,
    /// The data-channel messages sent, in order.
    pub sent: Vec<String>,
    /// The data-channel messages received, in order.
    pub received: Vec<String>,
    /// UDP datagrams sent.
    pub datagrams_sent: u64,
    /// UDP datagrams received.
    pub datagrams_received: u64,
    /// UDP datagrams sent and received, by the address at the other end.
    pub datagrams_by_address: BTreeMap<SocketAddr, DatagramCounts>,
    /// The TURN relay, for a peer with a [`LocalCandidate::Relay`].
    pub relay: Option<RelayReport>,
}

/// UDP datagrams exchanged with one address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatagramCounts {
    /// Sent to it.
    pub sent: u64,
    /// Received from it.
    pub received: u64,
}

/// What a peer's TURN relay did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayReport {
    /// The `turn:` URI the peer used, from the signaling client's ICE servers.
    pub uri: String,
    /// The TURN server's address.
    pub server: SocketAddr,
    /// The relayed transport address the server allocated: the peer's only candidate.
    pub relayed_address: SocketAddr,
    /// The peers (remote candidates) a permission was asked for.
    pub permissions_requested: Vec<SocketAddr>,
    /// The IP addresses with an installed permission at the end.
    pub permitted: Vec<IpAddr>,
    /// Send indications sent: str0m's datagrams to the other peer.
    pub send_indications: u64,
    /// Data indications received: the other peer's datagrams to the relayed address.
    pub data_indications: u64,
    /// Datagrams for the other peer that were dropped (no permission, or too many held).
    pub dropped: u64,
}

/// The outcome of a successful [`run_pair`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// What the master saw.
    pub master: PeerReport,
    /// What the viewer saw.
    pub viewer: PeerReport,
    /// How long the whole run took.
    pub elapsed: Duration,
    /// Everything that happened, in order.
    pub timeline: Vec<Step>,
}

/// Why a [`run_pair`] failed, with everything that happened until then.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PairError {
    /// What went wrong.
    pub message: String,
    /// Everything that happened, in order.
    pub timeline: Vec<Step>,
}

impl fmt::Display for PairError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.message)?;
        writeln!(f, "timeline:")?;
        for step in &self.timeline {
            writeln!(f, "  {step}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PairError {}

/// The shared, timestamped record of a run.
#[derive(Clone)]
struct Log {
    start: Instant,
    steps: Arc<Mutex<Vec<Step>>>,
    observer: Option<Observer>,
}

impl Log {
    fn new(observer: Option<Observer>) -> Self {
        Self {
            start: Instant::now(),
            steps: Arc::default(),
            observer,
        }
    }

    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn note(&self, peer: Option<Role>, what: impl Into<String>) {
        let what = what.into();
        // The time is taken and the observer told under the lock, so that both the timeline
        // and what the observer sees are in order.
        let mut steps = self.steps.lock().unwrap_or_else(PoisonError::into_inner);
        let step = Step {
            at: self.elapsed(),
            peer,
            what,
        };
        if let Some(observer) = &self.observer {
            observer(&step);
        }
        steps.push(step);
    }

    fn steps(&self) -> Vec<Step> {
        self.steps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Aborts the task when dropped, so that a run that times out leaves nothing behind.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a master and a viewer on `channel` of the signaling service at `endpoint` (such as
/// `http://127.0.0.1:8080`) until they have exchanged [`PairOptions::rounds`] pings and pongs
/// over a WebRTC data channel, or fails within [`PairOptions::timeout`].
///
/// Must run on a tokio runtime with the timer and IO drivers; both peers and both signaling
/// clients run as tasks on it.
pub async fn run_pair(
    endpoint: &str,
    region: &str,
    credentials: Credentials,
    channel: &str,
    options: PairOptions,
) -> Result<Report, PairError> {
    let log = Log::new(options.observer.clone());
    let run = run(endpoint, region, credentials, channel, &options, &log);
    let outcome = match tokio::time::timeout(options.timeout, run).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "no result within {:?}: see the timeline for how far it got",
            options.timeout
        )),
    };
    match outcome {
        Ok((master, viewer)) => {
            log.note(None, "done");
            Ok(Report {
                master,
                viewer,
                elapsed: log.elapsed(),
                timeline: log.steps(),
            })
        }
        Err(message) => {
            log.note(None, format!("failed: {message}"));
            Err(PairError {
                message,
                timeline: log.steps(),
            })
        }
    }
}

async fn run(
    endpoint: &str,
    region: &str,
    credentials: Credentials,
    channel: &str,
    options: &PairOptions,
    log: &Log,
) -> Result<(PeerReport, PeerReport), String> {
    if options.local_candidates.is_empty() {
        return Err("local_candidates: at least one is needed".to_owned());
    }
    let channel = ChannelName::new(channel).map_err(|err| format!("channel: {err}"))?;
    let viewer_id =
        ClientId::new(options.viewer_id.as_str()).map_err(|err| format!("viewer_id: {err}"))?;
    let rest = || {
        RestClient::new(endpoint, region, credentials.clone(), options.trust.clone())
            .map_err(|err| format!("REST client for {endpoint}: {err}"))
    };

    // The master first, so that the viewer's offer finds it connected.
    log.note(
        Some(Role::Master),
        format!("signaling: starting against {endpoint}"),
    );
    let session = ClientSessionConfig::new(channel.clone(), Role::Master).create_if_missing(true);
    let (master, mut master_events) = SignalingClient::start(ClientConfig::new(session, rest()?))
        .map_err(|err| format!("master: {err}"))?;
    let master_ice_servers = connected(Role::Master, &mut master_events, log).await?;

    log.note(
        Some(Role::Viewer),
        format!("signaling: starting as client id {viewer_id}"),
    );
    let session = ClientSessionConfig::new(channel, Role::Viewer).client_id(viewer_id);
    let (viewer, mut viewer_events) = SignalingClient::start(ClientConfig::new(session, rest()?))
        .map_err(|err| format!("viewer: {err}"))?;
    let viewer_ice_servers = connected(Role::Viewer, &mut viewer_events, log).await?;

    let (stop, stopped) = watch::channel(false);
    let setup = |role, client: &SignalingClient, events, ice_servers| peer::Setup {
        role,
        bind: options.bind,
        client: client.clone(),
        events,
        log: log.clone(),
        rounds: options.rounds,
        local_candidates: options.local_candidates.clone(),
        ice_servers,
        stop: stopped.clone(),
    };
    let master_peer = peer::Peer::new(setup(
        Role::Master,
        &master,
        master_events,
        master_ice_servers,
    ))
    .await?;
    let viewer_peer = peer::Peer::new(setup(
        Role::Viewer,
        &viewer,
        viewer_events,
        viewer_ice_servers,
    ))
    .await?;
    let mut master_task = AbortOnDrop(tokio::spawn(master_peer.run()));
    let mut viewer_task = AbortOnDrop(tokio::spawn(viewer_peer.run()));

    // The viewer finishes once it has every pong; the master runs until told to stop.
    let viewer_report = tokio::select! {
        joined = &mut viewer_task.0 => joined_report(Role::Viewer, joined)?,
        joined = &mut master_task.0 => {
            return Err(match joined_report(Role::Master, joined) {
                Ok(_) => "master: stopped before the viewer had every pong".to_owned(),
                Err(err) => err,
            });
        }
    };
    let _ = stop.send(true);
    let master_report = joined_report(Role::Master, (&mut master_task.0).await)?;

    for (role, client) in [(Role::Viewer, &viewer), (Role::Master, &master)] {
        if tokio::time::timeout(Duration::from_secs(2), client.close())
            .await
            .is_err()
        {
            log.note(Some(role), "signaling: close took longer than 2 s");
        } else {
            log.note(Some(role), "signaling: closed");
        }
    }
    Ok((master_report, viewer_report))
}

fn joined_report(
    role: Role,
    joined: Result<Result<PeerReport, String>, tokio::task::JoinError>,
) -> Result<PeerReport, String> {
    let name = match role {
        Role::Master => "master",
        Role::Viewer => "viewer",
    };
    match joined {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(err)) => Err(format!("{name}: {err}")),
        Err(err) => Err(format!("{name}: the task ended abnormally: {err}")),
    }
}

/// Waits for the signaling client to connect, noting what it reports on the way, and returns
/// the ICE servers it got from GetIceServerConfig on the way (none if it reported none).
async fn connected(role: Role, events: &mut Events, log: &Log) -> Result<Vec<IceServer>, String> {
    let mut ice_servers = Vec::new();
    loop {
        let event = events
            .next()
            .await
            .ok_or_else(|| format!("{role:?}: the signaling client stopped before connecting"))?;
        let connected = matches!(
            event,
            ClientEvent::Session(SessionEvent::StateChanged(SessionState::Connected))
        );
        peer::note_signaling_event(role, &event, log);
        match event {
            ClientEvent::Session(SessionEvent::Failed(reason)) => {
                return Err(format!("{role:?}: signaling failed: {reason:?}"));
            }
            ClientEvent::Session(SessionEvent::CredentialsRejected) => {
                return Err(format!("{role:?}: signaling: credentials rejected"));
            }
            ClientEvent::Session(SessionEvent::IceServersUpdated(servers)) => {
                ice_servers = servers;
            }
            _ if connected => return Ok(ice_servers),
            _ => {}
        }
    }
}
