//! SigV4 signing on the client side: the presigned WebSocket connect URL, as the official
//! SDKs presign it, and the `Authorization` header of REST calls, as the AWS SDKs sign them.
//! Both compute their signature as the [`Verifier`](crate::Verifier) checks it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_signaling_proto::{AmzDate, ChannelArn, ClientId};

use crate::canonical::{self, ALGORITHM, encoded};
use crate::endpoint::{Endpoint, EndpointError, EndpointKind};
use crate::sigv4::{Credentials, SERVICE};

/// How long a presigned connect URL stays valid: the `X-Amz-Expires` the official JavaScript,
/// Android and iOS SDKs give.
const PRESIGN_EXPIRES: Duration = Duration::from_secs(299);

/// Why a request cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PresignError {
    /// The endpoint is not a URL that can be signed.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The access key id or the secret is empty.
    #[error("credentials: {field} is empty")]
    EmptyCredential {
        /// `access_key_id` or `secret_access_key`.
        field: &'static str,
    },
    /// The signing time is before 1970 or after 9999, which a SigV4 date cannot express.
    #[error("now: {time:?} is outside the years 1970 to 9999 that a SigV4 date can express")]
    TimeOutOfRange {
        /// The time given.
        time: SystemTime,
    },
}

/// The WebSocket connect URL for `channel_arn` on `wss_endpoint`, presigned as the official
/// JavaScript and Android SDKs presign it.
///
/// The query holds `X-Amz-ChannelARN`, `X-Amz-ClientId` (a viewer's id; `None` for the
/// master) and the SigV4 parameters `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`,
/// `X-Amz-Expires=299`, `X-Amz-Security-Token` (signed, for temporary credentials) and
/// `X-Amz-SignedHeaders=host`, RFC 3986-encoded and sorted by name, with `X-Amz-Signature`
/// last. The path is the endpoint's, `/` when it has none; the signed `host` is the
/// endpoint's authority, with its port unless it is the scheme's default (which the URL then
/// leaves out as well, so that every WebSocket client sends the `Host` that was signed).
///
/// `wss_endpoint` is what GetSignalingChannelEndpoint returned: `wss://` (or `ws://` for a
/// local server without TLS), no query.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use kvs_signaling_auth::{Credentials, presign_connect_url};
/// use kvs_signaling_proto::ChannelArn;
///
/// let credentials = Credentials::new("AKIAIOSFODJJ7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxQQiCYEXAMPLEKEY");
/// let arn = ChannelArn::new("arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/1234567890123")?;
/// let now = UNIX_EPOCH + Duration::from_millis(1_690_186_022_101);
/// let url = presign_connect_url(
///     &credentials, "us-west-2", "wss://m-a1b2c3d4.kinesisvideo.us-west-2.amazonaws.com", &arn, None, now,
/// )?;
/// // What the official Android SDK's own test expects for these inputs.
/// assert_eq!(url, "wss://m-a1b2c3d4.kinesisvideo.us-west-2.amazonaws.com/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-ChannelARN=arn%3Aaws%3Akinesisvideo%3Aus-west-2%3A123456789012%3Achannel%2Fdemo-channel%2F1234567890123&X-Amz-Credential=AKIAIOSFODJJ7EXAMPLE%2F20230724%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20230724T080702Z&X-Amz-Expires=299&X-Amz-SignedHeaders=host&X-Amz-Signature=0bbef329f0d9d3e68635f7b844ac684c7764a0c228ca013232d935c111b9a370");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn presign_connect_url(
    credentials: &Credentials,
    region: &str,
    wss_endpoint: &str,
    channel_arn: &ChannelArn,
    client_id: Option<&ClientId>,
    now: SystemTime,
) -> Result<String, PresignError> {
    presign_connect_url_with(
        credentials,
        region,
        wss_endpoint,
        channel_arn,
        client_id,
        &[],
        now,
    )
}

/// [`presign_connect_url`] with `extra` query parameters after the channel and client id,
/// signed like them: this project's extensions, such as
/// [`INDICATIONS_PARAM`](kvs_signaling_proto::INDICATIONS_PARAM).
pub fn presign_connect_url_with(
    credentials: &Credentials,
    region: &str,
    wss_endpoint: &str,
    channel_arn: &ChannelArn,
    client_id: Option<&ClientId>,
    extra: &[(&str, &str)],
    now: SystemTime,
) -> Result<String, PresignError> {
    let endpoint = Endpoint::parse("wss_endpoint", wss_endpoint, EndpointKind::WebSocket)?;
    let mut params = vec![("X-Amz-ChannelARN", channel_arn.as_str())];
    if let Some(client_id) = client_id {
        params.push(("X-Amz-ClientId", client_id.as_str()));
    }
    params.extend_from_slice(extra);
    presign(
        credentials,
        region,
        SERVICE,
        &endpoint,
        &params,
        PRESIGN_EXPIRES,
        now,
    )
}

