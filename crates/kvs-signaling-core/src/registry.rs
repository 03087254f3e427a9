//! Control-plane semantics: the channel registry. See [`Registry`].

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;

use kvs_signaling_proto::{
    ChannelArn, ChannelName, ChannelStatus, ChannelType, DescribeMediaStorageConfigurationRequest,
    DescribeMediaStorageConfigurationResponse, DescribeSignalingChannelRequest,
    DescribeSignalingChannelResponse, ListSignalingChannelsRequest, ListSignalingChannelsResponse,
    ListTagsForResourceRequest, ListTagsForResourceResponse, MediaStorageConfiguration,
    MediaStorageStatus, Version,
};

use crate::rng::Rng;

mod change;
mod config;
mod error;
mod record;
mod token;

pub use change::Change;
pub use config::{RegistryConfig, RegistryConfigError};
pub use error::{RegistryError, RestoreError};
pub use record::{ChannelRecord, RegistrySnapshot};
use token::{decode_token, encode_token};

/// The length of the versions the registry mints.
const VERSION_LEN: usize = 20;

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

#[cfg(test)]
mod tests;
