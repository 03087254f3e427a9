use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::*;

const ANDROID_HOST: &str = "m-a1b2c3d4.kinesisvideo.us-west-2.amazonaws.com";
const ANDROID_TOKEN: &str = "AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT+FvwqnKwRcOIfrRh3c/LTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE/IvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb/AXlzBBko7b15fjrBs2+cTQtpZ3CYWFXG8C5zqx37wnOE49mRl/+OtkIKGO7fAE";
/// The master URL the official Android SDK's own test expects for these inputs.
const ANDROID_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-ChannelARN=arn%3Aaws%3Akinesisvideo%3Aus-west-2%3A123456789012%3Achannel%2Fdemo-channel%2F1234567890123&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20230724%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20230724T080702Z&X-Amz-Expires=299&X-Amz-Security-Token=AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT%2BFvwqnKwRcOIfrRh3c%2FLTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE%2FIvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb%2FAXlzBBko7b15fjrBs2%2BcTQtpZ3CYWFXG8C5zqx37wnOE49mRl%2F%2BOtkIKGO7fAE&X-Amz-SignedHeaders=host&X-Amz-Signature=f8fed632bbe38ac920c7ed2eeaba1a4ba5e2b1bd7aada9f852708112eab76baa";

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// 2023-07-24T08:07:02Z, the Android vector's signing time.
const ANDROID_TIME: u64 = 1_690_186_022;
/// 2019-12-01T00:00:00Z, the JavaScript vectors' signing time.
const JS_TIME: u64 = 1_575_158_400;

fn android() -> Verifier {
    Verifier::new(
        "us-west-2",
        [Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .with_session_token(ANDROID_TOKEN)],
    )
}

/// The query of the official JavaScript SDK's signer test, with its expected signature.
fn js_query(token: bool, signature: &str) -> String {
    let token = if token {
        "&X-Amz-Security-Token=FakeSessionToken"
    } else {
        ""
    };
    format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA4F7WJQR7FMMWMNXI%2F20191201%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20191201T000000Z&X-Amz-Expires=299{token}&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value&X-Amz-Signature={signature}"
    )
}

fn js(token: bool) -> Verifier {
    let credentials = Credentials::new("AKIA4F7WJQR7FMMWMNXI", "FakeSecretKey");
    let credentials = if token {
        credentials.with_session_token("FakeSessionToken")
    } else {
        credentials
    };
    Verifier::new("us-west-2", [credentials])
}

#[test]
fn accepts_what_the_official_sdks_presign() {
    let now = at(ANDROID_TIME + 10);
    assert_eq!(
        android()
            .verify_presigned(now, ANDROID_HOST, "/", ANDROID_QUERY)
            .unwrap()
            .access_key_id,
        "AKIAIOSFODNN7EXAMPLE"
    );
    let now = at(JS_TIME + 10);
    let cases = [
        (
            true,
            "/",
            "fc268038be276315822b4f73eafd28ee3a5632a2a35fdb0a88db9a42b13d6c92",
        ),
        (
            false,
            "/",
            "be1e78950d956a8a9a1997417099ddbd7455619f3d08c4ad20e1e272179ca695",
        ),
        (
            true,
            "/path/path/path",
            "0bf3df6ca23d8d82f688e8dbfb90d69e74843d40038541b1721c545eef7612a4",
        ),
    ];
    for (token, path, signature) in cases {
        let result =
            js(token).verify_presigned(now, "kvs.awsamazon.com", path, &js_query(token, signature));
        assert!(result.is_ok(), "{path} token={token}: {result:?}");
    }
}

fn kind(result: Result<Verified, AuthError>) -> AuthErrorKind {
    result.expect_err("the request must be refused").kind
}

