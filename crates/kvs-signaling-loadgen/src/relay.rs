//! The reference relay: the ceiling of the stack to compare the real server with.
//!
//! A stock tokio-tungstenite server (default `WebSocketConfig`, one task per connection, a
//! bounded mpsc queue per connection to route) relaying the signaling frames with no
//! validation, no authentication and no semantics beyond routing:
//!
//! - the connect URL's query names the channel (`X-Amz-ChannelARN`, taken as it is, encoded)
//!   and, for a viewer, its id (`X-Amz-ClientId`); nothing else is read;
//! - a viewer's frame goes to its channel's master with `"senderClientId":"<viewer>"` added;
//! - a master's frame goes to the viewer its `recipientClientId` names, found by a plain string
//!   search;
//! - `"action"` becomes `"messageType"` by string replacement, so the event has the service's
//!   shape: `{"messageType":"SDP_OFFER","messagePayload":"…","senderClientId":"v0"}`.
//!
//! A frame for nobody, or for a full queue, is dropped. Sockets have `TCP_NODELAY`, as the
//! real server's, so that latencies compare.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames waiting for one connection's socket; more are dropped.
const QUEUE: usize = 256;

/// A running reference relay. Dropping it stops accepting; open connections run on until
/// their clients close them.
#[derive(Debug)]
pub struct ReferenceRelay {
    local_addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl ReferenceRelay {
    /// Listens on `listen` and serves on the current tokio runtime.
    pub async fn start(listen: SocketAddr) -> std::io::Result<Self> {
        // The same listen backlog as our server, so that connect rates compare the servers and
        // not the kernel's queue (tokio's default of 128 drops connect bursts).
        let listener: TcpListener =
            kvs_transport_tokio::listen(listen, kvs_transport_tokio::LISTEN_BACKLOG)?;
        let local_addr = listener.local_addr()?;
        let routes = Arc::new(Routes::default());
        let accept = tokio::spawn(async move {
            let ids = AtomicU64::new(0);
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of files, most likely: let some close.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let id = ids.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(stream, Arc::clone(&routes), id));
            }
        });
        Ok(Self { local_addr, accept })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for ReferenceRelay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

type Outbox = mpsc::Sender<Utf8Bytes>;

/// One channel's connections: the master and the viewers by id, each with the connection id
/// that registered it (a newer connection replaces an older one).
#[derive(Default)]
struct Room {
    master: Option<(u64, Outbox)>,
    viewers: HashMap<String, (u64, Outbox)>,
}

/// Every channel, by its ARN as the query spells it.
#[derive(Default)]
struct Routes {
    rooms: Mutex<HashMap<String, Room>>,
}

impl Routes {
    fn join(&self, channel: &str, viewer: Option<&str>, id: u64, outbox: Outbox) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        let room = rooms.entry(channel.to_owned()).or_default();
        match viewer {
            None => room.master = Some((id, outbox)),
            Some(viewer) => {
                room.viewers.insert(viewer.to_owned(), (id, outbox));
            }
        }
    }

    fn leave(&self, channel: &str, viewer: Option<&str>, id: u64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(room) = rooms.get_mut(channel) else {
            return;
        };
        match viewer {
            None => {
                if room.master.as_ref().is_some_and(|(owner, _)| *owner == id) {
                    room.master = None;
                }
            }
            Some(viewer) => {
                if room
                    .viewers
                    .get(viewer)
                    .is_some_and(|(owner, _)| *owner == id)
                {
                    room.viewers.remove(viewer);
                }
            }
        }
        if room.master.is_none() && room.viewers.is_empty() {
            rooms.remove(channel);
        }
    }

