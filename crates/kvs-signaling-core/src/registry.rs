//! Control-plane semantics: the channel registry. See [`Registry`].

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;

use kvs_signaling_proto::limits::MAX_TAGS_PER_RESOURCE;
use kvs_signaling_proto::{
    ChannelArn, ChannelInfo, ChannelName, ChannelStatus, ChannelType,
    DescribeMediaStorageConfigurationRequest, DescribeMediaStorageConfigurationResponse,
    DescribeSignalingChannelRequest, DescribeSignalingChannelResponse, ErrorType, Field,
    ListSignalingChannelsRequest, ListSignalingChannelsResponse, ListTagsForResourceRequest,
    ListTagsForResourceResponse, MediaStorageConfiguration, MediaStorageStatus, MessageTtlSeconds,
    NextToken, SingleMasterConfiguration, TagKey, TagValue, Timestamp, Version,
};
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

mod change;

pub use change::Change;

/// The length of the versions the registry mints.
const VERSION_LEN: usize = 20;

/// The longest partition or region the registry accepts, which keeps every ARN it mints under
/// the ARN length limit.
const MAX_ARN_PART_LEN: usize = 63;

/// The registry's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryConfig {
    /// The ARN partition: `aws`.
    pub partition: String,
    /// The region in ARNs: `us-west-2`.
    pub region: String,
    /// The 12-digit account id in ARNs: `123456789012`.
    pub account_id: String,
    /// How many channels may exist at once: 10 000, as in us-east-1 and us-west-2.
    pub max_channels: usize,
    /// The message TTL of channels created without one: 60 seconds.
    pub default_message_ttl: MessageTtlSeconds,
    /// How many tags one channel may carry: 50.
    pub max_tags_per_resource: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            partition: "aws".to_owned(),
            region: "us-west-2".to_owned(),
            account_id: "123456789012".to_owned(),
            max_channels: 10_000,
            default_message_ttl: MessageTtlSeconds::default(),
            max_tags_per_resource: MAX_TAGS_PER_RESOURCE,
        }
    }
}

impl RegistryConfig {
    /// Sets the ARN partition.
    #[must_use]
    pub fn partition(mut self, partition: impl Into<String>) -> Self {
        self.partition = partition.into();
        self
    }

    /// Sets the region.
    #[must_use]
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Sets the account id.
    #[must_use]
    pub fn account_id(mut self, account_id: impl Into<String>) -> Self {
        self.account_id = account_id.into();
        self
    }

    /// Sets the channel limit.
    #[must_use]
    pub fn max_channels(mut self, max_channels: usize) -> Self {
        self.max_channels = max_channels;
        self
    }

    /// Sets the default message TTL.
    #[must_use]
    pub fn default_message_ttl(mut self, ttl: MessageTtlSeconds) -> Self {
        self.default_message_ttl = ttl;
        self
    }

    /// Sets how many tags one channel may carry.
    #[must_use]
    pub fn max_tags_per_resource(mut self, max: usize) -> Self {
        self.max_tags_per_resource = max;
        self
    }

    fn validate(&self) -> Result<(), RegistryConfigError> {
        let arn_part = |value: &str| {
            (1..=MAX_ARN_PART_LEN).contains(&value.len())
                && value
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !arn_part(&self.partition) {
            return Err(RegistryConfigError::Partition {
                found: self.partition.clone(),
            });
        }
        if !arn_part(&self.region) {
            return Err(RegistryConfigError::Region {
                found: self.region.clone(),
            });
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegistryConfigError::AccountId {
                found: self.account_id.clone(),
            });
        }
        Ok(())
    }

    fn mint_arn(&self, name: &ChannelName, millis: u64) -> Result<ChannelArn, RegistryError> {
        Ok(ChannelArn::for_channel(
            &self.partition,
            &self.region,
            &self.account_id,
            name,
            millis,
        )?)
    }
}

