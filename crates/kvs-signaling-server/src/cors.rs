//! CORS, so that web pages (the official JavaScript SDK and the AWS SDKs for JavaScript in a
//! browser) can call the REST API: preflights answered without authentication, and every
//! answer, errors included, readable by the page, its `Date` header too (the SDKs correct
//! their clock from it).

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::http::{HttpResponse, error, text};
use kvs_signaling_proto::ErrorType;

/// The headers a page may read: the request id, the error's type and message, and `Date`.
pub const EXPOSE_HEADERS: &str = "x-amzn-RequestId, x-amzn-ErrorType, x-amzn-ErrorMessage, Date";
/// The methods a page may use.
pub const ALLOW_METHODS: &str = "POST, GET, OPTIONS";
/// The request headers allowed when a preflight names none (or names them badly): what the
/// official SDKs send.
pub const ALLOW_HEADERS: &str = "authorization, content-type, x-amz-content-sha256, x-amz-date, \
     x-amz-security-token, x-amz-user-agent, x-amz-target, amz-sdk-invocation-id, amz-sdk-request";
/// The longest `Access-Control-Request-Headers` echoed back.
const MAX_REQUEST_HEADERS_LEN: usize = 2_048;

/// Which web origins may call the REST API, and how long a browser may cache a preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorsConfig {
    /// The origins allowed: any (the default, as the service), or these only.
    pub allowed_origins: AllowedOrigins,
    /// `Access-Control-Max-Age`: 2 hours, the most Chromium honours.
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: AllowedOrigins::Any,
            max_age: Duration::from_secs(7_200),
        }
    }
}

/// The origins a [`CorsConfig`] allows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllowedOrigins {
    /// Any origin: answers carry `Access-Control-Allow-Origin: *`.
    Any,
    /// These origins (`scheme://host[:port]`, lowercase): answers to them echo the origin.
    List(Vec<String>),
}

impl AllowedOrigins {
    /// The origins of a config file or command line: `*` alone for any, or origins such as
    /// `https://app.example.com` or `http://localhost:5173`. The error names the culprit and
    /// the rule.
    pub fn parse<S: AsRef<str>>(origins: &[S]) -> Result<Self, String> {
        if origins.iter().any(|o| o.as_ref() == "*") {
            return if origins.len() == 1 {
                Ok(Self::Any)
            } else {
                Err("\"*\" allows every origin and cannot be listed with others".to_owned())
            };
        }
        if origins.is_empty() {
            return Err("no origin given: use [\"*\"] for any origin".to_owned());
        }
        origins
            .iter()
            .map(|origin| normalize(origin.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::List)
    }

    fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin)),
        }
    }
}

/// `origin` checked to be `scheme://host[:port]` (no path, query or trailing slash) and
/// lowercased, as browsers send it.
fn normalize(origin: &str) -> Result<String, String> {
    let bad = |rule: &str| format!("origin {origin:?}: {rule}");
    let (scheme, authority) = origin
        .split_once("://")
        .ok_or_else(|| bad("must be scheme://host[:port], such as https://app.example.com"))?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if authority.is_empty() {
        return Err(bad("the host is missing"));
    }
    if authority.contains(['/', '?', '#', ' ', '@']) {
        return Err(bad(
            "an origin has no path, query, user or trailing slash: scheme://host[:port]",
        ));
    }
    if let Some((_, port)) = authority.rsplit_once(':')
        && !authority.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(bad("the port must be a number from 0 to 65535"));
    }
    Ok(origin.to_ascii_lowercase())
}

/// What CORS asks of a request, decided before it is routed.
pub(crate) enum Decision {
    /// Not a browser's cross-origin request (no `Origin`): nothing to add.
    NoOrigin,
    /// An allowed origin: add these headers to the answer.
    Allowed(HeaderValue),
    /// A refused origin, or a preflight: answer this at once.
    Answer(HttpResponse),
}

