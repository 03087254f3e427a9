//! SigV4 and TURN credentials for KVS WebRTC signaling, with no IO: nothing here opens a
//! socket, reads a clock or needs a runtime, so a client or server on any executor (or none)
//! can sign and verify.
//!
//! - [`presign_connect_url`]: the presigned WebSocket connect URL, byte for byte what the
//!   official Android SDK produces and what the official JavaScript SDK signs;
//!   [`presign_connect_url_with`] adds parameters of one's own.
//! - [`sign_request_headers`]: the headers that sign a REST call, as the AWS SDKs sign it.
//! - [`Verifier`]: SigV4 verification of the presigned connect URL and of
//!   `Authorization`-signed REST calls, compared in constant time, with an [`AuthError`] that
//!   says what was wrong and maps to the service's error.
//! - [`TurnConfig`]: ICE servers for GetIceServerConfig, with TURN credentials in the TURN REST
//!   API scheme (`<expiry>:<id>`, HMAC-SHA1 of a shared secret) that a stock coturn configured
//!   with `use-auth-secret` accepts; several secrets for rotation.
//! - [`Credentials::from_env`] and [`region_from_env`]: the AWS SDKs' environment variables.
//! - [`Endpoint`]: the endpoint URLs a client signs for.
//!
//! The signatures are computed from the SigV4 specification (the canonical request, the
//! string to sign, the derived key); this crate's tests check them against the AWS SDKs' own
//! signer and the official SDKs' published vectors.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use kvs_signaling_auth::{Credentials, Verifier, presign_connect_url};
//! use kvs_signaling_proto::{ChannelArn, ClientId};
//!
//! let credentials = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
//! let arn = ChannelArn::new("arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1")?;
//! let viewer = ClientId::new("viewer-1")?;
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let url = presign_connect_url(&credentials, "us-west-2", "wss://127.0.0.1:8443", &arn, Some(&viewer), now)?;
//!
//! // The server's side: the same credentials, and the URL as it arrives.
//! let verifier = Verifier::new("us-west-2", [credentials]);
//! let query = url.split_once('?').map(|(_, query)| query).unwrap_or_default();
//! let verified = verifier.verify_presigned(now, "127.0.0.1:8443", "/", query)?;
//! assert_eq!(verified.access_key_id, "AKIDEXAMPLE");
//! // Five minutes later the URL has expired.
//! assert!(verifier.verify_presigned(now + Duration::from_secs(300), "127.0.0.1:8443", "/", query).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod canonical;
mod endpoint;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod internal;
mod sign;
mod sigv4;
mod turn;

pub use endpoint::{Endpoint, EndpointError, EndpointKind, Scheme};
pub use sign::{PresignError, presign_connect_url, presign_connect_url_with, sign_request_headers};
pub use sigv4::{
    AuthError, AuthErrorKind, Credentials, EnvError, HeaderSignedRequest, SERVICE, Verified,
    Verifier, region_from_env,
};
pub use turn::{TurnConfig, TurnConfigError, TurnCredentials, TurnSecret};