#[test]
fn refuses_with_the_reason() {
    let ok = at(ANDROID_TIME + 10);
    let v = android();
    let tampered_signature = ANDROID_QUERY.replace("eab76baa", "eab76bab");
    let tampered_channel = ANDROID_QUERY.replace("demo-channel", "demo-channe1");
    let no_token = ANDROID_QUERY.replace("&X-Amz-Security-Token=", "&X-Amz-Unused=");
    let cases: Vec<(Result<Verified, AuthError>, AuthErrorKind)> = vec![
        (
            v.verify_presigned(ok, ANDROID_HOST, "/", &tampered_signature),
            AuthErrorKind::Mismatch,
        ),
        (
            v.verify_presigned(ok, ANDROID_HOST, "/", &tampered_channel),
            AuthErrorKind::Mismatch,
        ),
        (
            v.verify_presigned(ok, "other.host", "/", ANDROID_QUERY),
            AuthErrorKind::Mismatch,
        ),
        (
            v.verify_presigned(ok, ANDROID_HOST, "/x", ANDROID_QUERY),
            AuthErrorKind::Mismatch,
        ),
        (
            v.verify_presigned(ok, ANDROID_HOST, "/", &no_token),
            AuthErrorKind::BadSessionToken,
        ),
        (
            v.verify_presigned(at(ANDROID_TIME + 300), ANDROID_HOST, "/", ANDROID_QUERY),
            AuthErrorKind::Expired,
        ),
        (
            v.verify_presigned(at(ANDROID_TIME - 301), ANDROID_HOST, "/", ANDROID_QUERY),
            AuthErrorKind::NotYetCurrent,
        ),
        (
            Verifier::new("eu-west-1", [Credentials::new("AKIAIOSFODNN7EXAMPLE", "x")])
                .verify_presigned(ok, ANDROID_HOST, "/", ANDROID_QUERY),
            AuthErrorKind::WrongScope,
        ),
        (
            js(false).verify_presigned(ok, ANDROID_HOST, "/", ANDROID_QUERY),
            AuthErrorKind::UnknownAccessKey,
        ),
        (
            v.verify_presigned(ok, ANDROID_HOST, "/", "X-Amz-ChannelARN=a"),
            AuthErrorKind::Missing,
        ),
        (
            v.verify_presigned(
                ok,
                ANDROID_HOST,
                "/",
                &ANDROID_QUERY.replace("SignedHeaders=host", "SignedHeaders=host%3Bx-amz-date"),
            ),
            AuthErrorKind::Malformed,
        ),
        (
            v.verify_presigned(
                ok,
                ANDROID_HOST,
                "/",
                &ANDROID_QUERY.replace("%2F20230724%2F", "%2F20230725%2F"),
            ),
            AuthErrorKind::WrongScope,
        ),
    ];
    for (i, (result, expected)) in cases.into_iter().enumerate() {
        assert_eq!(kind(result), expected, "case {i}");
    }
    // The words the official C SDK looks for to correct its clock.
    let expired = v
        .verify_presigned(at(ANDROID_TIME + 300), ANDROID_HOST, "/", ANDROID_QUERY)
        .unwrap_err();
    assert!(
        expired.message.starts_with("Signature expired"),
        "{expired}"
    );
    assert_eq!(expired.error_type(), ErrorType::InvalidSignatureException);
    let early = v
        .verify_presigned(at(ANDROID_TIME - 301), ANDROID_HOST, "/", ANDROID_QUERY)
        .unwrap_err();
    assert!(
        early.message.starts_with("Signature not yet current"),
        "{early}"
    );
}

// An independent SigV4 signer, written from the published algorithm, to produce header-signed
// requests the way the official C SDK does. Checked against the official vectors first.

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn reference_signature(secret: &str, date: &str, region: &str, canonical_request: &str) -> String {
    let scope = format!("{}/{region}/kinesisvideo/aws4_request", &date[..8]);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), &date[..8]);
    for part in [region, "kinesisvideo", "aws4_request"] {
        key = hmac(&key, part);
    }
    hex(&hmac(&key, &string_to_sign))
}

#[test]
fn the_reference_signer_agrees_with_the_official_vectors() {
    let creq = "GET\n/\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA4F7WJQR7FMMWMNXI%2F20191201%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20191201T000000Z&X-Amz-Expires=299&X-Amz-Security-Token=FakeSessionToken&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value\nhost:kvs.awsamazon.com\n\nhost\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(
        reference_signature("FakeSecretKey", "20191201T000000Z", "us-west-2", creq),
        "fc268038be276315822b4f73eafd28ee3a5632a2a35fdb0a88db9a42b13d6c92"
    );
}

/// A DescribeSignalingChannel call signed as the official C SDK signs it: `host;user-agent;
/// x-amz-date`, the session token sent unsigned, no x-amz-content-sha256.
fn c_sdk_call(secret: &str, token: Option<&str>, date: &str, body: &str) -> Vec<(String, String)> {
    let user_agent = "AWS-WebRTC-KVS-Agent/1.10.0 c/0.0.0 Linux/6.1 x86_64";
    let creq = format!(
        "POST\n/describeSignalingChannel\n\nhost:kinesisvideo.us-west-2.amazonaws.com\nuser-agent:{user_agent}\nx-amz-date:{date}\n\nhost;user-agent;x-amz-date\n{}",
        hex(&Sha256::digest(body.as_bytes()))
    );
    let signature = reference_signature(secret, date, "us-west-2", &creq);
    let mut headers = vec![
        (
            "host".to_owned(),
            "kinesisvideo.us-west-2.amazonaws.com".to_owned(),
        ),
        ("user-agent".to_owned(), user_agent.to_owned()),
        ("x-amz-date".to_owned(), date.to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
        (
            "Authorization".to_owned(),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/{}/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;user-agent;x-amz-date, Signature={signature}",
                &date[..8]
            ),
        ),
    ];
    if let Some(token) = token {
        headers.push(("x-amz-security-token".to_owned(), token.to_owned()));
    }
    headers
}

fn verify_call(
    v: &Verifier,
    now: SystemTime,
    headers: &[(String, String)],
    body: &str,
) -> Result<Verified, AuthError> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    v.verify_header(
        now,
        &HeaderSignedRequest::new(
            "POST",
            "/describeSignalingChannel",
            &headers,
            body.as_bytes(),
        ),
    )
}

