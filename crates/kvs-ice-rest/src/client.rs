//! The client side of the REST calls a signaling client makes: DescribeSignalingChannel,
//! CreateSignalingChannel and GetSignalingChannelEndpoint on the control plane, and
//! GetIceServerConfig on the channel's HTTPS endpoint, SigV4-signed as the AWS SDKs sign them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kvs_signaling_core::{Endpoints, RequestError};
use kvs_signaling_proto::{
    ChannelArn, ChannelInfo, ChannelName, ChannelProtocol, ChannelType, ClientId,
    CreateSignalingChannelRequest, CreateSignalingChannelResponse, DescribeSignalingChannelRequest,
    DescribeSignalingChannelResponse, ErrorBody, ErrorType, GetIceServerConfigRequest,
    GetIceServerConfigResponse, GetSignalingChannelEndpointRequest,
    GetSignalingChannelEndpointResponse, IceServer, IceService, JsonBody, Operation, PeerId, Role,
    SingleMasterChannelEndpointConfiguration,
};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use kvs_signaling_auth::{
    Credentials, Endpoint, EndpointError, EndpointKind, PresignError, presign_connect_url,
    sign_request_headers,
};

mod connect;
mod http;
mod proxy;

pub use proxy::ProxyConfig;

/// The largest answer body a [`RestClient`] reads; a longer one fails the call. The service's
/// answers are a few kilobytes at most.
pub const MAX_RESPONSE_BODY: usize = 1024 * 1024;

/// How long a [`RestClient`] call may take by default, from connect to the last byte of the
/// answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a [`RestClient`] may take by default to make a connection: the TCP connect (to
/// the endpoint or its proxy), the proxy's tunnel and the TLS handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`RestClient`] or [`TlsTrust`] cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientConfigError {
    /// The control endpoint is not a usable URL.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The PEM text does not parse.
    #[error("ca_pem: {reason}")]
    Pem {
        /// Why.
        reason: String,
    },
    /// The PEM text holds no `CERTIFICATE` block.
    #[error("ca_pem: no CERTIFICATE block found")]
    NoCertificate,
    /// A certificate cannot serve as a trust anchor.
    #[error("ca_pem: certificate {index} (counting from 0) is not a usable trust anchor: {reason}")]
    Certificate {
        /// Its position among the PEM's certificates.
        index: usize,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("tls: {reason}")]
    Tls {
        /// Why.
        reason: String,
    },
    /// A proxy setting cannot be used.
    #[error("{setting}: {reason}")]
    Proxy {
        /// The variable (such as `HTTPS_PROXY`) or the [`ProxyConfig`] setter that gave it.
        setting: &'static str,
        /// Why, quoting the URL without its credentials.
        reason: String,
    },
}

/// The certificate authorities a [`RestClient`] (and the WebSocket client, through
/// [`RestClient::tls_config`]) trusts.
///
/// The default trusts the Mozilla root program's CAs (webpki-roots), which is what the real
/// AWS endpoints need. [`TlsTrust::with_pem`] adds CAs, such as the development CA of
/// `kvs-signaling serve`; [`TlsTrust::empty`] starts from none.
#[derive(Clone)]
pub struct TlsTrust {
    webpki_roots: bool,
    extra: RootCertStore,
}

impl Default for TlsTrust {
    fn default() -> Self {
        Self::webpki_roots()
    }
}

impl std::fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTrust")
            .field("webpki_roots", &self.webpki_roots)
            .field("extra_certificates", &self.extra.len())
            .finish()
    }
}

impl TlsTrust {
    /// Trusts the Mozilla root program's CAs, as browsers do.
    pub fn webpki_roots() -> Self {
        Self {
            webpki_roots: true,
            extra: RootCertStore::empty(),
        }
    }

    /// Trusts nothing until [`TlsTrust::with_pem`] adds CAs.
    pub fn empty() -> Self {
        Self {
            webpki_roots: false,
            extra: RootCertStore::empty(),
        }
    }

