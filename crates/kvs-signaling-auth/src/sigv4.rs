//! Verification of SigV4-signed requests, in both forms the official SDKs use: the presigned
//! WebSocket connect URL (signature in the query) and the `Authorization` header of REST calls.
//!
//! The signature is recomputed (by [`canonical`](crate::canonical)) from the request as
//! received and the configured secret, and compared in constant time; the time, scope, region and service are checked
//! first, so that every refusal says what was wrong.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_signaling_proto::{AmzDate, ErrorType, PresignParams, parse_query};

use crate::canonical;

/// The SigV4 service name of every KVS signaling surface.
pub const SERVICE: &str = "kinesisvideo";

/// One access key the server accepts.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credentials {
    /// The access key id, such as `AKIAIOSFODNN7EXAMPLE`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token that must come with this key, for temporary credentials.
    pub session_token: Option<String>,
}

impl Credentials {
    /// Long-term credentials.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// Temporary credentials, valid only with `session_token`.
    #[must_use]
    pub fn with_session_token(mut self, session_token: impl Into<String>) -> Self {
        self.session_token = Some(session_token.into());
        self
    }
}

impl Credentials {
    /// The credentials in the environment, as the AWS SDKs and CLI read them:
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for temporary credentials,
    /// `AWS_SESSION_TOKEN`. An empty variable counts as unset.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(std::env::var_os)
    }

    pub(crate) fn from_lookup(
        lookup: impl Fn(&'static str) -> Option<OsString>,
    ) -> Result<Self, EnvError> {
        let access_key_id = required_var(&lookup, "AWS_ACCESS_KEY_ID")?;
        let secret_access_key = required_var(&lookup, "AWS_SECRET_ACCESS_KEY")?;
        let credentials = Self::new(access_key_id, secret_access_key);
        Ok(match optional_var(&lookup, "AWS_SESSION_TOKEN")? {
            Some(token) => credentials.with_session_token(token),
            None => credentials,
        })
    }
}

/// The region in the environment: `AWS_REGION`, else `AWS_DEFAULT_REGION` (which the AWS CLI
/// reads). An empty variable counts as unset.
pub fn region_from_env() -> Result<String, EnvError> {
    region_from_lookup(std::env::var_os)
}