impl CorsConfig {
    /// Decides `method`'s request with `headers`: a preflight (`OPTIONS` with `Origin`) is
    /// answered here, without authentication; a request from an origin that is not allowed is
    /// refused with a 403 that names it.
    pub(crate) fn decide(&self, method: &Method, headers: &HeaderMap) -> Decision {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return if method == Method::OPTIONS {
                // A plain OPTIONS: what the server takes.
                let mut answer = text(StatusCode::OK, String::new());
                answer
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(ALLOW_METHODS));
                Decision::Answer(answer)
            } else {
                Decision::NoOrigin
            };
        };
        let text_origin = origin.to_str().unwrap_or("");
        if !self.allowed_origins.allows(text_origin) {
            let shown: String = text_origin.chars().take(256).collect();
            // 403, HTTP's "refused", whatever the error's usual status on REST calls.
            return Decision::Answer(error(
                ErrorType::AccessDeniedException,
                403,
                format!(
                    "Origin: {shown:?} may not call this server from a browser; add it to \
                     allowed_origins under [cors] in the configuration file"
                ),
            ));
        }
        let allow_origin = match self.allowed_origins {
            AllowedOrigins::Any => HeaderValue::from_static("*"),
            AllowedOrigins::List(_) => origin.clone(),
        };
        if method != Method::OPTIONS {
            return Decision::Allowed(allow_origin);
        }
        let mut answer = text(StatusCode::OK, String::new());
        let out = answer.headers_mut();
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        let requested = headers
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .filter(|value| value.len() <= MAX_REQUEST_HEADERS_LEN)
            .filter(|value| value.to_str().is_ok_and(is_header_list))
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static(ALLOW_HEADERS));
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
        if let Ok(age) = HeaderValue::from_str(&self.max_age.as_secs().to_string()) {
            out.insert(header::ACCESS_CONTROL_MAX_AGE, age);
        }
        add(&mut answer, allow_origin, &self.allowed_origins);
        Decision::Answer(answer)
    }

    /// Adds the headers an allowed origin's answer carries.
    pub(crate) fn apply(&self, response: &mut HttpResponse, decision: Decision) {
        if let Decision::Allowed(origin) = decision {
            add(response, origin, &self.allowed_origins);
        }
    }
}

fn add(response: &mut HttpResponse, allow_origin: HeaderValue, allowed: &AllowedOrigins) {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    if matches!(allowed, AllowedOrigins::List(_)) {
        // The answer depends on the origin: caches must not serve it to another.
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// Whether `list` is a comma-separated list of header names (RFC 9110 tokens).
fn is_header_list(list: &str) -> bool {
    list.split(',').map(str::trim).all(|name| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_or_name_the_rule() {
        assert_eq!(AllowedOrigins::parse(&["*"]), Ok(AllowedOrigins::Any));
        assert_eq!(
            AllowedOrigins::parse(&["https://App.example.com", "http://localhost:5173"]),
            Ok(AllowedOrigins::List(vec![
                "https://app.example.com".to_owned(),
                "http://localhost:5173".to_owned()
            ]))
        );
        for (origins, rule) in [
            (
                &["*", "https://a.example"][..],
                "cannot be listed with others",
            ),
            (&[][..], "no origin given"),
            (&["app.example.com"][..], "must be scheme://host[:port]"),
            (&["ftp://a.example"][..], "the scheme must be http or https"),
            (&["https://a.example/"][..], "no path"),
            (&["https://a.example:http"][..], "the port must be a number"),
            (&["https://"][..], "the host is missing"),
        ] {
            let err = AllowedOrigins::parse(origins).unwrap_err();
            assert!(err.contains(rule), "{origins:?}: {err}");
        }
    }

    #[test]
    fn header_lists() {
        assert!(is_header_list("authorization,content-type, x-amz-date"));
        assert!(!is_header_list("authorization,,x"));
        assert!(!is_header_list("bad header"));
        assert!(!is_header_list("x\r\ny"));
    }
}
