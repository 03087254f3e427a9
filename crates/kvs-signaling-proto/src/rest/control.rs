//! The control plane's bodies: channels, their endpoints, tags and media storage.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::JsonBody;
use super::shared::{
    ChannelInfo, ChannelNameCondition, ChannelType, MediaStorageConfiguration,
    ResourceEndpointListItem, SingleMasterChannelEndpointConfiguration, SingleMasterConfiguration,
    check_create_tags, check_tag_keys, check_tags,
};
use crate::error::{Error, Field};
use crate::ids::{ChannelArn, ChannelName, NextToken, Version};
use crate::json::FromJson;
use crate::number::MaxResults;
use crate::tags::{Tag, TagKey, TagValue};

json_object! {
    /// `POST /createSignalingChannel`.
    pub struct CreateSignalingChannelRequest {
        required {
            /// The new channel's name.
            channel_name: ChannelName = "ChannelName",
        }
        optional {
            /// Its type; `SINGLE_MASTER` when absent.
            channel_type: ChannelType = "ChannelType",
            /// Its message TTL; 60 seconds when absent.
            single_master_configuration: SingleMasterConfiguration = "SingleMasterConfiguration",
            /// 0 to 50 tags.
            tags: Vec<Tag> = "Tags" => check_create_tags,
        }
    }
}

json_object! {
    /// The answer to CreateSignalingChannel.
    pub struct CreateSignalingChannelResponse {
        required {}
        optional {
            /// The new channel's ARN.
            channel_arn: ChannelArn = "ChannelARN",
        }
    }
}

json_object! {
    /// `POST /describeSignalingChannel`: by name or by ARN.
    pub struct DescribeSignalingChannelRequest {
        required {}
        optional {
            /// The channel's name.
            channel_name: ChannelName = "ChannelName",
            /// The channel's ARN.
            channel_arn: ChannelArn = "ChannelARN",
        }
    }
}

json_object! {
    /// The answer to DescribeSignalingChannel.
    pub struct DescribeSignalingChannelResponse {
        required {}
        optional {
            /// The channel.
            channel_info: ChannelInfo = "ChannelInfo",
        }
    }
}

json_object! {
    /// `POST /listSignalingChannels`.
    pub struct ListSignalingChannelsRequest {
        required {}
        optional {
            /// The page size, 1 to 10000; 500 when absent.
            max_results: MaxResults = "MaxResults",
            /// Where the previous page ended.
            next_token: NextToken = "NextToken",
            /// A filter on names.
            channel_name_condition: ChannelNameCondition = "ChannelNameCondition",
        }
    }
}

json_object! {
    /// The answer to ListSignalingChannels.
    pub struct ListSignalingChannelsResponse {
        required {}
        optional {
            /// The channels of this page.
            channel_info_list: Vec<ChannelInfo> = "ChannelInfoList",
            /// Present when more pages follow.
            next_token: NextToken = "NextToken",
        }
    }
}

json_object! {
    /// `POST /updateSignalingChannel`.
    pub struct UpdateSignalingChannelRequest {
        required {
            /// The channel.
            channel_arn: ChannelArn = "ChannelARN",
            /// The version the caller read.
            current_version: Version = "CurrentVersion",
        }
        optional {
            /// The new message TTL.
            single_master_configuration: SingleMasterConfiguration = "SingleMasterConfiguration",
        }
    }
}

json_object! {
    /// `POST /deleteSignalingChannel`.
    pub struct DeleteSignalingChannelRequest {
        required {
            /// The channel.
            channel_arn: ChannelArn = "ChannelARN",
        }
        optional {
            /// The version the caller read; when absent, the latest is deleted.
            current_version: Version = "CurrentVersion",
        }
    }
}

json_object! {
    /// `POST /getSignalingChannelEndpoint`.
    pub struct GetSignalingChannelEndpointRequest {
        required {
            /// The channel.
            channel_arn: ChannelArn = "ChannelARN",
        }
        optional {
            /// Which endpoints, for which role.
            single_master_channel_endpoint_configuration:
                SingleMasterChannelEndpointConfiguration = "SingleMasterChannelEndpointConfiguration",
        }
    }
}

json_object! {
    /// The answer to GetSignalingChannelEndpoint.
    pub struct GetSignalingChannelEndpointResponse {
        required {}
        optional {
            /// One endpoint per protocol asked for.
            resource_endpoint_list: Vec<ResourceEndpointListItem> = "ResourceEndpointList",
        }
    }
}

json_object! {
    /// `POST /TagResource`.
    pub struct TagResourceRequest {
        required {
            /// The channel.
            resource_arn: ChannelArn = "ResourceARN",
            /// 1 to 50 tags; existing keys are overwritten.
            tags: Vec<Tag> = "Tags" => check_tags,
        }
        optional {}
    }
}

json_object! {
    /// `POST /UntagResource`.
    pub struct UntagResourceRequest {
        required {
            /// The channel.
            resource_arn: ChannelArn = "ResourceARN",
            /// 1 to 50 keys; unknown keys are ignored.
            tag_key_list: Vec<TagKey> = "TagKeyList" => check_tag_keys,
        }
        optional {}
    }
}

json_object! {
    /// `POST /ListTagsForResource`.
    pub struct ListTagsForResourceRequest {
        required {
            /// The channel.
            resource_arn: ChannelArn = "ResourceARN",
        }
        optional {
            /// Where the previous page ended.
            next_token: NextToken = "NextToken",
        }
    }
}

json_object! {
    /// The answer to ListTagsForResource: the tags as a map, not a list.
    pub struct ListTagsForResourceResponse {
        required {}
        optional {
            /// Present when more pages follow.
            next_token: NextToken = "NextToken",
            /// Key to value.
            tags: BTreeMap<TagKey, TagValue> = "Tags",
        }
    }
}

json_object! {
    /// `POST /describeMediaStorageConfiguration`.
    pub struct DescribeMediaStorageConfigurationRequest {
        required {}
        optional {
            /// The channel's name.
            channel_name: ChannelName = "ChannelName",
            /// The channel's ARN.
            channel_arn: ChannelArn = "ChannelARN",
        }
    }
}

json_object! {
    /// The answer to DescribeMediaStorageConfiguration.
    pub struct DescribeMediaStorageConfigurationResponse {
        required {}
        optional {
            /// The channel's media storage.
            media_storage_configuration: MediaStorageConfiguration = "MediaStorageConfiguration",
        }
    }
}

json_object! {
    /// The empty answer of UpdateSignalingChannel, DeleteSignalingChannel, TagResource and
    /// UntagResource: `{}`.
    pub struct EmptyResponse {
        required {}
        optional {}
    }
}
