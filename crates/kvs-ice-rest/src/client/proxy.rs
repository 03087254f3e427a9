//! Which HTTP proxy, if any, carries a [`RestClient`](super::RestClient)'s connections.

use std::borrow::Cow;
use std::fmt;

use http::Uri;
use hyper_util::client::proxy::matcher::{Intercept, Matcher};

use super::ClientConfigError;

/// The destinations an environment-derived [`ProxyConfig`] never sends to a proxy: this
/// host's loopback addresses, which a proxy on another host would resolve to itself.
const LOOPBACK: &str = "localhost,127.0.0.0/8,::1";

/// The HTTP proxies a [`RestClient`](super::RestClient) reaches its endpoints through, with
/// an HTTP `CONNECT` tunnel: TLS then runs end to end, inside the tunnel, and a plain
/// `http://` endpoint is tunneled too rather than forwarded.
///
/// A proxy is an `http://` URL, such as `http://proxy.example:3128`, optionally with
/// credentials for `Proxy-Authorization: Basic` (`http://user:password@proxy.example:3128`,
/// percent-encoded); a URL without a scheme means `http://`. `https://` (TLS to the proxy)
/// and SOCKS proxies are not supported: [`RestClient::with_proxy`](super::RestClient::with_proxy)
/// refuses them, naming the setting, and when the environment names one, every call fails,
/// naming the variable (see [`RestClient::new`](super::RestClient::new)).
///
/// The no-proxy list follows curl's `NO_PROXY`: comma-separated host names (each also
/// matching its subdomains, with or without a leading dot), IP addresses, CIDR blocks, or
/// `*` for every destination.
///
/// [`ProxyConfig::from_env`] is what [`RestClient::new`](super::RestClient::new) uses;
/// [`ProxyConfig::none`] connects directly. Credentials never appear in `Debug` output or in
/// errors.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    https: Option<Setting>,
    http: Option<Setting>,
    no_proxy: String,
    loopback_direct: bool,
}

/// A proxy URL and where it came from (a variable's name, or the setter's).
#[derive(Clone, PartialEq, Eq)]
struct Setting {
    source: &'static str,
    url: String,
}

impl ProxyConfig {
    /// No proxy: every connection goes directly to its endpoint.
    pub fn none() -> Self {
        Self::default()
    }

