//! ICE servers for GetIceServerConfig, with TURN credentials in the TURN REST API scheme: the
//! username is `<expiry in Unix seconds>:<id>` and the password is
//! `base64(HMAC-SHA1(shared secret, username))`, which a stock coturn started with
//! `use-auth-secret` and `static-auth-secret` verifies without talking to this server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use kvs_signaling_proto::{
    ChannelArn, GetIceServerConfigResponse, IceCredential, IceServer, IceServerTtl, IceUri, limits,
};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// A shared secret. The newest one that is not retired signs new credentials; every secret
/// not yet retired still verifies, so that credentials handed out before a rotation keep
/// working until they expire.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnSecret {
    /// The secret, as configured in coturn's `static-auth-secret`.
    pub secret: String,
    /// When the secret stops verifying, if it is being rotated out.
    pub retired_at: Option<SystemTime>,
}

impl TurnSecret {
    /// A secret in use.
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: secret.into(),
            retired_at: None,
        }
    }

    /// The same secret, retired at `at`.
    #[must_use]
    pub fn retired_at(mut self, at: SystemTime) -> Self {
        self.retired_at = Some(at);
        self
    }

    fn is_live(&self, now: SystemTime) -> bool {
        self.retired_at.is_none_or(|at| now < at)
    }
}

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnSecret")
            .field("secret", &"** redacted **")
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// A configuration GetIceServerConfig cannot answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TurnConfigError {
    /// No ICE server URI at all: the official C SDK refuses an empty IceServerList.
    #[error("at least one STUN or TURN URI is needed: the official C SDK refuses an empty list")]
    NoUris,
    /// More URIs per server than the official C SDK reads.
    #[error("at most {max} TURN URIs per server are read by the official C SDK, found {found}")]
    TooManyUris {
        /// The limit.
        max: usize,
        /// The number configured.
        found: usize,
    },
    /// A URI that is not `stun:`, `turn:` or `turns:`.
    #[error("{uri:?} is not a stun:, turn: or turns: URI")]
    BadScheme {
        /// The URI.
        uri: String,
    },
    /// TURN URIs without a secret to sign their credentials.
    #[error("TURN URIs are configured without a shared secret to sign their credentials")]
    NoSecret,
}

/// Freshly issued TURN credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnCredentials {
    /// `<expiry>:<id>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub password: String,
    /// When coturn stops accepting them.
    pub expires_at: SystemTime,
}

/// The ICE servers GetIceServerConfig hands out.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TurnConfig {
    /// `turn:`/`turns:` URIs served by the TURN server, such as
    /// `turn:turn.example.com:3478?transport=udp`.
    pub turn_uris: Vec<IceUri>,
    /// `stun:` URIs, returned as their own entry.
    pub stun_uris: Vec<IceUri>,
    /// Shared secrets, newest first.
    pub secrets: Vec<TurnSecret>,
    /// How long credentials stay valid: 300 seconds, as the service gives them.
    pub ttl: IceServerTtl,
}

impl TurnConfig {
    /// A configuration, checked against what the official clients accept.
    pub fn new(
        turn_uris: Vec<IceUri>,
        stun_uris: Vec<IceUri>,
        secrets: Vec<TurnSecret>,
        ttl: IceServerTtl,
    ) -> Result<Self, TurnConfigError> {
        if turn_uris.is_empty() && stun_uris.is_empty() {
            return Err(TurnConfigError::NoUris);
        }
        for (uris, schemes) in [
            (&turn_uris, &["turn:", "turns:"][..]),
            (&stun_uris, &["stun:", "stuns:"][..]),
        ] {
            if uris.len() > limits::MAX_ICE_SERVER_URIS {
                return Err(TurnConfigError::TooManyUris {
                    max: limits::MAX_ICE_SERVER_URIS,
                    found: uris.len(),
                });
            }
            if let Some(bad) = uris
                .iter()
                .find(|uri| !schemes.iter().any(|s| uri.as_str().starts_with(s)))
            {
                return Err(TurnConfigError::BadScheme {
                    uri: bad.as_str().to_owned(),
                });
            }
        }
        if !turn_uris.is_empty() && secrets.is_empty() {
            return Err(TurnConfigError::NoSecret);
        }
        Ok(Self {
            turn_uris,
            stun_uris,
            secrets,
            ttl,
        })
    }

