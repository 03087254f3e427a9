//! Golden vectors: real frames and bodies under `testdata/vectors/`, as official SDKs and the
//! service produce them (see its README for each file's source), decoded, rendered, re-encoded
//! and compared with the reviewed renderings under `testdata/expected/`.
//!
//! `UPDATE_GOLDEN=1 cargo test -p kvs-signaling-proto golden` rewrites the renderings; review
//! the diff before committing it.

use std::fmt::Debug;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Decodes a body, re-encodes it, checks that the re-encoding decodes to the same value, and
/// renders both.
fn render_body<T: JsonBody + Debug + PartialEq>(bytes: &[u8]) -> String {
    match T::decode(bytes) {
        Ok(body) => {
            let encoded = body.encode();
            assert_eq!(
                T::decode(&encoded).as_ref(),
                Ok(&body),
                "re-encoding changed the body"
            );
            format!(
                "{body:#?}\n--- re-encoded\n{}\n",
                String::from_utf8_lossy(&encoded)
            )
        }
        Err(err) => render_error(&err),
    }
}

fn render_error(err: &Error) -> String {
    format!("error: {err}\nerror type: {}\n", err.error_type())
}

fn render_client(text: &str) -> String {
    match ClientMessage::decode(text) {
        Ok(message) => {
            let encoded = message.encode();
            assert_eq!(ClientMessage::decode(&encoded).as_ref(), Ok(&message));
            format!(
                "{message:#?}\nborrowed payload: {}\nstandard payload: {}\n--- re-encoded\n{encoded}\n",
                message.message_payload.is_borrowed(),
                message.message_payload.is_standard(),
            )
        }
        Err(err) => {
            let mut out = render_error(&err.error);
            let _ = writeln!(out, "correlation id: {:?}", err.correlation_id);
            if let Some(status) = err.status_response() {
                let _ = writeln!(out, "--- answered with\n{}", status.encode());
            }
            out
        }
    }
}

fn render_server(text: &str) -> String {
    match ServerEvent::decode(text) {
        Ok(event) => {
            let encoded = event.encode();
            let again = ServerEvent::decode(&encoded).unwrap();
            let mut normalized = event.clone();
            normalized.message_payload = normalized
                .message_payload
                .map(MessagePayload::into_normalized);
            assert_eq!(again, normalized);
            format!("{event:#?}\n--- re-encoded\n{encoded}\n")
        }
        Err(err) => render_error(&err),
    }
}

fn render_rest(name: &str, bytes: &[u8]) -> String {
    macro_rules! dispatch {
        ($($prefix:literal => $ty:ty,)*) => {
            $(if name.starts_with($prefix) {
                return render_body::<$ty>(bytes);
            })*
        };
    }
    dispatch! {
        "create_signaling_channel_request" => CreateSignalingChannelRequest,
        "create_signaling_channel_response" => CreateSignalingChannelResponse,
        "describe_signaling_channel_request" => DescribeSignalingChannelRequest,
        "describe_signaling_channel_response" => DescribeSignalingChannelResponse,
        "list_signaling_channels_request" => ListSignalingChannelsRequest,
        "list_signaling_channels_response" => ListSignalingChannelsResponse,
        "update_signaling_channel_request" => UpdateSignalingChannelRequest,
        "delete_signaling_channel_request" => DeleteSignalingChannelRequest,
        "get_signaling_channel_endpoint_request" => GetSignalingChannelEndpointRequest,
        "get_signaling_channel_endpoint_response" => GetSignalingChannelEndpointResponse,
        "tag_resource_request" => TagResourceRequest,
        "untag_resource_request" => UntagResourceRequest,
        "list_tags_for_resource_request" => ListTagsForResourceRequest,
        "list_tags_for_resource_response" => ListTagsForResourceResponse,
        "describe_media_storage_configuration_request" => DescribeMediaStorageConfigurationRequest,
        "describe_media_storage_configuration_response" => DescribeMediaStorageConfigurationResponse,
        "get_ice_server_config_request" => GetIceServerConfigRequest,
        "get_ice_server_config_response" => GetIceServerConfigResponse,
        "send_alexa_offer_to_master_request" => SendAlexaOfferToMasterRequest,
        "send_alexa_offer_to_master_response" => SendAlexaOfferToMasterResponse,
    }
    if name.ends_with("_response") {
        return render_body::<EmptyResponse>(bytes);
    }
    panic!("no decoder for rest vector {name}")
}

fn render_error_body(bytes: &[u8]) -> String {
    match ErrorBody::decode(bytes) {
        Ok(body) => format!(
            "{body:#?}\nknown error type: {:?}\n--- re-encoded\n{}\n",
            body.known_error_type(),
            String::from_utf8_lossy(&body.encode())
        ),
        Err(err) => render_error(&err),
    }
}

#[test]
fn golden_vectors() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let readme = std::fs::read_to_string(root().join("vectors/README.md")).unwrap();
    let mut mismatches = Vec::new();
    let mut count = 0;
    for kind in ["client", "server", "rest", "error"] {
        let dir = root().join("vectors").join(kind);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no vectors in {}", dir.display());
        for path in files {
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let file = format!("{name}.json");
            assert!(
                readme.contains(&file),
                "{kind}/{file} has no row in the README"
            );
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8(bytes.clone()).unwrap();
            let rendering = match kind {
                "client" => render_client(&text),
                "server" => render_server(&text),
                "rest" => render_rest(&name, &bytes),
                _ => render_error_body(&bytes),
            };
            let expected_path = root()
                .join("expected")
                .join(kind)
                .join(format!("{name}.txt"));
            if update {
                std::fs::create_dir_all(expected_path.parent().unwrap()).unwrap();
                std::fs::write(&expected_path, &rendering).unwrap();
            } else {
                let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
                if expected != rendering {
                    mismatches.push(format!("{kind}/{name}:\n{rendering}"));
                }
            }
            count += 1;
        }
    }
    assert!(count >= 90, "only {count} vectors");
    assert!(
        mismatches.is_empty(),
        "{} vectors differ from testdata/expected (UPDATE_GOLDEN=1 rewrites them):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