    /// The proxies the environment names, as curl and the AWS CLI read them:
    /// `HTTPS_PROXY` (or `https_proxy`) for `https://` endpoints, `HTTP_PROXY` (or
    /// `http_proxy`) for `http://` ones, and `NO_PROXY` (or `no_proxy`) for the
    /// destinations that bypass them. An empty variable counts as unset.
    ///
    /// Two differences from curl: loopback destinations (`localhost`, `127.0.0.0/8`, `::1`)
    /// always bypass an environment-named proxy, since a proxy elsewhere cannot reach this
    /// host's loopback; and when `REQUEST_METHOD` is set (a CGI program, where a request's
    /// `Proxy` header becomes `HTTP_PROXY`), only the lower-case `http_proxy` is read.
    /// `ALL_PROXY` is not read.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`ProxyConfig::from_env`] over the variables `lookup` returns, so that tests need not
    /// touch the process environment.
    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: &[&'static str]| {
            names.iter().find_map(|&name| {
                lookup(name)
                    .filter(|value| !value.trim().is_empty())
                    .map(|url| Setting { source: name, url })
            })
        };
        let cgi = lookup("REQUEST_METHOD").is_some();
        let http_names: &[&'static str] = if cgi {
            &["http_proxy"]
        } else {
            &["HTTP_PROXY", "http_proxy"]
        };
        Self {
            https: first(&["HTTPS_PROXY", "https_proxy"]),
            http: first(http_names),
            no_proxy: first(&["NO_PROXY", "no_proxy"])
                .map(|setting| setting.url)
                .unwrap_or_default(),
            loopback_direct: true,
        }
    }

    /// Sends connections to `https://` endpoints through the proxy at `url`.
    #[must_use]
    pub fn with_https(mut self, url: impl Into<String>) -> Self {
        self.https = Some(Setting {
            source: "ProxyConfig::with_https",
            url: url.into(),
        });
        self
    }

    /// Sends connections to `http://` endpoints through the proxy at `url`.
    #[must_use]
    pub fn with_http(mut self, url: impl Into<String>) -> Self {
        self.http = Some(Setting {
            source: "ProxyConfig::with_http",
            url: url.into(),
        });
        self
    }

    /// Replaces the list of destinations that bypass the proxies, in `NO_PROXY` syntax.
    #[must_use]
    pub fn with_no_proxy(mut self, list: impl Into<String>) -> Self {
        self.no_proxy = list.into();
        self
    }

    /// Checks the URLs and builds what the connector consults.
    pub(super) fn resolve(&self) -> Result<Proxies, ClientConfigError> {
        if self.https.is_none() && self.http.is_none() {
            return Ok(Proxies::direct());
        }
        let mut builder = Matcher::builder();
        if let Some(https) = &self.https {
            builder = builder.https(checked(https, "https://check.invalid/")?);
        }
        if let Some(http) = &self.http {
            builder = builder.http(checked(http, "http://check.invalid/")?);
        }
        // hyper-util's matcher lets `*` bypass host names but not IP addresses; curl's
        // bypasses every destination.
        if self.no_proxy.split(',').any(|entry| entry.trim() == "*") {
            return Ok(Proxies::direct());
        }
        let no_proxy = if self.loopback_direct {
            format!("{},{LOOPBACK}", self.no_proxy)
        } else {
            self.no_proxy.clone()
        };
        Ok(Proxies {
            matcher: Some(builder.no(no_proxy).build()),
        })
    }

    /// The proxy a connection to `url` would go through (its URL without credentials), or
    /// `None` when it goes directly.
    #[cfg(test)]
    pub(crate) fn proxy_for(&self, url: &str) -> Result<Option<String>, ClientConfigError> {
        let uri: Uri = url.parse().map_err(|_| ClientConfigError::Proxy {
            setting: "proxy_for",
            reason: "not a URL".to_owned(),
        })?;
        Ok(self
            .resolve()?
            .intercept(&uri)
            .map(|intercept| intercept.uri().to_string()))
    }
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn url(setting: &Option<Setting>) -> Option<Cow<'_, str>> {
            setting.as_ref().map(|s| redacted(&s.url))
        }
        f.debug_struct("ProxyConfig")
            .field("https", &url(&self.https))
            .field("http", &url(&self.http))
            .field("no_proxy", &self.no_proxy)
            .field("loopback_direct", &self.loopback_direct)
            .finish()
    }
}

/// `setting`'s URL, if it is one the connector can use: an `http://` proxy with a host.
fn checked<'a>(setting: &'a Setting, probe: &'static str) -> Result<&'a str, ClientConfigError> {
    let refuse = |reason: String| ClientConfigError::Proxy {
        setting: setting.source,
        reason: format!("{}: {reason}", redacted(&setting.url)),
    };
    let url = setting.url.trim();
    let uri: Uri = url
        .parse()
        .map_err(|err| refuse(format!("not a URL ({err})")))?;
    match uri.scheme_str() {
        None | Some("http") => {}
        Some("https") => {
            return Err(refuse(
                "TLS to the proxy is not supported; give its http:// URL".to_owned(),
            ));
        }
        Some(other) => {
            return Err(refuse(format!(
                "{other}:// proxies are not supported; give an http:// proxy"
            )));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(refuse("no host".to_owned()));
    }
    // The matcher skips what it cannot use; make sure it takes this one.
    let taken = Matcher::builder()
        .all(url)
        .build()
        .intercept(&Uri::from_static(probe))
        .is_some();
    if !taken {
        return Err(refuse("not a usable proxy URL".to_owned()));
    }
    Ok(url)
}

/// `url` with any credentials replaced by `***`.
fn redacted(url: &str) -> Cow<'_, str> {
    let start = url.find("://").map_or(0, |at| at + 3);
    let Some(rest) = url.get(start..) else {
        return Cow::Borrowed(url);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest.get(..end).and_then(|authority| authority.rfind('@'));
    match (at, url.get(..start), at.and_then(|at| rest.get(at..))) {
        (Some(_), Some(scheme), Some(host)) => Cow::Owned(format!("{scheme}***{host}")),
        _ => Cow::Borrowed(url),
    }
}

/// A checked [`ProxyConfig`]: which destinations go through which proxy.
#[derive(Debug)]
pub(super) struct Proxies {
    matcher: Option<Matcher>,
}

impl Proxies {
    /// No proxy.
    pub(super) fn direct() -> Self {
        Self { matcher: None }
    }

    /// The proxy for `dst`, if any.
    pub(super) fn intercept(&self, dst: &Uri) -> Option<Intercept> {
        self.matcher.as_ref()?.intercept(dst)
    }
}
