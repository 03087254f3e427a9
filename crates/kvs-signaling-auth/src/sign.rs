//! SigV4 signing on the client side: the presigned WebSocket connect URL, as the official
//! SDKs presign it, and the `Authorization` header of REST calls, as the AWS SDKs sign them.
//! Both go through aws-sigv4, as the [`Verifier`](crate::Verifier) does.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningInstructions, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use kvs_signaling_proto::{ChannelArn, ClientId};

use crate::endpoint::{Endpoint, EndpointError, EndpointKind};
use crate::sigv4::{Credentials, SERVICE, push_encoded, signing_uri};

/// How long a presigned connect URL stays valid: the `X-Amz-Expires` the official JavaScript,
/// Android and iOS SDKs give.
const PRESIGN_EXPIRES: Duration = Duration::from_secs(299);

/// 10000-01-01T00:00:00Z: a SigV4 date has four digits for the year.
const END_OF_SIGV4_TIME: Duration = Duration::from_secs(253_402_300_800);

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
    /// aws-sigv4 refused the request.
    #[error("the request cannot be signed: {message}")]
    Signing {
        /// Its explanation.
        message: String,
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
/// use kvs_ice_rest::{Credentials, presign_connect_url};
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
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    settings.excluded_headers = Some(Vec::new());
    let (instructions, signature) = sign_request(
        credentials,
        region,
        service,
        now,
        settings,
        "GET",
        &endpoint.path,
        params,
        &[("host", &endpoint.authority)],
        b"",
    )?;
    let (_, added) = instructions.into_parts();
    let mut query: Vec<(String, String)> = params
        .iter()
        .map(|(name, value)| (*name, *value))
        .chain(
            added
                .iter()
                .filter(|(name, _)| *name != "X-Amz-Signature")
                .map(|(name, value)| (*name, value.as_ref())),
        )
        .map(|(name, value)| (encode(name), encode(value)))
        .collect();
    query.sort();
    let mut url = format!(
        "{}://{}{}",
        endpoint.scheme.as_str(),
        endpoint.authority,
        endpoint.path
    );
    for (i, (name, value)) in query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(name);
        url.push('=');
        url.push_str(value);
    }
    url.push_str(if query.is_empty() { "?" } else { "&" });
    url.push_str("X-Amz-Signature=");
    url.push_str(&signature);
    Ok(url)
}

/// The headers that sign a REST call (`x-amz-date`, `authorization` and, for temporary
/// credentials, `x-amz-security-token`), as the AWS SDKs sign it: the signed headers are
/// `host`, `x-amz-date` and the session token; the body is hashed into the signature and no
/// `x-amz-content-sha256` is sent.
pub(crate) fn sign_headers(
    credentials: &Credentials,
    region: &str,
    now: SystemTime,
    method: &str,
    authority: &str,
    path: &str,
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, PresignError> {
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::Headers;
    let (instructions, _) = sign_request(
        credentials,
        region,
        SERVICE,
        now,
        settings,
        method,
        path,
        &[],
        &[("host", authority)],
        body,
    )?;
    let (headers, _) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|header| (header.name(), header.value().to_owned()))
        .collect())
}

#[expect(clippy::too_many_arguments, reason = "the parts of one request")]
fn sign_request(
    credentials: &Credentials,
    region: &str,
    service: &str,
    now: SystemTime,
    settings: SigningSettings,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(SigningInstructions, String), PresignError> {
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
    // aws-sigv4 formats the date with the `time` crate, which cannot go past year 9999.
    match now.duration_since(UNIX_EPOCH) {
        Ok(since) if since < END_OF_SIGV4_TIME => {}
        _ => return Err(PresignError::TimeOutOfRange { time: now }),
    }
    let signing_error = |message: String| PresignError::Signing { message };
    let identity: Identity = AwsCredentials::new(
        &credentials.access_key_id,
        &credentials.secret_access_key,
        credentials.session_token.clone(),
        None,
        "kvs-signaling",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|err| signing_error(err.to_string()))?
        .into();
    let uri = signing_uri(path, query);
    let request = SignableRequest::new(
        method,
        Cow::Owned(uri),
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|err| signing_error(err.to_string()))?;
    let output = sign(request, &params).map_err(|err| signing_error(err.to_string()))?;
    Ok(output.into_parts())
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_encoded(&mut out, text);
    out
}

#[cfg(test)]
mod tests;