    /// The secret that signs credentials at `now`: the newest live one.
    fn signing_secret(&self, now: SystemTime) -> Option<&TurnSecret> {
        self.secrets.iter().find(|s| s.is_live(now))
    }

    /// Credentials for `channel_arn`, valid for the configured TTL from `now`. The id part is
    /// the real service's, `base64("v1:" + ARN)`, unless that would pass the 256 characters
    /// the official C SDK allows, in which case it is a digest of the ARN.
    pub fn issue(&self, now: SystemTime, channel_arn: &ChannelArn) -> Option<TurnCredentials> {
        let secret = self.signing_secret(now)?;
        let expires_at = now + Duration::from_secs(u64::from(self.ttl.get()));
        let expiry = expires_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let id = STANDARD.encode(format!("v1:{channel_arn}"));
        let mut username = format!("{expiry}:{id}");
        if username.len() > limits::MAX_ICE_SERVER_FIELD_LEN {
            let digest = Sha256::digest(channel_arn.as_str().as_bytes());
            username = format!("{expiry}:v2-{}", STANDARD.encode(digest));
        }
        let password = password(&secret.secret, &username);
        Some(TurnCredentials {
            username,
            password,
            expires_at,
        })
    }

    /// Whether `password` is right for `username` at `now` under a live secret, and the
    /// username has not expired: what coturn checks, for tests and diagnostics.
    pub fn verify(&self, now: SystemTime, username: &str, password: &str) -> bool {
        let Some(expiry) = username
            .split_once(':')
            .and_then(|(expiry, _)| expiry.parse::<u64>().ok())
        else {
            return false;
        };
        if UNIX_EPOCH + Duration::from_secs(expiry) <= now {
            return false;
        }
        self.secrets
            .iter()
            .filter(|s| s.is_live(now))
            .any(|s| self::password(&s.secret, username) == password)
    }

    /// The answer to GetIceServerConfig for `channel_arn` at `now`: one entry with the TURN
    /// URIs and fresh credentials, and one with the STUN URIs (STUN needs no credentials, but
    /// the official C SDK wants every entry's fields filled, so they carry the same ones).
    pub fn ice_server_config(
        &self,
        now: SystemTime,
        channel_arn: &ChannelArn,
    ) -> GetIceServerConfigResponse {
        let credentials = self.issue(now, channel_arn);
        let entry = |uris: &[IceUri]| {
            let mut server = IceServer::new();
            server.uris = Some(uris.to_vec());
            server.ttl = Some(self.ttl);
            if let Some(c) = &credentials {
                server.username = IceCredential::new(c.username.as_str()).ok();
                server.password = IceCredential::new(c.password.as_str()).ok();
            }
            server
        };
        let mut list = Vec::new();
        if !self.turn_uris.is_empty() {
            list.push(entry(&self.turn_uris));
        }
        if !self.stun_uris.is_empty() {
            list.push(entry(&self.stun_uris));
        }
        let mut response = GetIceServerConfigResponse::new();
        response.ice_server_list = Some(list);
        response
    }
}

