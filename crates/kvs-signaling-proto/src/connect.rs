//! The query string of a WebSocket connect: the channel, the viewer's client id and the SigV4
//! presigning parameters.

use crate::error::{Error, Field, Violation};
use crate::ids::{ChannelArn, ClientId};
use crate::number::PresignExpires;

crate::text::wire_enum! {
    /// Whether a connection is the channel's master or one of its viewers (`Role` in
    /// GetSignalingChannelEndpoint).
    #[expect(
        clippy::exhaustive_enums,
        reason = "a single-master channel has exactly these roles"
    )]
    Role, field = "Role", allowed = "MASTER, VIEWER" {
        /// The channel's one master.
        Master = "MASTER",
        /// A viewer.
        Viewer = "VIEWER",
    }
}

/// The query of `GET <wss endpoint>?X-Amz-ChannelARN=…[&X-Amz-ClientId=…]&X-Amz-Algorithm=…`.
///
/// A viewer always sends `X-Amz-ClientId` and a master never does, so its presence decides the
/// role, as it does for every official SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectQuery {
    /// The channel (`X-Amz-ChannelARN`).
    pub channel_arn: ChannelArn,
    /// The viewer's client id (`X-Amz-ClientId`); absent for the master.
    pub client_id: Option<ClientId>,
    /// The SigV4 presigning parameters, absent when the URL is not presigned.
    pub presign: Option<PresignParams>,
    /// Whether the client says it handles GO_AWAY and RECONNECT_ICE_SERVER: the extension
    /// parameter [`INDICATIONS_PARAM`]`=true`, which no official SDK sends.
    pub indications: bool,
    /// Whether the client asks for DELIVERY_STATUS events: the extension parameter
    /// [`DELIVERY_STATUS_PARAM`]`=true`, which no official SDK sends.
    pub delivery_status: bool,
    /// Every parameter, percent-decoded, in the order received: what a SigV4 verifier
    /// canonicalizes.
    pub params: Vec<(String, String)>,
}

/// The SigV4 parameters of a presigned URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresignParams {
    /// `X-Amz-Credential`, split into its parts.
    pub credential: Credential,
    /// `X-Amz-Date`: `YYYYMMDDTHHMMSSZ`.
    pub date: AmzDate,
    /// `X-Amz-Expires`.
    pub expires: PresignExpires,
    /// `X-Amz-SignedHeaders`, such as `host`.
    pub signed_headers: String,
    /// `X-Amz-Signature`: 64 lowercase hex digits.
    pub signature: String,
    /// `X-Amz-Security-Token`, for temporary credentials.
    pub security_token: Option<String>,
}

/// `<access key id>/<YYYYMMDD>/<region>/<service>/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credential {
    /// The access key id.
    pub access_key_id: String,
    /// The scope's date, `YYYYMMDD`.
    pub date: String,
    /// The scope's region.
    pub region: String,
    /// The scope's service, `kinesisvideo`.
    pub service: String,
}

/// A SigV4 timestamp, `YYYYMMDDTHHMMSSZ`, always UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmzDate(String);

