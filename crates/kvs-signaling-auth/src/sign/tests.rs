use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_signaling_proto::{ChannelArn, ClientId};

use super::*;
use crate::Verifier;

fn at_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

const ANDROID_ARN: &str =
    "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/1234567890123";
const ANDROID_VIEWER: &str = "d7d1c6e2-9cb0-4d61-bea9-ecb3d3816557";
const ANDROID_TOKEN: &str = "AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT+FvwqnKwRcOIfrRh3c/LTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE/IvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb/AXlzBBko7b15fjrBs2+cTQtpZ3CYWFXG8C5zqx37wnOE49mRl/+OtkIKGO7fAE";

/// The four cases of the official Android SDK's `AwsV4SignerTest`: endpoint, client id,
/// credentials, signing time in milliseconds, and the URL it expects.
fn android_vectors() -> Vec<(
    &'static str,
    Option<&'static str>,
    Credentials,
    u64,
    &'static str,
)> {
    let temporary = Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    .with_session_token(ANDROID_TOKEN);
    let long_term = Credentials::new(
        "AKIAIOSFODJJ7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxQQiCYEXAMPLEKEY",
    );
    vec![
        (
            "wss://m-a1b2c3d4.kinesisvideo.us-west-2.amazonaws.com",
            None,
            temporary.clone(),
            1_690_186_022_951,
            "wss://m-a1b2c3d4.kinesisvideo.us-west-2.amazonaws.com/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-ChannelARN=arn%3Aaws%3Akinesisvideo%3Aus-west-2%3A123456789012%3Achannel%2Fdemo-channel%2F1234567890123&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20230724%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20230724T080702Z&X-Amz-Expires=299&X-Amz-Security-Token=AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT%2BFvwqnKwRcOIfrRh3c%2FLTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE%2FIvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb%2FAXlzBBko7b15fjrBs2%2BcTQtpZ3CYWFXG8C5zqx37wnOE49mRl%2F%2BOtkIKGO7fAE&X-Amz-SignedHeaders=host&X-Amz-Signature=f8fed632bbe38ac920c7ed2eeaba1a4ba5e2b1bd7aada9f852708112eab76baa",
        ),
        (
            "wss://v-a1b2c3d4.kinesisvideo.us-west-2.amazonaws.com",
            Some(ANDROID_VIEWER),
            temporary,
            1_690_186_022_958,
            "wss://v-a1b2c3d4.kinesisvideo.us-west-2.amazonaws.com/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-ChannelARN=arn%3Aaws%3Akinesisvideo%3Aus-west-2%3A123456789012%3Achannel%2Fdemo-channel%2F1234567890123&X-Amz-ClientId=d7d1c6e2-9cb0-4d61-bea9-ecb3d3816557&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20230724%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20230724T080702Z&X-Amz-Expires=299&X-Amz-Security-Token=AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT%2BFvwqnKwRcOIfrRh3c%2FLTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE%2FIvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb%2FAXlzBBko7b15fjrBs2%2BcTQtpZ3CYWFXG8C5zqx37wnOE49mRl%2F%2BOtkIKGO7fAE&X-Amz-SignedHeaders=host&X-Amz-Signature=77ea5ff8ede2e22aa268a3a068f1ad3a5d92f0fa8a427579f9e6376e97139761",
        ),
        (
            "wss://m-a1b2c3d4.kinesisvideo.us-west-2.amazonaws.com",
            None,
            long_term.clone(),
            1_690_186_022_101,
            "wss://m-a1b2c3d4.kinesisvideo.us-west-2.amazonaws.com/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-ChannelARN=arn%3Aaws%3Akinesisvideo%3Aus-west-2%3A123456789012%3Achannel%2Fdemo-channel%2F1234567890123&X-Amz-Credential=AKIAIOSFODJJ7EXAMPLE%2F20230724%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20230724T080702Z&X-Amz-Expires=299&X-Amz-SignedHeaders=host&X-Amz-Signature=0bbef329f0d9d3e68635f7b844ac684c7764a0c228ca013232d935c111b9a370",
        ),
        (
            "wss://v-a1b2c3d4.kinesisvideo.us-west-2.amazonaws.com",
            Some(ANDROID_VIEWER),
            long_term,
            1_690_186_022_208,
            "wss://v-a1b2c3d4.kinesisvideo.us-west-2.amazonaws.com/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-ChannelARN=arn%3Aaws%3Akinesisvideo%3Aus-west-2%3A123456789012%3Achannel%2Fdemo-channel%2F1234567890123&X-Amz-ClientId=d7d1c6e2-9cb0-4d61-bea9-ecb3d3816557&X-Amz-Credential=AKIAIOSFODJJ7EXAMPLE%2F20230724%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20230724T080702Z&X-Amz-Expires=299&X-Amz-SignedHeaders=host&X-Amz-Signature=cea541f699dc51bc53a55590ce817e63cc06fac2bdef4696b63e0889eb448f0b",
        ),
    ]
}

