//! The connector of a [`RestClient`](super::RestClient)'s pool: TCP to the endpoint, or
//! through a proxy's HTTP `CONNECT` tunnel, then TLS for `https://`, all within the connect
//! timeout.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

use super::proxy::Proxies;

pub(super) type BoxError = Box<dyn StdError + Send + Sync>;

type Connecting<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// The stream a connection runs on.
pub(super) type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    /// Not ready within the connect timeout.
    #[error("not connected within {0:?}")]
    Timeout(Duration),
    /// The TCP connection (or the tunnel) failed.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The TLS handshake failed.
    #[error("{0}")]
    Tls(#[source] BoxError),
}

/// Why the TCP connection, or the tunnel, could not be made.
#[derive(Debug, thiserror::Error)]
pub(super) enum DialError {
    /// Directly to the endpoint.
    #[error("{0}")]
    Direct(#[source] BoxError),
    /// Through the proxy at `proxy` (its URL without credentials).
    #[error("through the proxy {proxy}: {source}")]
    Tunnel {
        /// The proxy.
        proxy: String,
        /// What failed: reaching the proxy or its answer to `CONNECT`.
        #[source]
        source: BoxError,
    },
}

/// Builds the connector: TLS (with `tls`, taken as it is) over [`Dial`], bounded by
/// `timeout`.
pub(super) fn connector(
    tls: Arc<rustls::ClientConfig>,
    proxies: Arc<Proxies>,
    timeout: Duration,
) -> Connector {
    let mut tcp = HttpConnector::new();
    // The URI says https for TLS endpoints; the TLS layer above handles it.
    tcp.enforce_http(false);
    // Requests are small: send them at once.
    tcp.set_nodelay(true);
    Connector {
        inner: HttpsConnector::from((Dial { tcp, proxies }, tls)),
        timeout,
    }
}

/// A TCP connection to `dst` (its scheme picks the proxy: `https` for TLS endpoints), or
/// a tunnel to it through the proxy `proxies` names for it, within `timeout`.
pub(super) async fn dial(
    proxies: Arc<Proxies>,
    dst: Uri,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let mut dial = Dial { tcp, proxies };
    match tokio::time::timeout(timeout, dial.call(dst)).await {
        Ok(Ok(io)) => Ok(io.into_inner()),
        Ok(Err(err)) => Err(ConnectError::Dial(err)),
        Err(_) => Err(ConnectError::Timeout(timeout)),
    }
}

/// TCP connections to the destination, or through the proxy [`Proxies`] names for it.
#[derive(Clone, Debug)]
pub(super) struct Dial {
    tcp: HttpConnector,
    proxies: Arc<Proxies>,
}

impl Service<Uri> for Dial {
    type Response = TokioIo<TcpStream>;
    type Error = DialError;
    type Future = Connecting<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp
            .poll_ready(cx)
            .map_err(|err| DialError::Direct(err.into()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let Some(proxy) = self.proxies.intercept(&dst) else {
            let connecting = self.tcp.call(dst);
            return Box::pin(async move {
                connecting
                    .await
                    .map_err(|err| DialError::Direct(err.into()))
            });
        };
        let name = match proxy.uri().authority() {
            Some(authority) => format!("http://{authority}"),
            None => proxy.uri().to_string(),
        };
        let mut tunnel = Tunnel::new(proxy.uri().clone(), self.tcp.clone());
        if let Some(auth) = proxy.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let tunneling = tunnel.call(dst);
        Box::pin(async move {
            tunneling.await.map_err(|err| DialError::Tunnel {
                proxy: name,
                source: err.into(),
            })
        })
    }
}

/// [`Dial`] then TLS, within `timeout`.
#[derive(Clone, Debug)]
pub(super) struct Connector {
    inner: HttpsConnector<Dial>,
    timeout: Duration,
}

impl Service<Uri> for Connector {
    type Response = Stream;
    type Error = ConnectError;
    type Future = Connecting<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(classify)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.inner.call(dst);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result.map_err(classify),
                Err(_) => Err(ConnectError::Timeout(timeout)),
            }
        })
    }
}

/// The TLS layer passes [`Dial`]'s errors through boxed; anything else is its own.
fn classify(err: BoxError) -> ConnectError {
    match err.downcast::<DialError>() {
        Ok(dial) => ConnectError::Dial(*dial),
        Err(tls) => ConnectError::Tls(tls),
    }
}
