//! Serving one WebSocket connection, over plain TCP or TLS alike, with the sans-IO codec of
//! `codec.rs`.
//!
//! One task serves a socket. It waits for whichever comes first, bytes from the client or
//! frames from the hub. What arrives is read into a buffer on the stack (never in the task's
//! state, so an idle connection holds no read buffer) and decoded at once; what the hub queued
//! goes out in one vectored write. Every write has a deadline, and the closing handshake is
//! bounded: a peer that stops reading, or never answers a close, costs its socket for a
//! bounded time only.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::time::Instant;

use crate::codec::{
    CLOSE_NORMAL, Decoder, Event, OP_PING, OP_PONG, OP_TEXT, close_frame, encode, frame_header,
};
use crate::outbox::{Ack, Batch, Queued};
use crate::shard::{Command, Registration, ShardHandle};
use crate::telemetry::Telemetry;

/// Bytes read from the socket at once, on the stack.
const READ_CHUNK: usize = 16 * 1024;
/// Reads per wakeup before the task lets others run.
const READS_PER_WAKEUP: usize = 16;
/// Frames taken from the outbound queue at once: all of them (its capacity is below this).
const BATCH_FRAMES: usize = usize::MAX;
/// Frames per vectored write (two slices each).
const FRAMES_PER_WRITE: usize = 32;

/// The limits of one WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebSocketLimits {
    /// The largest message a client may send, fragments and all: 14,336 bytes (the 10,240
    /// characters of the largest payload, and its envelope). Larger ones close the
    /// connection with 1009.
    pub max_message_len: usize,
    /// How long one write may take: 10 seconds. A peer that does not take what is written to
    /// it for that long (a zero window, a dead host) is dropped, and its socket, task and
    /// queued frames are released.
    pub write_timeout: Duration,
    /// How long the closing handshake may take once the server sends its close frame: 5
    /// seconds. Then the connection is dropped, answered or not.
    pub close_timeout: Duration,
    /// How long a connection may be silent before the server pings it: 20 seconds; `None`
    /// sends no pings. Every official client answers pings at the WebSocket layer (browsers,
    /// Node's `ws`, libwebsockets in the C SDK, OkHttp on Android, Starscream on iOS), so a
    /// client that answers nothing is gone: a device that lost power or network, whose socket
    /// the kernel would otherwise keep for minutes while messages to it are lost.
    pub ping_interval: Option<Duration>,
    /// How long the server waits for any frame after its ping before it closes the connection
    /// (1001): 10 seconds, room for a mobile radio to wake up. A dead socket is found within
    /// `ping_interval + pong_timeout` of its last frame; its client id is then free, and
    /// what is sent to it is held for the channel's TTL as for any absent recipient. A pong is
    /// liveness, not activity: the hub's idle timeout still counts only what the client sends
    /// on its own.
    pub pong_timeout: Duration,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        Self {
            max_message_len: kvs_signaling_proto::limits::MAX_MESSAGE_PAYLOAD_LEN + 4 * 1024,
            write_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            ping_interval: Some(Duration::from_secs(20)),
            pong_timeout: Duration::from_secs(10),
        }
    }
}

impl WebSocketLimits {
    /// Sets [`WebSocketLimits::max_message_len`].
    #[must_use]
    pub fn max_message_len(mut self, len: usize) -> Self {
        self.max_message_len = len;
        self
    }

    /// Sets [`WebSocketLimits::write_timeout`].
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets [`WebSocketLimits::close_timeout`].
    #[must_use]
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`WebSocketLimits::ping_interval`].
    #[must_use]
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Sets [`WebSocketLimits::pong_timeout`].
    #[must_use]
    pub fn pong_timeout(mut self, timeout: Duration) -> Self {
        self.pong_timeout = timeout;
        self
    }
}

