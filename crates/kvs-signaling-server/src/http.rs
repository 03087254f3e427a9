//! HTTP answers as the service shapes them: JSON bodies, the error envelope
//! (`x-amzn-ErrorType`, `{"__type", "Message"}`), `x-amzn-RequestId` and `Date`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use kvs_signaling_proto::{ErrorBody, ErrorType};

/// A response with a complete body.
pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// What the listener answers: a complete body, or the console's event stream.
pub(crate) type Reply = Response<http_body_util::Either<Full<Bytes>, crate::console::EventStream>>;

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// A request id in the service's shape (8-4-4-4-12 hex digits), unique in this process.
fn request_id() -> String {
    let n = REQUEST_IDS.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hex = format!("{:016x}{:016x}", t as u64, n);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An RFC 7231 date, `Sun, 06 Nov 1994 08:49:37 GMT`: the C SDK corrects its clock from it.
pub(crate) fn http_date(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        .get(usize::try_from(days.rem_euclid(7)).unwrap_or(0))
        .copied()
        .unwrap_or("Thu");
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .get(usize::try_from(month - 1).unwrap_or(0))
    .copied()
    .unwrap_or("Jan");
    format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of day `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn base(status: StatusCode, body: Bytes, content_type: &'static str) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(date) = HeaderValue::from_str(&http_date(SystemTime::now())) {
        headers.insert(header::DATE, date);
    }
    if let Ok(id) = HeaderValue::from_str(&request_id()) {
        headers.insert("x-amzn-RequestId", id);
    }
    response
}

/// A 200 answer with a JSON body.
pub(crate) fn json(body: Vec<u8>) -> HttpResponse {
    base(StatusCode::OK, Bytes::from(body), "application/json")
}

/// A plain-text answer.
pub(crate) fn text(status: StatusCode, body: String) -> HttpResponse {
    base(status, Bytes::from(body), "text/plain; charset=utf-8")
}

/// An error answer with the service's status, `x-amzn-ErrorType` header and body.
pub(crate) fn error(
    error_type: ErrorType,
    status: u16,
    message: impl Into<String>,
) -> HttpResponse {
    let body = ErrorBody::new(error_type, message).encode();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = base(status, Bytes::from(body), "application/json");
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{}:http://internal.amazon.com/coral/com.amazonaws.kinesisvideo/",
        error_type.name()
    )) {
        response.headers_mut().insert("x-amzn-ErrorType", value);
    }
    response
}

/// An error answer for the control plane or the HTTPS data plane.
pub(crate) fn rest_error(error_type: ErrorType, message: impl Into<String>) -> HttpResponse {
    error(error_type, error_type.http_status(), message)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "Thu, 29 Feb 2024 23:59:59 GMT"
        );
    }

    #[test]
    fn request_ids_have_the_services_shape() {
        let id = request_id();
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_ne!(request_id(), id);
    }

    #[test]
    fn errors_carry_the_type_in_header_and_body() {
        let response = rest_error(ErrorType::ResourceNotFoundException, "no such channel");
        assert_eq!(response.status(), 404);
        assert!(
            response.headers()["x-amzn-ErrorType"]
                .to_str()
                .unwrap()
                .starts_with("ResourceNotFoundException:")
        );
    }
}
