use crate::error::{Error, Field, Violation};
use crate::text::ID_CHARS;
use crate::{ChannelArn, ChannelName, ClientId, CorrelationId, NextToken, PeerId, Version};

fn length(field: &'static str, min: usize, max: usize, found: usize) -> Result<(), Error> {
    Err(Error::Invalid {
        field: Field::new(field),
        violation: Violation::Length { min, max, found },
    })
}

fn character(
    field: &'static str,
    ch: char,
    position: usize,
    allowed: &'static str,
) -> Result<(), Error> {
    Err(Error::Invalid {
        field: Field::new(field),
        violation: Violation::Character {
            ch,
            position,
            allowed,
        },
    })
}

/// The cases every `[a-zA-Z0-9_.-]{1,max}` identifier shares: the limit, one past it, empty,
/// and one character of each disallowed class.
fn id_cases(field: &'static str, max: usize) -> Vec<(String, Result<(), Error>)> {
    vec![
        ("a".to_owned(), Ok(())),
        ("Az09_.-".to_owned(), Ok(())),
        ("x".repeat(max), Ok(())),
        ("x".repeat(max + 1), length(field, 1, max, max + 1)),
        (String::new(), length(field, 1, max, 0)),
        ("ab cd".to_owned(), character(field, ' ', 2, ID_CHARS)),
        ("ab/cd".to_owned(), character(field, '/', 2, ID_CHARS)),
        ("ab:cd".to_owned(), character(field, ':', 2, ID_CHARS)),
        ("+ab".to_owned(), character(field, '+', 0, ID_CHARS)),
        ("ab@".to_owned(), character(field, '@', 2, ID_CHARS)),
        ("tab\t".to_owned(), character(field, '\t', 3, ID_CHARS)),
        (
            "caf\u{e9}-x".to_owned(),
            character(field, '\u{e9}', 3, ID_CHARS),
        ),
        ("日本".to_owned(), character(field, '日', 0, ID_CHARS)),
        ("nul\0".to_owned(), character(field, '\0', 3, ID_CHARS)),
    ]
}

fn check<T>(new: fn(&str) -> Result<T, Error>, cases: &[(String, Result<(), Error>)]) {
    for (input, expected) in cases {
        let got = new(input).map(|_| ());
        assert_eq!(&got, expected, "input {input:?}");
    }
}

#[test]
fn channel_name() {
    check(|s| ChannelName::new(s), &id_cases("ChannelName", 256));
}

#[test]
fn correlation_id() {
    check(|s| CorrelationId::new(s), &id_cases("correlationId", 256));
}

#[test]
fn peer_id_allows_the_reserved_prefix() {
    check(|s| PeerId::new(s), &id_cases("recipientClientId", 256));
    assert!(PeerId::new("AWS_ALEXA").is_ok());
}

#[test]
fn client_id() {
    let mut cases = id_cases("ClientId", 256);
    let reserved = |found: &str| {
        Err(Error::Invalid {
            field: Field::new("ClientId"),
            violation: Violation::ReservedPrefix {
                prefix: "AWS_",
                found: found.to_owned(),
            },
        })
    };
    cases.extend([
        ("AWS_viewer".to_owned(), reserved("AWS_")),
        ("aws_viewer".to_owned(), reserved("aws_")),
        ("Aws_".to_owned(), reserved("Aws_")),
        ("aWs_1".to_owned(), reserved("aWs_")),
        ("AWS".to_owned(), Ok(())),
        ("AWS-viewer".to_owned(), Ok(())),
        ("AWSX_viewer".to_owned(), Ok(())),
        ("my_AWS_viewer".to_owned(), Ok(())),
    ]);
    check(|s| ClientId::new(s), &cases);
}

#[test]
fn version() {
    let alnum = crate::text::ALNUM_CHARS;
    let cases = vec![
        ("1".to_owned(), Ok(())),
        ("v".repeat(64), Ok(())),
        ("v".repeat(65), length("Version", 1, 64, 65)),
        (String::new(), length("Version", 1, 64, 0)),
        ("ab_c".to_owned(), character("Version", '_', 2, alnum)),
        ("ab.c".to_owned(), character("Version", '.', 2, alnum)),
        ("ab-c".to_owned(), character("Version", '-', 2, alnum)),
        (
            "\u{e9}".to_owned(),
            character("Version", '\u{e9}', 0, alnum),
        ),
    ];
    check(|s| Version::new(s), &cases);
}

#[test]
fn next_token() {
    let allowed = "letters a-z and A-Z, digits 0-9, '+', '/', '='";
    let cases = vec![
        (String::new(), Ok(())),
        ("aB3+/=".to_owned(), Ok(())),
        ("t".repeat(1024), Ok(())),
        ("t".repeat(1025), length("NextToken", 0, 1024, 1025)),
        ("ab-c".to_owned(), character("NextToken", '-', 2, allowed)),
        ("ab_c".to_owned(), character("NextToken", '_', 2, allowed)),
        ("a c".to_owned(), character("NextToken", ' ', 1, allowed)),
    ];
    check(|s| NextToken::new(s), &cases);
}

