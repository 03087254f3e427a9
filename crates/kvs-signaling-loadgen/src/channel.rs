//! One task per channel owns the channel's master and viewer sockets and drives them through
//! the mode: the probes of `hold`, the closed loop of `saturate`, the open loop of `rate`.
//!
//! Keeping a channel's sockets in one task makes every exchange local (no queue between a
//! master and its viewers) and keeps a connection's cost to its socket and its buffers.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use kvs_signaling_proto::{MessageType, PeerId};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::connect::Ws;
use crate::payload::{Check, Event, Frames, Sender, decode_event};
use crate::stats::{Latencies, Stats};
use crate::{Mode, PayloadKind};

/// A send that takes longer than this counts as a failed connection: the server stopped
/// reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Time given to closing a channel's sockets at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// `rate`: the most overdue messages one channel sends at once; more are skipped.
const MAX_BURST: u64 = 64;

/// `saturate`: the checks (one a second) a pair may go without an answer before its window
/// is sent again.
const STALL_CHECKS: u8 = 2;

/// Where the run is; the main task moves it forward, channel tasks follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Probing (`hold`) or exchanging messages.
    Run,
    /// `hold`: probe again.
    EndProbe,
    /// `rate`: stop sending, keep receiving.
    Drain,
    /// Close everything.
    Stop,
}

/// What every channel task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) mode: Mode,
    pub(crate) kind: PayloadKind,
    pub(crate) frames: Frames,
    /// The frame a viewer sends in probes and `saturate`, encoded once.
    pub(crate) viewer_frame: Utf8Bytes,
    /// The frame the master sends to viewer `v<j>`, encoded once.
    pub(crate) master_frames: Vec<Utf8Bytes>,
    /// The payload of `viewer_frame`, which masters receive, and of the master frames, which
    /// viewers receive: anything else relayed in probes and `saturate` is stale.
    pub(crate) viewer_payload: String,
    pub(crate) master_payload: String,
    /// `v0`, `v1`, …
    pub(crate) viewer_ids: Vec<PeerId>,
    /// The clock every send time counts from.
    pub(crate) origin: std::time::Instant,
    pub(crate) window: usize,
    pub(crate) probe_timeout: Duration,
    /// `rate`: messages a second per pair with both ends connected.
    pub(crate) pair_rate: f64,
    /// `rate`: the measurement window, in nanoseconds since `origin`.
    pub(crate) measure_from_ns: u64,
    pub(crate) measure_until_ns: u64,
    pub(crate) late_threshold_us: u64,
    pub(crate) channels: usize,
    pub(crate) stats: Arc<Stats>,
    pub(crate) latencies: Latencies,
}

impl Shared {
    /// Nanoseconds since `origin`.
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The relayed message of this run in `text`, which `who` received, counting every other
    /// kind of frame. With `timed`, the payload is decoded and the send time read; without,
    /// it must be the fixed payload of probes and `saturate`.
    fn relay(
        &self,
        text: &str,
        who: Who,
        timed: bool,
    ) -> Option<(MessageType, Sender, Option<u64>)> {
        let check = match (timed, who) {
            (true, _) => Check::Run(self.frames.run()),
            (false, Who::Master) => Check::Payload(&self.viewer_payload),
            (false, Who::Viewer(_)) => Check::Payload(&self.master_payload),
        };
        match decode_event(text, self.kind, check) {
            Event::Relay {
                message_type,
                sender,
                ts,
            } => Some((message_type, sender, ts)),
            Event::Status => {
                self.stats.status_responses.inc();
                None
            }
            Event::GoAway => {
                self.stats.go_away.inc();
                None
            }
            Event::Other => {
                self.stats.other_events.inc();
                None
            }
            Event::Stale => {
                self.stats.stale.inc();
                None
            }
            Event::Undecodable => {
                self.stats.undecodable.inc();
                None
            }
        }
    }
}

/// One of a channel's sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Master,
    Viewer(usize),
}

/// What a socket produced.
#[derive(Debug)]
enum Incoming {
    Text(Utf8Bytes),
    /// The socket closed: with the close frame's code, `None` without one (an error, or the
    /// TCP connection ended).
    Closed(Option<u16>),
    Ignored,
}

impl From<Option<Result<Message, WsError>>> for Incoming {
    fn from(item: Option<Result<Message, WsError>>) -> Self {
        match item {
            Some(Ok(Message::Text(text))) => Self::Text(text),
            Some(Ok(Message::Close(frame))) => Self::Closed(frame.map(|f| u16::from(f.code))),
            Some(Err(_)) | None => Self::Closed(None),
            Some(Ok(_)) => Self::Ignored,
        }
    }
}