/// When to ping a silent connection, and when to give up on it.
struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    /// When the client was last heard from: any bytes at all.
    heard: Instant,
    /// When the ping went out, while nothing has been heard since.
    pinged: Option<Instant>,
    /// Armed for the next decision; boxed, so that it does not move.
    timer: Pin<Box<tokio::time::Sleep>>,
}

/// What the heartbeat's timer asks for.
enum Beat {
    /// Nothing yet: the timer is armed again.
    Wait,
    /// Send a ping now.
    Ping,
    /// No answer in time: the connection is dead.
    Dead,
}

impl Heartbeat {
    fn new(interval: Duration, timeout: Duration, now: Instant) -> Self {
        Self {
            interval,
            timeout,
            heard: now,
            pinged: None,
            timer: Box::pin(tokio::time::sleep_until(now + interval)),
        }
    }

    /// The client was heard from at `now`: any bytes answer an outstanding ping (comparing
    /// instants would not do: a clock as coarse as a paused test clock gives the ping and its
    /// answer the same one).
    fn heard(&mut self, now: Instant) {
        self.heard = now;
        self.pinged = None;
    }

    /// The timer fired at `now`: decide, and arm it for the next decision. Hearing from the
    /// client only moves [`Heartbeat::heard`]; the timer catches up here, so that reads never
    /// touch it.
    fn fire(&mut self, now: Instant) -> Beat {
        if let Some(pinged) = self.pinged {
            let due = pinged + self.timeout;
            if now >= due {
                return Beat::Dead;
            }
            self.timer.as_mut().reset(due);
            return Beat::Wait;
        }
        let due = self.heard + self.interval;
        if now < due {
            self.timer.as_mut().reset(due);
            return Beat::Wait;
        }
        self.pinged = Some(now);
        self.timer.as_mut().reset(now + self.timeout);
        Beat::Ping
    }
}

