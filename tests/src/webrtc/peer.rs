//! One side of the pair: a str0m `Rtc` driven over a tokio UDP socket, fed by its signaling
//! client, and the ping/pong exchange on the data channel. With a relay candidate, a
//! [`Relay`] on the same socket carries str0m's datagrams through the TURN server.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use kvs_signaling_core::SessionEvent;
use kvs_signaling_proto::{
    IceCandidate, IceServer, IceUri, PeerId, Role, SdpType, SessionDescription,
};
use kvs_transport_tokio::{ClientEvent, Events, Received, SignalingClient};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelData, ChannelId};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::{CHANNEL_LABEL, LocalCandidate, Log, PeerReport, RelayReport};
use crate::turn::{Direction, Relay, RelayEvent, TurnUri};

/// Everything a [`Peer`] starts from.
pub(super) struct Setup {
    pub(super) role: Role,
    pub(super) bind: IpAddr,
    pub(super) client: SignalingClient,
    pub(super) events: Events,
    pub(super) log: Log,
    pub(super) rounds: u32,
    pub(super) local_candidates: Vec<LocalCandidate>,
    /// What GetIceServerConfig gave the signaling client.
    pub(super) ice_servers: Vec<IceServer>,
    /// Becomes `true` when the peer should stop.
    pub(super) stop: watch::Receiver<bool>,
}

pub(super) struct Peer {
    role: Role,
    rtc: Rtc,
    socket: UdpSocket,
    local_address: SocketAddr,
    client: SignalingClient,
    events: Events,
    log: Log,
    rounds: u32,
    local_candidates: Vec<LocalCandidate>,
    /// The TURN allocation, for a [`LocalCandidate::Relay`], and the URI it was made on.
    relay: Option<(Relay, String)>,
    /// The remote candidates a permission was asked for.
    permissions_requested: Vec<SocketAddr>,
    stop: watch::Receiver<bool>,
    /// Who to address: the viewer, for the master (from its offer); `None` for the viewer.
    remote_peer: Option<PeerId>,
    /// The viewer's offer, until its answer comes.
    pending_offer: Option<SdpPendingOffer>,
    /// Whether the remote description is applied. Remote candidates wait until it is, as
    /// they do in a browser.
    remote_described: bool,
    early_candidates: Vec<Candidate>,
    /// `a=mid` and m-line index of the data channel, for the candidates this peer sends.
    media: (String, u16),
    /// The data channel, once open.
    channel: Option<ChannelId>,
    /// The viewer has its last pong.
    done: bool,
    report: PeerReport,
}

/// What woke the loop up.
enum Wake {
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Timeout,
    Signaling(Option<ClientEvent>),
    /// The stop flag changed; `true` when its sender is gone.
    Stop(bool),
}

impl Peer {
    pub(super) async fn new(setup: Setup) -> Result<Self, String> {
        let socket = UdpSocket::bind(SocketAddr::new(setup.bind, 0))
            .await
            .map_err(|err| format!("bind UDP on {}: {err}", setup.bind))?;
        let local_address = socket
            .local_addr()
            .map_err(|err| format!("UDP local address: {err}"))?;
        let mut report = PeerReport {
            local_address: Some(local_address),
            ..PeerReport::default()
        };
        setup.log.note(
            Some(setup.role),
            format!("UDP socket bound to {local_address}"),
        );
        let relay = if setup.local_candidates.contains(&LocalCandidate::Relay) {
            Some(allocate(&setup, &socket, &mut report).await?)
        } else {
            None
        };
        Ok(Self {
            role: setup.role,
            rtc: Rtc::new(Instant::now()),
            socket,
            local_address,
            client: setup.client,
            events: setup.events,
            log: setup.log,
            rounds: setup.rounds,
            local_candidates: setup.local_candidates,
            relay,
            permissions_requested: Vec::new(),
            stop: setup.stop,
            remote_peer: None,
            pending_offer: None,
            remote_described: false,
            early_candidates: Vec::new(),
            media: ("0".to_owned(), 0),
            channel: None,
            done: false,
            report,
        })
    }

