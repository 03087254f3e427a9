//! TLS on the server side with no buffer held while a connection is idle.
//!
//! rustls's buffered connection keeps a 4 KiB receive buffer for the life of every connection,
//! and tokio-rustls keeps the connection inline: a TLS connection cost 11.5 KB idle where a
//! plain one costs 2.9 KB. [`TlsStream`] drives rustls's unbuffered state machine instead:
//! what arrives is read into a buffer on the stack and handed to rustls at once; bytes are
//! kept only for a record that has not fully arrived, for decrypted data the reader has not
//! taken yet, and for ciphertext the socket has not taken yet, each freed once empty.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes read from the socket at once, on the stack.
const READ_CHUNK: usize = 16 * 1024;
/// Received bytes kept at most while rustls waits for the rest: the largest handshake message
/// (2^16 - 1 bytes, whose fragments rustls keeps until it is whole) and one more record.
/// Beyond it the peer is refused: it could otherwise pile up records of one byte each.
const MAX_INCOMING: usize = 0xffff + 5 + 16_384 + 2_048;
/// Plaintext encrypted in one write at most.
const WRITE_CHUNK: usize = 64 * 1024;
/// Ciphertext kept unsent at most before reading stops: what one write leaves (a chunk and
/// its records' overhead) and 16 KiB for what rustls answers meanwhile (key updates, which it
/// also limits itself), so that a peer that does not read is not read from either.
const MAX_UNSENT: usize = WRITE_CHUNK + WRITE_CHUNK / 16_384 * 64 + 64 + 16 * 1024;

/// What processing the received records came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// More records are needed (the handshake is not done, or nothing decrypted yet).
    NeedInput,
    /// The handshake is done: application data may be written.
    Writable,
    /// The peer sent close_notify: nothing more will be read.
    PeerClosed,
}

/// A TLS connection accepted by [`accept_tls`].
///
/// Read and write it from one task (as hyper and the WebSocket server do): a read may send
/// what rustls owes the peer, and the socket keeps one waker per direction. Early data
/// (0-RTT) is not expected: a configuration that enables it would see it as ordinary data.
pub struct TlsStream {
    io: TcpStream,
    conn: Box<UnbufferedServerConnection>,
    /// The start of a record that has not fully arrived; empty (no allocation) otherwise.
    incoming: Vec<u8>,
    /// Decrypted bytes the reader has not taken, from `plain_at`; empty otherwise.
    plaintext: Vec<u8>,
    plain_at: usize,
    /// Ciphertext the socket has not taken, from `out_at`; empty otherwise.
    outgoing: Vec<u8>,
    out_at: usize,
    read_closed: bool,
    close_sent: bool,
    /// A TLS error ended the connection: nothing more is read or written.
    failed: bool,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("incoming", &self.incoming.len())
            .field("plaintext", &(self.plaintext.len() - self.plain_at))
            .field("outgoing", &(self.outgoing.len() - self.out_at))
            .finish_non_exhaustive()
    }
}

fn tls_error(err: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

/// Takes one handshake record rustls has for the peer into `outgoing`.
fn encode(
    encoder: &mut rustls::unbuffered::EncodeTlsData<'_, rustls::server::ServerConnectionData>,
    outgoing: &mut Vec<u8>,
) -> io::Result<()> {
    let needed = match encoder.encode(&mut []) {
        Ok(_) => return Ok(()),
        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
            required_size
        }
        Err(err) => return Err(io::Error::other(err.to_string())),
    };
    let at = outgoing.len();
    outgoing.resize(at + needed, 0);
    match encoder.encode(&mut outgoing[at..]) {
        Ok(written) => {
            outgoing.truncate(at + written);
            Ok(())
        }
        Err(err) => Err(io::Error::other(err.to_string())),
    }
}

/// Feeds `records` to rustls until it needs more input or may send application data:
/// decrypted data is appended to `plaintext`, handshake output to `outgoing`. Returns how
/// many bytes of `records` were used up, and where it stopped.
fn process(
    conn: &mut UnbufferedServerConnection,
    records: &mut [u8],
    plaintext: &mut Vec<u8>,
    outgoing: &mut Vec<u8>,
) -> io::Result<(usize, Step)> {
    let mut used = 0;
    loop {
        let UnbufferedStatus { discard, state } =
            conn.process_tls_records(records.get_mut(used..).unwrap_or_default());
        let state = state.map_err(tls_error)?;
        let step = match state {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    plaintext.extend_from_slice(record.map_err(tls_error)?.payload);
                }
                None
            }
            ConnectionState::ReadEarlyData(mut early) => {
                // Early data is not enabled; should a client send it anyway, it is data.
                while let Some(record) = early.next_record() {
                    plaintext.extend_from_slice(record.map_err(tls_error)?.payload);
                }
                None
            }
            ConnectionState::EncodeTlsData(mut encoder) => {
                encode(&mut encoder, outgoing)?;
                None
            }
            // What was encoded is in `outgoing`, which goes out ahead of anything later.
            ConnectionState::TransmitTlsData(transmit) => {
                transmit.done();
                None
            }
            ConnectionState::BlockedHandshake => Some(Step::NeedInput),
            ConnectionState::WriteTraffic(_) => Some(Step::Writable),
            ConnectionState::PeerClosed | ConnectionState::Closed => Some(Step::PeerClosed),
            _ => Some(Step::NeedInput),
        };
        used += discard;
        if let Some(step) = step {
            return Ok((used, step));
        }
    }
}