    /// Also trusts every `CERTIFICATE` in `ca_pem` (other PEM blocks are skipped); it must
    /// hold at least one.
    pub fn with_pem(mut self, ca_pem: &[u8]) -> Result<Self, ClientConfigError> {
        let mut found = 0;
        for (index, cert) in CertificateDer::pem_slice_iter(ca_pem).enumerate() {
            let cert = cert.map_err(|err| ClientConfigError::Pem {
                reason: err.to_string(),
            })?;
            self.extra
                .add(cert)
                .map_err(|err| ClientConfigError::Certificate {
                    index,
                    reason: err.to_string(),
                })?;
            found += 1;
        }
        if found == 0 {
            return Err(ClientConfigError::NoCertificate);
        }
        Ok(self)
    }

    /// The rustls configuration: the ring provider, TLS 1.2 and 1.3, ALPN `http/1.1` (which
    /// the official C SDK pins, and which WebSocket needs).
    fn client_config(&self) -> Result<rustls::ClientConfig, ClientConfigError> {
        let mut roots = self.extra.clone();
        if self.webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| ClientConfigError::Tls {
                reason: err.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The REST calls of a signaling client, SigV4-signed with one set of credentials for one
/// region.
///
/// Each call sends one HTTP/1.1 `POST` with a JSON body and reads an answer of at most
/// [`MAX_RESPONSE_BODY`] bytes, on a kept-alive connection to the endpoint when the client
/// has an idle one (TLS for `https://`, plain TCP for `http://`), on a new one otherwise. The
/// pool is shared by the client's clones and keeps an idle connection for 30 seconds, so the
/// calls of one connect (DescribeSignalingChannel, GetSignalingChannelEndpoint,
/// GetIceServerConfig) and of a quick reconnect pay one TCP and TLS handshake per endpoint.
/// (A call that starts at the very moment another one ends may not find that connection back
/// in the pool yet and open a second, which the pool then keeps as well.) The pool needs a
/// tokio runtime, where it spawns the tasks that drive its connections.
///
/// Two deadlines bound a call: making a connection (the TCP connect, a proxy's tunnel and
/// the TLS handshake) may take [`DEFAULT_CONNECT_TIMEOUT`] unless
/// [`RestClient::with_connect_timeout`] says otherwise, and the whole call, connection
/// included, [`DEFAULT_REQUEST_TIMEOUT`] unless [`RestClient::with_timeout`] says otherwise;
/// a caller that wants a shorter deadline may also drop the future.
///
/// Connections go through the HTTP proxy the environment names ([`ProxyConfig::from_env`]:
/// `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), in an HTTP `CONNECT` tunnel, unless
/// [`RestClient::with_proxy`] sets others.
///
/// Calls read the clock (`SystemTime::now`) for their signature. Errors are
/// [`RequestError`]s: the HTTP status and the service's error type when the service answered
/// (from `x-amzn-ErrorType` or the body's `__type`, with the body's `Message`), no status for
/// network, TLS and timeout failures.
///
/// ```no_run
/// use kvs_ice_rest::{Credentials, RestClient, TlsTrust};
/// use kvs_signaling_proto::{ChannelName, Role};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = RestClient::new(
///     "https://kinesisvideo.us-west-2.amazonaws.com",
///     "us-west-2",
///     Credentials::from_env()?,
///     TlsTrust::default(),
/// )?;
/// let info = client.describe_channel(&ChannelName::new("demo-channel")?).await?;
/// let arn = info.channel_arn.ok_or("no ARN")?;
/// let endpoints = client.get_endpoints(&arn, Role::Viewer).await?;
/// let ice_servers = client.get_ice_config(&endpoints.https, &arn, None).await?;
/// # let _ = ice_servers;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RestClient {
    control: Endpoint,
    region: String,
    credentials: Credentials,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    connect_timeout: Duration,
    proxies: Arc<proxy::Proxies>,
    /// Why the proxy the environment names cannot be used: every call fails with it until
    /// [`RestClient::with_proxy`] replaces it.
    proxy_error: Option<ClientConfigError>,
    pool: http::Pool,
}

impl RestClient {
    /// A client of the control plane at `control_endpoint` (such as
    /// `https://kinesisvideo.us-west-2.amazonaws.com`, or `http://127.0.0.1:8080` for a local
    /// server), signing for `region`, trusting the CAs of `trust` for every `https://` and
    /// `wss://` endpoint, through the proxies of [`ProxyConfig::from_env`].
    ///
    /// Fails if the endpoint is not a URL or if `trust` does not make a TLS configuration. If
    /// the environment names a proxy this client cannot use (see [`ProxyConfig`]), every call
    /// fails, naming the variable, until [`RestClient::with_proxy`] replaces it, as curl
    /// fails its transfers.
    pub fn new(
        control_endpoint: &str,
        region: impl Into<String>,
        credentials: Credentials,
        trust: TlsTrust,
    ) -> Result<Self, ClientConfigError> {
        Self::with_environment(
            control_endpoint,
            region,
            credentials,
            trust,
            ProxyConfig::from_env(),
        )
    }

    /// [`RestClient::new`] with the proxies `environment` names.
    fn with_environment(
        control_endpoint: &str,
        region: impl Into<String>,
        credentials: Credentials,
        trust: TlsTrust,
        environment: ProxyConfig,
    ) -> Result<Self, ClientConfigError> {
        let control = Endpoint::parse("control_endpoint", control_endpoint, EndpointKind::Rest)?;
        let tls = Arc::new(trust.client_config()?);
        let (proxies, proxy_error) = match environment.resolve() {
            Ok(proxies) => (proxies, None),
            Err(err) => (proxy::Proxies::direct(), Some(err)),
        };
        let proxies = Arc::new(proxies);
        let pool = http::Pool::new(
            Arc::clone(&tls),
            Arc::clone(&proxies),
            DEFAULT_CONNECT_TIMEOUT,
        );
        Ok(Self {
            control,
            region: region.into(),
            credentials,
            tls,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            proxies,
            proxy_error,
            pool,
        })
    }

    /// Sets the time each call may take, connection included.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the time making a connection may take: the TCP connect, a proxy's tunnel and the
    /// TLS handshake. The client starts a new connection pool (set it before the first call).
    #[must_use]
    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self.pool = self.new_pool();
        self
    }

    /// Replaces the proxies the environment named with `proxy` ([`ProxyConfig::none`] to
    /// connect directly). The client starts a new connection pool (set it before the first
    /// call).
    ///
    /// Fails if a proxy URL cannot be used: see [`ProxyConfig`].
    pub fn with_proxy(mut self, proxy: ProxyConfig) -> Result<Self, ClientConfigError> {
        self.proxies = Arc::new(proxy.resolve()?);
        self.proxy_error = None;
        self.pool = self.new_pool();
        Ok(self)
    }

    fn new_pool(&self) -> http::Pool {
        http::Pool::new(
            Arc::clone(&self.tls),
            Arc::clone(&self.proxies),
            self.connect_timeout,
        )
    }

    /// Replaces the credentials, after the service refused the old ones.
    pub fn set_credentials(&mut self, credentials: Credentials) {
        self.credentials = credentials;
    }

    /// The credentials calls are signed with.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The region calls are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The time each call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The time making a connection may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The TLS configuration of every call, for the WebSocket client to connect to `wss://`
    /// endpoints with the same trust.
    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.tls)
    }

    /// A TCP connection to `host:port` made as this client's calls make theirs: directly,
    /// or through the HTTP `CONNECT` tunnel of the proxy that applies (`HTTPS_PROXY` when
    /// `secure`, as for a `wss://` endpoint, `HTTP_PROXY` otherwise, neither for what
    /// `NO_PROXY` names), within the connect timeout. The WebSocket client opens its
    /// connections with it, so that a client behind a proxy reaches the service's WebSocket
    /// endpoint too. TLS, if any, is the caller's (with [`RestClient::tls_config`]). `host`
    /// is a name or an address, an IPv6 one without brackets (`::1`).
    pub async fn dial(
        &self,
        host: &str,
        port: u16,
        secure: bool,
    ) -> Result<tokio::net::TcpStream, RequestError> {
        let scheme = if secure { "https" } else { "http" };
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        if let Some(err) = &self.proxy_error {
            return Err(RequestError::new(format!(
                "connecting to {authority}: {err}"
            )));
        }
        let dst: ::http::Uri = format!("{scheme}://{authority}/")
            .parse()
            .map_err(|err| RequestError::new(format!("the address {authority}: {err}")))?;
        connect::dial(Arc::clone(&self.proxies), dst, self.connect_timeout)
            .await
            .map_err(|err| RequestError::new(http::connect_failed(&authority, &err)))
    }

    /// The WebSocket connect URL for `channel_arn` on `wss_endpoint`, presigned at `now` with
    /// this client's credentials and region: [`presign_connect_url`].
    pub fn presign_connect_url(
        &self,
        wss_endpoint: &str,
        channel_arn: &ChannelArn,
        client_id: Option<&ClientId>,
        now: SystemTime,
    ) -> Result<String, PresignError> {
        presign_connect_url(
            &self.credentials,
            &self.region,
            wss_endpoint,
            channel_arn,
            client_id,
            now,
        )
    }

    /// DescribeSignalingChannel by name.
    pub async fn describe_channel(&self, name: &ChannelName) -> Result<ChannelInfo, RequestError> {
        let mut request = DescribeSignalingChannelRequest::new();
        request.channel_name = Some(name.clone());
        let response: DescribeSignalingChannelResponse = self
            .call(&self.control, Operation::DescribeSignalingChannel, &request)
            .await?;
        response.channel_info.ok_or_else(|| {
            RequestError::new("DescribeSignalingChannel: the answer has no ChannelInfo")
        })
    }

    /// CreateSignalingChannel of a `SINGLE_MASTER` channel with the service's default message
    /// TTL.
    pub async fn create_channel(&self, name: &ChannelName) -> Result<(), RequestError> {
        let mut request = CreateSignalingChannelRequest::new(name.clone());
        request.channel_type = Some(ChannelType::SingleMaster);
        let _: CreateSignalingChannelResponse = self
            .call(&self.control, Operation::CreateSignalingChannel, &request)
            .await?;
        Ok(())
    }

    /// GetSignalingChannelEndpoint for the WSS and HTTPS endpoints of `role`.
    pub async fn get_endpoints(
        &self,
        channel_arn: &ChannelArn,
        role: Role,
    ) -> Result<Endpoints, RequestError> {
        let mut configuration = SingleMasterChannelEndpointConfiguration::new();
        configuration.protocols = Some(vec![ChannelProtocol::Wss, ChannelProtocol::Https]);
        configuration.role = Some(role);
        let mut request = GetSignalingChannelEndpointRequest::new(channel_arn.clone());
        request.single_master_channel_endpoint_configuration = Some(configuration);
        let response: GetSignalingChannelEndpointResponse = self
            .call(
                &self.control,
                Operation::GetSignalingChannelEndpoint,
                &request,
            )
            .await?;
        Endpoints::from_resource_list(response.resource_endpoint_list.as_deref().unwrap_or(&[]))
            .ok_or_else(|| {
                RequestError::new(
                    "GetSignalingChannelEndpoint: the answer lacks the WSS or the HTTPS endpoint",
                )
            })
    }

    /// GetIceServerConfig on the channel's `https_endpoint` (as GetSignalingChannelEndpoint
    /// returned it, with or without a trailing slash), asking for TURN as the official C SDK
    /// does, with the viewer's `client_id` (`None` for the master).
    pub async fn get_ice_config(
        &self,
        https_endpoint: &str,
        channel_arn: &ChannelArn,
        client_id: Option<&ClientId>,
    ) -> Result<Vec<IceServer>, RequestError> {
        let endpoint = Endpoint::parse("https_endpoint", https_endpoint, EndpointKind::Rest)
            .map_err(|err| RequestError::new(err.to_string()))?;
        let mut request = GetIceServerConfigRequest::new(channel_arn.clone());
        request.client_id = client_id.cloned().map(PeerId::from);
        request.service = Some(IceService::Turn);
        let response: GetIceServerConfigResponse = self
            .call(&endpoint, Operation::GetIceServerConfig, &request)
            .await?;
        Ok(response.ice_server_list.unwrap_or_default())
    }

    /// Sends `request` to `operation` on `endpoint` and decodes the answer.
    async fn call<Q: JsonBody, A: JsonBody>(
        &self,
        endpoint: &Endpoint,
        operation: Operation,
        request: &Q,
    ) -> Result<A, RequestError> {
        if let Some(err) = &self.proxy_error {
            return Err(RequestError::new(format!("{operation:?}: {err}")));
        }
        let body = request.encode();
        let path = endpoint.join(operation.path());
        let signed = sign_request_headers(
            &self.credentials,
            &self.region,
            SystemTime::now(),
            "POST",
            endpoint.authority(),
            &path,
            &body,
        )
        .map_err(|err| RequestError::new(format!("{operation:?}: {err}")))?;
        let mut headers: Vec<(&str, &str)> = vec![
            ("host", endpoint.authority()),
            ("content-type", "application/json"),
            ("user-agent", USER_AGENT),
        ];
        headers.extend(signed.iter().map(|(name, value)| (*name, value.as_str())));
        let exchange = self.pool.post(endpoint, &path, &headers, body);
        let answer = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| RequestError::timeout(self.timeout))??;
        if !(200..300).contains(&answer.status) {
            return Err(service_error(answer.status, &answer.headers, &answer.body));
        }
        A::decode(&answer.body).map_err(|err| {
            RequestError::new(format!("{operation:?}: the answer does not parse: {err}"))
        })
    }
}