impl AmzDate {
    /// Validates the form and the ranges of the fields.
    pub fn new(text: &str) -> Result<Self, Violation> {
        let b = text.as_bytes();
        let digits = |range: std::ops::Range<usize>| -> Result<u32, Violation> {
            let start = range.start;
            let part = b.get(range).ok_or(Violation::Format {
                expected: "YYYYMMDDTHHMMSSZ",
                position: start.min(text.chars().count()),
            })?;
            part.iter().enumerate().try_fold(0, |acc, (i, &d)| {
                if d.is_ascii_digit() {
                    Ok(acc * 10 + u32::from(d - b'0'))
                } else {
                    Err(Violation::Format {
                        expected: "a digit",
                        position: start + i,
                    })
                }
            })
        };
        let (_, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
        if b.get(8) != Some(&b'T') {
            return Err(Violation::Format {
                expected: "'T'",
                position: 8,
            });
        }
        let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
        if b.get(15) != Some(&b'Z') || b.len() != 16 {
            return Err(Violation::Format {
                expected: "'Z' ending the date",
                position: 15,
            });
        }
        let checks = [
            (month, 1, 12, 4),
            (day, 1, 31, 6),
            (hour, 0, 23, 9),
            (minute, 0, 59, 11),
            (second, 0, 60, 13),
        ];
        for (value, min, max, position) in checks {
            if value < min || value > max {
                return Err(Violation::Format {
                    expected: "a valid calendar date and time",
                    position,
                });
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// The date `seconds` after the Unix epoch; `None` past the year 9999, which the form's
    /// four digits cannot hold.
    pub fn from_unix_seconds(seconds: u64) -> Option<Self> {
        let days = i64::try_from(seconds / 86_400).ok()?;
        let rem = seconds % 86_400;
        let (year, month, day) = civil_from_days(days);
        if year > 9999 {
            return None;
        }
        Some(Self(format!(
            "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
            rem / 3_600,
            rem % 3_600 / 60,
            rem % 60
        )))
    }

    /// The text, `YYYYMMDDTHHMMSSZ`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        let num = |range: std::ops::Range<usize>| -> i64 {
            self.0
                .get(range)
                .and_then(|s| s.parse().ok())
                .unwrap_or_default()
        };
        let days = days_from_civil(num(0..4), num(4..6), num(6..8));
        days * 86_400 + num(9..11) * 3_600 + num(11..13) * 60 + num(13..15)
    }
}

/// The proleptic Gregorian date of day `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// An extension of this project, not of the service: a client that handles GO_AWAY and
/// RECONNECT_ICE_SERVER says so with `X-Kvs-Indications=true` in its connect URL (signed like
/// every other parameter). The official C SDK deadlocks on both, so a server that knows no
/// better sends them to nobody; the real service ignores the parameter.
pub const INDICATIONS_PARAM: &str = "X-Kvs-Indications";

/// An extension of this project, not of the service: a client that wants to know what became
/// of each message it sends with a correlation id connects with `X-Kvs-DeliveryStatus=true`
/// (signed like every other parameter), and then receives a DELIVERY_STATUS event
/// ([`DeliveryStatus`](crate::DeliveryStatus)) for each. `true` or `false`; anything else is
/// refused.
pub const DELIVERY_STATUS_PARAM: &str = "X-Kvs-DeliveryStatus";

const AUTH_PARAMS: [&str; 6] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
];

impl ConnectQuery {
    /// Parses a query string (without the leading `?`).
    pub fn parse(query: &str) -> Result<Self, Error> {
        let params = parse_query(query)?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(seen, _)| seen == name)
                .map(|(_, value)| value.as_str())
        };
        let channel_arn = get("X-Amz-ChannelARN").ok_or(Error::Missing {
            field: Field::new("X-Amz-ChannelARN"),
        })?;
        let channel_arn = ChannelArn::new(channel_arn)
            .map_err(|err| err.with_field(Field::new("X-Amz-ChannelARN")))?;
        let client_id = get("X-Amz-ClientId")
            .map(|id| ClientId::new(id).map_err(|err| err.with_field(Field::new("X-Amz-ClientId"))))
            .transpose()?;
        let presign = PresignParams::from_params(&params)?;
        let indications = get(INDICATIONS_PARAM).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let delivery_status = match get(DELIVERY_STATUS_PARAM) {
            None => false,
            Some(value) if value.eq_ignore_ascii_case("true") => true,
            Some(value) if value.eq_ignore_ascii_case("false") => false,
            Some(value) => {
                return Err(Error::invalid(
                    Field::new(DELIVERY_STATUS_PARAM),
                    Violation::unknown_value(value, "true, false"),
                ));
            }
        };
        Ok(Self {
            channel_arn,
            client_id,
            presign,
            indications,
            delivery_status,
            params,
        })
    }

    /// The role the query connects as: viewer when it names a client id, master otherwise.
    pub fn role(&self) -> Role {
        if self.client_id.is_some() {
            Role::Viewer
        } else {
            Role::Master
        }
    }
}

/// Splits a query string (without the leading `?`) into percent-decoded name and value pairs,
/// in order. A name that appears twice is an error: SigV4 canonicalization and the connect
/// semantics both need each parameter once.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, Error> {
    let mut params: Vec<(String, String)> = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name, &Field::new("query parameter name"))?;
        let value = percent_decode(value, &Field::new(leak_free_name(&name)))?;
        if params.iter().any(|(seen, _)| *seen == name) {
            return Err(Error::Duplicate {
                field: Field::new(leak_free_name(&name)),
            });
        }
        params.push((name, value));
    }
    Ok(params)
}

impl PresignParams {
    /// The SigV4 parameters among `params` (as [`parse_query`] gives them): `None` when none
    /// of them is present, an error when some are missing or invalid.
    pub fn from_params(params: &[(String, String)]) -> Result<Option<Self>, Error> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(seen, _)| seen == name)
                .map(|(_, value)| value.as_str())
        };
        if AUTH_PARAMS.iter().any(|name| get(name).is_some()) {
            parse_presign(&get).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Whether `name` is one of the parameters presigning adds (the signature, the
    /// credential, the token, ...), which a verifier leaves out when it recomputes.
    pub fn is_auth_param(name: &str) -> bool {
        AUTH_PARAMS.contains(&name) || name == "X-Amz-Security-Token"
    }
}

/// The field name for an error about parameter `name`: the known names as themselves,
/// anything else as a generic label (an unknown name is the client's text, which an error
/// should not echo at length).
fn leak_free_name(name: &str) -> &'static str {
    const KNOWN: [&str; 11] = [
        "X-Amz-ChannelARN",
        "X-Amz-ClientId",
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        INDICATIONS_PARAM,
        DELIVERY_STATUS_PARAM,
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == name)
        .unwrap_or("query parameter")
}

