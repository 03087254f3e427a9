//! Realistic payloads and frames, and reading back what arrives.
//!
//! Payloads are what browsers and the official SDKs put in `messagePayload`: the JSON of an
//! `RTCSessionDescription` (a two-media SDP offer or answer, about 1 KB) or of an
//! `RTCIceCandidate` (about 300 bytes), in standard base64. The send time travels inside the
//! text where a real client puts a number anyway: the SDP's session id (`o=- <id> 2 IN …`) or
//! the candidate's foundation (`candidate:<foundation> 1 udp …`), in nanoseconds since the
//! generator started; a run id travels beside it (the SDP's session version, the candidate's
//! `network-id`), so that messages of an earlier run, which a server buffers for a client id
//! and delivers when it connects again, are told apart and ignored.

use kvs_signaling_proto::{
    Action, ClientMessage, CorrelationId, IceCandidate, MessagePayload, MessageType,
    PayloadJson as _, PeerId, SdpType, ServerEvent, SessionDescription,
};

use crate::PayloadKind;

/// The ICE credentials and DTLS fingerprint of every generated SDP: fixed, as they would be
/// for one browser session.
const ICE_UFRAG: &str = "Xq3f";
const ICE_PWD: &str = "0dQZ8mHkVx4mB2pJv3nR6yTa";
const FINGERPRINT: &str = "5B:2F:9C:41:7E:D3:08:A6:1C:93:E4:55:0B:7D:C2:18:6F:A9:34:E0:\
                           52:8B:C7:1D:90:3E:F6:24:A8:5C:71:BD";

/// A two-media (Opus audio, VP8/H.264 video) SDP as Chrome writes it, trimmed to the lines
/// every browser sends; `session_id` and `version` go in the origin line.
fn sdp(session_id: u64, version: u32, answer: bool) -> String {
    let setup = if answer { "active" } else { "actpass" };
    let media = |kind: &str, mid: u32, formats: &str, lines: &str| {
        format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF {formats}\r\n\
             c=IN IP4 0.0.0.0\r\n\
             a=rtcp:9 IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:{ICE_UFRAG}\r\n\
             a=ice-pwd:{ICE_PWD}\r\n\
             a=ice-options:trickle\r\n\
             a=fingerprint:sha-256 {FINGERPRINT}\r\n\
             a=setup:{setup}\r\n\
             a=mid:{mid}\r\n\
             a=sendrecv\r\n\
             a=rtcp-mux\r\n\
             {lines}"
        )
    };
    let audio = media(
        "audio",
        0,
        "111 0",
        "a=rtpmap:111 opus/48000/2\r\n\
         a=fmtp:111 minptime=10;useinbandfec=1\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=ssrc:1001 cname:kvsloadgen\r\n",
    );
    let video = media(
        "video",
        1,
        "96 102",
        "a=rtcp-rsize\r\n\
         a=rtpmap:96 VP8/90000\r\n\
         a=rtcp-fb:96 nack pli\r\n\
         a=rtpmap:102 H264/90000\r\n\
         a=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n",
    );
    format!(
        "v=0\r\n\
         o=- {session_id} {version} IN IP4 127.0.0.1\r\n\
         s=-\r\n\
         t=0 0\r\n\
         a=group:BUNDLE 0 1\r\n\
         a=msid-semantic: WMS kvsloadgen\r\n\
         {audio}{video}"
    )
}

/// [`sdp`] with the many codecs, header extensions and feedback lines of a browser that
/// offers everything it has: about 7 KB, a payload of about 9.5 KB in base64.
fn large_sdp(session_id: u64, version: u32, answer: bool) -> String {
    let mut text = sdp(session_id, version, answer);
    let mut pt = 35;
    while text.len() < 7_000 {
        text.push_str(&format!(
            "a=rtpmap:{pt} H265/90000\r\n\
             a=rtcp-fb:{pt} goog-remb\r\na=rtcp-fb:{pt} transport-cc\r\n\
             a=rtcp-fb:{pt} ccm fir\r\na=rtcp-fb:{pt} nack\r\na=rtcp-fb:{pt} nack pli\r\n\
             a=fmtp:{pt} level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST\r\n"
        ));
        pt += 1;
    }
    text
}