pub(crate) fn region_from_lookup(
    lookup: impl Fn(&'static str) -> Option<OsString>,
) -> Result<String, EnvError> {
    match optional_var(&lookup, "AWS_REGION")? {
        Some(region) => Ok(region),
        None => required_var(&lookup, "AWS_DEFAULT_REGION").map_err(|err| match err {
            EnvError::Missing { .. } => EnvError::Missing {
                variable: "AWS_REGION (or AWS_DEFAULT_REGION)",
            },
            other => other,
        }),
    }
}

fn optional_var(
    lookup: &impl Fn(&'static str) -> Option<OsString>,
    variable: &'static str,
) -> Result<Option<String>, EnvError> {
    match lookup(variable) {
        None => Ok(None),
        Some(value) if value.is_empty() => Ok(None),
        Some(value) => value
            .into_string()
            .map(Some)
            .map_err(|_| EnvError::NotUnicode { variable }),
    }
}

fn required_var(
    lookup: &impl Fn(&'static str) -> Option<OsString>,
    variable: &'static str,
) -> Result<String, EnvError> {
    optional_var(lookup, variable)?.ok_or(EnvError::Missing { variable })
}

/// A setting the environment does not provide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// The variable is unset or empty.
    #[error("the environment variable {variable} is not set")]
    Missing {
        /// The variable's name.
        variable: &'static str,
    },
    /// The variable is not valid Unicode.
    #[error("the environment variable {variable} is not valid Unicode")]
    NotUnicode {
        /// The variable's name.
        variable: &'static str,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

/// Why a request's signature is refused. The message is safe to send back: it never contains
/// a secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct AuthError {
    /// What was wrong.
    pub kind: AuthErrorKind,
    /// The explanation, worded as the service words it where a client looks for the words
    /// (`Signature expired`, `Signature not yet current`).
    pub message: String,
}

/// What was wrong with a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// No signature at all.
    Missing,
    /// The signature parameters or header do not parse.
    Malformed,
    /// The access key is not one the server knows.
    UnknownAccessKey,
    /// The scope names another region or service, or another date than the request's.
    WrongScope,
    /// The request is too old, or its presigned URL expired.
    Expired,
    /// The request's time is too far in the future.
    NotYetCurrent,
    /// The session token is missing, or not the one of the access key.
    BadSessionToken,
    /// The signature does not match.
    Mismatch,
}

impl AuthError {
    fn new(kind: AuthErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The error the service answers a REST call with: InvalidSignatureException (403), or
    /// AccessDeniedException when no signature was given.
    pub fn error_type(&self) -> ErrorType {
        match self.kind {
            AuthErrorKind::Missing => ErrorType::AccessDeniedException,
            _ => ErrorType::InvalidSignatureException,
        }
    }
}

/// A request that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The access key that signed it.
    pub access_key_id: String,
}

/// Checks SigV4 signatures against a set of credentials, for one region.
#[derive(Debug, Clone)]
pub struct Verifier {
    region: String,
    credentials: BTreeMap<String, Credentials>,
    max_clock_skew: Duration,
}

/// A request signed with an `Authorization` header.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct HeaderSignedRequest<'a> {
    /// The method, such as `POST`.
    pub method: &'a str,
    /// The path as received, such as `/describeSignalingChannel`.
    pub path: &'a str,
    /// The query string as received, without `?`; usually empty.
    pub query: &'a str,
    /// Every header as received (the `Host` header among them).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

impl<'a> HeaderSignedRequest<'a> {
    /// A request with an empty query.
    pub fn new(
        method: &'a str,
        path: &'a str,
        headers: &'a [(&'a str, &'a str)],
        body: &'a [u8],
    ) -> Self {
        Self {
            method,
            path,
            query: "",
            headers,
            body,
        }
    }
}

impl Verifier {
    /// A verifier for `region` accepting `credentials`, with the ±5 minute clock skew the
    /// service allows.
    pub fn new(
        region: impl Into<String>,
        credentials: impl IntoIterator<Item = Credentials>,
    ) -> Self {
        Self {
            region: region.into(),
            credentials: credentials
                .into_iter()
                .map(|c| (c.access_key_id.clone(), c))
                .collect(),
            max_clock_skew: Duration::from_secs(300),
        }
    }

    /// Sets the clock skew allowed between a request's time and `now`.
    #[must_use]
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = skew;
        self
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Verifies a presigned `GET` of `path` on `host` with the query string `query` (without
    /// `?`), as the official SDKs presign the WebSocket connect.
    pub fn verify_presigned(
        &self,
        now: SystemTime,
        host: &str,
        path: &str,
        query: &str,
    ) -> Result<Verified, AuthError> {
        let malformed = |err: kvs_signaling_proto::Error| {
            AuthError::new(AuthErrorKind::Malformed, err.to_string())
        };
        let params = parse_query(query).map_err(malformed)?;
        let presign = PresignParams::from_params(&params)
            .map_err(malformed)?
            .ok_or_else(|| {
                AuthError::new(
                    AuthErrorKind::Missing,
                    "the request is not signed: X-Amz-Signature and the other SigV4 query \
                     parameters are missing",
                )
            })?;
        if presign.signed_headers != "host" {
            return Err(AuthError::new(
                AuthErrorKind::Malformed,
                format!(
                    "X-Amz-SignedHeaders must be \"host\" on a presigned URL, found {:?}",
                    presign.signed_headers
                ),
            ));
        }
        let credentials = self.check_scope(
            &presign.credential.access_key_id,
            &presign.credential.date,
            &presign.credential.region,
            &presign.credential.service,
            &presign.date,
        )?;
        let signed_at = self.check_time(now, &presign.date)?;
        let expires = Duration::from_secs(u64::from(presign.expires.get()));
        if now > signed_at + expires {
            return Err(AuthError::new(
                AuthErrorKind::Expired,
                format!(
                    "Signature expired: the URL signed at {} was valid for {} seconds",
                    presign.date.as_str(),
                    expires.as_secs()
                ),
            ));
        }
        check_token(credentials, presign.security_token.as_deref())?;

        // Recompute over every parameter but the signature, as the client signed them.
        let query: Vec<(&str, &str)> = params
            .iter()
            .filter(|(name, _)| name != "X-Amz-Signature")
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let request = canonical::Request {
            method: "GET",
            path,
            query,
            headers: vec![("host", host)],
            payload_hash: canonical::sha256_hex(b""),
        };
        let expected = self.signature(credentials, &presign.date, &request);
        compare(&expected, &presign.signature)?;
        Ok(Verified {
            access_key_id: credentials.access_key_id.clone(),
        })
    }

    /// Verifies a request signed with an `Authorization` header, recomputing over exactly the
    /// headers it lists in `SignedHeaders` (the official C SDK signs `host;user-agent;x-amz-date`
    /// and sends its session token unsigned).
    pub fn verify_header(
        &self,
        now: SystemTime,
        request: &HeaderSignedRequest<'_>,
    ) -> Result<Verified, AuthError> {
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        };
        let authorization = header("authorization").ok_or_else(|| {
            AuthError::new(
                AuthErrorKind::Missing,
                "the request is not signed: the Authorization header is missing",
            )
        })?;
        let auth = Authorization::parse(authorization)?;
        let date_text = header("x-amz-date").ok_or_else(|| {
            AuthError::new(AuthErrorKind::Malformed, "the X-Amz-Date header is missing")
        })?;
        let date = AmzDate::new(date_text).map_err(|violation| {
            AuthError::new(AuthErrorKind::Malformed, format!("X-Amz-Date: {violation}"))
        })?;
        let credentials = self.check_scope(
            auth.access_key_id,
            auth.date,
            auth.region,
            auth.service,
            &date,
        )?;
        let signed_at = self.check_time(now, &date)?;
        if now > signed_at + self.max_clock_skew {
            return Err(AuthError::new(
                AuthErrorKind::Expired,
                format!(
                    "Signature expired: {} is more than {} seconds behind the server's time",
                    date.as_str(),
                    self.max_clock_skew.as_secs()
                ),
            ));
        }
        let token = header("x-amz-security-token");
        check_token(credentials, token)?;

        let signed: Vec<&str> = auth.signed_headers.split(';').collect();
        if !signed.contains(&"host") {
            return Err(AuthError::new(
                AuthErrorKind::Malformed,
                "SignedHeaders must include host",
            ));
        }
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(signed.len());
        for name in &signed {
            let value = header(name).ok_or_else(|| {
                AuthError::new(
                    AuthErrorKind::Malformed,
                    format!("SignedHeaders lists {name}, which the request does not have"),
                )
            })?;
            headers.push((name, value));
        }
        let query = parse_query(request.query)
            .map_err(|err| AuthError::new(AuthErrorKind::Malformed, err.to_string()))?;
        let query: Vec<(&str, &str)> = query
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let canonical = canonical::Request {
            method: request.method,
            path: request.path,
            query,
            headers,
            payload_hash: canonical::sha256_hex(request.body),
        };
        let expected = self.signature(credentials, &date, &canonical);
        compare(&expected, auth.signature)?;
        Ok(Verified {
            access_key_id: credentials.access_key_id.clone(),
        })
    }

    fn check_scope(
        &self,
        access_key_id: &str,
        scope_date: &str,
        region: &str,
        service: &str,
        date: &AmzDate,
    ) -> Result<&Credentials, AuthError> {
        let credentials = self.credentials.get(access_key_id).ok_or_else(|| {
            AuthError::new(
                AuthErrorKind::UnknownAccessKey,
                format!("the access key {access_key_id:?} is not one this server accepts"),
            )
        })?;
        if region != self.region {
            return Err(AuthError::new(
                AuthErrorKind::WrongScope,
                format!(
                    "the credential scope names region {region:?}, but this server is {:?}",
                    self.region
                ),
            ));
        }
        if service != SERVICE {
            return Err(AuthError::new(
                AuthErrorKind::WrongScope,
                format!("the credential scope names service {service:?}, not {SERVICE:?}"),
            ));
        }
        if Some(scope_date) != date.as_str().get(..8) {
            return Err(AuthError::new(
                AuthErrorKind::WrongScope,
                format!(
                    "the credential scope date {scope_date} is not the request's date {}",
                    date.as_str()
                ),
            ));
        }
        Ok(credentials)
    }

    /// The request's signing time, if it is within the allowed skew of `now` (or earlier).
    fn check_time(&self, now: SystemTime, date: &AmzDate) -> Result<SystemTime, AuthError> {
        let seconds = u64::try_from(date.unix_seconds())
            .map_err(|_| AuthError::new(AuthErrorKind::Malformed, "X-Amz-Date is before 1970"))?;
        let signed_at = UNIX_EPOCH + Duration::from_secs(seconds);
        if signed_at > now + self.max_clock_skew {
            return Err(AuthError::new(
                AuthErrorKind::NotYetCurrent,
                format!(
                    "Signature not yet current: {} is more than {} seconds ahead of the server's \
                     time",
                    date.as_str(),
                    self.max_clock_skew.as_secs()
                ),
            ));
        }
        Ok(signed_at)
    }

    /// The signature `request` should carry, signed at `date` with `credentials`.
    fn signature(
        &self,
        credentials: &Credentials,
        date: &AmzDate,
        request: &canonical::Request<'_>,
    ) -> String {
        let scope = canonical::Scope {
            amz_date: date.as_str(),
            region: &self.region,
            service: SERVICE,
        };
        canonical::signature(&credentials.secret_access_key, &scope, request)
    }
}

fn check_token(credentials: &Credentials, given: Option<&str>) -> Result<(), AuthError> {
    match (&credentials.session_token, given) {
        (None, None) => Ok(()),
        (Some(expected), Some(given))
            if constant_time_eq(expected.as_bytes(), given.as_bytes()) =>
        {
            Ok(())
        }
        (None, Some(_)) => Err(AuthError::new(
            AuthErrorKind::BadSessionToken,
            "a session token was given for long-term credentials",
        )),
        (Some(_), _) => Err(AuthError::new(
            AuthErrorKind::BadSessionToken,
            "The security token included in the request is invalid",
        )),
    }
}

fn compare(expected: &str, given: &str) -> Result<(), AuthError> {
    if constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err(AuthError::new(
            AuthErrorKind::Mismatch,
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method.",
        ))
    }
}

/// Compares without stopping at the first difference, so the time taken does not tell how
/// much of a guessed signature was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The parts of `AWS4-HMAC-SHA256 Credential=AKID/20230724/us-west-2/kinesisvideo/aws4_request,
/// SignedHeaders=host;x-amz-date, Signature=…`.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(header: &'a str) -> Result<Self, AuthError> {
        let malformed = |what: &str| {
            AuthError::new(
                AuthErrorKind::Malformed,
                format!("the Authorization header is malformed: {what}"),
            )
        };
        let rest = header
            .trim()
            .strip_prefix("AWS4-HMAC-SHA256")
            .ok_or_else(|| malformed("it must start with AWS4-HMAC-SHA256"))?;
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (name, value) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| malformed("expected Name=value parts"))?;
            let slot = match name.trim() {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => continue,
            };
            if slot.replace(value.trim()).is_some() {
                return Err(malformed("a part appears twice"));
            }
        }
        let credential = credential.ok_or_else(|| malformed("Credential is missing"))?;
        let mut scope = credential.split('/');
        let mut next = |what| {
            scope
                .next()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| malformed(what))
        };
        let access_key_id = next("the access key id is missing")?;
        let date = next("the scope date is missing")?;
        let region = next("the scope region is missing")?;
        let service = next("the scope service is missing")?;
        if next("the scope must end with aws4_request")? != "aws4_request" {
            return Err(malformed("the scope must end with aws4_request"));
        }
        Ok(Self {
            access_key_id,
            date,
            region,
            service,
            signed_headers: signed_headers.ok_or_else(|| malformed("SignedHeaders is missing"))?,
            signature: signature.ok_or_else(|| malformed("Signature is missing"))?,
        })
    }
}

#[cfg(test)]
mod tests;