/// A [`RegistryConfig`] that cannot go into an ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryConfigError {
    /// The partition is not 1 to 63 characters of `[a-z0-9-]`.
    #[error("partition {found:?} must be 1 to 63 characters of [a-z0-9-]")]
    Partition {
        /// The partition given.
        found: String,
    },
    /// The region is not 1 to 63 characters of `[a-z0-9-]`.
    #[error("region {found:?} must be 1 to 63 characters of [a-z0-9-]")]
    Region {
        /// The region given.
        found: String,
    },
    /// The account id is not 12 digits.
    #[error("account id {found:?} must be 12 digits")]
    AccountId {
        /// The account id given.
        found: String,
    },
}

/// Why a control-plane request failed; [`RegistryError::error_type`] gives the service's error
/// name and status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A value the registry built or checked breaks a rule of the protocol.
    #[error(transparent)]
    Invalid(#[from] kvs_signaling_proto::Error),
    /// Neither `ChannelName` nor `ChannelARN` was given.
    #[error("either ChannelName or ChannelARN must be given")]
    NameOrArnRequired,
    /// `ChannelName` and `ChannelARN` name different channels.
    #[error("ChannelName {name} does not match ChannelARN {arn}")]
    NameArnMismatch {
        /// The name given.
        name: ChannelName,
        /// The ARN given.
        arn: ChannelArn,
    },
    /// A channel type other than `SINGLE_MASTER`.
    #[error(
        "ChannelType {channel_type} is not supported; the only supported type is SINGLE_MASTER"
    )]
    UnsupportedChannelType {
        /// The type asked for.
        channel_type: ChannelType,
    },
    /// A `NextToken` this registry did not issue.
    #[error("NextToken {token:?} is not a token this service issued")]
    InvalidNextToken {
        /// The token given.
        token: NextToken,
    },
    /// A channel with this name exists.
    #[error("ChannelName {name} is already in use")]
    NameInUse {
        /// The name asked for.
        name: ChannelName,
    },
    /// The account already has as many channels as it may.
    #[error("the account already has {max} signaling channels, its limit")]
    ChannelLimitExceeded {
        /// The limit.
        max: usize,
    },
    /// No channel has this name or ARN.
    #[error("The requested channel is not found or not active: {field} {value}")]
    NotFound {
        /// The request member that named the channel.
        field: Field,
        /// Its value.
        value: String,
    },
    /// `CurrentVersion` is not the channel's version.
    #[error("CurrentVersion {given} does not match the channel's version {current}")]
    VersionMismatch {
        /// The version given.
        given: Version,
        /// The channel's version.
        current: Version,
    },
    /// The request would leave a channel with more than 50 tags.
    #[error("a channel may carry at most {max} tags; this request would leave {found}")]
    TooManyTags {
        /// The limit.
        max: usize,
        /// The number of distinct tags the request would leave.
        found: usize,
    },
    /// A staged change was committed after another change to the same channel: writes were
    /// not serialized (a bug of the caller).
    #[error("channel {name} changed while this change was being saved; try again")]
    StaleChange {
        /// The channel.
        name: ChannelName,
    },
}

impl RegistryError {
    /// The error type the service answers with.
    pub fn error_type(&self) -> ErrorType {
        match self {
            Self::Invalid(err) => err.error_type(),
            Self::NameOrArnRequired
            | Self::NameArnMismatch { .. }
            | Self::UnsupportedChannelType { .. }
            | Self::InvalidNextToken { .. } => ErrorType::InvalidArgumentException,
            Self::NameInUse { .. } => ErrorType::ResourceInUseException,
            Self::ChannelLimitExceeded { .. } => ErrorType::AccountChannelLimitExceededException,
            Self::NotFound { .. } => ErrorType::ResourceNotFoundException,
            Self::VersionMismatch { .. } => ErrorType::VersionMismatchException,
            Self::TooManyTags { .. } => ErrorType::TagsPerResourceExceededLimitException,
            Self::StaleChange { .. } => ErrorType::InternalFailure,
        }
    }

    fn not_found(field: &'static str, value: &impl fmt::Display) -> Self {
        Self::NotFound {
            field: Field::new(field),
            value: value.to_string(),
        }
    }
}

