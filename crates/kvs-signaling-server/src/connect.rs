//! The WebSocket connect: the upgrade request checked, the presigned query verified and the
//! hub asked before the upgrade, so that every refusal is a plain HTTP answer with the
//! service's status, as clients expect. Plain TCP and TLS sockets are then served by the same
//! WebSocket code.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use kvs_signaling_core::OpenConnection;
use kvs_signaling_proto::{ChannelArn, ConnectQuery, ErrorType, MessageTtlSeconds};
use kvs_transport_tokio::{
    HandshakeError, LogLimiter, Registration, TlsStream, accept_key, serve_websocket,
};
use tokio::net::TcpStream;

use crate::accept::Slot;
use crate::access::Action;
use crate::app::{App, host};
use crate::config::AuthMode;
use crate::deadline::WriteDeadline;
use crate::http::{HttpResponse, error};

static UPGRADE_FAILED: LogLimiter = LogLimiter::new(Duration::from_secs(10));

/// A refusal before the upgrade, with the WebSocket connect's status for `error_type`.
fn refuse(error_type: ErrorType, message: impl Into<String>) -> HttpResponse {
    error(error_type, error_type.connect_status(), message)
}

/// The answer to an upgrade request that is not a valid WebSocket handshake: 400, or 426
/// with the version spoken when the version is the problem (RFC 6455 section 4.4).
fn bad_handshake(err: &HandshakeError) -> HttpResponse {
    let mut response = error(ErrorType::InvalidArgumentException, 400, err.to_string());
    if let HandshakeError::UnsupportedVersion { .. } = err {
        *response.status_mut() = StatusCode::UPGRADE_REQUIRED;
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    response
}

/// Whether the upgrade request offers the sub-protocol `wss`, as the official C SDK (through
/// libwebsockets) and the embedded signaling library do, and no other official client.
fn offers_wss_protocol(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim().eq_ignore_ascii_case("wss"))
}

/// The channel's message TTL and configuration revision, or `None` when it does not exist.
async fn channel_ttl(
    app: &App,
    arn: &ChannelArn,
) -> Result<Option<(MessageTtlSeconds, u64)>, HttpResponse> {
    Ok(app
        .channels
        .by_arn(arn)
        .await?
        .map(|channel| (channel.message_ttl(), channel.revision())))
}

fn not_found(arn: &ChannelArn) -> HttpResponse {
    refuse(
        ErrorType::ResourceNotFoundException,
        format!("The requested channel is not found or not active: X-Amz-ChannelARN {arn}"),
    )
}

pub(crate) async fn connect(
    app: Arc<App>,
    mut request: Request<Incoming>,
    slot: Slot,
) -> HttpResponse {
    let headers = request.headers();
    let accept = match accept_key(
        headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes),
        headers
            .get(header::SEC_WEBSOCKET_KEY)
            .map(HeaderValue::as_bytes),
    ) {
        Ok(accept) => accept,
        Err(err) => return bad_handshake(&err),
    };
    let c_sdk = offers_wss_protocol(headers);
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
    let indications = app.config.indications.applies(connect.indications, c_sdk);
    let arn = connect.channel_arn.clone();
    let (ttl, revision) = match channel_ttl(&app, &arn).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(&arn),
        Err(response) => return response,
    };
    let open = match connect.client_id {
        Some(client_id) => OpenConnection::viewer(connect.channel_arn, client_id, ttl),
        None => OpenConnection::master(connect.channel_arn, ttl),
    }
    .ttl_revision(revision)
    .indications(indications)
    .delivery_status(connect.delivery_status)
    .remote_addr(
        request
            .extensions()
            .get::<crate::accept::PeerAddr>()
            .map(|peer| peer.0),
    );
    let opened = match &app.router {
        Some(router) => router
            .open(open)
            .await
            .map_err(|crate::cluster::Unrouted(message)| message),
        None => app
            .shards
            .of(&arn)
            .open(open)
            .await
            .map_err(|_| "the hub has stopped".to_owned()),
    };
    let registration = match opened {
        Ok(Ok(registration)) => registration,
        Ok(Err(refused)) => return refuse(refused.error_type, refused.message),
        Err(message) => return refuse(ErrorType::InternalFailure, message),
    };
    // The channel may have changed while the hub was asked: a deletion or an update that
    // reached the hub before this connect did would otherwise be undone by it.
    match channel_ttl(&app, &arn).await {
        Ok(None) => return not_found(&arn),
        Ok(Some((ttl, now))) if now != revision => match &app.router {
            Some(router) => router.channel_updated(&arn, ttl, now).await,
            None => {
                let _ = app.shards.of(&arn).channel_updated(arn, ttl, now).await;
            }
        },
        Ok(Some(_)) => {}
        Err(response) => return response,
    }
    let upgrade = hyper::upgrade::on(&mut request);
    let limits = app
        .config
        .websocket
        .max_message_len(app.config.hub.max_payload_len + 4 * 1024);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => serve_upgraded(upgraded, registration, limits).await,
            Err(err) => {
                if let Some(suppressed) = UPGRADE_FAILED.check() {
                    tracing::debug!(%err, suppressed, "upgrade failed");
                }
            }
        }
        // The socket is closed: its place under the cap is free.
        drop(slot);
    });
    // No Sec-WebSocket-Protocol: official clients fail on one they did not offer, and the C
    // SDK, which offers `wss`, accepts an answer without one.
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The future that serves the WebSocket on the upgraded socket, plain TCP or TLS, with the
/// bytes that came after the request; hyper's read buffer is let go first (kilobytes, for
/// the connection's whole life otherwise). Each kind of stream gets a future of its own size,
/// boxed: the connection's task holds only the box, where inline it would be as large as the
/// largest kind (TLS's) and the downcasts' temporaries.
fn serve_upgraded(
    upgraded: hyper::upgrade::Upgraded,
    registration: Registration,
    limits: kvs_transport_tokio::WebSocketLimits,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let upgraded = match upgraded.downcast::<TokioIo<WriteDeadline<TcpStream>>>() {
        Ok(parts) => {
            let hyper::upgrade::Parts { io, read_buf, .. } = parts;
            let initial = read_buf.to_vec();
            drop(read_buf);
            return Box::pin(serve_websocket(
                io.into_inner().into_inner(),
                initial,
                registration,
                limits,
            ));
        }
        Err(upgraded) => upgraded,
    };
    match upgraded.downcast::<TokioIo<WriteDeadline<TlsStream>>>() {
        Ok(parts) => {
            let hyper::upgrade::Parts { io, read_buf, .. } = parts;
            let initial = read_buf.to_vec();
            drop(read_buf);
            Box::pin(serve_websocket(
                io.into_inner().into_inner(),
                initial,
                registration,
                limits,
            ))
        }
        // Another stream type: served as hyper hands it over.
        Err(upgraded) => Box::pin(serve_websocket(
            TokioIo::new(upgraded),
            Vec::new(),
            registration,
            limits,
        )),
    }
}
