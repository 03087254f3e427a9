//! The WebSocket connect: the presigned query verified and the hub asked before the upgrade, so
//! that every refusal is a plain HTTP answer with the service's status, as clients expect.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::SystemTime;

use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use kvs_signaling_core::OpenConnection;
use kvs_signaling_proto::{ConnectQuery, ErrorType};
use kvs_transport_tokio::{serve_tcp_websocket, serve_websocket, websocket_config};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;

use crate::access::Action;
use crate::app::{App, host};
use crate::config::AuthMode;
use crate::http::{HttpResponse, error};

/// A refusal before the upgrade, with the WebSocket connect's status for `error_type`.
fn refuse(error_type: ErrorType, message: impl Into<String>) -> HttpResponse {
    error(error_type, error_type.connect_status(), message)
}

pub(crate) async fn connect(app: Arc<App>, mut request: Request<Incoming>) -> HttpResponse {
    let query = request.uri().query().unwrap_or("");
    let connect = match ConnectQuery::parse(query) {
        Ok(connect) => connect,
        Err(err) => return refuse(err.error_type(), err.to_string()),
    };
    if app.config.auth == AuthMode::Verify {
        let path = request.uri().path();
        let verified =
            app.verifier
                .verify_presigned(SystemTime::now(), &host(&request), path, query);
        match verified {
            Ok(verified) => {
                if let Some(caller) = app.caller(verified.access_key_id) {
                    let action = match connect.client_id {
                        Some(_) => Action::ConnectAsViewer,
                        None => Action::ConnectAsMaster,
                    };
                    if let Err(message) = caller.check(action, connect.channel_arn.channel_name()) {
                        app.auth_failures.fetch_add(1, Ordering::Relaxed);
                        return refuse(ErrorType::AccessDeniedException, message);
                    }
                }
            }
            Err(err) => {
                app.auth_failures.fetch_add(1, Ordering::Relaxed);
                return refuse(ErrorType::AccessDeniedException, err.message);
            }
        }
    }
    let Some(key) = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|key| derive_accept_key(key.as_bytes()))
    else {
        return refuse(
            ErrorType::InvalidArgumentException,
            "Sec-WebSocket-Key: is required for a WebSocket connect",
        );
    };
    let ttl = {
        let registry = app.registry.lock().unwrap_or_else(PoisonError::into_inner);
        match registry.channel_by_arn(&connect.channel_arn) {
            Some(channel) => channel.message_ttl(),
            None => {
                return refuse(
                    ErrorType::ResourceNotFoundException,
                    format!(
                        "The requested channel is not found or not active: X-Amz-ChannelARN {}",
                        connect.channel_arn
                    ),
                );
            }
        }
    };
    let open = match connect.client_id {
        Some(client_id) => OpenConnection::viewer(connect.channel_arn, client_id, ttl),
        None => OpenConnection::master(connect.channel_arn, ttl),
    };
    let registration = match app.shards.of(&open.channel_arn).open(open).await {
        Ok(Ok(registration)) => registration,
        Ok(Err(refused)) => return refuse(refused.error_type, refused.message),
        Err(_) => return refuse(ErrorType::InternalFailure, "the hub has stopped"),
    };
    let upgrade = hyper::upgrade::on(&mut request);
    let max_message = app.config.hub.max_payload_len + 4 * 1024;
    let task = async move {
        match upgrade.await {
            // Plain TCP: the lean path, which holds no buffer while the connection is idle.
            Ok(upgraded) => match upgraded.downcast::<TokioIo<tokio::net::TcpStream>>() {
                Ok(parts) => {
                    // Copy out what came with the request, and let go of hyper's read buffer
                    // (kilobytes) before the connection's long wait.
                    let hyper::upgrade::Parts { io, read_buf, .. } = parts;
                    let initial = read_buf.to_vec();
                    drop(read_buf);
                    serve_tcp_websocket(io.into_inner(), initial, registration, max_message).await;
                }
                // TLS: tungstenite over the TLS stream.
                Err(upgraded) => {
                    let ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        WsRole::Server,
                        Some(websocket_config(max_message)),
                    )
                    .await;
                    serve_websocket(ws, registration).await;
                }
            },
            Err(err) => tracing::debug!(%err, "upgrade failed"),
        }
    };
    tokio::spawn(task);
    // No Sec-WebSocket-Protocol: official clients fail on one they did not offer.
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&key) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}