/// A [`RegistrySnapshot`] that does not describe a valid registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The configuration is not valid.
    #[error(transparent)]
    Config(#[from] RegistryConfigError),
    /// Two channels have the same name.
    #[error("channel {name} appears more than once")]
    DuplicateName {
        /// The name.
        name: ChannelName,
    },
    /// A channel's ARN is not the one this registry mints from its name, its creation time and
    /// the configured partition, region and account.
    #[error(
        "channel {name}: ChannelARN {arn} does not match its name, creation time and the \
         configured partition, region and account"
    )]
    ArnMismatch {
        /// The channel's name.
        name: ChannelName,
        /// Its ARN.
        arn: ChannelArn,
    },
    /// A channel is not an active single-master channel, the only kind the registry makes.
    #[error(
        "channel {name} is {status} {channel_type}; only ACTIVE SINGLE_MASTER channels are restored"
    )]
    UnsupportedState {
        /// The channel's name.
        name: ChannelName,
        /// Its status.
        status: ChannelStatus,
        /// Its type.
        channel_type: ChannelType,
    },
    /// A channel carries more tags than allowed.
    #[error("channel {name} carries {found} tags; at most {max} are allowed")]
    TooManyTags {
        /// The channel's name.
        name: ChannelName,
        /// The limit.
        max: usize,
        /// The number of tags.
        found: usize,
    },
}

/// A signaling channel as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRecord {
    name: ChannelName,
    arn: ChannelArn,
    channel_type: ChannelType,
    status: ChannelStatus,
    message_ttl: MessageTtlSeconds,
    version: Version,
    creation_millis: u64,
    tags: BTreeMap<TagKey, TagValue>,
    /// How many times the channel was changed since it was made: the order of its
    /// configurations, which its version (random) does not give.
    #[serde(default)]
    revision: u64,
}

impl ChannelRecord {
    /// The name, unique in the registry.
    pub fn name(&self) -> &ChannelName {
        &self.name
    }

    /// How many times the channel was changed since it was made; a later configuration has a
    /// higher revision, so that a consumer told of two can keep the later one.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The ARN.
    pub fn arn(&self) -> &ChannelArn {
        &self.arn
    }

    /// The type: always `SINGLE_MASTER`.
    pub fn channel_type(&self) -> ChannelType {
        self.channel_type
    }

    /// The status: always `ACTIVE`, since creation and updates are synchronous.
    pub fn status(&self) -> ChannelStatus {
        self.status
    }

    /// How long undelivered messages are kept.
    pub fn message_ttl(&self) -> MessageTtlSeconds {
        self.message_ttl
    }

    /// The version, which changes on every update.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// When the channel was created, as in its ARN.
    pub fn creation_time(&self) -> Timestamp {
        Timestamp::from_unix_millis(i64::try_from(self.creation_millis).unwrap_or(i64::MAX))
    }

    /// The tags.
    pub fn tags(&self) -> &BTreeMap<TagKey, TagValue> {
        &self.tags
    }

    /// The channel's description, as DescribeSignalingChannel and ListSignalingChannels give
    /// it.
    pub fn info(&self) -> ChannelInfo {
        let mut ttl = SingleMasterConfiguration::new();
        ttl.message_ttl_seconds = Some(self.message_ttl);
        let mut info = ChannelInfo::new();
        info.channel_arn = Some(self.arn.clone());
        info.channel_name = Some(self.name.clone());
        info.channel_status = Some(self.status);
        info.channel_type = Some(self.channel_type);
        info.creation_time = Some(self.creation_time());
        info.single_master_configuration = Some(ttl);
        info.version = Some(self.version.clone());
        info
    }
}

/// Everything a [`Registry`] holds, to persist and [restore](Registry::restore).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegistrySnapshot {
    /// The channels, sorted by name.
    pub channels: Vec<ChannelRecord>,
}

