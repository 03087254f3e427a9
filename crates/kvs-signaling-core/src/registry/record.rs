//! [`ChannelRecord`], a channel as the registry keeps it, and [`RegistrySnapshot`], what it
//! persists.

use std::collections::BTreeMap;

use kvs_signaling_proto::{
    ChannelArn, ChannelInfo, ChannelName, ChannelStatus, ChannelType, MessageTtlSeconds,
    SingleMasterConfiguration, TagKey, TagValue, Timestamp, Version,
};
use serde::{Deserialize, Serialize};

/// A signaling channel as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRecord {
    pub(super) name: ChannelName,
    pub(super) arn: ChannelArn,
    pub(super) channel_type: ChannelType,
    pub(super) status: ChannelStatus,
    pub(super) message_ttl: MessageTtlSeconds,
    pub(super) version: Version,
    pub(super) creation_millis: u64,
    pub(super) tags: BTreeMap<TagKey, TagValue>,
    /// How many times the channel was changed since it was made: the order of its
    /// configurations, which its version (random) does not give.
    #[serde(default)]
    pub(super) revision: u64,
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

/// Everything a [`Registry`](crate::Registry) holds, to persist and
/// [restore](crate::Registry::restore).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegistrySnapshot {
    /// The channels, sorted by name.
    pub channels: Vec<ChannelRecord>,
}
