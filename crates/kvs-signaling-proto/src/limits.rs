//! The service's limits, as named constants. Each one that a deployment may want to change is
//! a default that the core's and the server's configurations can override.

/// Longest channel name.
pub const MAX_CHANNEL_NAME_LEN: usize = 256;
/// Longest channel ARN.
pub const MAX_ARN_LEN: usize = 1024;
/// Longest client id, peer id or sender id.
pub const MAX_CLIENT_ID_LEN: usize = 256;
/// Longest correlation id.
pub const MAX_CORRELATION_ID_LEN: usize = 256;
/// Longest channel version.
pub const MAX_VERSION_LEN: usize = 64;
/// Longest pagination token.
pub const MAX_NEXT_TOKEN_LEN: usize = 1024;
/// The client id prefix the service keeps for its own clients, in any letter case.
pub const RESERVED_CLIENT_ID_PREFIX: &str = "AWS_";

/// Default cap on a WebSocket `messagePayload`, in characters ("10K" in the service's
/// documentation). Decoders take another cap where a deployment configures one.
pub const MAX_MESSAGE_PAYLOAD_LEN: usize = 10_240;
/// Cap on SendAlexaOfferToMaster's `MessagePayload` and `Answer`.
pub const MAX_ALEXA_PAYLOAD_LEN: usize = 10_000;
/// Longest STATUS_RESPONSE `description`.
pub const MAX_STATUS_DESCRIPTION_LEN: usize = 1024;

/// Shortest `MessageTtlSeconds`.
pub const MIN_MESSAGE_TTL_SECONDS: u32 = 5;
/// Longest `MessageTtlSeconds`.
pub const MAX_MESSAGE_TTL_SECONDS: u32 = 120;
/// `MessageTtlSeconds` of a channel created without one.
pub const DEFAULT_MESSAGE_TTL_SECONDS: u32 = 60;

/// Shortest ICE server credential `Ttl`, in seconds.
pub const MIN_ICE_SERVER_TTL_SECONDS: u32 = 30;
/// Longest ICE server credential `Ttl`, in seconds.
pub const MAX_ICE_SERVER_TTL_SECONDS: u32 = 86_400;
/// The `Ttl` the service gives its TURN credentials.
pub const DEFAULT_ICE_SERVER_TTL_SECONDS: u32 = 300;
/// Most URIs per ICE server that the official C SDK accepts.
pub const MAX_ICE_SERVER_URIS: usize = 4;
/// Longest ICE server URI, username or password.
pub const MAX_ICE_SERVER_FIELD_LEN: usize = 256;

/// Smallest ListSignalingChannels `MaxResults`.
pub const MIN_LIST_MAX_RESULTS: u32 = 1;
/// Largest ListSignalingChannels `MaxResults`.
pub const MAX_LIST_MAX_RESULTS: u32 = 10_000;
/// ListSignalingChannels `MaxResults` when the request has none.
pub const DEFAULT_LIST_MAX_RESULTS: u32 = 500;

/// Longest tag key.
pub const MAX_TAG_KEY_LEN: usize = 128;
/// Longest tag value.
pub const MAX_TAG_VALUE_LEN: usize = 256;
/// Most tags on one resource, and in one TagResource, UntagResource or Create call.
pub const MAX_TAGS_PER_RESOURCE: usize = 50;

/// Most protocols in a GetSignalingChannelEndpoint request.
pub const MAX_ENDPOINT_PROTOCOLS: usize = 5;

/// Shortest presigned URL lifetime (`X-Amz-Expires`), in seconds.
pub const MIN_PRESIGN_EXPIRES_SECONDS: u32 = 1;
/// Longest presigned URL lifetime (`X-Amz-Expires`), in seconds: seven days.
pub const MAX_PRESIGN_EXPIRES_SECONDS: u32 = 604_800;