    /// Runs until the viewer has every pong, the peer is told to stop, or something fails.
    pub(super) async fn run(mut self) -> Result<PeerReport, String> {
        if self.role == Role::Viewer {
            self.offer().await?;
        }
        let mut buf = vec![0; 65_536];
        loop {
            let deadline = self.drive()?;
            if self.done {
                return Ok(self.finish());
            }
            let wake = tokio::select! {
                received = self.socket.recv_from(&mut buf) => Wake::Datagram(received),
                () = tokio::time::sleep_until(deadline.into()) => Wake::Timeout,
                event = self.events.next() => Wake::Signaling(event),
                changed = self.stop.changed() => Wake::Stop(changed.is_err()),
            };
            match wake {
                Wake::Datagram(received) => {
                    let (len, source) = received.map_err(|err| format!("UDP receive: {err}"))?;
                    self.count(Direction::Received, source);
                    let Some(datagram) = buf.get(..len) else {
                        continue;
                    };
                    self.on_datagram(source, datagram)?;
                }
                Wake::Timeout => {
                    let now = Instant::now();
                    if let Some((relay, _)) = &mut self.relay {
                        relay.handle_timeout(now);
                    }
                    self.input(Input::Timeout(now))?;
                }
                Wake::Signaling(Some(event)) => self.on_signaling(event).await?,
                Wake::Signaling(None) => return Err("the signaling client stopped".to_owned()),
                Wake::Stop(false) if !*self.stop.borrow() => {}
                Wake::Stop(_) => {
                    self.note(format!(
                        "stopping ({} datagrams sent, {} received)",
                        self.report.datagrams_sent, self.report.datagrams_received
                    ));
                    return Ok(self.finish());
                }
            }
        }
    }

    fn note(&self, what: impl Into<String>) {
        self.log.note(Some(self.role), what);
    }

    /// The report, with what the relay did.
    fn finish(mut self) -> PeerReport {
        if let Some((relay, uri)) = &self.relay {
            let stats = relay.stats();
            self.report.relay = Some(RelayReport {
                uri: uri.clone(),
                server: relay.server(),
                relayed_address: relay.relayed(),
                permissions_requested: self.permissions_requested.clone(),
                permitted: relay.permitted(),
                send_indications: stats.send_indications,
                data_indications: stats.data_indications,
                dropped: stats.dropped,
            });
        }
        self.report
    }

    fn count(&mut self, direction: Direction, peer: SocketAddr) {
        count(&mut self.report, direction, peer);
    }

    /// A datagram on the socket: from the TURN server for the relay, else straight to str0m.
    fn on_datagram(&mut self, source: SocketAddr, datagram: &[u8]) -> Result<(), String> {
        let now = Instant::now();
        if let Some((relay, _)) = &mut self.relay
            && source == relay.server()
        {
            let relayed = relay.relayed();
            // A Data indication goes to str0m as sent by the peer to the relayed address; an
            // answer to a request is reported by the relay, and `drive` notes it.
            return match relay.handle_datagram(now, datagram) {
                Some((peer, data)) => self.receive(now, peer, relayed, &data),
                None => Ok(()),
            };
        }
        self.receive(now, source, self.local_address, datagram)
    }

    fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> Result<(), String> {
        match Receive::new(Protocol::Udp, source, destination, contents) {
            Ok(receive) => self.input(Input::Receive(now, receive)),
            Err(err) => {
                self.note(format!(
                    "ignored a {}-byte datagram from {source} to {destination}: {err}",
                    contents.len()
                ));
                Ok(())
            }
        }
    }

    /// Sends a datagram on the socket. Sending on loopback does not block in practice; a full
    /// buffer loses it, as UDP may.
    fn send_udp(&mut self, destination: SocketAddr, contents: &[u8]) {
        match self.socket.try_send_to(contents, destination) {
            Ok(_) => self.count(Direction::Sent, destination),
            Err(err) => self.note(format!("UDP send to {destination} failed: {err}")),
        }
    }