#[test]
fn presigns_the_urls_the_official_android_sdk_expects() {
    let arn = ChannelArn::new(ANDROID_ARN).unwrap();
    for (endpoint, client_id, credentials, millis, expected) in android_vectors() {
        let client_id = client_id.map(|id| ClientId::new(id).unwrap());
        let url = presign_connect_url(
            &credentials,
            "us-west-2",
            endpoint,
            &arn,
            client_id.as_ref(),
            at_millis(millis),
        )
        .unwrap();
        assert_eq!(url, expected);
    }
}

/// The JavaScript SDK's expected URL with `X-Amz-Signature` moved from its sorted place to the
/// end, where the Android SDK, aws-sigv4 and we put it.
fn signature_last(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let (signature, rest): (Vec<&str>, Vec<&str>) = query
        .split('&')
        .partition(|param| param.starts_with("X-Amz-Signature="));
    assert_eq!(signature.len(), 1, "{url}");
    format!("{base}?{}&{}", rest.join("&"), signature[0])
}

#[test]
fn presigns_what_the_official_javascript_sdk_presigns() {
    // `SigV4RequestSigner.spec.ts`: endpoint, session token, service, X-Amz-Expires, and the
    // URL it expects.
    let cases = [
        (
            "wss://kvs.awsamazon.com",
            true,
            "kinesisvideo",
            299,
            "wss://kvs.awsamazon.com/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA4F7WJQR7FMMWMNXI%2F20191201%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20191201T000000Z&X-Amz-Expires=299&X-Amz-Security-Token=FakeSessionToken&X-Amz-Signature=fc268038be276315822b4f73eafd28ee3a5632a2a35fdb0a88db9a42b13d6c92&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value",
        ),
        (
            "wss://kvs.awsamazon.com",
            false,
            "kinesisvideo",
            299,
            "wss://kvs.awsamazon.com/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA4F7WJQR7FMMWMNXI%2F20191201%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20191201T000000Z&X-Amz-Expires=299&X-Amz-Signature=be1e78950d956a8a9a1997417099ddbd7455619f3d08c4ad20e1e272179ca695&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value",
        ),
        (
            "wss://kvs.awsamazon.com",
            true,
            "firehose",
            299,
            "wss://kvs.awsamazon.com/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA4F7WJQR7FMMWMNXI%2F20191201%2Fus-west-2%2Ffirehose%2Faws4_request&X-Amz-Date=20191201T000000Z&X-Amz-Expires=299&X-Amz-Security-Token=FakeSessionToken&X-Amz-Signature=f15308513d21a381d38b7607a0439f25fc2e6c9f5ff56a48c1664b486e6234d5&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value",
        ),
        (
            "wss://kvs.awsamazon.com/path/path/path",
            true,
            "kinesisvideo",
            299,
            "wss://kvs.awsamazon.com/path/path/path?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA4F7WJQR7FMMWMNXI%2F20191201%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20191201T000000Z&X-Amz-Expires=299&X-Amz-Security-Token=FakeSessionToken&X-Amz-Signature=0bf3df6ca23d8d82f688e8dbfb90d69e74843d40038541b1721c545eef7612a4&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value",
        ),
        (
            "wss://kvs.awsamazon.com",
            true,
            "kinesisvideo",
            86_400,
            "wss://kvs.awsamazon.com/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA4F7WJQR7FMMWMNXI%2F20191201%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20191201T000000Z&X-Amz-Expires=86400&X-Amz-Security-Token=FakeSessionToken&X-Amz-Signature=b62a078631a8f1e31ad09bce25d251611a22b65eac8836f6d700cee50a04e9e1&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value",
        ),
    ];
    let now = at_millis(1_575_158_400_000);
    for (endpoint, token, service, expires, expected) in cases {
        let credentials = Credentials::new("AKIA4F7WJQR7FMMWMNXI", "FakeSecretKey");
        let credentials = if token {
            credentials.with_session_token("FakeSessionToken")
        } else {
            credentials
        };
        let endpoint = Endpoint::parse("endpoint", endpoint, EndpointKind::WebSocket).unwrap();
        let url = presign(
            &credentials,
            "us-west-2",
            service,
            &endpoint,
            &[("X-Amz-TestParam", "test-param-value")],
            Duration::from_secs(expires),
            now,
        )
        .unwrap();
        assert_eq!(url, signature_last(expected));
    }
}

/// Splits a presigned URL into what the server sees: the Host header, the path and the query.
fn split(url: &str) -> (&str, &str, &str) {
    let rest = url.split_once("://").unwrap().1;
    let (target, query) = rest.split_once('?').unwrap();
    let slash = target.find('/').unwrap();
    (&target[..slash], &target[slash..], query)
}