/// A server-reflexive ICE candidate over IPv6 as Chrome writes it; `foundation` first.
fn candidate(foundation: u64, network_id: u32) -> IceCandidate {
    let mut candidate = IceCandidate::new(
        format!(
            "candidate:{foundation} 1 udp 1686052607 2001:db8:4860:4860::8888 50123 typ srflx \
             raddr 2001:db8:85a3:8d3:1319:8a2e:370:7348 rport 61234 generation 0 \
             ufrag {ICE_UFRAG} network-id {network_id} network-cost 10"
        ),
        "0",
        0,
    );
    candidate.username_fragment = Some(ICE_UFRAG.to_owned());
    candidate
}

/// The payload of a message of run `run` sent at `ts` (nanoseconds since the generator
/// started).
fn payload(kind: PayloadKind, from_master: bool, ts: u64, run: u32) -> MessagePayload<'static> {
    let encoded = match kind {
        PayloadKind::Offer => {
            let sdp_type = if from_master {
                SdpType::Answer
            } else {
                SdpType::Offer
            };
            SessionDescription::new(sdp_type, sdp(ts, run, from_master)).to_payload()
        }
        PayloadKind::Large => {
            let sdp_type = if from_master {
                SdpType::Answer
            } else {
                SdpType::Offer
            };
            SessionDescription::new(sdp_type, large_sdp(ts, run, from_master)).to_payload()
        }
        PayloadKind::Candidate => candidate(ts, run).to_payload(),
    };
    // Encoding a fixed-shape value of about 1.5 KB cannot exceed the 10 KB payload limit; the
    // fallback keeps the frame valid anyway.
    encoded.unwrap_or_else(|_| MessagePayload::encode(b"{}"))
}

/// The frames a run sends.
#[derive(Debug, Clone)]
pub(crate) struct Frames {
    kind: PayloadKind,
    correlation_id: Option<CorrelationId>,
    run: u32,
}

impl Frames {
    pub(crate) fn new(kind: PayloadKind, correlation_ids: bool, run: u32) -> Self {
        Self {
            kind,
            run,
            // A valid id by construction: letters only.
            correlation_id: correlation_ids
                .then(|| CorrelationId::new("loadgen").ok())
                .flatten(),
        }
    }

    /// A viewer's message to its master, sent at `ts`: `SDP_OFFER` or `ICE_CANDIDATE`.
    pub(crate) fn viewer(&self, ts: u64) -> String {
        let action = match self.kind {
            PayloadKind::Offer | PayloadKind::Large => Action::SdpOffer,
            PayloadKind::Candidate => Action::IceCandidate,
        };
        let mut message = ClientMessage::new(action, self.payload(false, ts));
        message.correlation_id.clone_from(&self.correlation_id);
        message.encode()
    }

    /// A master's message to the viewer `recipient`, sent at `ts`: `SDP_ANSWER` or
    /// `ICE_CANDIDATE`.
    pub(crate) fn master(&self, recipient: &PeerId, ts: u64) -> String {
        let action = match self.kind {
            PayloadKind::Offer | PayloadKind::Large => Action::SdpAnswer,
            PayloadKind::Candidate => Action::IceCandidate,
        };
        let mut message = ClientMessage::new(action, self.payload(true, ts));
        message.recipient_client_id = Some(recipient.clone());
        message.correlation_id.clone_from(&self.correlation_id);
        message.encode()
    }

    /// The payload a viewer (or, with `from_master`, the master) sends at `ts`.
    pub(crate) fn payload(&self, from_master: bool, ts: u64) -> MessagePayload<'static> {
        payload(self.kind, from_master, ts, self.run)
    }

    /// The run id the payloads carry.
    pub(crate) fn run(&self) -> u32 {
        self.run
    }

    /// The type of the event that relays a viewer's (or, with `from_master`, the master's)
    /// message.
    #[cfg(test)]
    pub(crate) fn payload_type(&self, from_master: bool) -> MessageType {
        match (self.kind, from_master) {
            (PayloadKind::Offer | PayloadKind::Large, false) => MessageType::SdpOffer,
            (PayloadKind::Offer | PayloadKind::Large, true) => MessageType::SdpAnswer,
            (PayloadKind::Candidate, _) => MessageType::IceCandidate,
        }
    }

    /// Whether `message_type` is what a master receives from a viewer.
    pub(crate) fn is_to_master(&self, message_type: MessageType) -> bool {
        match self.kind {
            PayloadKind::Offer | PayloadKind::Large => message_type == MessageType::SdpOffer,
            PayloadKind::Candidate => message_type == MessageType::IceCandidate,
        }
    }

    /// Whether `message_type` is what a viewer receives from its master.
    pub(crate) fn is_to_viewer(&self, message_type: MessageType) -> bool {
        match self.kind {
            PayloadKind::Offer | PayloadKind::Large => message_type == MessageType::SdpAnswer,
            PayloadKind::Candidate => message_type == MessageType::IceCandidate,
        }
    }

    /// The `messagePayload` length and the whole frame length of a viewer's message.
    pub(crate) fn sizes(&self) -> (usize, usize) {
        let frame = self.viewer(0);
        let payload = self.payload(false, 0).len();
        (payload, frame.len())
    }
}

