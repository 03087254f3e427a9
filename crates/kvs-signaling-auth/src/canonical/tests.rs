//! The signatures computed here against the AWS SDKs' own signer (aws-sigv4), for requests
//! signed in both forms, over generated paths, queries, headers and bodies; and the steps
//! against the worked example of the SigV4 documentation.

use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use kvs_signaling_proto::AmzDate;
use proptest::prelude::*;

use super::*;

/// What aws-sigv4 computes for `request` (whose headers must not hold `x-amz-date`: the signer
/// adds it) at `seconds`, signed in the headers or, with `presign_for`, in the query.
fn aws_signature(
    secret: &str,
    region: &str,
    seconds: u64,
    request: &Request<'_>,
    body: &[u8],
    presign_for: Option<Duration>,
) -> String {
    let identity: Identity = AwsCredentials::new("AKIDEXAMPLE", secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.excluded_headers = Some(Vec::new());
    match presign_for {
        Some(expires) => {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(expires);
        }
        None => settings.signature_location = SignatureLocation::Headers,
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kinesisvideo")
        .time(UNIX_EPOCH + Duration::from_secs(seconds))
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let mut uri = String::from("https://signing.invalid");
    uri.push_str(request.path);
    for (i, (name, value)) in request.query.iter().enumerate() {
        uri.push(if i == 0 { '?' } else { '&' });
        push_encoded(&mut uri, name, false);
        uri.push('=');
        push_encoded(&mut uri, value, false);
    }
    let signable = SignableRequest::new(
        request.method,
        Cow::Owned(uri),
        request.headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    sign(signable, &params).unwrap().signature().to_owned()
}

fn token() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,12}"
}

fn header_value() -> impl Strategy<Value = String> {
    // Visible ASCII and spaces; half of them words between runs of spaces. No line breaks.
    prop_oneof!["[ -~]{0,24}", "( {0,3}[!-~]{1,5}){1,4} {0,3}"]
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[A-Za-z0-9_~-]{1,8}",
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just(String::new()),
            Just("%41".to_owned()),
            Just("a.b".to_owned()),
        ],
        0..6,
    )
    .prop_map(|segments| format!("/{}", segments.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn header_signatures_match_the_aws_signer(
        method in prop_oneof![Just("GET"), Just("POST"), Just("PUT")],
        path in path(),
        query in prop::collection::vec((any::<String>(), any::<String>()), 0..4),
        headers in prop::collection::vec((token(), header_value()), 0..4),
        body in prop::collection::vec(any::<u8>(), 0..64),
        secret in "[!-~]{1,40}",
        seconds in 0u64..253_402_300_800,
    ) {
        prop_assume!(headers.iter().all(|(name, _)| name != "x-amz-date" && name != "host"));
        let date = AmzDate::from_unix_seconds(seconds).unwrap();
        let query: Vec<(&str, &str)> = query.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let mut headers: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        headers.push(("host", "kinesisvideo.us-west-2.amazonaws.com"));
        let mut request = Request {
            method,
            path: &path,
            query,
            headers,
            payload_hash: sha256_hex(&body),
        };
        let expected = aws_signature(&secret, "us-west-2", seconds, &request, &body, None);
        request.headers.push(("x-amz-date", date.as_str()));
        let scope = Scope { amz_date: date.as_str(), region: "us-west-2", service: "kinesisvideo" };
        prop_assert_eq!(signature(&secret, &scope, &request), expected);
    }

    #[test]
    fn presigned_signatures_match_the_aws_signer(
        params in prop::collection::vec((any::<String>(), any::<String>()), 0..4),
        secret in "[!-~]{1,40}",
        region in "[a-z]{2}-[a-z]{4,9}-[1-9]",
        seconds in 0u64..253_402_300_800,
        expires in 1u64..604_800,
    ) {
        prop_assume!(params.iter().all(|(name, _)| !name.starts_with("X-Amz-")));
        let date = AmzDate::from_unix_seconds(seconds).unwrap();
        let query: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let mut request = Request {
            method: "GET",
            path: "/",
            query,
            headers: vec![("host", "m-1234abcd.kinesisvideo.us-west-2.amazonaws.com")],
            payload_hash: sha256_hex(b""),
        };
        let expected = aws_signature(
            &secret, &region, seconds, &request, b"", Some(Duration::from_secs(expires)),
        );
        let scope = Scope { amz_date: date.as_str(), region: &region, service: "kinesisvideo" };
        let credential = format!("AKIDEXAMPLE/{}", scope.credential_scope());
        let expires = expires.to_string();
        request.query.extend([
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", credential.as_str()),
            ("X-Amz-Date", date.as_str()),
            ("X-Amz-Expires", expires.as_str()),
            ("X-Amz-SignedHeaders", "host"),
        ]);
        prop_assert_eq!(signature(&secret, &scope, &request), expected);
    }
}

/// The worked example of the SigV4 documentation ("Create a signed AWS API request"): IAM's
/// `ListUsers`, signed in the headers.
#[test]
fn the_documented_example_signs_as_documented() {
    let request = Request {
        method: "GET",
        path: "/",
        query: vec![("Action", "ListUsers"), ("Version", "2010-05-08")],
        headers: vec![
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("Host", "iam.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ],
        payload_hash: sha256_hex(b""),
    };
    assert_eq!(
        canonical_request(&request),
        "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
         content-type:application/x-www-form-urlencoded; charset=utf-8\n\
         host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
         content-type;host;x-amz-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256_hex(canonical_request(&request).as_bytes()),
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    );
    let scope = Scope {
        amz_date: "20150830T123600Z",
        region: "us-east-1",
        service: "iam",
    };
    assert_eq!(
        signature("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", &scope, &request),
        "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    );
}

#[test]
fn paths_are_normalized_and_encoded_again() {
    for (path, canonical) in [
        ("", "/"),
        ("/", "/"),
        ("describeSignalingChannel", "/describeSignalingChannel"),
        ("/v1/get-ice-server-config", "/v1/get-ice-server-config"),
        ("/a/./b/../c", "/a/c"),
        ("/a//b", "/a/b"),
        ("/a/b/.", "/a/b/"),
        ("/a/b/..", "/a/"),
        ("/../x", "/x"),
        ("/a%2Fb", "/a%252Fb"),
        ("/sp ace", "/sp%20ace"),
    ] {
        assert_eq!(canonical_uri(path), canonical, "{path:?}");
    }
}

#[test]
fn header_values_are_trimmed_and_repeated_headers_joined() {
    let (block, signed) = canonical_headers(&[
        ("X-B", "  two   words  "),
        ("x-a", "1"),
        ("X-A", "2"),
        ("x-c", "tab\tkept"),
    ]);
    assert_eq!(block, "x-a:1,2\nx-b:two words\nx-c:tab\tkept\n");
    assert_eq!(signed, "x-a;x-b;x-c");
}