#[test]
fn the_verifier_accepts_what_we_presign() {
    let arn = ChannelArn::new(ANDROID_ARN).unwrap();
    let viewer = ClientId::new("viewer-1").unwrap();
    let now = at_millis(1_690_186_022_000);
    let long_term = Credentials::new("AKIDEXAMPLE", "secret");
    let temporary = long_term.clone().with_session_token("token+/=");
    for credentials in [long_term, temporary] {
        let verifier = Verifier::new("us-west-2", [credentials.clone()]);
        for client_id in [None, Some(&viewer)] {
            for endpoint in [
                "wss://m-1.kinesisvideo.us-west-2.amazonaws.com",
                "wss://m-1.example:443/",
                "ws://127.0.0.1:8080",
                "wss://[::1]:8443/signaling",
            ] {
                let url =
                    presign_connect_url(&credentials, "us-west-2", endpoint, &arn, client_id, now)
                        .unwrap();
                let (host, path, query) = split(&url);
                let verified = verifier.verify_presigned(now, host, path, query);
                assert!(verified.is_ok(), "{url}: {verified:?}");
                assert_eq!(
                    query.contains("X-Amz-ClientId=viewer-1"),
                    client_id.is_some()
                );
                assert_eq!(
                    query.contains("X-Amz-Security-Token="),
                    credentials.session_token.is_some()
                );
                assert!(query.ends_with(&format!("&X-Amz-Signature={}", &url[url.len() - 64..])));
            }
        }
    }
}

#[test]
fn a_default_port_is_left_out_of_the_url_and_the_signature() {
    let arn = ChannelArn::new(ANDROID_ARN).unwrap();
    let credentials = Credentials::new("AKIDEXAMPLE", "secret");
    let now = at_millis(1_690_186_022_000);
    let explicit = presign_connect_url(
        &credentials,
        "us-west-2",
        "wss://m-1.example:443",
        &arn,
        None,
        now,
    )
    .unwrap();
    let implicit = presign_connect_url(
        &credentials,
        "us-west-2",
        "wss://m-1.example",
        &arn,
        None,
        now,
    )
    .unwrap();
    assert_eq!(explicit, implicit);
    assert!(explicit.starts_with("wss://m-1.example/?"));
    let other = presign_connect_url(
        &credentials,
        "us-west-2",
        "wss://m-1.example:8443",
        &arn,
        None,
        now,
    )
    .unwrap();
    assert!(other.starts_with("wss://m-1.example:8443/?"));
}

#[test]
fn refuses_what_cannot_be_presigned() {
    let arn = ChannelArn::new(ANDROID_ARN).unwrap();
    let good = Credentials::new("AKIDEXAMPLE", "secret");
    let now = at_millis(1_690_186_022_000);
    let presign = |credentials: &Credentials, endpoint: &str, now: SystemTime| {
        presign_connect_url(credentials, "us-west-2", endpoint, &arn, None, now)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        presign(&good, "https://kvs.awsamazon.com", now),
        r#"wss_endpoint: "https://kvs.awsamazon.com" must start with wss:// or ws://"#
    );
    assert_eq!(
        presign(&good, "wss://kvs.awsamazon.com?a=b", now),
        r#"wss_endpoint: "wss://kvs.awsamazon.com?a=b" must not have a query (`?`)"#
    );
    assert_eq!(
        presign(&good, "wss://user@kvs.awsamazon.com", now),
        r#"wss_endpoint: "wss://user@kvs.awsamazon.com" must not contain user information (`user@`)"#
    );
    assert_eq!(
        presign(&Credentials::new("", "secret"), "wss://a.example", now),
        "credentials: access_key_id is empty"
    );
    assert_eq!(
        presign(&Credentials::new("AKID", ""), "wss://a.example", now),
        "credentials: secret_access_key is empty"
    );
    let before_1970 = UNIX_EPOCH - Duration::from_secs(1);
    assert!(
        presign(&good, "wss://a.example", before_1970).starts_with("now: "),
        "a time before 1970 is refused"
    );
    let year_10000 = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
    assert!(presign(&good, "wss://a.example", year_10000).starts_with("now: "));
}

#[test]
fn the_verifier_accepts_the_headers_we_sign() {
    let now = at_millis(1_690_186_022_000);
    let body = br#"{"ChannelName":"demo-channel"}"#;
    let long_term = Credentials::new("AKIDEXAMPLE", "secret");
    let temporary = long_term.clone().with_session_token("token+/=");
    for credentials in [long_term, temporary] {
        let signed = sign_request_headers(
            &credentials,
            "us-west-2",
            now,
            "POST",
            "127.0.0.1:8443",
            "/describeSignalingChannel",
            body,
        )
        .unwrap();
        let names: Vec<&str> = signed.iter().map(|(name, _)| *name).collect();
        let mut expected = vec!["x-amz-date", "authorization"];
        if credentials.session_token.is_some() {
            expected.push("x-amz-security-token");
        }
        assert_eq!(names, expected);
        let mut headers: Vec<(&str, &str)> = vec![
            ("host", "127.0.0.1:8443"),
            ("content-type", "application/json"),
        ];
        headers.extend(signed.iter().map(|(n, v)| (*n, v.as_str())));
        let verifier = Verifier::new("us-west-2", [credentials.clone()]);
        let request =
            crate::HeaderSignedRequest::new("POST", "/describeSignalingChannel", &headers, body);
        assert!(verifier.verify_header(now, &request).is_ok(), "{headers:?}");
        let tampered =
            crate::HeaderSignedRequest::new("POST", "/describeSignalingChannel", &headers, b"{}");
        assert!(verifier.verify_header(now, &tampered).is_err());
    }
}
