//! Entry points for the fuzz targets: each takes arbitrary input, checks the properties that
//! must hold for every input, and panics when one does not. Not part of the API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_signaling_proto::{ChannelArn, ClientId};

use crate::{Credentials, HeaderSignedRequest, Verifier, presign_connect_url, sign};

const KEY: &str = "AKIDFUZZEXAMPLE";
const SECRET: &str = "fuzz-secret";

fn verifier() -> Verifier {
    Verifier::new(
        "us-west-2",
        [
            Credentials::new(KEY, SECRET),
            Credentials::new("ASIAFUZZ", "temporary").with_session_token("token"),
        ],
    )
}

/// The time the fuzzer's signatures are checked at: 2019-12-01T00:00:00Z, the date of the
/// official SDKs' signer vectors, so that a seed corpus of them verifies.
fn fuzz_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_575_158_400)
}

/// Splits `data` at its first `sep`, or not at all.
fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// Verifies `data` as a presigned connect: `host\npath?query`. Nothing may panic. Then a
/// round trip: a URL presigned for an identity made from the input verifies, and the same URL
/// with one byte of its query changed does not.
pub fn fuzz_sigv4_query(data: &[u8]) {
    let verifier = verifier();
    let (host, target) = split(data, b'\n');
    let host = String::from_utf8_lossy(host);
    let target = String::from_utf8_lossy(target);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if let Err(err) = verifier.verify_presigned(fuzz_now(), &host, path, query) {
        let _ = err.error_type();
        assert!(!err.message.is_empty());
    }

    let id: String = String::from_utf8_lossy(target.as_bytes())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
        .take(256)
        .collect();
    let Ok(client_id) = ClientId::new(if id.is_empty() { "v".to_owned() } else { id }) else {
        return;
    };
    let Ok(arn) = ChannelArn::new("arn:aws:kinesisvideo:us-west-2:123456789012:channel/fuzz/1")
    else {
        return;
    };
    let Ok(url) = presign_connect_url(
        &Credentials::new(KEY, SECRET),
        "us-west-2",
        "wss://127.0.0.1:8443",
        &arn,
        Some(&client_id),
        fuzz_now(),
    ) else {
        return;
    };
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let verified = verifier.verify_presigned(fuzz_now(), "127.0.0.1:8443", "/", query);
    assert!(
        verified.is_ok(),
        "a URL presigned here does not verify: {url}: {verified:?}"
    );
    if let Some(&flip) = data.first() {
        let mut bytes = query.as_bytes().to_vec();
        let at = usize::from(flip) % bytes.len().max(1);
        if let Some(byte) = bytes.get_mut(at) {
            let changed = if *byte == b'0' { b'1' } else { b'0' };
            *byte = changed;
        }
        if let Ok(tampered) = std::str::from_utf8(&bytes)
            && tampered != query
        {
            let verified = verifier.verify_presigned(fuzz_now(), "127.0.0.1:8443", "/", tampered);
            assert!(
                verified.is_err(),
                "a tampered URL verified: {tampered} (from {query})"
            );
        }
    }
}

/// Verifies `data` as a header-signed REST call: `METHOD path\nname: value\n...\n\nbody`.
/// Nothing may panic. Then a round trip: a call signed as the AWS SDKs sign it, with the
/// input as its body, verifies, and fails once its body changes.
pub fn fuzz_sigv4_header(data: &[u8]) {
    let verifier = verifier();
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or("");
    let (method, path) = request_line.split_once(' ').unwrap_or((request_line, "/"));
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim(), value.trim()))
        .collect();
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut request = HeaderSignedRequest::new(method, path, &headers, body.as_bytes());
    request.query = query;
    if let Err(err) = verifier.verify_header(fuzz_now(), &request) {
        let _ = err.error_type();
    }

    let credentials = Credentials::new(KEY, SECRET);
    let host = "127.0.0.1:8443";
    let Ok(signed) = sign::sign_request_headers(
        &credentials,
        "us-west-2",
        fuzz_now(),
        "POST",
        host,
        "/describeSignalingChannel",
        data,
    ) else {
        return;
    };
    let mut headers: Vec<(&str, &str)> = vec![("host", host)];
    headers.extend(signed.iter().map(|(name, value)| (*name, value.as_str())));
    let request = HeaderSignedRequest::new("POST", "/describeSignalingChannel", &headers, data);
    let verified = verifier.verify_header(fuzz_now(), &request);
    assert!(
        verified.is_ok(),
        "a call signed here does not verify: {verified:?}"
    );
    let mut other = data.to_vec();
    other.push(b'x');
    let request = HeaderSignedRequest::new("POST", "/describeSignalingChannel", &headers, &other);
    assert!(
        verifier.verify_header(fuzz_now(), &request).is_err(),
        "a changed body verified"
    );
}

/// Every committed fuzz input, and every crash turned into a regression input, run through
/// the targets' entry points by `cargo test`, without the fuzzer.
#[cfg(test)]
mod corpus {
    fn replay(target: &str, run: fn(&[u8])) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{} holds no input", dir.display());
        for input in inputs {
            run(&std::fs::read(&input).unwrap());
        }
    }

    #[test]
    fn the_committed_corpora_replay() {
        replay("sigv4_query", super::fuzz_sigv4_query);
        replay("sigv4_header", super::fuzz_sigv4_header);
    }
}
