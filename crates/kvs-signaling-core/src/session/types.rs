//! The values that cross a [`ClientSession`](super::ClientSession)'s boundary: request ids,
//! endpoints, request errors, states, events and outputs.

use std::fmt;
use std::time::{Duration, Instant};

use kvs_signaling_proto::{
    ChannelArn, ChannelName, ChannelProtocol, ClientId, ErrorType, IceServer,
    ResourceEndpointListItem, Role, StatusResponse,
};

/// Names one request the session asked for; its result must come back with it. The socket a
/// `Connect` opens is named by that connect's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionRequestId(pub(super) u64);

impl SessionRequestId {
    /// The id as a number, for logs.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The kind of a request, as reported in [`SessionEvent::RequestFailed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RequestKind {
    /// DescribeSignalingChannel.
    Describe,
    /// CreateSignalingChannel.
    Create,
    /// GetSignalingChannelEndpoint.
    GetEndpoints,
    /// GetIceServerConfig.
    GetIceConfig,
    /// The WebSocket connect.
    Connect,
}

/// The channel's endpoints from GetSignalingChannelEndpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoints {
    /// The WebSocket endpoint (`wss://…`), which the connect URL is built on.
    pub wss: String,
    /// The HTTPS data-plane endpoint (`https://…`), which GetIceServerConfig is sent to.
    pub https: String,
}

impl Endpoints {
    /// The endpoints `wss` and `https`.
    pub fn new(wss: impl Into<String>, https: impl Into<String>) -> Self {
        Self {
            wss: wss.into(),
            https: https.into(),
        }
    }

    /// Picks the WSS and HTTPS entries of a `ResourceEndpointList`, or `None` when either is
    /// missing (the C SDK refuses such an answer too).
    pub fn from_resource_list(list: &[ResourceEndpointListItem]) -> Option<Self> {
        let find = |protocol: ChannelProtocol| {
            list.iter()
                .find(|item| item.protocol == Some(protocol))
                .and_then(|item| item.resource_endpoint.clone())
        };
        Some(Self::new(
            find(ChannelProtocol::Wss)?,
            find(ChannelProtocol::Https)?,
        ))
    }
}

/// Why a request failed, as the transport reports it.
///
/// The session only looks at the HTTP status (or, without one, the error type) to pick its
/// next step: 401/403 are credential failures, 404 a missing resource, anything else (400,
/// 5xx, no status at all for network errors and timeouts) a transient failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("{message}{detail}", detail = detail(*status, *error_type))]
pub struct RequestError {
    /// The HTTP status, when the server answered (the upgrade response for a connect).
    pub status: Option<u16>,
    /// The service's error type (`x-amzn-ErrorType`), when it is one we know.
    pub error_type: Option<ErrorType>,
    /// What went wrong, for people.
    pub message: String,
}

fn detail(status: Option<u16>, error_type: Option<ErrorType>) -> String {
    match (status, error_type) {
        (Some(status), Some(error_type)) => format!(" (HTTP {status}, {error_type})"),
        (Some(status), None) => format!(" (HTTP {status})"),
        (None, Some(error_type)) => format!(" ({error_type})"),
        (None, None) => String::new(),
    }
}

/// How the session reacts to a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ErrorClass {
    Credentials,
    NotFound,
    Transient,
}

impl RequestError {
    /// A failure without an answer from the server: a network error, a TLS error.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            status: None,
            error_type: None,
            message: message.into(),
        }
    }

    /// An HTTP error status.
    pub fn http(status: u16, message: impl Into<String>) -> Self {
        Self {
            status: Some(status),
            ..Self::new(message)
        }
    }

    /// An error the service named, with its usual status.
    pub fn service(error_type: ErrorType, message: impl Into<String>) -> Self {
        Self {
            status: Some(error_type.http_status()),
            error_type: Some(error_type),
            message: message.into(),
        }
    }

    /// No answer within `after`.
    pub fn timeout(after: Duration) -> Self {
        Self::new(format!("no answer within {after:?}"))
    }

    /// Whether the credentials were refused (401 or 403).
    pub fn is_credentials(&self) -> bool {
        self.class() == ErrorClass::Credentials
    }

    /// Whether the resource does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.class() == ErrorClass::NotFound
    }

    pub(super) fn class(&self) -> ErrorClass {
        match (self.status, self.error_type) {
            (Some(401 | 403), _) => ErrorClass::Credentials,
            (Some(404), _) => ErrorClass::NotFound,
            (Some(_), _) => ErrorClass::Transient,
            (
                None,
                Some(
                    ErrorType::AccessDeniedException
                    | ErrorType::NotAuthorizedException
                    | ErrorType::InvalidSignatureException,
                ),
            ) => ErrorClass::Credentials,
            (None, Some(ErrorType::ResourceNotFoundException)) => ErrorClass::NotFound,
            (None, _) => ErrorClass::Transient,
        }
    }
}

