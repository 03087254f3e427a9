//! One HTTP/1.1 exchange per connection, over plain TCP or TLS, with a bounded answer.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper_util::rt::TokioIo;
use kvs_signaling_core::RequestError;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::MAX_RESPONSE_BODY;
use kvs_signaling_auth::Endpoint;

/// What the server answered.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

/// Sends `POST path` with `headers` (which must include `host`) and `body` to `endpoint`, on
/// a connection of its own, and reads the whole answer.
pub(super) async fn post(
    endpoint: &Endpoint,
    tls: &Arc<rustls::ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Answer, RequestError> {
    let origin = endpoint.origin();
    let mut request = Request::builder().method(Method::POST).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|err| RequestError::new(format!("the request to {origin} is invalid: {err}")))?;
    let tcp = TcpStream::connect((endpoint.host(), endpoint.port()))
        .await
        .map_err(|err| RequestError::new(format!("cannot connect to {origin}: {err}")))?;
    // Small requests: send them at once. Failing to set it costs only latency.
    let _ = tcp.set_nodelay(true);
    if !endpoint.scheme().is_tls() {
        return exchange(tcp, request, &origin).await;
    }
    let name = ServerName::try_from(endpoint.host().to_owned()).map_err(|err| {
        RequestError::new(format!(
            "{origin}: the host is not a TLS server name: {err}"
        ))
    })?;
    let stream = TlsConnector::from(Arc::clone(tls))
        .connect(name, tcp)
        .await
        .map_err(|err| RequestError::new(format!("TLS handshake with {origin} failed: {err}")))?;
    exchange(stream, request, &origin).await
}

async fn exchange<S>(
    stream: S,
    request: Request<Full<Bytes>>,
    origin: &str,
) -> Result<Answer, RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed =
        |err: hyper::Error| RequestError::new(format!("HTTP exchange with {origin}: {err}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(failed)?;
    let mut answer = pin!(async move {
        let response = sender.send_request(request).await.map_err(failed)?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BODY)
            .collect()
            .await
            .map_err(|err| {
                if err.is::<LengthLimitError>() {
                    RequestError::new(format!(
                        "the answer of {origin} is longer than {MAX_RESPONSE_BODY} bytes"
                    ))
                } else {
                    RequestError::new(format!("reading the answer of {origin}: {err}"))
                }
            })?
            .to_bytes();
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    });
    // Drive the connection here rather than in a spawned task: it serves this one exchange
    // and is dropped (closed) with it.
    let mut connection = pin!(connection);
    let mut connection_done = false;
    poll_fn(|cx| {
        if let Poll::Ready(result) = answer.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        if !connection_done && let Poll::Ready(result) = connection.as_mut().poll(cx) {
            connection_done = true;
            if let Err(err) = result {
                return Poll::Ready(Err(failed(err)));
            }
            // A clean end fails the pending exchange, which says why.
            return answer.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
}