/// Who sent a relayed message, by its `senderClientId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sender {
    /// No sender: from the master, as the service relays it.
    Absent,
    /// The viewer `v<j>`.
    Viewer(usize),
    /// Any other id.
    Other,
}

/// A frame that arrived, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A relayed message, with its send time when asked for and readable.
    Relay {
        message_type: MessageType,
        sender: Sender,
        ts: Option<u64>,
    },
    /// STATUS_RESPONSE.
    Status,
    /// GO_AWAY.
    GoAway,
    /// Any other event type.
    Other,
    /// A relayed message of an earlier run.
    Stale,
    /// Not a server event, or (when the time was asked for) a payload that does not decode.
    Undecodable,
}

/// How a relayed message is checked to belong to this run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check<'a> {
    /// Its payload is exactly this one (the fixed payloads of probes and `saturate`): a cheap
    /// comparison, no decoding.
    Payload(&'a str),
    /// Its payload decodes (base64, then JSON) and carries this run id; the send time is read.
    Run(u32),
}

/// Decodes `text` as a client does, and checks a relayed message with `check`.
pub(crate) fn decode_event(text: &str, kind: PayloadKind, check: Check<'_>) -> Event {
    let Ok(event) = ServerEvent::decode(text) else {
        return Event::Undecodable;
    };
    match event.message_type {
        MessageType::StatusResponse => return Event::Status,
        MessageType::GoAway => return Event::GoAway,
        MessageType::SdpOffer | MessageType::SdpAnswer | MessageType::IceCandidate => {}
        _ => return Event::Other,
    }
    let sender = match &event.sender_client_id {
        None => Sender::Absent,
        Some(id) => id
            .as_str()
            .strip_prefix('v')
            .and_then(|n| n.parse().ok())
            .map_or(Sender::Other, Sender::Viewer),
    };
    let Some(payload) = &event.message_payload else {
        return Event::Undecodable;
    };
    let ts = match check {
        Check::Payload(expected) if payload.as_str() == expected => None,
        Check::Payload(_) => return Event::Stale,
        Check::Run(run) => match stamp(kind, payload) {
            Some((ts, from)) if from == run => Some(ts),
            Some(_) => return Event::Stale,
            None => return Event::Undecodable,
        },
    };
    Event::Relay {
        message_type: event.message_type,
        sender,
        ts,
    }
}

/// The send time and the run id inside a payload: base64, then JSON, then the numbers in the
/// text. Either shape is read, the run's own first, so that an earlier run's messages of the
/// other kind are recognised as such.
fn stamp(kind: PayloadKind, payload: &MessagePayload<'_>) -> Option<(u64, u32)> {
    let json = payload.decode().ok()?;
    let as_offer = || {
        let description: SessionDescription = serde_json::from_slice(&json).ok()?;
        let origin = description
            .sdp
            .split("\r\n")
            .find_map(|line| line.strip_prefix("o=- "))?;
        let mut words = origin.split(' ');
        Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
    };
    let as_candidate = || {
        let candidate: IceCandidate = serde_json::from_slice(&json).ok()?;
        let rest = candidate.candidate.strip_prefix("candidate:")?;
        let ts = rest.split(' ').next()?.parse().ok()?;
        let (_, after) = rest.split_once(" network-id ")?;
        Some((ts, after.split(' ').next()?.parse().ok()?))
    };
    match kind {
        PayloadKind::Offer | PayloadKind::Large => as_offer().or_else(as_candidate),
        PayloadKind::Candidate => as_candidate().or_else(as_offer),
    }
}

#[cfg(test)]
mod tests;
