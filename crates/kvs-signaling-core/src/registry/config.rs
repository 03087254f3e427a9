//! [`RegistryConfig`], the registry's settings, and [`RegistryConfigError`].

use kvs_signaling_proto::limits::MAX_TAGS_PER_RESOURCE;
use kvs_signaling_proto::{ChannelArn, ChannelName, MessageTtlSeconds};

use super::RegistryError;

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

    pub(super) fn validate(&self) -> Result<(), RegistryConfigError> {
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

    pub(super) fn mint_arn(
        &self,
        name: &ChannelName,
        millis: u64,
    ) -> Result<ChannelArn, RegistryError> {
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