/// Waits for the heartbeat's timer; forever when there is none.
async fn beat(heartbeat: &mut Option<Heartbeat>) {
    match heartbeat {
        Some(heartbeat) => heartbeat.timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// How the serving loop ended.
#[derive(Debug)]
enum Ending {
    /// The client sent a close frame (with this code): answer it.
    PeerClosed(Option<u16>),
    /// The server closes: the hub's order, or a rule the client broke.
    Close {
        code: u16,
        reason: &'static str,
        /// Whether the client may still answer with its own close frame (the stream is
        /// intact); after a framing error it is not.
        await_reply: bool,
    },
    /// The client closed its end without a close frame.
    Eof,
    /// The socket failed or a write passed its deadline: nothing more can be said.
    Failed,
}

/// Serves the WebSocket on `io`, over plain TCP or TLS (the `101` already written; `initial`
/// holds any bytes that came after the upgrade request), for the hub connection
/// `registration`: the hub is told the socket is up, text messages go to it, pings are
/// answered and count as activity (pongs do not), a connection silent for
/// [`WebSocketLimits::ping_interval`] is pinged and closed if it stays silent for
/// [`WebSocketLimits::pong_timeout`] more, and what the hub sends is written in order.
/// The protocol is text only: a binary frame closes the connection with 1003 (the official C
/// SDK tears down on one), a message over the limit with 1009, a broken frame with 1002 and
/// text that is not UTF-8 with 1007. Returns when the connection is over, its closing
/// handshake done or timed out.
pub async fn serve_websocket<S>(
    mut io: S,
    initial: Vec<u8>,
    mut registration: Registration,
    limits: WebSocketLimits,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let shard = registration.shard.clone();
    let telemetry = std::sync::Arc::clone(shard.telemetry());
    let conn = registration.conn;
    if shard.established(conn).await.is_err() {
        return;
    }
    let mut decoder = Decoder::new(limits.max_message_len);
    let mut events = Vec::new();
    decoder.feed(&initial, &mut events);
    drop(initial);
    let mut heartbeat = limits
        .ping_interval
        .map(|interval| Heartbeat::new(interval, limits.pong_timeout, Instant::now()));
    let ending = loop {
        if let Some(ending) = handle_events(
            &mut io,
            &shard,
            &mut registration,
            &mut events,
            &telemetry,
            &limits,
        )
        .await
        {
            break ending;
        }
        tokio::select! {
            batch = registration.next_batch(BATCH_FRAMES) => {
                let mut frames = match frames_of(batch) {
                    Ok(frames) => frames,
                    Err(ending) => break ending,
                };
                let written = write_frames(&mut io, frames.make_contiguous(), limits.write_timeout);
                let receipts = match after_write(written.await, frames, &mut registration, &telemetry) {
                    Ok(receipts) => receipts,
                    Err(ending) => break ending,
                };
                if !receipts.is_empty() {
                    // Rare (only senders that asked): boxed out of the task's state.
                    let posted = Box::pin(post_writing(
                        &mut io,
                        &shard,
                        Command::Written(receipts),
                        &mut registration,
                        &telemetry,
                        &limits,
                        false,
                    ))
                    .await;
                    if let Err(ending) = posted {
                        break ending;
                    }
                }
            }
            read = read_some(&mut io, &mut decoder, &mut events, &telemetry) => match read {
                Ok(true) => {
                    if let Some(heartbeat) = &mut heartbeat {
                        heartbeat.heard(Instant::now());
                    }
                }
                Ok(false) => break Ending::Eof,
                Err(_) => break Ending::Failed,
            },
            () = beat(&mut heartbeat) => {
                let Some(heartbeat) = &mut heartbeat else { continue };
                match heartbeat.fire(Instant::now()) {
                    Beat::Wait => {}
                    Beat::Ping => {
                        let ping = encode(OP_PING, &[]);
                        if Box::pin(write_bytes(&mut io, &ping, limits.write_timeout))
                            .await
                            .is_err()
                        {
                            break Ending::Failed;
                        }
                    }
                    Beat::Dead => {
                        break Ending::Close {
                            code: 1001,
                            reason: "no answer to ping",
                            await_reply: false,
                        };
                    }
                }
            }
        }
    };
    // The hub forgets the connection first: nothing more is queued for it while it closes.
    let _ = shard.closed(conn).await;
    drop(registration);
    // Boxed: the closing handshake's state would otherwise be part of every idle
    // connection's task.
    Box::pin(finish(&mut io, &mut decoder, ending, &limits)).await;
}

/// The end of a connection whose hub is gone.
fn going_away() -> Ending {
    Ending::Close {
        code: 1001,
        reason: "server going away",
        await_reply: true,
    }
}

/// The frames of a batch the hub queued for the connection, or how the connection ends if the
/// batch ends it.
fn frames_of(batch: Batch) -> Result<VecDeque<Queued>, Ending> {
    match batch {
        Batch::Frames(frames) => Ok(frames),
        Batch::Close(close) => Err(Ending::Close {
            code: close.code,
            reason: close.reason,
            await_reply: true,
        }),
        Batch::End => Err(Ending::Close {
            code: CLOSE_NORMAL,
            reason: "",
            await_reply: true,
        }),
    }
}

/// After `frames` were written (`written`): the receipts of the tracked ones, or, if the
/// write failed, the end of the connection (the tracked frames go back to the hub
/// unwritten).
fn after_write(
    written: io::Result<()>,
    mut frames: VecDeque<Queued>,
    registration: &mut Registration,
    telemetry: &Telemetry,
) -> Result<Vec<Ack>, Ending> {
    if written.is_err() {
        registration.outbound.give_back(frames);
        return Err(Ending::Failed);
    }
    count_written(telemetry, frames.make_contiguous());
    if frames.iter().any(|(.., ack)| ack.is_some()) {
        Ok(frames.into_iter().filter_map(|(.., ack)| ack).collect())
    } else {
        Ok(Vec::new())
    }
}

/// Queues `command` for the hub, and while its queue is full writes what the hub sends the
/// connection meanwhile: a socket whose reads wait for room in a busy hub's queue keeps
/// draining its own, so that a client that reads all the time is never closed as a slow
/// consumer for it. The receipts of tracked frames written during the wait follow `command`.
/// If a batch ends the connection or a write fails, the wait still ends (and the receipts
/// are still posted) before the ending is returned, so that no written frame is held again.
/// After a failed write (`failed`), it only waits.
async fn post_writing<S>(
    io: &mut S,
    shard: &ShardHandle,
    command: Command,
    registration: &mut Registration,
    telemetry: &Telemetry,
    limits: &WebSocketLimits,
    failed: bool,
) -> Result<(), Ending>
where
    S: AsyncWrite + Unpin,
{
    let mut next = Some(command);
    let mut receipts = Vec::new();
    let mut ending = failed.then_some(Ending::Failed);
    while let Some(command) = next.take() {
        let stopped = |ending: &mut Option<Ending>| ending.take().unwrap_or_else(going_away);
        let Some(command) = shard.try_post(command).map_err(|_| stopped(&mut ending))? else {
            next = (!receipts.is_empty()).then(|| Command::Written(std::mem::take(&mut receipts)));
            continue;
        };
        let mut sending = shard.send_slow(command);
        loop {
            tokio::select! {
                biased;
                sent = &mut sending => {
                    sent.map_err(|_| stopped(&mut ending))?;
                    break;
                }
                batch = registration.next_batch(BATCH_FRAMES), if ending.is_none() => {
                    let mut frames = match frames_of(batch) {
                        Ok(frames) => frames,
                        Err(end) => {
                            ending = Some(end);
                            continue;
                        }
                    };
                    let written = write_frames(io, frames.make_contiguous(), limits.write_timeout);
                    match after_write(written.await, frames, registration, telemetry) {
                        Ok(written) => receipts.extend(written),
                        Err(end) => ending = Some(end),
                    }
                }
            }
        }
        next = (!receipts.is_empty()).then(|| Command::Written(std::mem::take(&mut receipts)));
    }
    ending.map_or(Ok(()), Err)
}

/// Acts on the decoded events; returns how the connection ends if one of them ends it.
async fn handle_events<S>(
    io: &mut S,
    shard: &ShardHandle,
    registration: &mut Registration,
    events: &mut Vec<Event>,
    telemetry: &Telemetry,
    limits: &WebSocketLimits,
) -> Option<Ending>
where
    S: AsyncWrite + Unpin,
{
    if events.is_empty() {
        return None;
    }
    let conn = registration.conn;
    let read_at = std::time::Instant::now();
    // A write that failed while the hub was busy ends the connection, but the messages read
    // before it still go to the hub (without writing anything more).
    let mut failed = false;
    for event in std::mem::take(events) {
        let command = match event {
            Event::Text(text) => {
                shard.telemetry().frame_in();
                Command::Frame(conn, text, read_at)
            }
            // Liveness (the heartbeat has it from the read), not activity: a client that only
            // answers the server's pings is idle.
            Event::Pong => continue,
            Event::Ping(_) if failed => continue,
            Event::Ping(payload) => {
                // Boxed, as rare: its state stays out of every idle connection's task.
                let pong = encode(OP_PONG, &payload);
                if Box::pin(write_bytes(io, &pong, limits.write_timeout))
                    .await
                    .is_err()
                {
                    failed = true;
                    continue;
                }
                Command::Keepalive(conn)
            }
            Event::Close(_) | Event::Refuse(..) if failed => return Some(Ending::Failed),
            Event::Close(code) => return Some(Ending::PeerClosed(code)),
            Event::Refuse(code, reason) => {
                return Some(Ending::Close {
                    code,
                    reason,
                    await_reply: false,
                });
            }
        };
        let command = match shard.try_post(command) {
            Ok(None) => continue,
            Ok(Some(command)) => command,
            Err(_) if failed => return Some(Ending::Failed),
            Err(_) => return Some(going_away()),
        };
        // The hub is busy: wait for room, writing meanwhile (boxed, as rare).
        let posted = Box::pin(post_writing(
            io,
            shard,
            command,
            registration,
            telemetry,
            limits,
            failed,
        ));
        match posted.await {
            Ok(()) => {}
            Err(Ending::Failed) => failed = true,
            Err(ending) => return Some(ending),
        }
    }
    failed.then_some(Ending::Failed)
}

/// Reads what the socket has, up to [`READS_PER_WAKEUP`] chunks, into a buffer on the stack of
/// this poll (never in the task's state) and feeds it to `decoder`. `Ok(false)` at the end of
/// the stream.
async fn read_some<S>(
    io: &mut S,
    decoder: &mut Decoder,
    events: &mut Vec<Event>,
    telemetry: &Telemetry,
) -> io::Result<bool>
where
    S: AsyncRead + Unpin,
{
    poll_fn(|cx| {
        // Uninitialized: a socket reads into it without the 16 KiB being zeroed each time.
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut reads = 0;
        loop {
            let mut buf = ReadBuf::uninit(&mut chunk);
            match Pin::new(&mut *io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    let filled = buf.filled();
                    if filled.is_empty() {
                        return Poll::Ready(Ok(reads > 0));
                    }
                    let full = filled.len() == READ_CHUNK;
                    telemetry.read(filled.len());
                    decoder.feed(filled, events);
                    reads += 1;
                    if !full || reads >= READS_PER_WAKEUP || decoder.is_ended() {
                        return Poll::Ready(Ok(true));
                    }
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending if reads > 0 => return Poll::Ready(Ok(true)),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// The length of the header of a server frame carrying `len` bytes.
fn header_len(len: usize) -> usize {
    frame_header(OP_TEXT, len, &mut [0; 10])
}

/// Counts what a batch wrote, and the relay latency of each frame that relays a message read
/// just before.
fn count_written(telemetry: &Telemetry, frames: &[Queued]) {
    let bytes: usize = frames
        .iter()
        .map(|(frame, ..)| header_len(frame.as_str().len()) + frame.as_str().len())
        .sum();
    telemetry.wrote(bytes, frames.len());
    if frames.iter().any(|(_, read_at, _)| read_at.is_some()) {
        let now = std::time::Instant::now();
        for read_at in frames.iter().filter_map(|(_, read_at, _)| *read_at) {
            telemetry
                .relay_latency
                .record(now.saturating_duration_since(read_at));
        }
    }
}

/// Writes `frames` as text frames, as many as fit in each vectored write, and flushes, within
/// `timeout`. The payloads are written where they are, never copied. A write the socket takes
/// at once (the usual case) arms no timer; the deadline starts when the socket first pushes
/// back.
async fn write_frames<S>(io: &mut S, frames: &[Queued], timeout: Duration) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let write = async {
        // The frame being written, and how many of its bytes (header and payload) are out.
        let mut at = 0;
        let mut offset = 0;
        poll_fn(|cx| -> Poll<io::Result<()>> {
            while let Some(rest) = frames.get(at..).filter(|rest| !rest.is_empty()) {
                let count = rest.len().min(FRAMES_PER_WRITE);
                let mut headers = [[0u8; 10]; FRAMES_PER_WRITE];
                let mut lens = [0usize; FRAMES_PER_WRITE];
                let mut slices = [IoSlice::new(&[]); 2 * FRAMES_PER_WRITE];
                let mut used = 0;
                for (i, (frame, ..)) in rest.iter().take(count).enumerate() {
                    lens[i] = frame_header(OP_TEXT, frame.as_str().len(), &mut headers[i]);
                }
                for (i, (frame, ..)) in rest.iter().take(count).enumerate() {
                    let header = &headers[i][..lens[i]];
                    let payload = frame.as_str().as_bytes();
                    let skip = if i == 0 { offset } else { 0 };
                    if skip < header.len() {
                        slices[used] = IoSlice::new(&header[skip..]);
                        slices[used + 1] = IoSlice::new(payload);
                        used += 2;
                    } else {
                        slices[used] =
                            IoSlice::new(payload.get(skip - header.len()..).unwrap_or(&[]));
                        used += 1;
                    }
                }
                let written = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..used]))?;
                if written == 0 {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero)));
                }
                let mut left = written;
                while left > 0 {
                    let Some((frame, ..)) = frames.get(at) else {
                        break;
                    };
                    let len = frame.as_str().len();
                    let remaining = header_len(len) + len - offset;
                    if left >= remaining {
                        left -= remaining;
                        at += 1;
                        offset = 0;
                    } else {
                        offset += left;
                        left = 0;
                    }
                }
            }
            Poll::Ready(Ok(()))
        })
        .await?;
        poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)).await
    };
    with_deadline(write, timeout).await
}

