//! Serving one WebSocket connection: a reader that feeds the shard, a writer that drains the
//! connection's bounded queue.

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{WebSocketConfig, frame::coding::CloseCode};

use crate::shard::Registration;

/// The WebSocket limits and buffers for a signaling connection: messages and frames up to
/// `max_message_len` bytes (room for the largest payload and its envelope), and small buffers
/// so that an idle connection costs little memory.
pub fn websocket_config(max_message_len: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(max_message_len.saturating_mul(4).max(64 * 1024))
        .max_message_size(Some(max_message_len))
        .max_frame_size(Some(max_message_len))
}

/// Serves `ws` for the hub connection `registration` until either side closes it: text frames
/// go to the hub, ping and pong count as activity, and what the hub sends goes out in order.
/// The protocol is text only: a binary frame closes the connection with 1003 (unsupported
/// data), as the official C SDK tears down on one, and a message over the size limit with
/// 1009 (message too big). Returns when the connection is over.
pub async fn serve_websocket<S>(ws: WebSocketStream<S>, mut registration: Registration)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let shard = registration.shard.clone();
    let conn = registration.conn;
    let (refuse, mut refused) = tokio::sync::oneshot::channel::<CloseFrame>();
    let writer = tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = registration.next() => next,
                Ok(frame) = &mut refused => {
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            };
            let Some(next) = next else { break };
            match next {
                Ok(text) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Err(close) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(close.code),
                        reason: close.reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            }
        }
        let _ = sink.close().await;
        // Dropping the registration tells the hub, if it does not know already.
    });
    while let Some(message) = stream.next().await {
        let delivered = match message {
            Ok(Message::Text(text)) => shard.frame(conn, text).await,
            Ok(Message::Ping(_) | Message::Pong(_)) => shard.keepalive(conn).await,
            Ok(Message::Binary(_)) => {
                let _ = refuse.send(CloseFrame {
                    code: CloseCode::Unsupported,
                    reason: "binary frames are not accepted: the protocol is JSON text".into(),
                });
                break;
            }
            Ok(Message::Frame(_)) => Ok(()),
            Err(tokio_tungstenite::tungstenite::Error::Capacity(_)) => {
                let _ = refuse.send(CloseFrame {
                    code: CloseCode::Size,
                    reason: "a frame or message passed the size limit".into(),
                });
                break;
            }
            Ok(Message::Close(_)) | Err(_) => break,
        };
        if delivered.is_err() {
            break;
        }
    }
    let _ = shard.closed(conn).await;
    let _ = writer.await;
}

#[cfg(test)]
mod tests;