    /// Sends what the relay has for the TURN server, and notes what it reports.
    fn flush_relay(&mut self) {
        let Some((relay, _)) = &mut self.relay else {
            return;
        };
        let server = relay.server();
        let mut datagrams = Vec::new();
        while let Some(datagram) = relay.poll_transmit() {
            datagrams.push(datagram);
        }
        let mut events = Vec::new();
        while let Some(event) = relay.poll_event() {
            events.push(event);
        }
        for datagram in datagrams {
            self.send_udp(server, &datagram);
        }
        for event in events {
            self.note(match event {
                RelayEvent::PermissionCreated { peer, released } => format!(
                    "relay: permission for {} installed ({released} datagrams were waiting)",
                    peer.ip()
                ),
                other => format!("relay: {other:?}"),
            });
        }
    }

    fn input(&mut self, input: Input<'_>) -> Result<(), String> {
        self.rtc
            .handle_input(input)
            .map_err(|err| format!("str0m input: {err}"))
    }

    /// Carries out what the `Rtc` asks until it only waits, and returns until when.
    fn drive(&mut self) -> Result<Instant, String> {
        loop {
            match self
                .rtc
                .poll_output()
                .map_err(|err| format!("str0m: {err}"))?
            {
                Output::Timeout(at) => {
                    self.flush_relay();
                    let relay_at = self.relay.as_ref().and_then(|(r, _)| r.poll_timeout());
                    return Ok(relay_at.map_or(at, |relay_at| relay_at.min(at)));
                }
                Output::Transmit(transmit) => match &mut self.relay {
                    // From the relayed candidate: through the TURN server.
                    Some((relay, _)) if transmit.source == relay.relayed() => {
                        relay.send(Instant::now(), transmit.destination, &transmit.contents);
                    }
                    _ => self.send_udp(transmit.destination, &transmit.contents),
                },
                Output::Event(event) => self.on_rtc_event(event)?,
            }
        }
    }

    // Signaling.

    /// The viewer's first move: a data channel in an offer, then its candidates.
    async fn offer(&mut self) -> Result<(), String> {
        let mut change = self.rtc.sdp_api();
        change.add_channel(CHANNEL_LABEL.to_owned());
        let (offer, pending) = change
            .apply()
            .ok_or("str0m made no offer for a new data channel")?;
        self.pending_offer = Some(pending);
        let sdp = offer.to_sdp_string();
        self.media = data_media(&sdp);
        self.note(format!(
            "sending the SDP offer ({} bytes, {} candidates in it)",
            sdp.len(),
            candidate_lines(&sdp)
        ));
        self.report.local_description = Some(sdp.clone());
        self.client
            .send_offer(None, &SessionDescription::new(SdpType::Offer, sdp))
            .await
            .map_err(|err| format!("send offer: {err}"))?;
        self.report.signaling.offers_sent += 1;
        self.trickle().await
    }

    /// Adds the local candidates to the `Rtc` and sends each to the other side.
    async fn trickle(&mut self) -> Result<(), String> {
        for wanted in self.local_candidates.clone() {
            let candidate = match wanted {
                LocalCandidate::Host => Candidate::host(self.local_address, "udp")
                    .map_err(|err| format!("host candidate: {err}"))?,
                LocalCandidate::Relay => {
                    let (relay, _) = self.relay.as_ref().ok_or("a relay candidate, no relay")?;
                    Candidate::relayed(relay.relayed(), self.local_address, "udp")
                        .map_err(|err| format!("relay candidate: {err}"))?
                }
            };
            let added = self
                .rtc
                .add_local_candidate(candidate)
                .ok_or("str0m refused the local candidate")?;
            let line = added.to_sdp_string();
            let ufrag = added.ufrag().map(str::to_owned);
            let (mid, index) = self.media.clone();
            let mut body = IceCandidate::new(line.clone(), mid, index);
            body.username_fragment = ufrag;
            self.note(format!("sending ICE candidate {line}"));
            self.client
                .send_ice_candidate(self.remote_peer.as_ref(), &body)
                .await
                .map_err(|err| format!("send ICE candidate: {err}"))?;
            self.report.signaling.candidates_sent += 1;
            self.report.local_candidates.push(line);
        }
        Ok(())
    }