/// `base64(HMAC-SHA1(secret, username))`, coturn's `use-auth-secret` password.
fn password(secret: &str, username: &str) -> String {
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> IceUri {
        IceUri::new(text).unwrap()
    }

    fn arn() -> ChannelArn {
        ChannelArn::new(
            "arn:aws:kinesisvideo:us-west-2:123456789012:channel/mychannel/1657142193914",
        )
        .unwrap()
    }

    fn config(secrets: Vec<TurnSecret>) -> TurnConfig {
        TurnConfig::new(
            vec![
                uri("turn:127.0.0.1:3478?transport=udp"),
                uri("turn:127.0.0.1:3478?transport=tcp"),
            ],
            vec![uri("stun:127.0.0.1:3478")],
            secrets,
            IceServerTtl::default(),
        )
        .unwrap()
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn password_is_the_turn_rest_api_hmac() {
        // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
        assert_eq!(
            password("Jefe", "what do ya want for nothing?"),
            STANDARD.encode([
                0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84,
                0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79
            ])
        );
    }

    #[test]
    fn issues_credentials_in_the_services_form() {
        let now = at(1_657_143_038);
        let creds = config(vec![TurnSecret::new("s3cret")])
            .issue(now, &arn())
            .unwrap();
        // The same username the real service gave in a public capture, 300 s on.
        assert_eq!(
            creds.username,
            "1657143338:djE6YXJuOmF3czpraW5lc2lzdmlkZW86dXMtd2VzdC0yOjEyMzQ1Njc4OTAxMjpjaGFubmVsL215Y2hhbm5lbC8xNjU3MTQyMTkzOTE0"
        );
        assert_eq!(creds.expires_at, at(1_657_143_338));
        assert_eq!(creds.password, password("s3cret", &creds.username));
        assert_eq!(creds.password.len(), 28);
    }

    #[test]
    fn long_arns_get_a_digest_id_within_the_c_sdk_limit() {
        let long = ChannelArn::new(format!(
            "arn:aws:kinesisvideo:us-west-2:123456789012:channel/{}/1",
            "n".repeat(300)
        ))
        .unwrap();
        let creds = config(vec![TurnSecret::new("s")])
            .issue(at(0), &long)
            .unwrap();
        assert!(creds.username.len() <= 256, "{}", creds.username);
        assert!(creds.username.starts_with("300:v2-"));
    }

    #[test]
    fn rotation_signs_with_the_newest_and_verifies_with_every_live_secret() {
        let now = at(1_000);
        let old = config(vec![TurnSecret::new("old")]);
        let issued_before = old.issue(now, &arn()).unwrap();

        let rotated = config(vec![
            TurnSecret::new("new"),
            TurnSecret::new("old").retired_at(at(1_300)),
        ]);
        let issued_after = rotated.issue(now, &arn()).unwrap();
        assert_eq!(
            issued_after.password,
            password("new", &issued_after.username)
        );
        // Both verify while the old secret lives; the old one's credentials stop after it.
        assert!(rotated.verify(at(1_100), &issued_before.username, &issued_before.password));
        assert!(rotated.verify(at(1_100), &issued_after.username, &issued_after.password));
        assert!(!rotated.verify(at(1_299), &issued_before.username, "forged"));
        let later = config(vec![
            TurnSecret::new("new"),
            TurnSecret::new("old").retired_at(at(1_050)),
        ]);
        assert!(!later.verify(at(1_100), &issued_before.username, &issued_before.password));
        // Expired credentials fail whatever the secret.
        assert!(!rotated.verify(at(1_300), &issued_after.username, &issued_after.password));
    }

    #[test]
    fn ice_server_config_as_clients_expect_it() {
        let response = config(vec![TurnSecret::new("s")]).ice_server_config(at(100), &arn());
        let list = response.ice_server_list.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].uris.as_ref().unwrap().len(), 2);
        assert_eq!(list[0].ttl.unwrap().get(), 300);
        assert!(
            list[0]
                .username
                .as_ref()
                .unwrap()
                .as_str()
                .starts_with("400:")
        );
        assert_eq!(
            list[1].uris.as_ref().unwrap()[0].as_str(),
            "stun:127.0.0.1:3478"
        );
    }

    #[test]
    fn configuration_is_checked_against_what_clients_accept() {
        let ttl = IceServerTtl::default();
        assert_eq!(
            TurnConfig::new(vec![], vec![], vec![], ttl).unwrap_err(),
            TurnConfigError::NoUris
        );
        assert_eq!(
            TurnConfig::new(
                vec![uri("turn:a"); 5],
                vec![],
                vec![TurnSecret::new("s")],
                ttl
            )
            .unwrap_err(),
            TurnConfigError::TooManyUris { max: 4, found: 5 }
        );
        assert_eq!(
            TurnConfig::new(
                vec![uri("http://a")],
                vec![],
                vec![TurnSecret::new("s")],
                ttl
            )
            .unwrap_err(),
            TurnConfigError::BadScheme {
                uri: "http://a".to_owned()
            }
        );
        assert_eq!(
            TurnConfig::new(vec![uri("turn:a")], vec![], vec![], ttl).unwrap_err(),
            TurnConfigError::NoSecret
        );
        assert!(TurnConfig::new(vec![], vec![uri("stun:a")], vec![], ttl).is_ok());
        assert!(!format!("{:?}", TurnSecret::new("s3cret")).contains("s3cret"));
    }
}
