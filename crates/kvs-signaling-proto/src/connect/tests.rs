use super::*;

const ARN: &str =
    "arn%3Aaws%3Akinesisvideo%3Aus-west-2%3A123456789012%3Achannel%2Fdemo-channel%2F1234567890123";

/// A viewer URL's query as the official SDKs presign it (parameters sorted, values strictly
/// percent-encoded), with the signature of spec section 4.2's Android vector.
fn presigned(extra: &str) -> String {
    format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-ChannelARN={ARN}{extra}\
         &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20230724%2Fus-west-2%2Fkinesisvideo%2Faws4_request\
         &X-Amz-Date=20230724T080702Z&X-Amz-Expires=299&X-Amz-Security-Token=Fake%2BToken%3D\
         &X-Amz-SignedHeaders=host\
         &X-Amz-Signature=f8fed632bbe38ac920c7ed2eeaba1a4ba5e2b1bd7aada9f852708112eab76baa"
    )
}

#[test]
fn presigned_master_and_viewer() {
    let master = ConnectQuery::parse(&presigned("")).unwrap();
    assert_eq!(master.role(), Role::Master);
    assert_eq!(
        master.channel_arn.as_str(),
        "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/1234567890123"
    );
    let presign = master.presign.as_ref().unwrap();
    assert_eq!(presign.credential.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(presign.credential.date, "20230724");
    assert_eq!(presign.credential.region, "us-west-2");
    assert_eq!(presign.credential.service, "kinesisvideo");
    assert_eq!(presign.date.as_str(), "20230724T080702Z");
    assert_eq!(presign.date.unix_seconds(), 1_690_186_022);
    assert_eq!(presign.expires.get(), 299);
    assert_eq!(presign.signed_headers, "host");
    assert_eq!(presign.security_token.as_deref(), Some("Fake+Token="));
    assert_eq!(master.params.len(), 8);
    assert_eq!(master.params[1].0, "X-Amz-ChannelARN");

    let viewer = ConnectQuery::parse(&presigned("&X-Amz-ClientId=ConsumerViewer_1")).unwrap();
    assert_eq!(viewer.role(), Role::Viewer);
    assert_eq!(viewer.client_id.unwrap().as_str(), "ConsumerViewer_1");
}

#[test]
fn unsigned_query() {
    let query = ConnectQuery::parse(&format!("X-Amz-ChannelARN={ARN}&X-Amz-ClientId=v")).unwrap();
    assert_eq!(query.presign, None);
    assert_eq!(query.role(), Role::Viewer);
}

#[test]
fn rejections_name_the_parameter() {
    let invalid = |field, violation| Error::Invalid {
        field: Field::new(field),
        violation,
    };
    let cases = [
        (
            "X-Amz-ClientId=v".to_owned(),
            Error::Missing {
                field: Field::new("X-Amz-ChannelARN"),
            },
        ),
        (
            format!("X-Amz-ChannelARN={ARN}&X-Amz-ChannelARN={ARN}"),
            Error::Duplicate {
                field: Field::new("X-Amz-ChannelARN"),
            },
        ),
        (
            format!("X-Amz-ChannelARN={ARN}&X-Amz-ClientId=AWS_viewer"),
            invalid(
                "X-Amz-ClientId",
                Violation::ReservedPrefix {
                    prefix: "AWS_",
                    found: "AWS_".to_owned(),
                },
            ),
        ),
        (
            format!("X-Amz-ChannelARN={ARN}&X-Amz-ClientId="),
            invalid(
                "X-Amz-ClientId",
                Violation::Length {
                    min: 1,
                    max: 256,
                    found: 0,
                },
            ),
        ),
        (
            "X-Amz-ChannelARN=arn%3Aaws%3Ax".to_owned(),
            invalid(
                "X-Amz-ChannelARN",
                Violation::Format {
                    expected: "\"kinesisvideo:\"",
                    position: 8,
                },
            ),
        ),
        (
            "X-Amz-ChannelARN=arn%3".to_owned(),
            invalid(
                "X-Amz-ChannelARN",
                Violation::Format {
                    expected: "two hex digits after '%'",
                    position: 3,
                },
            ),
        ),
        (
            "X-Amz-ChannelARN=%FF".to_owned(),
            invalid(
                "X-Amz-ChannelARN",
                Violation::Format {
                    expected: "percent-escapes that decode to UTF-8",
                    position: 0,
                },
            ),
        ),
        (
            format!("X-Amz-ChannelARN={ARN}&X-Amz-Algorithm=AWS4-HMAC-SHA256"),
            Error::Missing {
                field: Field::new("X-Amz-Credential"),
            },
        ),
        (
            presigned("").replace("X-Amz-Expires=299", "X-Amz-Expires=604801"),
            invalid(
                "X-Amz-Expires",
                Violation::Range {
                    min: 1,
                    max: 604_800,
                    found: "604801".to_owned(),
                },
            ),
        ),
        (
            presigned("").replace("X-Amz-Expires=299", "X-Amz-Expires=-1"),
            invalid(
                "X-Amz-Expires",
                Violation::Range {
                    min: 1,
                    max: 604_800,
                    found: "-1".to_owned(),
                },
            ),
        ),
        (
            presigned("").replace("20230724T080702Z", "20231324T080702Z"),
            invalid(
                "X-Amz-Date",
                Violation::Format {
                    expected: "a valid calendar date and time",
                    position: 4,
                },
            ),
        ),
        (
            presigned("").replace("20230724T080702Z", "20230724 080702Z"),
            invalid(
                "X-Amz-Date",
                Violation::Format {
                    expected: "'T'",
                    position: 8,
                },
            ),
        ),
        (
            presigned("").replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
            invalid(
                "X-Amz-Algorithm",
                Violation::UnknownValue {
                    found: "AWS4-HMAC-SHA1".to_owned(),
                    allowed: "AWS4-HMAC-SHA256",
                },
            ),
        ),
        (
            presigned("").replace("%2Faws4_request", "%2Faws5_request"),
            invalid(
                "X-Amz-Credential",
                Violation::Format {
                    expected: "\"aws4_request\" ending the credential",
                    position: 53,
                },
            ),
        ),
        (
            presigned("").replace("X-Amz-Signature=f8", "X-Amz-Signature=F8"),
            invalid(
                "X-Amz-Signature",
                Violation::Character {
                    ch: 'F',
                    position: 0,
                    allowed: "lowercase hex digits",
                },
            ),
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(ConnectQuery::parse(&query), Err(expected), "{query}");
    }
}

#[test]
fn amz_dates() {
    assert_eq!(
        AmzDate::new("20191201T000000Z").unwrap().unix_seconds(),
        1_575_158_400
    );
    assert_eq!(AmzDate::new("19700101T000000Z").unwrap().unix_seconds(), 0);
    assert_eq!(
        AmzDate::new("20240229T235959Z").unwrap().unix_seconds(),
        1_709_251_199
    );
    for bad in [
        "",
        "2019",
        "20191201T000000",
        "20191201T000000ZZ",
        "20191201T240000Z",
    ] {
        assert!(AmzDate::new(bad).is_err(), "{bad}");
    }
}

#[test]
fn amz_dates_are_made_from_unix_seconds_and_read_back() {
    for (seconds, text) in [
        (0, "19700101T000000Z"),
        (1_690_186_022, "20230724T080702Z"),
        (951_782_400, "20000229T000000Z"),
        (253_402_300_799, "99991231T235959Z"),
    ] {
        let date = AmzDate::from_unix_seconds(seconds).unwrap();
        assert_eq!(date.as_str(), text);
        assert_eq!(AmzDate::new(text).unwrap(), date);
        assert_eq!(date.unix_seconds(), i64::try_from(seconds).unwrap());
    }
    assert_eq!(AmzDate::from_unix_seconds(253_402_300_800), None);
    assert_eq!(AmzDate::from_unix_seconds(u64::MAX), None);
}

#[test]
fn delivery_status_is_asked_for_with_true_and_refused_when_neither_true_nor_false() {
    let base = format!("X-Amz-ChannelARN={ARN}&X-Amz-ClientId=v");
    let parse = |extra: &str| ConnectQuery::parse(&format!("{base}{extra}"));
    assert!(!parse("").unwrap().delivery_status);
    assert!(parse("&X-Kvs-DeliveryStatus=true").unwrap().delivery_status);
    assert!(parse("&X-Kvs-DeliveryStatus=TRUE").unwrap().delivery_status);
    assert!(
        !parse("&X-Kvs-DeliveryStatus=false")
            .unwrap()
            .delivery_status
    );
    let err = parse("&X-Kvs-DeliveryStatus=yes").unwrap_err();
    assert_eq!(
        err,
        Error::Invalid {
            field: Field::new(DELIVERY_STATUS_PARAM),
            violation: Violation::unknown_value("yes", "true, false"),
        }
    );
    assert_eq!(err.error_type(), crate::ErrorType::InvalidArgumentException);
    // It rides in the signed parameters like any other.
    let query = parse("&X-Kvs-DeliveryStatus=true").unwrap();
    assert!(
        query
            .params
            .iter()
            .any(|(name, value)| name == DELIVERY_STATUS_PARAM && value == "true")
    );
}