    async fn on_signaling(&mut self, event: ClientEvent) -> Result<(), String> {
        note_signaling_event(self.role, &event, &self.log);
        match event {
            ClientEvent::Offer(offer) => self.on_offer(offer).await,
            ClientEvent::Answer(answer) => self.on_answer(answer),
            ClientEvent::IceCandidate(candidate) => self.on_candidate(candidate),
            ClientEvent::Undecodable {
                message_type,
                error,
                ..
            } => Err(format!("undecodable {message_type:?}: {error}")),
            ClientEvent::Undelivered(messages) => Err(format!(
                "{} signaling messages were never delivered",
                messages.len()
            )),
            ClientEvent::Session(SessionEvent::Failed(reason)) => {
                Err(format!("signaling failed: {reason:?}"))
            }
            _ => Ok(()),
        }
    }

    async fn on_offer(&mut self, offer: Received<SessionDescription>) -> Result<(), String> {
        if self.role != Role::Master {
            return Err("a viewer got an SDP offer".to_owned());
        }
        if self.remote_described {
            return Err("a second SDP offer".to_owned());
        }
        let viewer = offer
            .sender
            .ok_or("the offer names no sender: the master cannot answer it")?;
        if offer.body.sdp_type != SdpType::Offer {
            return Err(format!("an offer of type {:?}", offer.body.sdp_type));
        }
        self.report.signaling.offers_received += 1;
        self.report.remote_peer = Some(viewer.clone());
        self.remote_peer = Some(viewer);
        let parsed = SdpOffer::from_sdp_string(&offer.body.sdp)
            .map_err(|err| format!("the offer does not parse: {err}"))?;
        self.report.remote_description = Some(offer.body.sdp);
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(parsed)
            .map_err(|err| format!("str0m refused the offer: {err}"))?;
        self.remote_described();
        let sdp = answer.to_sdp_string();
        self.media = data_media(&sdp);
        self.note(format!(
            "sending the SDP answer ({} bytes, {} candidates in it)",
            sdp.len(),
            candidate_lines(&sdp)
        ));
        self.report.local_description = Some(sdp.clone());
        self.client
            .send_answer(
                self.remote_peer.as_ref(),
                &SessionDescription::new(SdpType::Answer, sdp),
            )
            .await
            .map_err(|err| format!("send answer: {err}"))?;
        self.report.signaling.answers_sent += 1;
        self.trickle().await
    }

    fn on_answer(&mut self, answer: Received<SessionDescription>) -> Result<(), String> {
        let pending = self
            .pending_offer
            .take()
            .ok_or("an SDP answer without an offer waiting for it")?;
        if answer.body.sdp_type != SdpType::Answer {
            return Err(format!("an answer of type {:?}", answer.body.sdp_type));
        }
        self.report.signaling.answers_received += 1;
        let parsed = SdpAnswer::from_sdp_string(&answer.body.sdp)
            .map_err(|err| format!("the answer does not parse: {err}"))?;
        self.report.remote_description = Some(answer.body.sdp);
        self.rtc
            .sdp_api()
            .accept_answer(pending, parsed)
            .map_err(|err| format!("str0m refused the answer: {err}"))?;
        self.remote_described();
        Ok(())
    }

    fn on_candidate(&mut self, candidate: Received<IceCandidate>) -> Result<(), String> {
        if let (Some(expected), Some(sender)) = (&self.remote_peer, &candidate.sender)
            && expected != sender
        {
            return Err(format!(
                "an ICE candidate from {sender}, not from {expected}"
            ));
        }
        self.report.signaling.candidates_received += 1;
        let line = candidate.body.candidate;
        let line = line.strip_prefix("a=").unwrap_or(&line).trim();
        if line.is_empty() {
            // The end-of-candidates marker.
            return Ok(());
        }
        self.report.remote_candidates.push(line.to_owned());
        let parsed = Candidate::from_sdp_string(line)
            .map_err(|err| format!("the ICE candidate {line:?} does not parse: {err}"))?;
        if let Some((relay, _)) = &mut self.relay {
            // The relay must let the remote candidate's datagrams in, and ours out to it.
            let peer = parsed.addr();
            if relay.permit(Instant::now(), peer) {
                self.note(format!(
                    "relay: asking for a permission for {peer} ({:?} candidate)",
                    parsed.kind()
                ));
            }
            self.permissions_requested.push(peer);
        }
        if self.remote_described {
            self.rtc.add_remote_candidate(parsed);
        } else {
            self.early_candidates.push(parsed);
        }
        Ok(())
    }