const USER_AGENT: &str = concat!("kvs-ice-rest/", env!("CARGO_PKG_VERSION"));

/// How much of an answer that is not an error body is quoted in the message.
const MAX_QUOTED_BODY: usize = 200;

/// The error of a non-2xx answer: the type from `x-amzn-ErrorType` or the body's `__type`,
/// the body's `Message`, and the status as received (the service answers a bad signature with
/// 403 whatever the type's usual status).
fn service_error(status: u16, headers: &::http::HeaderMap, body: &[u8]) -> RequestError {
    let header_type = headers
        .get("x-amzn-errortype")
        .and_then(|value| value.to_str().ok());
    let parsed = ErrorBody::decode(body).ok();
    let error_type = header_type
        .and_then(ErrorType::from_header_value)
        .or_else(|| parsed.as_ref().and_then(ErrorBody::known_error_type));
    let type_name = header_type
        .map(|value| value.split_once(':').map_or(value, |(name, _)| name).trim())
        .or_else(|| parsed.as_ref().and_then(|b| b.error_type.as_deref()))
        .filter(|name| !name.is_empty());
    let message = match parsed.as_ref().and_then(|b| b.message.as_deref()) {
        Some(message) if !message.is_empty() => message.to_owned(),
        _ if parsed.is_none() && !body.is_empty() => String::from_utf8_lossy(body)
            .chars()
            .take(MAX_QUOTED_BODY)
            .collect(),
        _ => "the service gave no message".to_owned(),
    };
    match (error_type, type_name) {
        (Some(error_type), _) => {
            let mut error = RequestError::service(error_type, message);
            error.status = Some(status);
            error
        }
        (None, Some(name)) => RequestError::http(status, format!("{name}: {message}")),
        (None, None) => RequestError::http(status, message),
    }
}

#[cfg(test)]
mod tests;
