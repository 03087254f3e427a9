use super::*;

fn character(field: &'static str, ch: char, position: usize) -> Result<(), Error> {
    Err(Error::Invalid {
        field: Field::new(field),
        violation: Violation::Character {
            ch,
            position,
            allowed: TAG_CHARS,
        },
    })
}

fn length(field: &'static str, min: usize, max: usize, found: usize) -> Result<(), Error> {
    Err(Error::Invalid {
        field: Field::new(field),
        violation: Violation::Length { min, max, found },
    })
}

/// Characters of every allowed class, and one of each disallowed class.
fn char_cases(field: &'static str) -> Vec<(String, Result<(), Error>)> {
    vec![
        ("env:prod/a=b+c-d@e_f.g".to_owned(), Ok(())),
        ("caf\u{e9} 日本 \u{0661}".to_owned(), Ok(())), // letters, Arabic-Indic digit (Nd)
        ("x\u{00A0}y\u{2028}z".to_owned(), Ok(())),     // Zs and Zl separators
        ("\u{00B2}\u{2167}".to_owned(), Ok(())),        // No and Nl numbers
        ("a!b".to_owned(), character(field, '!', 1)),
        ("a#b".to_owned(), character(field, '#', 1)),
        ("a\tb".to_owned(), character(field, '\t', 1)), // Cc
        ("a\u{1F600}".to_owned(), character(field, '\u{1F600}', 1)), // So
        ("e\u{0301}".to_owned(), character(field, '\u{0301}', 1)), // Mn
        ("a\u{24B6}".to_owned(), character(field, '\u{24B6}', 1)), // So, though alphabetic
        ("a$".to_owned(), character(field, '$', 1)),    // Sc
    ]
}

#[test]
fn tag_key() {
    let mut cases = char_cases("Key");
    cases.extend([
        ("k".repeat(128), Ok(())),
        ("日".repeat(128), Ok(())),
        ("k".repeat(129), length("Key", 1, 128, 129)),
        ("日".repeat(129), length("Key", 1, 128, 129)),
        (String::new(), length("Key", 1, 128, 0)),
    ]);
    for (input, expected) in cases {
        assert_eq!(
            TagKey::new(input.as_str()).map(|_| ()),
            expected,
            "{input:?}"
        );
    }
}

#[test]
fn tag_value() {
    let mut cases = char_cases("Value");
    cases.extend([
        (String::new(), Ok(())),
        ("v".repeat(256), Ok(())),
        ("v".repeat(257), length("Value", 0, 256, 257)),
    ]);
    for (input, expected) in cases {
        assert_eq!(
            TagValue::new(input.as_str()).map(|_| ()),
            expected,
            "{input:?}"
        );
    }
}

#[test]
fn tag_counts() {
    let field = Field::new("Tags");
    assert_eq!(check_tag_count(&field, 0, 0), Ok(()));
    assert_eq!(check_tag_count(&field, 50, 1), Ok(()));
    assert_eq!(
        check_tag_count(&field, 51, 0),
        Err(Error::TooManyTags {
            field: field.clone(),
            max: 50,
            found: 51
        })
    );
    assert_eq!(
        check_tag_count(&field, 0, 1),
        Err(Error::Invalid {
            field,
            violation: Violation::Count {
                min: 1,
                max: 50,
                found: 0
            }
        })
    );
}