    fn remote_described(&mut self) {
        self.remote_described = true;
        for candidate in std::mem::take(&mut self.early_candidates) {
            self.rtc.add_remote_candidate(candidate);
        }
    }

    // WebRTC.

    fn on_rtc_event(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::IceConnectionStateChange(state) => {
                self.note(format!("ICE {state:?}"));
                match state {
                    IceConnectionState::Connected | IceConnectionState::Completed => {
                        let at = self.log.elapsed();
                        self.report.ice_connected_at.get_or_insert(at);
                    }
                    IceConnectionState::Disconnected if !self.done => {
                        return Err("ICE disconnected".to_owned());
                    }
                    _ => {}
                }
            }
            Event::Connected => {
                self.note("ICE and DTLS are up");
                self.report.connected_at = Some(self.log.elapsed());
            }
            Event::ChannelOpen(id, label) => {
                self.note(format!("data channel {label:?} open"));
                self.report.channel_open_at = Some(self.log.elapsed());
                self.report.channel_label = Some(label);
                self.channel = Some(id);
                if self.role == Role::Viewer {
                    self.send(id, "ping 1".to_owned())?;
                }
            }
            Event::ChannelData(data) => self.on_data(data)?,
            Event::ChannelClose(_) if !self.done => {
                return Err("the data channel closed".to_owned());
            }
            _ => {}
        }
        Ok(())
    }

    fn on_data(&mut self, data: ChannelData) -> Result<(), String> {
        if data.binary {
            return Err(format!("{} bytes of binary data", data.data.len()));
        }
        let text = String::from_utf8(data.data)
            .map_err(|err| format!("data channel text is not UTF-8: {err}"))?;
        self.note(format!("received {text:?}"));
        self.report.received.push(text.clone());
        let round = u32::try_from(self.report.received.len()).unwrap_or(u32::MAX);
        match self.role {
            Role::Master => {
                let expected = format!("ping {round}");
                if text != expected {
                    return Err(format!("received {text:?}, expected {expected:?}"));
                }
                self.send(data.id, format!("pong {round}"))
            }
            Role::Viewer => {
                let expected = format!("pong {round}");
                if text != expected {
                    return Err(format!("received {text:?}, expected {expected:?}"));
                }
                if round >= self.rounds {
                    self.note(format!("all {round} rounds done"));
                    self.done = true;
                    Ok(())
                } else {
                    let id = self.channel.ok_or("data before the channel opened")?;
                    self.send(id, format!("ping {}", round + 1))
                }
            }
        }
    }

    fn send(&mut self, id: ChannelId, text: String) -> Result<(), String> {
        let mut channel = self.rtc.channel(id).ok_or("the data channel is gone")?;
        let accepted = channel
            .write(false, text.as_bytes())
            .map_err(|err| format!("data channel write: {err}"))?;
        if !accepted {
            return Err(format!("the data channel refused {text:?}"));
        }
        self.note(format!("sent {text:?}"));
        self.report.sent.push(text);
        Ok(())
    }
}

