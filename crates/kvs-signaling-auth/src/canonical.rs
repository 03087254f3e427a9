//! The arithmetic of AWS Signature Version 4, written from its specification: the canonical
//! request, the string to sign, the signing key and the signature. Signing and verifying both
//! come down to [`signature`]; nothing here reads a clock or the environment.
//!
//! The rules are those the AWS SDKs sign with for every service but S3: the path is normalized
//! (dot segments removed, empty segments dropped) and percent-encoded again, `%` included;
//! query names and values are encoded as RFC 3986 unreserved characters and sorted; header
//! names are lowercased, values trimmed with inner runs of spaces collapsed, repeated headers
//! joined with commas; the payload is hashed with SHA-256.

use std::fmt::Write as _;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The algorithm name in the string to sign and in `Authorization`.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What is signed: one request, its parts as received (the query and headers decoded).
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The path as it appears in the request line, `/` when empty.
    pub(crate) path: &'a str,
    /// Query parameters, decoded.
    pub(crate) query: Vec<(&'a str, &'a str)>,
    /// Headers; names in any case.
    pub(crate) headers: Vec<(&'a str, &'a str)>,
    /// The payload's SHA-256, hex.
    pub(crate) payload_hash: String,
}

/// The scope a signature is made for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    /// `YYYYMMDDTHHMMSSZ`.
    pub(crate) amz_date: &'a str,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
}

impl Scope<'_> {
    /// `YYYYMMDD/region/service/aws4_request`.
    pub(crate) fn credential_scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.amz_date.get(..8).unwrap_or_default(),
            self.region,
            self.service
        )
    }
}

/// The hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length; `new_from_slice` fails only for fixed-size keys.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Appends `text` percent-encoded as SigV4 encodes query components and path segments: RFC
/// 3986 unreserved characters kept, every other byte as `%XX` (upper-case hex); with `slash`,
/// `/` kept too.
pub(crate) fn push_encoded(out: &mut String, text: &str, slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// `text` percent-encoded as a query component.
pub(crate) fn encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_encoded(&mut out, text, false);
    out
}

/// The canonical URI: the path with its dot segments resolved and its empty segments dropped
/// (a trailing `/` kept), then percent-encoded once more.
fn canonical_uri(path: &str) -> String {
    let needs_normalizing = path.contains('.') || path.contains("//");
    let mut normalized = String::with_capacity(path.len() + 1);
    if !needs_normalizing {
        if !path.starts_with('/') {
            normalized.push('/');
        }
        normalized.push_str(path);
    } else {
        let mut segments: Vec<&str> = Vec::new();
        for segment in path.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    segments.pop();
                }
                other => segments.push(other),
            }
        }
        normalized.push('/');
        normalized.push_str(&segments.join("/"));
        let ends_in_directory =
            path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
        if ends_in_directory && !normalized.ends_with('/') {
            normalized.push('/');
        }
    }
    let mut out = String::with_capacity(normalized.len());
    push_encoded(&mut out, &normalized, true);
    out
}

/// The canonical query string: each name and value encoded, sorted by name, then value.
fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(name, value)| (encoded(name), encoded(value)))
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// A header value as SigV4 canonicalizes it: spaces trimmed from both ends, inner runs of
/// spaces made one (other whitespace is kept, as the AWS SDKs keep it).
fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut after_space = false;
    for c in value.trim_matches(' ').chars() {
        if c == ' ' && after_space {
            continue;
        }
        after_space = c == ' ';
        out.push(c);
    }
    out
}

/// The canonical headers block and the signed-headers list.
fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut by_name: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let value = trim_all(value);
        match by_name.iter_mut().find(|(n, _)| *n == name) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            None => by_name.push((name, value)),
        }
    }
    by_name.sort_by(|a, b| a.0.cmp(&b.0));
    let mut block = String::new();
    let mut signed = String::new();
    for (i, (name, value)) in by_name.iter().enumerate() {
        block.push_str(name);
        block.push(':');
        block.push_str(value);
        block.push('\n');
        if i > 0 {
            signed.push(';');
        }
        signed.push_str(name);
    }
    (block, signed)
}

/// The canonical request of `request`.
pub(crate) fn canonical_request(request: &Request<'_>) -> String {
    let (headers, signed) = canonical_headers(&request.headers);
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query(&request.query),
        headers,
        signed,
        request.payload_hash
    )
}

/// The `SignedHeaders` of `headers`: their names, lowercased, sorted, joined with `;`.
pub(crate) fn signed_headers(headers: &[(&str, &str)]) -> String {
    canonical_headers(headers).1
}

/// The signature of `request` in `scope` with `secret`, as lower-case hex.
pub(crate) fn signature(secret: &str, scope: &Scope<'_>, request: &Request<'_>) -> String {
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        scope.amz_date,
        scope.credential_scope(),
        sha256_hex(canonical_request(request).as_bytes())
    );
    let date = hmac(
        format!("AWS4{secret}").as_bytes(),
        scope.amz_date.get(..8).unwrap_or_default().as_bytes(),
    );
    let region = hmac(&date, scope.region.as_bytes());
    let service = hmac(&region, scope.service.as_bytes());
    let signing = hmac(&service, b"aws4_request");
    hex(&hmac(&signing, string_to_sign.as_bytes()))
}

#[cfg(test)]
mod tests;