/// The signaling channels of one account in one region, and the control-plane operations on
/// them (CreateSignalingChannel, DescribeSignalingChannel, ListSignalingChannels,
/// UpdateSignalingChannel, DeleteSignalingChannel, TagResource, UntagResource,
/// ListTagsForResource, DescribeMediaStorageConfiguration). Each operation takes the decoded
/// request by reference and returns the response body or a [`RegistryError`], which names the
/// service's error type.
///
/// Pure data: no IO, no clock (creation takes the wall-clock `now` as an argument), no OS
/// randomness (versions come from the injected [`Rng`]). The server persists it through
/// [`Registry::snapshot`] and [`Registry::restore`].
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
///
/// use kvs_signaling_core::{Registry, RegistryConfig, SplitMix64};
/// use kvs_signaling_proto::{ChannelName, CreateSignalingChannelRequest, ErrorType};
///
/// let mut registry = Registry::new(RegistryConfig::default(), SplitMix64::new(1))?;
/// let now = UNIX_EPOCH + Duration::from_millis(1_657_142_193_914);
/// let request = CreateSignalingChannelRequest::new(ChannelName::new("demo")?);
/// let arn = registry.create(now, &request)?.channel_arn.ok_or("no ARN")?;
/// assert_eq!(
///     arn.as_str(),
///     "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1657142193914"
/// );
/// let taken = registry.create(now, &request).unwrap_err();
/// assert_eq!(taken.error_type(), ErrorType::ResourceInUseException);
/// assert_eq!(taken.to_string(), "ChannelName demo is already in use");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Decisions a caller must know:
/// - Channels are created and updated synchronously: their status is always `ACTIVE`.
/// - A channel's ARN ends with its creation time in epoch milliseconds. A channel re-created
///   with a deleted channel's name in the same millisecond gets the next free millisecond, so
///   an ARN never names two channels.
/// - [`Registry::delete`] returns the removed [`ChannelRecord`]: the caller tells the hub to close
///   that channel's connections.
/// - Duplicate tag keys in one request: the last value wins, as if the tags were applied in
///   order.
/// - ListSignalingChannels sorts by name; its `NextToken` is the standard base64 (with
///   padding) of the last name returned, so a page resumes after that name even when channels
///   come and go in between. ListTagsForResource returns every tag in one page and omits `Tags`
///   when there are none (the model's map has at least one entry).
/// - The per-account and per-channel request rates of the real service
///   (ClientLimitExceededException) are not enforced here: the server throttles before calling
///   the registry.
pub struct Registry {
    config: RegistryConfig,
    rng: Box<dyn Rng>,
    channels: BTreeMap<ChannelName, ChannelRecord>,
    /// The ARN creation millis of deleted channels that a new channel of the same name could
    /// still collide with; entries older than the latest creation time are dropped.
    retired: BTreeMap<ChannelName, u64>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.config)
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry; `rng` mints channel versions.
    pub fn new(
        config: RegistryConfig,
        rng: impl Rng + 'static,
    ) -> Result<Self, RegistryConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            rng: Box::new(rng),
            channels: BTreeMap::new(),
            retired: BTreeMap::new(),
        })
    }

    /// A registry holding the channels of `snapshot`, after checking that names are unique,
    /// that every ARN is the one this configuration mints for its channel and that no channel
    /// has more than 50 tags. A snapshot with more channels than `max_channels` is accepted;
    /// creation is refused until enough are deleted.
    pub fn restore(
        config: RegistryConfig,
        rng: impl Rng + 'static,
        snapshot: RegistrySnapshot,
    ) -> Result<Self, RestoreError> {
        let mut registry = Self::new(config, rng)?;
        for channel in snapshot.channels {
            let expected = registry
                .config
                .mint_arn(&channel.name, channel.creation_millis);
            if expected.as_ref() != Ok(&channel.arn) {
                return Err(RestoreError::ArnMismatch {
                    name: channel.name,
                    arn: channel.arn,
                });
            }
            let max_tags = registry.config.max_tags_per_resource;
            if channel.tags.len() > max_tags {
                return Err(RestoreError::TooManyTags {
                    name: channel.name,
                    max: max_tags,
                    found: channel.tags.len(),
                });
            }
            // The official C SDK refuses a DELETING channel forever; only what create makes
            // is restored.
            if channel.status != ChannelStatus::Active
                || channel.channel_type != ChannelType::SingleMaster
            {
                return Err(RestoreError::UnsupportedState {
                    name: channel.name,
                    status: channel.status,
                    channel_type: channel.channel_type,
                });
            }
            if registry.channels.contains_key(&channel.name) {
                return Err(RestoreError::DuplicateName { name: channel.name });
            }
            registry.channels.insert(channel.name.clone(), channel);
        }
        Ok(registry)
    }

    /// Everything the registry holds, for [`Registry::restore`].
    pub fn snapshot(&self) -> RegistrySnapshot {
        RegistrySnapshot {
            channels: self.channels.values().cloned().collect(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The number of channels.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Whether there are no channels.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Every channel, sorted by name.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelRecord> {
        self.channels.values()
    }

    /// The channel with this name.
    pub fn channel_by_name(&self, name: &ChannelName) -> Option<&ChannelRecord> {
        self.channels.get(name)
    }

    /// The channel with this ARN. An ARN of a deleted channel finds nothing, even when a
    /// channel of the same name exists.
    pub fn channel_by_arn(&self, arn: &ChannelArn) -> Option<&ChannelRecord> {
        self.channels
            .get(arn.channel_name())
            .filter(|channel| channel.arn == *arn)
    }

    /// DescribeSignalingChannel, by name or by ARN.
    pub fn describe(
        &self,
        request: &DescribeSignalingChannelRequest,
    ) -> Result<DescribeSignalingChannelResponse, RegistryError> {
        let channel = self.find(request.channel_name.as_ref(), request.channel_arn.as_ref())?;
        let mut response = DescribeSignalingChannelResponse::new();
        response.channel_info = Some(channel.info());
        Ok(response)
    }

    /// ListSignalingChannels: channels sorted by name, optionally those whose name begins with
    /// a prefix, `MaxResults` (500 by default) at a time.
    pub fn list(
        &self,
        request: &ListSignalingChannelsRequest,
    ) -> Result<ListSignalingChannelsResponse, RegistryError> {
        let max =
            usize::try_from(request.max_results.unwrap_or_default().get()).unwrap_or(usize::MAX);
        let after = match &request.next_token {
            Some(token) if !token.as_str().is_empty() => Some(decode_token(token).ok_or_else(
                || RegistryError::InvalidNextToken {
                    token: token.clone(),
                },
            )?),
            _ => None,
        };
        let prefix = request
            .channel_name_condition
            .as_ref()
            .and_then(|condition| condition.comparison_value.as_ref())
            .map_or("", ChannelName::as_str);
        let start = match &after {
            Some(after) if after.as_str() >= prefix => Bound::Excluded(after.as_str()),
            _ => Bound::Included(prefix),
        };
        let mut matching = self
            .channels
            .range::<str, _>((start, Bound::Unbounded))
            .map(|(_, channel)| channel)
            .take_while(|channel| channel.name.as_str().starts_with(prefix));
        let page: Vec<&ChannelRecord> = matching.by_ref().take(max).collect();
        let mut response = ListSignalingChannelsResponse::new();
        if matching.next().is_some()
            && let Some(last) = page.last()
        {
            response.next_token = Some(encode_token(&last.name)?);
        }
        response.channel_info_list = Some(page.into_iter().map(ChannelRecord::info).collect());
        Ok(response)
    }

    /// ListTagsForResource: every tag in one page; `Tags` is absent when there are none. A
    /// non-empty `NextToken` is refused, since this operation never issues one.
    pub fn list_tags_for_resource(
        &self,
        request: &ListTagsForResourceRequest,
    ) -> Result<ListTagsForResourceResponse, RegistryError> {
        let channel = self
            .channel_by_arn(&request.resource_arn)
            .ok_or_else(|| RegistryError::not_found("ResourceARN", &request.resource_arn))?;
        if let Some(token) = request
            .next_token
            .as_ref()
            .filter(|t| !t.as_str().is_empty())
        {
            return Err(RegistryError::InvalidNextToken {
                token: token.clone(),
            });
        }
        let mut response = ListTagsForResourceResponse::new();
        response.tags = Some(channel.tags.clone()).filter(|tags| !tags.is_empty());
        Ok(response)
    }

    /// DescribeMediaStorageConfiguration, by name or by ARN: media storage is always
    /// `DISABLED`.
    pub fn describe_media_storage_configuration(
        &self,
        request: &DescribeMediaStorageConfigurationRequest,
    ) -> Result<DescribeMediaStorageConfigurationResponse, RegistryError> {
        self.find(request.channel_name.as_ref(), request.channel_arn.as_ref())?;
        let mut response = DescribeMediaStorageConfigurationResponse::new();
        response.media_storage_configuration =
            Some(MediaStorageConfiguration::new(MediaStorageStatus::Disabled));
        Ok(response)
    }

    /// The channel a request names by name, by ARN or by both.
    fn find(
        &self,
        name: Option<&ChannelName>,
        arn: Option<&ChannelArn>,
    ) -> Result<&ChannelRecord, RegistryError> {
        match (name, arn) {
            (None, None) => Err(RegistryError::NameOrArnRequired),
            (Some(name), Some(arn)) if arn.channel_name() != name.as_str() => {
                Err(RegistryError::NameArnMismatch {
                    name: name.clone(),
                    arn: arn.clone(),
                })
            }
            (_, Some(arn)) => self
                .channel_by_arn(arn)
                .ok_or_else(|| RegistryError::not_found("ChannelARN", arn)),
            (Some(name), None) => self
                .channel_by_name(name)
                .ok_or_else(|| RegistryError::not_found("ChannelName", name)),
        }
    }
}

/// A random version of 20 characters of `[A-Za-z0-9]`, different from `previous`.
fn mint_version(rng: &mut dyn Rng, previous: Option<&Version>) -> Result<Version, RegistryError> {
    let mut text: String = (0..VERSION_LEN)
        .map(|_| {
            // Below 62, so the cast is lossless.
            let index = u8::try_from(rng.below(62)).unwrap_or(0);
            char::from(alphanumeric(index))
        })
        .collect();
    if previous.is_some_and(|p| p.as_str() == text) {
        // Only a generator that repeats itself gets here: change the last character, so that
        // the version still changes, without drawing again (which could loop forever).
        let last = text.pop().unwrap_or('a');
        text.push(if last == 'a' { 'b' } else { 'a' });
    }
    Ok(Version::new(text)?)
}

fn check_version(given: &Version, current: &Version) -> Result<(), RegistryError> {
    if given != current {
        return Err(RegistryError::VersionMismatch {
            given: given.clone(),
            current: current.clone(),
        });
    }
    Ok(())
}

/// The `index`-th character of `A-Za-z0-9` (0 to 61), which is also the start of the base64
/// alphabet.
fn alphanumeric(index: u8) -> u8 {
    match index {
        0..=25 => b'A' + index,
        26..=51 => b'a' + (index - 26),
        _ => b'0' + (index - 52).min(9),
    }
}

fn base64_digit(value: u32) -> char {
    // Masked to 6 bits, so the cast is lossless.
    match u8::try_from(value & 0x3f).unwrap_or(0) {
        62 => '+',
        63 => '/',
        index => char::from(alphanumeric(index)),
    }
}

fn base64_value(digit: u8) -> Option<u32> {
    let value = match digit {
        b'A'..=b'Z' => digit - b'A',
        b'a'..=b'z' => digit - b'a' + 26,
        b'0'..=b'9' => digit - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// The list token that resumes after `name`: its standard base64 with padding.
fn encode_token(name: &ChannelName) -> Result<NextToken, RegistryError> {
    let (mut text, mut acc, mut bits) = (String::new(), 0u32, 0u32);
    for byte in name.as_str().bytes() {
        (acc, bits) = ((acc << 8 | u32::from(byte)) & 0xffff, bits + 8);
        while bits >= 6 {
            bits -= 6;
            text.push(base64_digit(acc >> bits));
        }
    }
    if bits > 0 {
        text.push(base64_digit(acc << (6 - bits)));
    }
    while !text.len().is_multiple_of(4) {
        text.push('=');
    }
    Ok(NextToken::new(text)?)
}

/// The name a token issued by [`encode_token`] resumes after, or `None` when `token` is not
/// exactly what [`encode_token`] writes for some name.
fn decode_token(token: &NextToken) -> Option<ChannelName> {
    let (mut bytes, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for digit in token.as_str().trim_end_matches('=').bytes() {
        (acc, bits) = ((acc << 6 | base64_value(digit)?) & 0xffff, bits + 6);
        if bits >= 8 {
            bits -= 8;
            bytes.push(u8::try_from(acc >> bits & 0xff).ok()?);
        }
    }
    let name = ChannelName::new(String::from_utf8(bytes).ok()?).ok()?;
    (encode_token(&name).ok()? == *token).then_some(name)
}

#[cfg(test)]
mod tests;
