//! [`RegistryError`], why a control-plane request failed, and [`RestoreError`], why a
//! snapshot could not be restored.

use std::fmt;

use kvs_signaling_proto::{
    ChannelArn, ChannelName, ChannelStatus, ChannelType, ErrorType, Field, NextToken, Version,
};

use super::RegistryConfigError;

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

    pub(super) fn not_found(field: &'static str, value: &impl fmt::Display) -> Self {
        Self::NotFound {
            field: Field::new(field),
            value: value.to_string(),
        }
    }
}

/// A [`RegistrySnapshot`](crate::RegistrySnapshot) that does not describe a valid registry.
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