/// Runs `work` within `timeout`, arming the timer only if `work` does not finish at its
/// first poll.
async fn with_deadline<F>(work: F, timeout: Duration) -> io::Result<()>
where
    F: Future<Output = io::Result<()>>,
{
    let mut work = std::pin::pin!(work);
    if let Poll::Ready(done) = poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await {
        return done;
    }
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Writes `bytes` and flushes, within `timeout`.
async fn write_bytes<S>(io: &mut S, bytes: &[u8], timeout: Duration) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let write = async {
        io.write_all(bytes).await?;
        io.flush().await
    };
    with_deadline(write, timeout).await
}

/// The closing handshake, within [`WebSocketLimits::close_timeout`] from its start: the close
/// frame (the answer to the client's, or the server's own), the client's answer where one may
/// come, then the end of the stream (a TLS close_notify and a FIN), and what the client sends
/// until it closes, so that unread bytes never turn the close into a reset. The end of the
/// stream is written even when the client never answered or ended its side first, within a
/// write deadline of its own, so that a TLS client always learns the close was meant.
async fn finish<S>(io: &mut S, decoder: &mut Decoder, ending: Ending, limits: &WebSocketLimits)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = Instant::now() + limits.close_timeout;
    let write_timeout = limits.write_timeout.min(limits.close_timeout);
    let (frame, await_reply) = match ending {
        Ending::Failed => return,
        Ending::Eof => (None, false),
        Ending::PeerClosed(code) => (Some(close_frame(code.unwrap_or(CLOSE_NORMAL), "")), false),
        Ending::Close {
            code,
            reason,
            await_reply,
        } => (Some(close_frame(code, reason)), await_reply),
    };
    if let Some(frame) = frame
        && write_bytes(io, &frame, write_timeout).await.is_err()
    {
        return;
    }
    /// What is left to do once the client's answer came, or did not.
    enum Then {
        /// End the stream, then read until the client ends its side.
        Drain,
        /// End the stream: the client's side is over, or its time is.
        Shut,
        /// Nothing: the socket failed.
        Gone,
    }
    let then = tokio::time::timeout_at(deadline, async {
        if !await_reply {
            return Then::Drain;
        }
        // Read on until the client's close frame (or its end of stream).
        let mut events = Vec::new();
        let discard = Telemetry::default();
        while !decoder.is_ended() {
            match read_some(io, decoder, &mut events, &discard).await {
                Ok(true) => events.clear(),
                Ok(false) => return Then::Shut,
                Err(_) => return Then::Gone,
            }
        }
        Then::Drain
    })
    .await
    .unwrap_or(Then::Shut);
    if matches!(then, Then::Gone) {
        return;
    }
    if !matches!(
        tokio::time::timeout(write_timeout, io.shutdown()).await,
        Ok(Ok(()))
    ) {
        return;
    }
    if matches!(then, Then::Drain) {
        // Drain until the client closes its end.
        let _ = tokio::time::timeout_at(deadline, async {
            let mut sink = Decoder::new(0);
            let mut events = Vec::new();
            let discard = Telemetry::default();
            while let Ok(true) = read_some(io, &mut sink, &mut events, &discard).await {
                events.clear();
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests;
