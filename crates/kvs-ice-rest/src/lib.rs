//! The HTTPS data plane of KVS WebRTC signaling, the authentication every surface shares, and
//! the REST client half of a signaling client.
//!
//! Server side:
//!
//! - [`Verifier`]: SigV4 verification of the presigned WebSocket connect URL and of
//!   `Authorization`-signed REST calls, recomputed with aws-sigv4 and compared in constant time.
//! - [`TurnConfig`]: ICE servers for GetIceServerConfig, with TURN credentials in the TURN REST
//!   API scheme (`<expiry>:<id>`, HMAC-SHA1 of a shared secret) that a stock coturn configured
//!   with `use-auth-secret` accepts; several secrets for rotation.
//!
//! Client side:
//!
//! - [`presign_connect_url`]: the presigned WebSocket connect URL, byte for byte what the
//!   official Android SDK produces and what the official JavaScript SDK signs.
//! - [`RestClient`]: DescribeSignalingChannel, CreateSignalingChannel,
//!   GetSignalingChannelEndpoint and GetIceServerConfig over HTTPS (or plain HTTP for a local
//!   server), header-signed as the AWS SDKs sign them, one bounded exchange per call, errors as
//!   [`kvs_signaling_core::RequestError`] for the core's `ClientSession`; [`TlsTrust`] chooses
//!   the CAs it and the WebSocket client trust.
//! - [`Credentials::from_env`] and [`region_from_env`]: the AWS SDKs' environment variables.
//!
//! Signing and verification take the time as an argument; only [`RestClient`]'s calls read
//! the clock, for their signatures.

mod client;
mod endpoint;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod internal;
mod sign;
mod sigv4;
mod turn;

pub use client::{
    ClientConfigError, DEFAULT_REQUEST_TIMEOUT, MAX_RESPONSE_BODY, RestClient, TlsTrust,
};
pub use endpoint::EndpointError;
pub use sign::{PresignError, presign_connect_url, presign_connect_url_with};
pub use sigv4::{
    AuthError, AuthErrorKind, Credentials, EnvError, HeaderSignedRequest, SERVICE, Verified,
    Verifier, region_from_env,
};
pub use turn::{TurnConfig, TurnConfigError, TurnCredentials, TurnSecret};