#[test]
fn header_signed_calls_as_the_c_sdk_signs_them() {
    let body = r#"{"ChannelName":"demo-channel"}"#;
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let now = at(ANDROID_TIME + 1);
    let headers = c_sdk_call(secret, Some(ANDROID_TOKEN), "20230724T080702Z", body);
    assert!(verify_call(&android(), now, &headers, body).is_ok());

    let long_term = Verifier::new(
        "us-west-2",
        [Credentials::new("AKIAIOSFODNN7EXAMPLE", secret)],
    );
    let plain = c_sdk_call(secret, None, "20230724T080702Z", body);
    assert!(verify_call(&long_term, now, &plain, body).is_ok());

    // A changed body, header or secret is refused.
    assert_eq!(
        kind(verify_call(
            &long_term,
            now,
            &plain,
            r#"{"ChannelName":"other"}"#
        )),
        AuthErrorKind::Mismatch
    );
    let mut agent = plain.clone();
    agent[1].1.push('x');
    assert_eq!(
        kind(verify_call(&long_term, now, &agent, body)),
        AuthErrorKind::Mismatch
    );
    let wrong = c_sdk_call("not-the-secret", None, "20230724T080702Z", body);
    assert_eq!(
        kind(verify_call(&long_term, now, &wrong, body)),
        AuthErrorKind::Mismatch
    );
    // Old requests, a missing header and a missing signature.
    assert_eq!(
        kind(verify_call(
            &long_term,
            at(ANDROID_TIME + 301),
            &plain,
            body
        )),
        AuthErrorKind::Expired
    );
    let no_date: Vec<_> = plain
        .iter()
        .filter(|(n, _)| n != "x-amz-date")
        .cloned()
        .collect();
    assert_eq!(
        kind(verify_call(&long_term, now, &no_date, body)),
        AuthErrorKind::Malformed
    );
    let unsigned: Vec<_> = plain
        .iter()
        .filter(|(n, _)| n != "Authorization")
        .cloned()
        .collect();
    let missing = verify_call(&long_term, now, &unsigned, body).unwrap_err();
    assert_eq!(missing.kind, AuthErrorKind::Missing);
    assert_eq!(missing.error_type(), ErrorType::AccessDeniedException);
}

#[test]
fn malformed_authorization_headers_are_named() {
    for header in [
        "AWS4-HMAC-SHA1 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws5_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, Credential=a/b/c/d/aws4_request",
        "AWS4-HMAC-SHA256 garbage",
    ] {
        let err = Authorization::parse(header).map(|_| ()).unwrap_err();
        assert_eq!(err.kind, AuthErrorKind::Malformed, "{header}");
        assert!(
            err.message
                .starts_with("the Authorization header is malformed"),
            "{header}"
        );
    }
}

#[test]
fn credentials_do_not_print_their_secrets() {
    let printed = format!(
        "{:?}",
        Credentials::new("AKID", "s3cret").with_session_token("t0ken")
    );
    assert!(
        !printed.contains("s3cret") && !printed.contains("t0ken"),
        "{printed}"
    );
}

fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&'static str) -> Option<OsString> {
    move |name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| OsString::from(*v))
    }
}

#[test]
fn credentials_and_region_from_the_environment() {
    let full = env(&[
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ]);
    assert_eq!(
        Credentials::from_lookup(&full).unwrap(),
        Credentials::new("AKID", "secret").with_session_token("token")
    );
    assert_eq!(region_from_lookup(&full).unwrap(), "eu-west-1");

    // An empty token is no token; AWS_DEFAULT_REGION stands in for AWS_REGION.
    let long_term = env(&[
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", ""),
        ("AWS_REGION", ""),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ]);
    assert_eq!(
        Credentials::from_lookup(&long_term).unwrap(),
        Credentials::new("AKID", "secret")
    );
    assert_eq!(region_from_lookup(&long_term).unwrap(), "us-east-1");

    let missing = env(&[("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_SECRET_ACCESS_KEY", "")]);
    assert_eq!(
        Credentials::from_lookup(&missing).unwrap_err().to_string(),
        "the environment variable AWS_SECRET_ACCESS_KEY is not set"
    );
    assert_eq!(
        Credentials::from_lookup(env(&[])).unwrap_err(),
        EnvError::Missing {
            variable: "AWS_ACCESS_KEY_ID"
        }
    );
    assert_eq!(
        region_from_lookup(env(&[])).unwrap_err().to_string(),
        "the environment variable AWS_REGION (or AWS_DEFAULT_REGION) is not set"
    );
}

#[cfg(unix)]
#[test]
fn a_variable_that_is_not_unicode_is_named() {
    use std::os::unix::ffi::OsStringExt as _;
    let lookup = |name: &'static str| match name {
        "AWS_ACCESS_KEY_ID" => Some(OsString::from_vec(vec![0xff])),
        _ => Some(OsString::from("x")),
    };
    assert_eq!(
        Credentials::from_lookup(lookup).unwrap_err(),
        EnvError::NotUnicode {
            variable: "AWS_ACCESS_KEY_ID"
        }
    );
}
