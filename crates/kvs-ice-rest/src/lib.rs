//! The HTTPS data plane of KVS WebRTC signaling, and the authentication every surface shares.
//!
//! - [`Verifier`]: SigV4 verification of the presigned WebSocket connect URL and of
//!   `Authorization`-signed REST calls, recomputed with aws-sigv4 and compared in constant time.
//! - [`TurnConfig`]: ICE servers for GetIceServerConfig, with TURN credentials in the TURN REST
//!   API scheme (`<expiry>:<id>`, HMAC-SHA1 of a shared secret) that a stock coturn configured
//!   with `use-auth-secret` accepts; several secrets for rotation.
//!
//! Everything here takes the time as an argument. The hyper services for
//! `POST /v1/get-ice-server-config` and `POST /v1/send-alexa-offer-to-master` will be added
//! with the server.

mod sigv4;
mod turn;

pub use sigv4::{
    AuthError, AuthErrorKind, Credentials, HeaderSignedRequest, SERVICE, Verified, Verifier,
};
pub use turn::{TurnConfig, TurnConfigError, TurnCredentials, TurnSecret};
