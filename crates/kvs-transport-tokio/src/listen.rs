//! The listening socket of a signaling server.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

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
