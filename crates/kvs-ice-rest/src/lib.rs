//! The REST half of a KVS WebRTC signaling client, over tokio and hyper, and the SigV4 and
//! TURN credentials of [`kvs_signaling_auth`], re-exported so that one crate serves a
//! server's data plane and a client's calls.
//!
//! - [`RestClient`]: DescribeSignalingChannel, CreateSignalingChannel,
//!   GetSignalingChannelEndpoint and GetIceServerConfig over HTTPS (or plain HTTP for a local
//!   server), header-signed as the AWS SDKs sign them, on kept-alive connections shared by
//!   the client's clones, through the HTTP proxy of `HTTPS_PROXY` or a [`ProxyConfig`], each
//!   call bounded in time and size, errors as [`kvs_signaling_core::RequestError`] for the
//!   core's `ClientSession`; [`TlsTrust`] chooses the CAs it and the WebSocket client trust.
//! - From `kvs-signaling-auth`, which needs no runtime: [`Verifier`] (SigV4 verification of
//!   the presigned WebSocket connect URL and of `Authorization`-signed REST calls),
//!   [`TurnConfig`] (GetIceServerConfig answers with TURN REST API credentials),
//!   [`presign_connect_url`], [`sign_request_headers`], [`Credentials::from_env`] and
//!   [`region_from_env`]. Depend on `kvs-signaling-auth` alone to sign or verify without
//!   tokio.
//!
//! Signing and verification take the time as an argument; only [`RestClient`]'s calls read
//! the clock, for their signatures.

mod client;

pub use client::{
    ClientConfigError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, MAX_RESPONSE_BODY,
    ProxyConfig, RestClient, TlsTrust,
};
pub use kvs_signaling_auth::{
    AuthError, AuthErrorKind, Credentials, EndpointError, EnvError, HeaderSignedRequest,
    PresignError, SERVICE, TurnConfig, TurnConfigError, TurnCredentials, TurnSecret, Verified,
    Verifier, presign_connect_url, presign_connect_url_with, region_from_env, sign_request_headers,
};
/// The TLS library this crate's API speaks (`rustls::ClientConfig`,
/// `rustls::ServerConfig`), re-exported so that users build those with the very version this
/// crate was built against, whatever other rustls their tree holds.
pub use rustls;
