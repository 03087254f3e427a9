//! HTTP/1.1 exchanges on pooled connections (hyper-util's client over [`connect`]), with a
//! bounded answer.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kvs_signaling_core::RequestError;

use super::MAX_RESPONSE_BODY;
use super::connect::{self, ConnectError, Connector, DialError};
use super::proxy::Proxies;
use kvs_signaling_auth::Endpoint;

/// How long an idle connection stays in the pool. Short enough that a NAT or a proxy that
/// forgets idle flows silently rarely gets the chance; long enough for a reconnect's calls.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many idle connections the pool keeps per endpoint.
const POOL_MAX_IDLE_PER_HOST: usize = 4;

/// What the server answered.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

/// A pool of connections, shared by the clones of a [`RestClient`](super::RestClient).
#[derive(Clone)]
pub(super) struct Pool {
    client: Client<Connector, Full<Bytes>>,
    connect_timeout: Duration,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// An empty pool whose connections trust `tls`, go through `proxies` and are made within
    /// `connect_timeout`.
    pub(super) fn new(
        tls: Arc<rustls::ClientConfig>,
        proxies: Arc<Proxies>,
        connect_timeout: Duration,
    ) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .build(connect::connector(tls, proxies, connect_timeout));
        Self {
            client,
            connect_timeout,
        }
    }

    /// Sends `POST path` with `headers` (which must include `host`) and `body` to `endpoint`,
    /// on a pooled connection or a new one, and reads the whole answer.
    pub(super) async fn post(
        &self,
        endpoint: &Endpoint,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, RequestError> {
        let origin = endpoint.origin();
        // The port is always written: the pool's key and the tunnel's CONNECT use it.
        let host = endpoint.host();
        let uri = if host.contains(':') {
            format!(
                "{}://[{host}]:{}{path}",
                endpoint.scheme().as_str(),
                endpoint.port()
            )
        } else {
            format!(
                "{}://{host}:{}{path}",
                endpoint.scheme().as_str(),
                endpoint.port()
            )
        };
        let mut request = Request::builder().method(Method::POST).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|err| {
            RequestError::new(format!("the request to {origin} is invalid: {err}"))
        })?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| failed(&origin, &err))?;
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
                    RequestError::new(format!("reading the answer of {origin}: {}", chain(&*err)))
                }
            })?
            .to_bytes();
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

/// The error of an exchange with `origin` that got no answer.
fn failed(origin: &str, err: &hyper_util::client::legacy::Error) -> RequestError {
    let mut source = err.source();
    let mut connect = None;
    while let Some(err) = source {
        if let Some(found) = err.downcast_ref::<ConnectError>() {
            connect = Some(found);
            break;
        }
        source = err.source();
    }
    let message = match connect {
        Some(connect) => connect_failed(origin, connect),
        // The client's own error says only its kind; its sources say what happened.
        None => match err.source() {
            Some(source) => format!("HTTP exchange with {origin}: {}", chain(source)),
            None => format!("HTTP exchange with {origin}: {err}"),
        },
    };
    RequestError::new(message)
}

/// What a failed connection to `origin` says.
pub(super) fn connect_failed(origin: &str, connect: &ConnectError) -> String {
    match connect {
        ConnectError::Timeout(after) => {
            format!("cannot connect to {origin}: not connected within {after:?}")
        }
        ConnectError::Dial(DialError::Direct(err)) => {
            format!("cannot connect to {origin}: {}", chain(&**err))
        }
        ConnectError::Dial(DialError::Tunnel { proxy, source }) => {
            format!(
                "cannot connect to {origin} through the proxy {proxy}: {}",
                chain(&**source)
            )
        }
        ConnectError::Tls(err) => {
            format!("TLS handshake with {origin} failed: {}", chain(&**err))
        }
    }
}

/// `err` and its sources, joined by `: `, skipping a source that repeats the text before it.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut last = text.clone();
    let mut source = err.source();
    while let Some(err) = source {
        let next = err.to_string();
        if !last.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        last = next;
        source = err.source();
    }
    text
}