/// Presigns a `GET` of `endpoint` with the query parameters `params` (unencoded), as the
/// official JavaScript SDK's `SigV4RequestSigner.getSignedURL` does, with the signature last.
pub(crate) fn presign(
    credentials: &Credentials,
    region: &str,
    service: &str,
    endpoint: &Endpoint,
    params: &[(&str, &str)],
    expires: Duration,
    now: SystemTime,
) -> Result<String, PresignError> {
    let date = signing_date(credentials, now)?;
    let scope = canonical::Scope {
        amz_date: date.as_str(),
        region,
        service,
    };
    let credential = format!("{}/{}", credentials.access_key_id, scope.credential_scope());
    let expires = expires.as_secs().to_string();
    let mut query: Vec<(&str, &str)> = params.to_vec();
    query.extend([
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", credential.as_str()),
        ("X-Amz-Date", date.as_str()),
        ("X-Amz-Expires", expires.as_str()),
        ("X-Amz-SignedHeaders", "host"),
    ]);
    if let Some(token) = &credentials.session_token {
        query.push(("X-Amz-Security-Token", token));
    }
    let request = canonical::Request {
        method: "GET",
        path: &endpoint.path,
        query,
        headers: vec![("host", &endpoint.authority)],
        payload_hash: canonical::sha256_hex(b""),
    };
    let signature = canonical::signature(&credentials.secret_access_key, &scope, &request);
    let mut pairs: Vec<(String, String)> = request
        .query
        .iter()
        .map(|(name, value)| (encoded(name), encoded(value)))
        .collect();
    pairs.sort();
    let mut url = format!(
        "{}://{}{}",
        endpoint.scheme.as_str(),
        endpoint.authority,
        endpoint.path
    );
    for (i, (name, value)) in pairs.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(name);
        url.push('=');
        url.push_str(value);
    }
    url.push_str("&X-Amz-Signature=");
    url.push_str(&signature);
    Ok(url)
}

/// The headers that sign a REST call to `authority` (`x-amz-date`, `authorization` and, for
/// temporary credentials, `x-amz-security-token`), as the AWS SDKs sign it: the signed headers
/// are `host`, `x-amz-date` and the session token; the body is hashed into the signature and
/// no `x-amz-content-sha256` is sent.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use kvs_signaling_auth::{Credentials, HeaderSignedRequest, Verifier, sign_request_headers};
///
/// let credentials = Credentials::new("AKIDEXAMPLE", "secret");
/// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let body = br#"{"ChannelName":"demo"}"#;
/// let signed = sign_request_headers(
///     &credentials, "us-west-2", now, "POST", "kinesisvideo.us-west-2.amazonaws.com",
///     "/describeSignalingChannel", body,
/// )?;
/// let mut headers = vec![("host", "kinesisvideo.us-west-2.amazonaws.com")];
/// headers.extend(signed.iter().map(|(name, value)| (*name, value.as_str())));
/// let request = HeaderSignedRequest::new("POST", "/describeSignalingChannel", &headers, body);
/// let verifier = Verifier::new("us-west-2", [credentials]);
/// assert_eq!(verifier.verify_header(now, &request)?.access_key_id, "AKIDEXAMPLE");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn sign_request_headers(
    credentials: &Credentials,
    region: &str,
    now: SystemTime,
    method: &str,
    authority: &str,
    path: &str,
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, PresignError> {
    let date = signing_date(credentials, now)?;
    let scope = canonical::Scope {
        amz_date: date.as_str(),
        region,
        service: SERVICE,
    };
    let mut headers = vec![("host", authority), ("x-amz-date", date.as_str())];
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token", token));
    }
    let request = canonical::Request {
        method,
        path,
        query: Vec::new(),
        headers,
        payload_hash: canonical::sha256_hex(body),
    };
    let signature = canonical::signature(&credentials.secret_access_key, &scope, &request);
    let authorization = format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={signature}",
        credentials.access_key_id,
        scope.credential_scope(),
        canonical::signed_headers(&request.headers),
    );
    let mut out = vec![
        ("x-amz-date", date.as_str().to_owned()),
        ("authorization", authorization),
    ];
    if let Some(token) = &credentials.session_token {
        out.push(("x-amz-security-token", token.clone()));
    }
    Ok(out)
}

/// The SigV4 date of `now`, once the credentials are known to be usable.
fn signing_date(credentials: &Credentials, now: SystemTime) -> Result<AmzDate, PresignError> {
    if credentials.access_key_id.is_empty() {
        return Err(PresignError::EmptyCredential {
            field: "access_key_id",
        });
    }
    if credentials.secret_access_key.is_empty() {
        return Err(PresignError::EmptyCredential {
            field: "secret_access_key",
        });
    }
    now.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| AmzDate::from_unix_seconds(since.as_secs()))
        .ok_or(PresignError::TimeOutOfRange { time: now })
}

#[cfg(test)]
mod tests;
