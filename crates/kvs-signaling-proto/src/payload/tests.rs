use std::borrow::Cow;

use super::*;

fn violation(text: &str, max: usize) -> Option<Violation> {
    check_base64(text, max).err()
}

#[test]
fn accepted_forms_and_whether_they_are_standard() {
    let cases = [
        ("QQ==", true),
        ("QUI=", true),
        ("QUJD", true),
        ("+/+/", true),
        ("QQ", false),
        ("QUI", false),
        ("-_-_", false),
        ("-_8", false),
        ("-_8=", false),
    ];
    for (text, standard) in cases {
        assert_eq!(check_base64(text, 10), Ok(standard), "{text:?}");
    }
}

#[test]
fn limits() {
    let at_limit = "A".repeat(limits::MAX_MESSAGE_PAYLOAD_LEN);
    assert!(MessagePayload::new(at_limit.as_str()).is_ok());
    let past = "A".repeat(limits::MAX_MESSAGE_PAYLOAD_LEN + 4);
    assert_eq!(
        MessagePayload::new(past.as_str()),
        Err(Error::Invalid {
            field: Field::new("messagePayload"),
            violation: Violation::Length {
                min: 1,
                max: 10_240,
                found: 10_244
            }
        })
    );
    assert_eq!(
        violation("", 10),
        Some(Violation::Length {
            min: 1,
            max: 10,
            found: 0
        })
    );
    assert_eq!(
        violation("AAAAA", 4),
        Some(Violation::Length {
            min: 1,
            max: 4,
            found: 5
        })
    );
    assert!(MessagePayload::with_max_len("AAAAA", 5).is_err()); // length 5 leaves one over
    assert!(MessagePayload::with_max_len("AAAAAA", 6).is_ok());
}

#[test]
fn rejected_characters_padding_and_lengths() {
    let bad = |ch, position| {
        Some(Violation::Character {
            ch,
            position,
            allowed: BASE64_CHARS,
        })
    };
    let cases = [
        ("QQ Q", bad(' ', 2)),
        ("QQ\nQ", bad('\n', 2)),
        ("QQ.Q", bad('.', 2)),
        ("QQ$Q", bad('$', 2)),
        ("é=QQ", bad('é', 0)),
        ("QQ\u{FF}Q", bad('\u{FF}', 2)),
        ("Q=QQ", Some(Violation::Base64Padding { position: 1 })),
        ("QQQQ=", Some(Violation::Base64Padding { position: 4 })),
        ("Q===", Some(Violation::Base64Padding { position: 1 })),
        ("QQQ==", Some(Violation::Base64Padding { position: 3 })),
        ("QQQQQ", Some(Violation::Base64Length { found: 5 })),
        (
            "ab+c-d",
            Some(Violation::Base64MixedAlphabets {
                ch: '-',
                position: 4,
            }),
        ),
        (
            "ab_c/d",
            Some(Violation::Base64MixedAlphabets {
                ch: '/',
                position: 4,
            }),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(violation(text, 100), expected, "{text:?}");
    }
}

#[test]
fn normalization_borrows_standard_text_and_keeps_the_bits() {
    let standard = MessagePayload::new("eyJhIjoiYiJ9").unwrap();
    assert!(matches!(
        standard.normalized(),
        Cow::Borrowed("eyJhIjoiYiJ9")
    ));

    // Android: URL-safe alphabet, no padding. Bytes 0xfb 0xff encode as "-_8".
    let android = MessagePayload::new("-_8").unwrap();
    assert!(!android.is_standard());
    assert_eq!(android.normalized(), "+/8=");
    assert_eq!(android.decode().unwrap(), vec![0xfb, 0xff]);
    assert_eq!(android.clone().into_normalized().as_str(), "+/8=");
    assert!(android.into_normalized().is_standard());

    // Non-zero trailing bits are relayed as they are, and decode as browsers decode them.
    let loose = MessagePayload::new("QR==").unwrap();
    assert_eq!(loose.normalized(), "QR==");
    assert_eq!(loose.decode().unwrap(), b"A");
}

#[test]
fn encode_is_standard_padded() {
    let payload = MessagePayload::encode(&[0xfb, 0xff]);
    assert_eq!(payload.as_str(), "+/8=");
    assert!(payload.is_standard());
}

#[test]
fn serde_borrows_and_validates() {
    let payload: MessagePayload<'_> = serde_json::from_str("\"QUJD\"").unwrap();
    assert!(matches!(payload.text, Cow::Borrowed("QUJD")));
    // An escaped slash cannot be borrowed, and still decodes.
    let escaped: MessagePayload<'_> = serde_json::from_str(r#""QU\/D""#).unwrap();
    assert_eq!(escaped.as_str(), "QU/D");
    assert!(serde_json::from_str::<MessagePayload<'_>>("\"QU D\"").is_err());
}