fn format(expected: &'static str, position: usize) -> Result<(), Error> {
    Err(Error::Invalid {
        field: Field::new("ChannelARN"),
        violation: Violation::Format { expected, position },
    })
}

#[test]
fn channel_arn() {
    let prefix = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/";
    // A name that makes the ARN exactly 1024 characters long with a 13-digit suffix.
    let long_name = "n".repeat(1024 - prefix.len() - 14);
    let cases = vec![
        (format!("{prefix}demo/1657142193914"), Ok(())),
        (
            "arn:aws-cn:kinesisvideo:cn-north-1:1:channel/a/0".to_owned(),
            Ok(()),
        ),
        (
            "arn:aws-us-gov:kinesisvideo:us-gov-west-1:123:stream/My_Stream.1-x/9".to_owned(),
            Ok(()),
        ),
        (format!("{prefix}{long_name}/1657142193914"), Ok(())),
        (
            format!("{prefix}{long_name}n/1657142193914"),
            length("ChannelARN", 1, 1024, 1025),
        ),
        (String::new(), length("ChannelARN", 1, 1024, 0)),
        ("urn:aws:kinesisvideo".to_owned(), format("\"arn:\"", 0)),
        (
            "arn::kinesisvideo:r:1:channel/a/1".to_owned(),
            format("a partition of [a-z0-9-]", 4),
        ),
        (
            "arn:AWS:kinesisvideo:r:1:channel/a/1".to_owned(),
            format("a partition of [a-z0-9-]", 4),
        ),
        (
            "arn:aws:kinesis:r:1:channel/a/1".to_owned(),
            format("\"kinesisvideo:\"", 8),
        ),
        (
            "arn:aws:kinesisvideo:US-WEST-2:1:channel/a/1".to_owned(),
            format("a region of [a-z0-9-]", 21),
        ),
        (
            "arn:aws:kinesisvideo:r:12a:channel/a/1".to_owned(),
            format("':'", 25),
        ),
        (
            "arn:aws:kinesisvideo:r::channel/a/1".to_owned(),
            format("an account id of digits", 23),
        ),
        (
            "arn:aws:kinesisvideo:r:1:Channel/a/1".to_owned(),
            format("a resource type of [a-z]", 25),
        ),
        (
            "arn:aws:kinesisvideo:r:1:channel:a/1".to_owned(),
            format("'/'", 32),
        ),
        (
            "arn:aws:kinesisvideo:r:1:channel/a b/1".to_owned(),
            format("'/'", 34),
        ),
        (
            "arn:aws:kinesisvideo:r:1:channel//1".to_owned(),
            format("a channel name of [a-zA-Z0-9_.-]", 33),
        ),
        (
            "arn:aws:kinesisvideo:r:1:channel/a/".to_owned(),
            format("creation time digits", 35),
        ),
        (
            "arn:aws:kinesisvideo:r:1:channel/a/12x".to_owned(),
            format("the end of the ARN after the creation time digits", 37),
        ),
        (
            "arn:aws:kinesisvideo:r:1:channel/a/b/1".to_owned(),
            format("creation time digits", 35),
        ),
    ];
    check(|s| ChannelArn::new(s), &cases);
}

#[test]
fn channel_arn_parts() {
    let arn =
        ChannelArn::new("arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1657142193914")
            .unwrap();
    assert_eq!(
        (
            arn.partition(),
            arn.region(),
            arn.account(),
            arn.resource_type(),
            arn.channel_name(),
            arn.suffix()
        ),
        (
            "aws",
            "us-west-2",
            "123456789012",
            "channel",
            "demo",
            "1657142193914"
        )
    );
    let minted = ChannelArn::for_channel(
        "aws",
        "eu-west-1",
        "000000000000",
        &ChannelName::new("cam.1").unwrap(),
        1_657_142_193_914,
    )
    .unwrap();
    assert_eq!(
        minted.as_str(),
        "arn:aws:kinesisvideo:eu-west-1:000000000000:channel/cam.1/1657142193914"
    );
}

#[test]
fn newtypes_convert_and_reject_through_serde() {
    let id: ClientId = serde_json::from_str("\"viewer-1\"").unwrap();
    assert_eq!(id.as_str(), "viewer-1");
    assert_eq!(serde_json::to_string(&id).unwrap(), "\"viewer-1\"");
    let err = serde_json::from_str::<ClientId>("\"AWS_x\"").unwrap_err();
    assert_eq!(
        err.to_string(),
        "ClientId: must not start with \"AWS_\" in any letter case, found \"AWS_\""
    );
    assert_eq!("demo".parse::<ChannelName>().unwrap().to_string(), "demo");
    assert_eq!(String::from(PeerId::from(id)), "viewer-1");
    assert!(ChannelName::try_from(String::from("a b")).is_err());
}
