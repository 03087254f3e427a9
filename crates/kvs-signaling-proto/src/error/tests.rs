use super::*;

#[test]
fn error_types_table() {
    let table = [
        (ErrorType::InvalidArgumentException, 400, 400, false),
        (ErrorType::ClientLimitExceededException, 400, 400, false),
        (
            ErrorType::AccountChannelLimitExceededException,
            400,
            400,
            false,
        ),
        (ErrorType::ResourceInUseException, 400, 400, false),
        (
            ErrorType::TagsPerResourceExceededLimitException,
            400,
            400,
            false,
        ),
        (ErrorType::VersionMismatchException, 400, 400, false),
        (ErrorType::InvalidClientException, 400, 400, true),
        (ErrorType::SessionExpiredException, 400, 400, true),
        (ErrorType::AccessDeniedException, 401, 403, false),
        (ErrorType::NotAuthorizedException, 401, 401, false),
        (ErrorType::ResourceNotFoundException, 404, 404, false),
        (ErrorType::InvalidSignatureException, 403, 403, false),
        (ErrorType::InternalFailure, 500, 500, false),
    ];
    assert_eq!(table.len(), ErrorType::ALL.len());
    for (error_type, http, connect, lowercase) in table {
        assert_eq!(error_type.http_status(), http, "{error_type}");
        assert_eq!(error_type.connect_status(), connect, "{error_type}");
        assert_eq!(error_type.lowercase_message(), lowercase, "{error_type}");
        assert_eq!(ErrorType::from_name(error_type.name()), Some(error_type));
        assert_eq!(format!("{error_type:?}"), error_type.name());
    }
    assert_eq!(
        ErrorType::from_header_value(
            "ResourceNotFoundException:https://kinesisvideo.amazonaws.com/doc/2017-09-30/"
        ),
        Some(ErrorType::ResourceNotFoundException)
    );
    assert_eq!(ErrorType::from_name("resourcenotfoundexception"), None);
}

#[test]
fn every_error_maps_to_its_error_type_and_names_its_field() {
    let field = Field::new("Tags").element(3).member("Key");
    assert_eq!(field.as_str(), "Tags[3].Key");
    let cases = [
        (
            Error::Invalid {
                field: field.clone(),
                violation: Violation::Length {
                    min: 1,
                    max: 128,
                    found: 129,
                },
            },
            ErrorType::InvalidArgumentException,
            "Tags[3].Key: must be 1 to 128 characters long, found 129",
        ),
        (
            Error::Missing {
                field: Field::new("ChannelName"),
            },
            ErrorType::InvalidArgumentException,
            "ChannelName: is required but missing",
        ),
        (
            Error::WrongType {
                field: Field::new("MaxResults"),
                expected: JsonType::Number,
                found: JsonType::String,
            },
            ErrorType::InvalidArgumentException,
            "MaxResults: must be a number, found a string",
        ),
        (
            Error::Duplicate {
                field: Field::new("X-Amz-ClientId"),
            },
            ErrorType::InvalidArgumentException,
            "X-Amz-ClientId: appears more than once",
        ),
        (
            Error::TooManyTags {
                field: Field::new("Tags"),
                max: 50,
                found: 51,
            },
            ErrorType::TagsPerResourceExceededLimitException,
            "Tags: at most 50 tags are allowed on a resource, found 51",
        ),
        (
            Error::Syntax {
                reason: "EOF while parsing an object at line 1 column 1".to_owned(),
            },
            ErrorType::InvalidArgumentException,
            "malformed JSON: EOF while parsing an object at line 1 column 1",
        ),
        (
            Error::Invalid {
                field: Field::new("ClientId"),
                violation: Violation::Character {
                    ch: '\u{e9}',
                    position: 3,
                    allowed: "letters",
                },
            },
            ErrorType::InvalidArgumentException,
            "ClientId: character 'é' (U+00E9) at position 3 is not allowed; allowed: letters",
        ),
    ];
    for (error, error_type, message) in cases {
        assert_eq!(error.error_type(), error_type, "{error}");
        assert_eq!(error.to_string(), message);
        let moved = error.clone().with_field(Field::new("Other"));
        assert_eq!(moved.error_type(), error_type);
        if error.field().is_some() {
            assert_eq!(moved.field(), Some(&Field::new("Other")));
        }
    }
    assert_eq!(Field::new("").member("A").as_str(), "A");
    assert_eq!(Field::new("").to_string(), "request body");
}

#[test]
fn long_culprits_are_truncated() {
    assert_eq!(truncate("abc", 5), "abc");
    assert_eq!(truncate("abcdef", 3), "abc…");
    assert_eq!(truncate("ééé", 2), "éé…");
    let violation = Violation::unknown_value(&"x".repeat(100), "A, B");
    assert_eq!(
        violation,
        Violation::UnknownValue {
            found: format!("{}…", "x".repeat(64)),
            allowed: "A, B"
        }
    );
}