/// Where a [`ClientSession`](super::ClientSession) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionState {
    /// Created; it starts on its first [`ClientSession::handle_timeout`](super::ClientSession::handle_timeout).
    New,
    /// Waiting for DescribeSignalingChannel.
    Describing,
    /// Waiting for CreateSignalingChannel.
    Creating,
    /// Waiting for GetSignalingChannelEndpoint.
    GettingEndpoints,
    /// Waiting for GetIceServerConfig.
    GettingIceConfig,
    /// Waiting for the WebSocket connect.
    Connecting,
    /// The socket is up.
    Connected,
    /// Waiting out a backoff before the next attempt.
    WaitingToRetry,
    /// Closed by [`ClientSession::close`](super::ClientSession::close).
    Closed,
    /// Gave up; [`SessionEvent::Failed`] said why.
    Failed,
}

/// Why a session gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FailureReason {
    /// The channel does not exist and `create_if_missing` is off.
    #[error("channel {name} does not exist")]
    ChannelNotFound {
        /// The channel.
        name: ChannelName,
    },
    /// More consecutive failures than `max_reconnect_attempts` allows.
    #[error("gave up after {failures} consecutive failures; the last: {last}")]
    AttemptsExhausted {
        /// How many failures in a row.
        failures: u32,
        /// The last one.
        last: RequestError,
    },
}

/// What the application is told.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The session moved to this state; `Connected` means the socket is up and messages can be
    /// sent.
    StateChanged(SessionState),
    /// A new ICE server configuration, fetched on the way to a connect or refreshed while
    /// connected.
    IceServersUpdated(Vec<IceServer>),
    /// A STATUS_RESPONSE: the service refused a message that carried a correlation id.
    StatusResponse(StatusResponse),
    /// The service sent GO_AWAY; the session reconnects.
    GoAway,
    /// The service sent RECONNECT_ICE_SERVER; a fresh ICE configuration follows.
    ReconnectIceServer,
    /// A request failed or timed out; what happens next follows as other outputs.
    RequestFailed {
        /// Which request.
        request: RequestKind,
        /// Why.
        error: RequestError,
    },
    /// The service refused the credentials (401/403): refresh them before the next request.
    CredentialsRejected,
    /// The next attempt starts at `at`.
    RetryScheduled {
        /// How many consecutive failures led here.
        attempt: u32,
        /// When it starts.
        at: Instant,
    },
    /// The session gave up; no more outputs follow.
    Failed(FailureReason),
}

/// What the transport must do, or tell the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionOutput {
    /// Call DescribeSignalingChannel by name; answer with [`ClientSession::handle_describe`](super::ClientSession::handle_describe).
    DescribeChannel {
        /// The request.
        id: SessionRequestId,
        /// The channel.
        name: ChannelName,
    },
    /// Call CreateSignalingChannel; answer with [`ClientSession::handle_create`](super::ClientSession::handle_create).
    CreateChannel {
        /// The request.
        id: SessionRequestId,
        /// The channel.
        name: ChannelName,
    },
    /// Call GetSignalingChannelEndpoint for WSS and HTTPS; answer with
    /// [`ClientSession::handle_endpoints`](super::ClientSession::handle_endpoints).
    GetEndpoints {
        /// The request.
        id: SessionRequestId,
        /// The channel.
        arn: ChannelArn,
        /// The role to get endpoints for.
        role: Role,
    },
    /// Call GetIceServerConfig on the HTTPS endpoint; answer with
    /// [`ClientSession::handle_ice_config`](super::ClientSession::handle_ice_config). May come while connected (a refresh).
    GetIceConfig {
        /// The request.
        id: SessionRequestId,
        /// The channel.
        arn: ChannelArn,
        /// The HTTPS endpoint.
        https_endpoint: String,
        /// The viewer's client id; `None` for the master.
        client_id: Option<ClientId>,
    },
    /// Open the WebSocket (presigned URL on `wss_endpoint`); answer with
    /// [`ClientSession::handle_connected`](super::ClientSession::handle_connected) or [`ClientSession::handle_connect_failed`](super::ClientSession::handle_connect_failed).
    Connect {
        /// The request, which also names the socket from now on.
        id: SessionRequestId,
        /// The WSS endpoint.
        wss_endpoint: String,
        /// The channel (`X-Amz-ChannelARN`).
        arn: ChannelArn,
        /// The viewer's client id (`X-Amz-ClientId`); `None` for the master.
        client_id: Option<ClientId>,
    },
    /// Close the socket opened by `Connect { id }`, or abandon that connect if it is still
    /// under way. Do not report this close back.
    CloseSocket {
        /// The connect that opened it.
        id: SessionRequestId,
    },
    /// Something for the application.
    Event(SessionEvent),
}
