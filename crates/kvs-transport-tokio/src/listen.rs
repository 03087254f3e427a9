//! The listening socket of a signaling server.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// The listen backlog a signaling server wants: connects the kernel holds while they wait to
/// be accepted (capped by the system's `net.core.somaxconn`). Tokio's default of 128 drops the
/// rest of a reconnect storm, and each dropped client waits a second for its SYN to be retried.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (with `SO_REUSEADDR`, so a restarted server gets its port back at once) and
/// listens with room for `backlog` pending connects.
pub fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// The TCP options of an accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpTuning {
    /// `TCP_NODELAY`: on. Signaling frames are small and latency-bound; Nagle's algorithm put
    /// 40 ms between back-to-back frames.
    pub nodelay: bool,
    /// Keepalive probes after this long without traffic: 30 seconds (`None`: no keepalive),
    /// so that a peer that vanished without a FIN (power or network lost) is found even while
    /// nothing is written to it.
    pub keepalive_idle: Option<Duration>,
    /// Time between keepalive probes: 10 seconds.
    pub keepalive_interval: Duration,
    /// Unanswered probes before the connection is dropped: 3.
    pub keepalive_retries: u32,
    /// `TCP_USER_TIMEOUT` (Linux): data unacknowledged for this long drops the connection: 30
    /// seconds (`None`: the system's default, about 15 minutes of retransmissions).
    pub user_timeout: Option<Duration>,
    /// `SO_SNDBUF`: the kernel's send buffer of each connection, in bytes (`None`: the
    /// system's, which grows to `net.ipv4.tcp_wmem`'s maximum, 4 MiB on Linux). Smaller bounds
    /// the kernel memory a peer that stops reading can pin, and finds it sooner.
    pub send_buffer: Option<usize>,
}

impl Default for TcpTuning {
    fn default() -> Self {
        Self {
            nodelay: true,
            keepalive_idle: Some(Duration::from_secs(30)),
            keepalive_interval: Duration::from_secs(10),
            keepalive_retries: 3,
            user_timeout: Some(Duration::from_secs(30)),
            send_buffer: None,
        }
    }
}

impl TcpTuning {
    /// Applies the options to `stream`.
    pub fn apply(&self, stream: &TcpStream) -> std::io::Result<()> {
        let socket = socket2::SockRef::from(stream);
        socket.set_tcp_nodelay(self.nodelay)?;
        if let Some(idle) = self.keepalive_idle {
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(idle)
                .with_interval(self.keepalive_interval)
                .with_retries(self.keepalive_retries);
            socket.set_tcp_keepalive(&keepalive)?;
        }
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        if let Some(timeout) = self.user_timeout {
            socket.set_tcp_user_timeout(Some(timeout))?;
        }
        if let Some(bytes) = self.send_buffer {
            socket.set_send_buffer_size(bytes)?;
        }
        Ok(())
    }
}