/// A channel's connections: its master and its viewers `v0`, `v1`, … (`None` where the
/// connect failed or the socket closed).
#[derive(Debug)]
pub(crate) struct Channel {
    pub(crate) index: usize,
    pub(crate) master: Option<Ws>,
    pub(crate) viewers: Vec<Option<Ws>>,
    /// Where the next poll of the sockets starts, for fairness.
    rotate: usize,
}

impl Channel {
    pub(crate) fn new(index: usize, viewers: usize) -> Self {
        Self {
            index,
            master: None,
            viewers: (0..viewers).map(|_| None).collect(),
            rotate: 0,
        }
    }

    /// Pairs with both ends connected.
    pub(crate) fn open_pairs(&self) -> usize {
        (0..self.viewers.len())
            .filter(|&j| self.pair_open(j))
            .count()
    }

    fn pair_open(&self, j: usize) -> bool {
        self.master.is_some() && self.viewers.get(j).is_some_and(Option::is_some)
    }

    fn slot(&mut self, who: Who) -> Option<&mut Option<Ws>> {
        match who {
            Who::Master => Some(&mut self.master),
            Who::Viewer(j) => self.viewers.get_mut(j),
        }
    }

    /// The next thing any open socket produced; pending forever when none is open.
    async fn next(&mut self) -> (Who, Incoming) {
        let master = &mut self.master;
        let viewers = &mut self.viewers;
        let rotate = &mut self.rotate;
        poll_fn(|cx| {
            let n = viewers.len() + 1;
            for step in 0..n {
                let i = (*rotate + step) % n;
                let (who, slot) = if i == 0 {
                    (Who::Master, &mut *master)
                } else {
                    match viewers.get_mut(i - 1) {
                        Some(slot) => (Who::Viewer(i - 1), slot),
                        None => continue,
                    }
                };
                let Some(ws) = slot.as_mut() else { continue };
                if let Poll::Ready(item) = ws.poll_next_unpin(cx) {
                    *rotate = i + 1;
                    return Poll::Ready((who, Incoming::from(item)));
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Forgets a socket that closed (with the close code `code`) or failed before the end.
    fn lost(&mut self, who: Who, stats: &Stats, code: Option<u16>) {
        if let Some(slot) = self.slot(who)
            && slot.take().is_some()
        {
            stats.open.dec();
            stats.closed_early.inc();
            stats.record_close(code);
        }
    }

    /// Sends `text` on `who`'s socket; a socket that fails (or blocks for [`SEND_TIMEOUT`]) is
    /// lost. Returns whether it was sent.
    async fn send(&mut self, who: Who, text: Utf8Bytes, stats: &Stats) -> bool {
        let Some(Some(ws)) = self.slot(who) else {
            return false;
        };
        let sent = tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::Text(text))).await;
        if matches!(sent, Ok(Ok(()))) {
            stats.sent.inc();
            true
        } else {
            self.lost(who, stats, None);
            false
        }
    }

    /// Runs the channel through `shared.mode` until [`Phase::Stop`], then closes its sockets.
    pub(crate) async fn run(mut self, shared: Arc<Shared>, mut phase: watch::Receiver<Phase>) {
        match shared.mode {
            Mode::Hold => {
                self.probe(&shared, &mut phase, 0).await;
                if self.idle(&shared, &mut phase, Phase::EndProbe).await < Phase::Stop {
                    self.probe(&shared, &mut phase, 1).await;
                    self.idle(&shared, &mut phase, Phase::Stop).await;
                }
            }
            Mode::Saturate => self.saturate(&shared, &mut phase).await,
            Mode::Rate => self.rate(&shared, &mut phase).await,
        }
        self.close(&shared.stats).await;
    }

    /// Reads until the phase reaches `until` (or [`Phase::Stop`]), counting what arrives;
    /// returns the phase.
    async fn idle(
        &mut self,
        shared: &Shared,
        phase: &mut watch::Receiver<Phase>,
        until: Phase,
    ) -> Phase {
        loop {
            let now = *phase.borrow_and_update();
            if now >= until {
                return now;
            }
            tokio::select! {
                (who, incoming) = self.next() => match incoming {
                    Incoming::Text(text) => {
                        if shared.relay(&text, who, false).is_some() {
                            shared.stats.other_events.inc();
                        }
                    }
                    Incoming::Closed(code) => self.lost(who, &shared.stats, code),
                    Incoming::Ignored => {}
                },
                changed = phase.changed() => if changed.is_err() {
                    return Phase::Stop;
                },
            }
        }
    }

    /// Probe round `round`: each viewer sends an offer, which must reach the master, whose
    /// answer must reach the viewer, within the probe timeout.
    async fn probe(&mut self, shared: &Shared, phase: &mut watch::Receiver<Phase>, round: usize) {
        let stats = &shared.stats;
        let n = self.viewers.len();
        let mut sent = vec![false; n];
        let mut offered = vec![false; n];
        let mut answered = vec![false; n];
        for (j, sent) in sent.iter_mut().enumerate() {
            if self.pair_open(j) {
                *sent = self
                    .send(Who::Viewer(j), shared.viewer_frame.clone(), stats)
                    .await;
            }
        }
        let until = Instant::now() + shared.probe_timeout;
        loop {
            let waiting = (0..n).any(|j| {
                sent.get(j) == Some(&true) && answered.get(j) == Some(&false) && self.pair_open(j)
            });
            if !waiting || *phase.borrow() >= Phase::Stop {
                break;
            }
            tokio::select! {
                (who, incoming) = self.next() => match incoming {
                    Incoming::Text(text) => match (who, shared.relay(&text, who, false)) {
                        (Who::Master, Some((message_type, Sender::Viewer(j), _)))
                            if shared.frames.is_to_master(message_type)
                                && offered.get(j) == Some(&false) =>
                        {
                            stats.received.inc();
                            if let Some(flag) = offered.get_mut(j) {
                                *flag = true;
                            }
                            if let Some(frame) = shared.master_frames.get(j) {
                                self.send(Who::Master, frame.clone(), stats).await;
                            }
                        }
                        (Who::Viewer(j), Some((message_type, Sender::Absent, _)))
                            if shared.frames.is_to_viewer(message_type)
                                && answered.get(j) == Some(&false) =>
                        {
                            stats.received.inc();
                            if let Some(flag) = answered.get_mut(j) {
                                *flag = true;
                            }
                        }
                        (_, Some(_)) => stats.other_events.inc(),
                        (_, None) => {}
                    },
                    Incoming::Closed(code) => self.lost(who, stats, code),
                    Incoming::Ignored => {}
                },
                () = tokio::time::sleep_until(until) => break,
                changed = phase.changed() => if changed.is_err() {
                    break;
                },
            }
        }
        let ok = answered.iter().filter(|&&a| a).count() as u64;
        let counters = &stats.probes[round.min(1)];
        counters.ok.add(ok);
        counters.failed.add(n as u64 - ok);
        counters.channels_done.inc();
    }

    /// The closed loop: each open pair keeps `window` messages in flight until
    /// [`Phase::Stop`].
    async fn saturate(&mut self, shared: &Shared, phase: &mut watch::Receiver<Phase>) {
        let stats = &shared.stats;
        let n = self.viewers.len();
        for j in 0..n {
            self.fill_window(shared, j).await;
        }
        let mut stalled = vec![0_u8; n];
        let mut check = tokio::time::interval_at(
            Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        loop {
            if *phase.borrow_and_update() >= Phase::Stop {
                break;
            }
            tokio::select! {
                (who, incoming) = self.next() => match incoming {
                    Incoming::Text(text) => match (who, shared.relay(&text, who, false)) {
                        (Who::Master, Some((message_type, Sender::Viewer(j), _)))
                            if shared.frames.is_to_master(message_type) =>
                        {
                            stats.received.inc();
                            if let Some(frame) = shared.master_frames.get(j) {
                                self.send(Who::Master, frame.clone(), stats).await;
                            }
                        }
                        (Who::Viewer(j), Some((message_type, Sender::Absent, _)))
                            if shared.frames.is_to_viewer(message_type) =>
                        {
                            stats.received.inc();
                            if let Some(count) = stalled.get_mut(j) {
                                *count = 0;
                            }
                            self.send(Who::Viewer(j), shared.viewer_frame.clone(), stats).await;
                        }
                        (_, Some(_)) => stats.other_events.inc(),
                        (_, None) => {}
                    },
                    Incoming::Closed(code) => self.lost(who, stats, code),
                    Incoming::Ignored => {}
                },
                _ = check.tick() => {
                    for j in 0..n {
                        let Some(count) = stalled.get_mut(j) else { continue };
                        *count = count.saturating_add(1);
                        if *count >= STALL_CHECKS && self.pair_open(j) {
                            *count = 0;
                            stats.window_refills.inc();
                            self.fill_window(shared, j).await;
                        }
                    }
                },
                changed = phase.changed() => if changed.is_err() {
                    break;
                },
            }
        }
    }

    /// Sends a whole window of messages from viewer `j`, when its pair is open.
    async fn fill_window(&mut self, shared: &Shared, j: usize) {
        if !self.pair_open(j) {
            return;
        }
        for _ in 0..shared.window {
            if !self
                .send(Who::Viewer(j), shared.viewer_frame.clone(), &shared.stats)
                .await
            {
                break;
            }
        }
    }

    /// The open loop: the channel's share of the rate, alternating between a viewer's message
    /// to the master and the master's to that viewer, pair after pair; each message carries
    /// its send time and each arrival is timed.
    async fn rate(&mut self, shared: &Shared, phase: &mut watch::Receiver<Phase>) {
        let stats = &shared.stats;
        let active: Vec<usize> = (0..self.viewers.len())
            .filter(|&j| self.pair_open(j))
            .collect();
        let channel_rate = shared.pair_rate * active.len() as f64;
        let mut sending = channel_rate > 0.0 && channel_rate.is_finite();
        // At most an hour between messages, so that the times below stay small.
        let period = if sending {
            (1.0 / channel_rate).min(3600.0)
        } else {
            1.0
        };
        // Channels start spread over one period, so that the total is smooth.
        let stagger = self.index as f64 / shared.channels.max(1) as f64;
        let t0 = Instant::now() + Duration::from_secs_f64(period * stagger);
        let mut ticks: u64 = 0;
        let mut next_pair = 0_usize;
        let mut from_master = vec![false; self.viewers.len()];
        let sleep = tokio::time::sleep_until(t0);
        tokio::pin!(sleep);
        loop {
            let now_phase = *phase.borrow_and_update();
            if now_phase >= Phase::Stop {
                break;
            }
            if now_phase >= Phase::Drain {
                sending = false;
            }
            tokio::select! {
                () = &mut sleep, if sending => {
                    let elapsed = Instant::now().saturating_duration_since(t0).as_secs_f64();
                    let due = (elapsed / period) as u64 + 1;
                    let behind = due.saturating_sub(ticks);
                    let burst = behind.min(MAX_BURST);
                    stats.skipped.add(behind - burst);
                    ticks = due - burst;
                    for _ in 0..burst {
                        ticks += 1;
                        let Some(&j) = active.get(next_pair % active.len().max(1)) else { break };
                        next_pair = next_pair.wrapping_add(1);
                        if !self.pair_open(j) {
                            continue;
                        }
                        let ts = shared.now_ns();
                        if ts >= shared.measure_until_ns {
                            sending = false;
                            break;
                        }
                        let Some(direction) = from_master.get_mut(j) else { continue };
                        let (who, text) = if *direction {
                            let Some(id) = shared.viewer_ids.get(j) else { continue };
                            (Who::Master, shared.frames.master(id, ts))
                        } else {
                            (Who::Viewer(j), shared.frames.viewer(ts))
                        };
                        *direction = !*direction;
                        if self.send(who, text.into(), stats).await && ts >= shared.measure_from_ns {
                            stats.sent_window.inc();
                        }
                    }
                    let next = t0 + Duration::from_secs_f64(period * ticks as f64);
                    sleep.as_mut().reset(next);
                },
                (who, incoming) = self.next() => match incoming {
                    Incoming::Text(text) => self.timed(shared, who, &text),
                    Incoming::Closed(code) => self.lost(who, stats, code),
                    Incoming::Ignored => {}
                },
                changed = phase.changed() => if changed.is_err() {
                    break;
                },
            }
        }
    }

    /// Times a message that arrived in `rate`.
    fn timed(&self, shared: &Shared, who: Who, text: &str) {
        let stats = &shared.stats;
        let Some((message_type, sender, ts)) = shared.relay(text, who, true) else {
            return;
        };
        let expected = match (who, sender) {
            (Who::Master, Sender::Viewer(_)) => shared.frames.is_to_master(message_type),
            (Who::Viewer(_), Sender::Absent) => shared.frames.is_to_viewer(message_type),
            _ => false,
        };
        let Some(ts) = ts.filter(|_| expected) else {
            stats.other_events.inc();
            return;
        };
        stats.received.inc();
        if (shared.measure_from_ns..shared.measure_until_ns).contains(&ts) {
            let micros = shared.now_ns().saturating_sub(ts) / 1_000;
            stats.received_window.inc();
            shared.latencies.record(micros);
            if micros > shared.late_threshold_us {
                stats.late.inc();
            }
        }
    }

    /// Closes every socket, within [`CLOSE_TIMEOUT`] in all.
    async fn close(mut self, stats: &Stats) {
        let mut sockets: Vec<Ws> = self.master.take().into_iter().collect();
        sockets.extend(self.viewers.iter_mut().filter_map(Option::take));
        for _ in &sockets {
            stats.open.dec();
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            for ws in &mut sockets {
                let _ = ws.close(None).await;
            }
        })
        .await;
    }
}
