use super::*;

const ICE: &str = "/v1/get-ice-server-config";

#[test]
fn parses_what_the_service_and_local_servers_return() {
    // URL, kind, then host to dial, port, Host header, path, and the path of an operation.
    let cases = [
        (
            "https://kinesisvideo.us-west-2.amazonaws.com",
            EndpointKind::Rest,
            (
                "kinesisvideo.us-west-2.amazonaws.com",
                443,
                "kinesisvideo.us-west-2.amazonaws.com",
                "/",
            ),
            ("/describeSignalingChannel", "/describeSignalingChannel"),
        ),
        (
            "https://r-1.example/",
            EndpointKind::Rest,
            ("r-1.example", 443, "r-1.example", "/"),
            (ICE, ICE),
        ),
        (
            "http://127.0.0.1:8080",
            EndpointKind::Rest,
            ("127.0.0.1", 8080, "127.0.0.1:8080", "/"),
            (ICE, ICE),
        ),
        (
            "https://127.0.0.1:443/prefix/",
            EndpointKind::Rest,
            ("127.0.0.1", 443, "127.0.0.1", "/prefix/"),
            (ICE, "/prefix/v1/get-ice-server-config"),
        ),
        (
            "http://[::1]:80",
            EndpointKind::Rest,
            ("::1", 80, "[::1]", "/"),
            (ICE, ICE),
        ),
        (
            "wss://[::1]:8443/a/b",
            EndpointKind::WebSocket,
            ("::1", 8443, "[::1]:8443", "/a/b"),
            ("/x", "/a/b/x"),
        ),
        (
            "ws://localhost",
            EndpointKind::WebSocket,
            ("localhost", 80, "localhost", "/"),
            ("/x", "/x"),
        ),
    ];
    for (url, kind, (host, port, authority, path), (operation, joined)) in cases {
        let endpoint = Endpoint::parse("endpoint", url, kind).unwrap();
        assert_eq!(
            (
                endpoint.host(),
                endpoint.port,
                endpoint.authority.as_str(),
                endpoint.path.as_str()
            ),
            (host, port, authority, path),
            "{url}"
        );
        assert_eq!(endpoint.join(operation), joined, "{url}");
    }
    assert_eq!(
        Endpoint::parse("endpoint", "https://a.example:8443/x", EndpointKind::Rest)
            .unwrap()
            .origin(),
        "https://a.example:8443"
    );
}

#[test]
fn refusals_name_the_argument_and_the_rule() {
    let cases = [
        (
            "wss://a.example",
            EndpointKind::Rest,
            "must start with https:// or http://",
        ),
        (
            "https://a.example",
            EndpointKind::WebSocket,
            "must start with wss:// or ws://",
        ),
        (
            "a.example",
            EndpointKind::Rest,
            "must start with https:// or http://",
        ),
        (
            "https://a.example/?x=1",
            EndpointKind::Rest,
            "must not have a query (`?`)",
        ),
        (
            "https://a.example/#x",
            EndpointKind::Rest,
            "must not have a fragment (`#`)",
        ),
        (
            "https://u:p@a.example",
            EndpointKind::Rest,
            "must not contain user information (`user@`)",
        ),
        (
            "https://a.example:",
            EndpointKind::Rest,
            "has a port that is not a number from 1 to 65535",
        ),
        (
            "https://a.example:0",
            EndpointKind::Rest,
            "has a port that is not a number from 1 to 65535",
        ),
        (
            "https://a.example:99999",
            EndpointKind::Rest,
            "has a port that is not a number from 1 to 65535",
        ),
        ("https:// a", EndpointKind::Rest, "is not a URL"),
        ("", EndpointKind::Rest, "is not a URL"),
    ];
    for (url, kind, rule) in cases {
        let err = Endpoint::parse("control_endpoint", url, kind)
            .map(|endpoint| format!("{endpoint:?}"))
            .expect_err(url);
        assert_eq!(
            (err.field, err.url.as_str(), err.rule),
            ("control_endpoint", url, rule)
        );
    }
}