/// Notes a signaling client's event in the run's log.
pub(super) fn note_signaling_event(role: Role, event: &ClientEvent, log: &Log) {
    let what = match event {
        ClientEvent::Offer(offer) => format!(
            "signaling: SDP offer from {} ({} bytes)",
            sender(offer.sender.as_ref()),
            offer.body.sdp.len()
        ),
        ClientEvent::Answer(answer) => format!(
            "signaling: SDP answer from {} ({} bytes)",
            sender(answer.sender.as_ref()),
            answer.body.sdp.len()
        ),
        ClientEvent::IceCandidate(candidate) => format!(
            "signaling: ICE candidate from {}: {}",
            sender(candidate.sender.as_ref()),
            candidate.body.candidate
        ),
        ClientEvent::Session(SessionEvent::StateChanged(state)) => {
            format!("signaling: {state:?}")
        }
        ClientEvent::Session(SessionEvent::IceServersUpdated(servers)) => {
            let uris: Vec<&str> = servers
                .iter()
                .flat_map(|server| server.uris.iter().flatten().map(IceUri::as_str))
                .collect();
            format!("signaling: ICE servers {uris:?}")
        }
        ClientEvent::Session(event) => format!("signaling: {event:?}"),
        other => format!("signaling: {other:?}"),
    };
    log.note(Some(role), what);
}

/// Counts a datagram to or from `peer`.
fn count(report: &mut PeerReport, direction: Direction, peer: SocketAddr) {
    let counts = report.datagrams_by_address.entry(peer).or_default();
    match direction {
        Direction::Sent => {
            report.datagrams_sent += 1;
            counts.sent += 1;
        }
        Direction::Received => {
            report.datagrams_received += 1;
            counts.received += 1;
        }
    }
}

/// Allocates a relay on the first TURN server over UDP among the ICE servers the signaling
/// client got, with the credentials that came with it.
async fn allocate(
    setup: &Setup,
    socket: &UdpSocket,
    report: &mut PeerReport,
) -> Result<(Relay, String), String> {
    let found = setup.ice_servers.iter().find_map(|server| {
        let username = server.username.as_ref()?.as_str();
        let password = server.password.as_ref()?.as_str();
        server.uris.iter().flatten().find_map(|uri| {
            let parsed = TurnUri::parse(uri.as_str()).ok()?;
            Some((uri.as_str(), parsed, username, password))
        })
    });
    let Some((uri, parsed, username, password)) = found else {
        let uris: Vec<&str> = setup
            .ice_servers
            .iter()
            .flat_map(|server| server.uris.iter().flatten().map(IceUri::as_str))
            .collect();
        return Err(format!(
            "a relay candidate needs a turn: URI over UDP with a username and password among \
             the ICE servers from GetIceServerConfig, and there are {uris:?}"
        ));
    };
    let server = match parsed.socket_addr() {
        Some(server) => server,
        None => tokio::net::lookup_host((parsed.host.as_str(), parsed.port))
            .await
            .map_err(|err| format!("{uri}: {err}"))?
            .find(|addr| addr.is_ipv4() == setup.bind.is_ipv4())
            .ok_or_else(|| format!("{uri}: no address of the socket's family"))?,
    };
    setup.log.note(
        Some(setup.role),
        format!("relay: allocating on {server} ({uri}) as {username}"),
    );
    let relay = Relay::allocate_observed(socket, server, username, password, |direction, peer| {
        count(report, direction, peer);
    })
    .await
    .map_err(|err| format!("TURN Allocate on {uri}: {err}"))?;
    setup.log.note(
        Some(setup.role),
        format!(
            "relay: allocated {} (realm {:?})",
            relay.relayed(),
            relay.credential().realm()
        ),
    );
    Ok((relay, uri.to_owned()))
}

fn sender(sender: Option<&PeerId>) -> String {
    sender.map_or_else(|| "the master".to_owned(), |id| id.to_string())
}

/// The `a=mid` of the first m-line, and its index (0): the data channel's, the only one.
fn data_media(sdp: &str) -> (String, u16) {
    let mid = sdp
        .lines()
        .find_map(|line| line.strip_prefix("a=mid:"))
        .unwrap_or("0");
    (mid.trim().to_owned(), 0)
}

/// How many `a=candidate:` lines an SDP holds.
fn candidate_lines(sdp: &str) -> usize {
    sdp.lines()
        .filter(|line| line.starts_with("a=candidate:"))
        .count()
}