fn parse_presign<'q>(get: &impl Fn(&str) -> Option<&'q str>) -> Result<PresignParams, Error> {
    let required = |name: &'static str| {
        get(name).ok_or(Error::Missing {
            field: Field::new(name),
        })
    };
    let invalid = |name: &'static str, violation| Error::invalid(Field::new(name), violation);

    let algorithm = required("X-Amz-Algorithm")?;
    if algorithm != "AWS4-HMAC-SHA256" {
        return Err(invalid(
            "X-Amz-Algorithm",
            Violation::unknown_value(algorithm, "AWS4-HMAC-SHA256"),
        ));
    }
    let credential = parse_credential(required("X-Amz-Credential")?)
        .map_err(|violation| invalid("X-Amz-Credential", violation))?;
    let date = AmzDate::new(required("X-Amz-Date")?)
        .map_err(|violation| invalid("X-Amz-Date", violation))?;
    let expires_text = required("X-Amz-Expires")?;
    let expires = match expires_text.parse::<u32>() {
        Ok(seconds) if expires_text.bytes().all(|b| b.is_ascii_digit()) => {
            PresignExpires::new(seconds)?
        }
        _ => {
            return Err(invalid(
                "X-Amz-Expires",
                Violation::Range {
                    min: 1,
                    max: 604_800,
                    found: crate::error::truncate(expires_text, 32),
                },
            ));
        }
    };
    let signed_headers = required("X-Amz-SignedHeaders")?;
    crate::text::check_ascii_chars(
        signed_headers,
        |b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b';'),
        "lowercase header names separated by ';'",
    )
    .map_err(|violation| invalid("X-Amz-SignedHeaders", violation))?;
    let signature = required("X-Amz-Signature")?;
    crate::text::check_length(signature, 64, 64)
        .and_then(|_| {
            crate::text::check_ascii_chars(
                signature,
                |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
                "lowercase hex digits",
            )
        })
        .map_err(|violation| invalid("X-Amz-Signature", violation))?;
    let security_token = get("X-Amz-Security-Token")
        .filter(|token| !token.is_empty())
        .map(str::to_owned);
    Ok(PresignParams {
        credential,
        date,
        expires,
        signed_headers: signed_headers.to_owned(),
        signature: signature.to_owned(),
        security_token,
    })
}

fn parse_credential(text: &str) -> Result<Credential, Violation> {
    let mut parts = text.split('/');
    let mut position = 0;
    let mut next = |expected: &'static str| {
        let part = parts.next().filter(|part| !part.is_empty());
        let at = position;
        position += part.map_or(0, |p| p.chars().count() + 1);
        part.ok_or(Violation::Format {
            expected,
            position: at,
        })
    };
    let access_key_id = next("an access key id")?;
    let date = next("the scope date YYYYMMDD")?;
    let region = next("the scope region")?;
    let service = next("the scope service")?;
    let terminator = next("\"aws4_request\"")?;
    if terminator != "aws4_request" || parts.next().is_some() {
        return Err(Violation::Format {
            expected: "\"aws4_request\" ending the credential",
            position: position.saturating_sub(terminator.chars().count() + 1),
        });
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Violation::Format {
            expected: "the scope date YYYYMMDD",
            position: access_key_id.chars().count() + 1,
        });
    }
    Ok(Credential {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
    })
}

/// Decodes `%XX` escapes; `+` stays `+`, as SigV4 canonicalization treats it.
fn percent_decode(text: &str, field: &Field) -> Result<String, Error> {
    if !text.contains('%') {
        return Ok(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let hex = |at: usize| bytes.get(at).and_then(|&h| (h as char).to_digit(16));
        match (hex(i + 1), hex(i + 2)) {
            (Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or_default());
                i += 3;
            }
            _ => {
                return Err(Error::invalid(
                    field.clone(),
                    Violation::Format {
                        expected: "two hex digits after '%'",
                        position: text.get(..i).map_or(i, |head| head.chars().count()),
                    },
                ));
            }
        }
    }
    String::from_utf8(out).map_err(|err| {
        Error::invalid(
            field.clone(),
            Violation::Format {
                expected: "percent-escapes that decode to UTF-8",
                position: err.utf8_error().valid_up_to(),
            },
        )
    })
}

#[cfg(test)]
mod tests;