    /// Routes a frame from `viewer` (or from the master, when `None`) in `channel`.
    fn route(&self, channel: &str, viewer: Option<&str>, text: &str) {
        let mut out = text.replacen("\"action\"", "\"messageType\"", 1);
        let outbox = {
            let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(room) = rooms.get(channel) else {
                return;
            };
            match viewer {
                Some(_) => room.master.as_ref().map(|(_, outbox)| outbox.clone()),
                None => recipient(text)
                    .and_then(|recipient| room.viewers.get(recipient))
                    .map(|(_, outbox)| outbox.clone()),
            }
        };
        let Some(outbox) = outbox else {
            return;
        };
        if let Some(viewer) = viewer {
            let end = out.trim_end().len();
            out.truncate(end);
            if out.ends_with('}') {
                out.pop();
                out.push_str(",\"senderClientId\":\"");
                out.push_str(viewer);
                out.push_str("\"}");
            }
        }
        let _ = outbox.try_send(Utf8Bytes::from(out));
    }
}

/// The `recipientClientId` of a frame, by string search.
fn recipient(text: &str) -> Option<&str> {
    const KEY: &str = "\"recipientClientId\":\"";
    let start = text.find(KEY)? + KEY.len();
    let rest = text.get(start..)?;
    rest.get(..rest.find('"')?)
}

/// The value of `name` in a URL query, as it is spelled (still encoded).
fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name && !value.is_empty()).then_some(value)
    })
}

async fn serve(stream: TcpStream, routes: Arc<Routes>, id: u64) {
    let _ = stream.set_nodelay(true);
    let mut query = String::new();
    // The callback's error type is tungstenite's, whatever its size.
    #[expect(clippy::result_large_err, reason = "tungstenite's callback signature")]
    let callback = |request: &Request, response: Response| {
        request.uri().query().unwrap_or("").clone_into(&mut query);
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let Some(channel) = param(&query, "X-Amz-ChannelARN").map(str::to_owned) else {
        let _ = ws.close(None).await;
        return;
    };
    let viewer = param(&query, "X-Amz-ClientId").map(str::to_owned);
    let (outbox, mut inbox) = mpsc::channel(QUEUE);
    routes.join(&channel, viewer.as_deref(), id, outbox);
    loop {
        tokio::select! {
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => routes.route(&channel, viewer.as_deref(), &text),
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            outgoing = inbox.recv() => match outgoing {
                Some(text) => {
                    if ws.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    routes.leave(&channel, viewer.as_deref(), id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_rewritten_into_the_service_event_shape() {
        let routes = Routes::default();
        let (master, mut to_master) = mpsc::channel(4);
        let (viewer, mut to_viewer) = mpsc::channel(4);
        routes.join("arn", None, 1, master);
        routes.join("arn", Some("v0"), 2, viewer);
        routes.route(
            "arn",
            Some("v0"),
            r#"{"action":"SDP_OFFER","messagePayload":"e30="}"#,
        );
        assert_eq!(
            to_master.try_recv().unwrap().as_str(),
            r#"{"messageType":"SDP_OFFER","messagePayload":"e30=","senderClientId":"v0"}"#
        );
        routes.route(
            "arn",
            None,
            r#"{"action":"SDP_ANSWER","recipientClientId":"v0","messagePayload":"e30="}"#,
        );
        assert_eq!(
            to_viewer.try_recv().unwrap().as_str(),
            r#"{"messageType":"SDP_ANSWER","recipientClientId":"v0","messagePayload":"e30="}"#
        );
        // Nobody to deliver to: dropped.
        routes.route(
            "arn",
            None,
            r#"{"action":"SDP_ANSWER","recipientClientId":"v9"}"#,
        );
        routes.route("other", Some("v0"), r#"{"action":"SDP_OFFER"}"#);
        assert!(to_viewer.try_recv().is_err() && to_master.try_recv().is_err());
        // An older connection leaving does not unregister a newer one.
        let (newer, _keep) = mpsc::channel(4);
        routes.join("arn", None, 3, newer);
        routes.leave("arn", None, 1);
        assert!(routes.rooms.lock().unwrap()["arn"].master.is_some());
    }

    #[test]
    fn query_parameters_are_read_as_spelled() {
        let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-ChannelARN=arn%3Aaws&X-Amz-ClientId=v3";
        assert_eq!(param(query, "X-Amz-ChannelARN"), Some("arn%3Aaws"));
        assert_eq!(param(query, "X-Amz-ClientId"), Some("v3"));
        assert_eq!(param("X-Amz-ClientId=", "X-Amz-ClientId"), None);
    }
}
