use serde_json::json;

use super::*;

fn read<T: FromJson>(value: Value) -> Result<T, Error> {
    T::from_json(value, &Field::new("F"))
}

fn range(min: i64, max: i64, found: &str) -> Error {
    Error::Invalid {
        field: Field::new("F"),
        violation: Violation::Range {
            min,
            max,
            found: found.to_owned(),
        },
    }
}

#[test]
fn message_ttl_seconds() {
    assert_eq!(read::<MessageTtlSeconds>(json!(5)).unwrap().get(), 5);
    assert_eq!(read::<MessageTtlSeconds>(json!(120)).unwrap().get(), 120);
    assert_eq!(read::<MessageTtlSeconds>(json!(4)), Err(range(5, 120, "4")));
    assert_eq!(
        read::<MessageTtlSeconds>(json!(121)),
        Err(range(5, 120, "121"))
    );
    assert_eq!(
        read::<MessageTtlSeconds>(json!(-1)),
        Err(range(5, 120, "-1"))
    );
    assert_eq!(
        read::<MessageTtlSeconds>(json!(u64::MAX)),
        Err(range(5, 120, "18446744073709551615"))
    );
    assert_eq!(
        read::<MessageTtlSeconds>(json!(60.5)),
        Err(Error::Invalid {
            field: Field::new("F"),
            violation: Violation::NotInteger {
                found: "60.5".to_owned()
            }
        })
    );
    assert_eq!(
        read::<MessageTtlSeconds>(json!("60")),
        Err(Error::WrongType {
            field: Field::new("F"),
            expected: JsonType::Number,
            found: JsonType::String
        })
    );
    assert_eq!(MessageTtlSeconds::default().get(), 60);
    assert_eq!(
        MessageTtlSeconds::new(121),
        Err(Error::Invalid {
            field: Field::new("MessageTtlSeconds"),
            violation: Violation::Range {
                min: 5,
                max: 120,
                found: "121".to_owned()
            }
        })
    );
}

#[test]
fn other_ranges() {
    type New = fn(u32) -> Result<u32, Error>;
    let cases: [(New, u32, u32); 3] = [
        (|v| IceServerTtl::new(v).map(IceServerTtl::get), 30, 86_400),
        (|v| MaxResults::new(v).map(MaxResults::get), 1, 10_000),
        (
            |v| PresignExpires::new(v).map(PresignExpires::get),
            1,
            604_800,
        ),
    ];
    for (new, min, max) in cases {
        assert_eq!(new(min), Ok(min));
        assert_eq!(new(max), Ok(max));
        assert!(new(min - 1).is_err(), "{min} - 1");
        assert!(new(max + 1).is_err(), "{max} + 1");
    }
    assert_eq!(IceServerTtl::default().get(), 300);
    assert_eq!(MaxResults::default().get(), 500);
}

#[test]
fn serde_validates() {
    assert_eq!(
        serde_json::from_str::<MessageTtlSeconds>("60")
            .unwrap()
            .get(),
        60
    );
    assert!(serde_json::from_str::<MessageTtlSeconds>("600").is_err());
    assert_eq!(
        serde_json::to_string(&MessageTtlSeconds::new(60).unwrap()).unwrap(),
        "60"
    );
}
