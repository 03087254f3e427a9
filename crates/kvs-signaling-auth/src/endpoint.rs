//! Endpoint URLs as a client uses them: `https://host[:port][/path]` for REST calls,
//! `wss://host[:port][/path]` for the WebSocket, and their plain-text forms (`http://`,
//! `ws://`) for a local server.

use http::Uri;

/// A URL that cannot serve as an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {url:?} {rule}")]
#[non_exhaustive]
pub struct EndpointError {
    /// The argument that held the URL, such as `wss_endpoint`.
    pub field: &'static str,
    /// The URL as given.
    pub url: String,
    /// The rule it breaks.
    pub rule: &'static str,
}

/// Which surface an endpoint serves, and so which schemes it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointKind {
    /// The control plane or a channel's HTTPS endpoint.
    Rest,
    /// A channel's WebSocket endpoint.
    WebSocket,
}

/// An endpoint's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// `http://`, a local server without TLS.
    Http,
    /// `https://`.
    Https,
    /// `ws://`, a local server without TLS.
    Ws,
    /// `wss://`.
    Wss,
}

impl Scheme {
    /// The scheme's name, without `://`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// Whether the connection runs over TLS.
    pub const fn is_tls(self) -> bool {
        matches!(self, Self::Https | Self::Wss)
    }

    const fn default_port(self) -> u16 {
        if self.is_tls() { 443 } else { 80 }
    }
}

/// A parsed endpoint: what a client dials, the `Host` it signs, and the path its calls go
/// under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub(crate) scheme: Scheme,
    /// The host as written, with the brackets of an IPv6 address.
    host: String,
    /// The port to dial.
    pub(crate) port: u16,
    /// `host[:port]` with the port only when it is not the scheme's default: the `Host`
    /// header, and the authority of every URL built on this endpoint.
    pub(crate) authority: String,
    /// The path as written, `/` when there is none.
    pub(crate) path: String,
}

impl Endpoint {
    /// Parses `url`, given as the argument `field`.
    pub fn parse(
        field: &'static str,
        url: &str,
        kind: EndpointKind,
    ) -> Result<Self, EndpointError> {
        let refuse = |rule| EndpointError {
            field,
            url: url.to_owned(),
            rule,
        };
        if url.contains('?') {
            return Err(refuse("must not have a query (`?`)"));
        }
        if url.contains('#') {
            return Err(refuse("must not have a fragment (`#`)"));
        }
        let uri: Uri = url.parse().map_err(|_| refuse("is not a URL"))?;
        let scheme = match (kind, uri.scheme_str()) {
            (EndpointKind::Rest, Some("https")) => Scheme::Https,
            (EndpointKind::Rest, Some("http")) => Scheme::Http,
            (EndpointKind::WebSocket, Some("wss")) => Scheme::Wss,
            (EndpointKind::WebSocket, Some("ws")) => Scheme::Ws,
            (EndpointKind::Rest, _) => return Err(refuse("must start with https:// or http://")),
            (EndpointKind::WebSocket, _) => return Err(refuse("must start with wss:// or ws://")),
        };
        let authority = uri.authority().ok_or_else(|| refuse("has no host"))?;
        if authority.as_str().contains('@') {
            return Err(refuse("must not contain user information (`user@`)"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(refuse("has no host"));
        }
        let explicit_port = match authority.as_str().strip_prefix(host) {
            Some("") => None,
            Some(port) => match port.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(port)) if port != 0 => Some(port),
                _ => return Err(refuse("has a port that is not a number from 1 to 65535")),
            },
            None => return Err(refuse("is not a URL")),
        };
        let port = explicit_port.unwrap_or(scheme.default_port());
        let authority = match explicit_port {
            Some(port) if port != scheme.default_port() => format!("{host}:{port}"),
            _ => host.to_owned(),
        };
        let path = match uri.path() {
            "" => "/".to_owned(),
            path => path.to_owned(),
        };
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port,
            authority,
            path,
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The port to dial: the URL's, or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host[:port]`, the port only when it is not the scheme's default: the `Host` header
    /// to send and sign, and the authority of every URL built on this endpoint.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The path as written, `/` when there is none.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The host to dial and to name to TLS, without the brackets of an IPv6 address.
    pub fn host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }

    /// The path of the operation at `operation_path` (which starts with `/`) under this
    /// endpoint: a trailing slash of the endpoint is dropped, as the official C SDK appends
    /// paths to endpoints.
    pub fn join(&self, operation_path: &str) -> String {
        let mut path = self.path.trim_end_matches('/').to_owned();
        path.push_str(operation_path);
        path
    }

    /// `scheme://authority`, without a path.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.authority)
    }
}

#[cfg(test)]
mod tests;