/// Accepts a TLS connection on `io` with `config`: the handshake, until application data may
/// flow. Put a deadline on it: a peer that stops sending stalls it.
pub async fn accept_tls(io: TcpStream, config: Arc<rustls::ServerConfig>) -> io::Result<TlsStream> {
    let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
    let mut tls = TlsStream {
        io,
        conn: Box::new(conn),
        incoming: Vec::new(),
        plaintext: Vec::new(),
        plain_at: 0,
        outgoing: Vec::new(),
        out_at: 0,
        read_closed: false,
        close_sent: false,
        failed: false,
    };
    loop {
        let step = tls.process_incoming(&mut [])?;
        std::future::poll_fn(|cx| tls.poll_flush_outgoing(cx)).await?;
        match step {
            Step::Writable => return Ok(tls),
            Step::PeerClosed => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed during the TLS handshake",
                ));
            }
            Step::NeedInput => {
                let read = std::future::poll_fn(|cx| tls.poll_read_records(cx)).await?;
                if !read {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed during the TLS handshake",
                    ));
                }
            }
        }
    }
}

impl TlsStream {
    /// The TCP connection beneath.
    pub fn get_ref(&self) -> &TcpStream {
        &self.io
    }

    /// Processes what is kept in `incoming` followed by `fresh` (just read), keeping the
    /// start of a record (or the fragments of a handshake message) that has not fully
    /// arrived, up to [`MAX_INCOMING`].
    fn process_incoming(&mut self, fresh: &mut [u8]) -> io::Result<Step> {
        let step = self.process_kept_and(fresh);
        if step.is_err() {
            self.failed = true;
        } else if self.incoming.len() > MAX_INCOMING {
            self.failed = true;
            self.incoming = Vec::new();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the peer sent more of one TLS message than it may",
            ));
        }
        step
    }

    /// [`Self::process_incoming`] without the bound.
    fn process_kept_and(&mut self, fresh: &mut [u8]) -> io::Result<Step> {
        if self.incoming.is_empty() {
            let (used, step) = process(
                &mut self.conn,
                fresh,
                &mut self.plaintext,
                &mut self.outgoing,
            )?;
            if let Some(rest) = fresh.get(used..).filter(|rest| !rest.is_empty()) {
                self.incoming.extend_from_slice(rest);
            }
            return Ok(step);
        }
        let mut records = std::mem::take(&mut self.incoming);
        records.extend_from_slice(fresh);
        let (used, step) = process(
            &mut self.conn,
            &mut records,
            &mut self.plaintext,
            &mut self.outgoing,
        )?;
        records.drain(..used.min(records.len()));
        if !records.is_empty() {
            self.incoming = records;
        }
        Ok(step)
    }

    /// Reads what the socket has into a buffer on the stack and processes it; `false` at
    /// the end of the stream.
    fn poll_read_records(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        // Uninitialized: the socket reads into it without the 16 KiB being zeroed each time.
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        if buf.filled().is_empty() {
            return Poll::Ready(Ok(false));
        }
        let step = self.process_incoming(buf.filled_mut())?;
        if step == Step::PeerClosed {
            self.read_closed = true;
        }
        Poll::Ready(Ok(true))
    }

    /// Writes the ciphertext waiting in `outgoing`.
    fn poll_flush_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.outgoing.len() {
            let pending = self.outgoing.get(self.out_at..).unwrap_or_default();
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at += written;
        }
        self.outgoing = Vec::new();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }

    /// Encrypts `data` into `outgoing`.
    fn encrypt(&mut self, data: &[u8]) -> io::Result<()> {
        self.with_writer(|writer, outgoing| {
            let at = outgoing.len();
            let mut room = data.len() + (data.len() / 16_384 + 1) * 64;
            loop {
                outgoing.resize(at + room, 0);
                match writer.encrypt(data, &mut outgoing[at..]) {
                    Ok(written) => {
                        outgoing.truncate(at + written);
                        return Ok(());
                    }
                    Err(EncryptError::InsufficientSize(InsufficientSizeError {
                        required_size,
                    })) if required_size > room => room = required_size,
                    Err(err) => {
                        outgoing.truncate(at);
                        return Err(io::Error::other(err.to_string()));
                    }
                }
            }
        })
    }

    /// Puts close_notify in `outgoing`.
    fn queue_close_notify(&mut self) -> io::Result<()> {
        self.with_writer(|writer, outgoing| {
            let at = outgoing.len();
            // An alert record, and a key update rustls may still owe the peer ahead of it.
            let mut room = 64;
            loop {
                outgoing.resize(at + room, 0);
                match writer.queue_close_notify(&mut outgoing[at..]) {
                    Ok(written) => {
                        outgoing.truncate(at + written);
                        return Ok(());
                    }
                    Err(EncryptError::InsufficientSize(InsufficientSizeError {
                        required_size,
                    })) if required_size > room => room = required_size,
                    Err(err) => {
                        outgoing.truncate(at);
                        return Err(io::Error::other(err.to_string()));
                    }
                }
            }
        })
    }

    /// Runs `write` once rustls may send application data, handling first what it has to do
    /// (answer a key update, take a record that arrived). rustls always sees the kept
    /// `incoming` bytes, as its state machine requires.
    fn with_writer(
        &mut self,
        write: impl FnOnce(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut Vec<u8>,
        ) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut records = std::mem::take(&mut self.incoming);
        let mut write = Some(write);
        let result = loop {
            let UnbufferedStatus { discard, state } = self.conn.process_tls_records(&mut records);
            let state = match state {
                Ok(state) => state,
                Err(err) => break Err(tls_error(err)),
            };
            let outcome = match state {
                ConnectionState::WriteTraffic(mut writer) => match write.take() {
                    Some(write) => Some(write(&mut writer, &mut self.outgoing)),
                    None => Some(Ok(())),
                },
                ConnectionState::EncodeTlsData(mut encoder) => {
                    encode(&mut encoder, &mut self.outgoing).err().map(Err)
                }
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    None
                }
                ConnectionState::ReadTraffic(mut traffic) => {
                    let mut failed = None;
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => self.plaintext.extend_from_slice(record.payload),
                            Err(err) => {
                                failed = Some(Err(tls_error(err)));
                                break;
                            }
                        }
                    }
                    failed
                }
                _ => Some(Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the TLS connection cannot send application data",
                ))),
            };
            records.drain(..discard.min(records.len()));
            if let Some(outcome) = outcome {
                break outcome;
            }
        };
        if !records.is_empty() {
            self.incoming = records;
        }
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// The error of every call once the connection has failed.
    fn check_failed(&self) -> io::Result<()> {
        if self.failed {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the TLS connection failed",
            ))
        } else {
            Ok(())
        }
    }

    /// Moves decrypted bytes into `buf`; whether there were any.
    fn take_plaintext(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let available = self.plaintext.get(self.plain_at..).unwrap_or_default();
        if available.is_empty() {
            return false;
        }
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        self.plain_at += n;
        if self.plain_at == self.plaintext.len() {
            self.plaintext = Vec::new();
            self.plain_at = 0;
        }
        true
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.take_plaintext(buf) || this.read_closed {
                return Poll::Ready(Ok(()));
            }
            this.check_failed()?;
            // Handshake messages rustls answers (tickets, key updates) go out when they can;
            // a peer that makes them but does not read them is not read from either.
            match this.poll_flush_outgoing(cx) {
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending if this.outgoing.len() - this.out_at > MAX_UNSENT => {
                    return Poll::Pending;
                }
                _ => {}
            }
            if !ready!(this.poll_read_records(cx))? {
                if !this.incoming.is_empty() {
                    // A record cut short: truncated, not ended.
                    this.failed = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection in the middle of a TLS record",
                    )));
                }
                // The peer ended the TCP stream without close_notify: the end, all the same.
                this.read_closed = true;
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_failed()?;
        // What was encrypted before goes out first: the backlog stays one write deep.
        ready!(this.poll_flush_outgoing(cx))?;
        let mut nonempty = slices
            .iter()
            .map(|slice| &**slice)
            .filter(|s| !s.is_empty());
        let taken = match (nonempty.next(), nonempty.next()) {
            (None, _) => return Poll::Ready(Ok(0)),
            (Some(one), None) => {
                let take = one.len().min(WRITE_CHUNK);
                this.encrypt(one.get(..take).unwrap_or_default())?;
                take
            }
            (Some(_), Some(_)) => {
                // Small slices (a frame header and its payload) go in one record.
                let total = slices.iter().map(|s| s.len()).sum::<usize>();
                let mut joined = Vec::with_capacity(total.min(WRITE_CHUNK));
                for slice in slices {
                    let room = WRITE_CHUNK - joined.len();
                    if room == 0 {
                        break;
                    }
                    joined
                        .extend_from_slice(slice.get(..slice.len().min(room)).unwrap_or_default());
                }
                this.encrypt(&joined)?;
                joined.len()
            }
        };
        // Send what can be sent now; the rest goes out at the next write or flush.
        if let Poll::Ready(Err(err)) = this.poll_flush_outgoing(cx) {
            return Poll::Ready(Err(err));
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_outgoing(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_sent {
            this.close_sent = true;
            // A connection that cannot say close_notify any more is ended all the same.
            let _ = this.queue_close_notify();
        }
        ready!(this.poll_flush_outgoing(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
