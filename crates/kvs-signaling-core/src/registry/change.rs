//! The control plane's writes, in two steps: each operation is first *staged*, which checks it
//! and computes the channel it leaves without changing the registry, then *committed*. A
//! server saves the staged [`Change`] in between, so that a change is durable before anyone
//! sees it, and a failed save leaves the registry as it was.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use kvs_signaling_proto::{
    ChannelName, ChannelStatus, ChannelType, CreateSignalingChannelRequest,
    CreateSignalingChannelResponse, DeleteSignalingChannelRequest, EmptyResponse, TagKey,
    TagResourceRequest, TagValue, UntagResourceRequest, UpdateSignalingChannelRequest, Version,
};

use super::{ChannelRecord, Registry, RegistryError, check_version, mint_version};

/// A change to one channel, staged by a `stage_*` operation: save it, then
/// [commit](Registry::commit) it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// The channel is now this record (created, updated or tagged).
    Put {
        /// The channel as it is after the change.
        record: ChannelRecord,
        /// The version it had before, `None` when it is new: the commit checks that nothing
        /// changed it meanwhile.
        replaces: Option<Version>,
    },
    /// The channel is deleted.
    Remove {
        /// The channel as it was.
        record: ChannelRecord,
    },
}

impl Change {
    /// The channel changed: as it is after a put, as it was before a removal.
    pub fn record(&self) -> &ChannelRecord {
        match self {
            Self::Put { record, .. } | Self::Remove { record } => record,
        }
    }

    /// The name of the channel changed.
    pub fn name(&self) -> &ChannelName {
        &self.record().name
    }
}

impl Registry {
    /// Stages CreateSignalingChannel at wall-clock time `now`: the channel is `ACTIVE` at once.
    pub fn stage_create(
        &mut self,
        now: SystemTime,
        request: &CreateSignalingChannelRequest,
    ) -> Result<(CreateSignalingChannelResponse, Change), RegistryError> {
        let name = &request.channel_name;
        match request.channel_type {
            None | Some(ChannelType::SingleMaster) => {}
            Some(channel_type) => {
                return Err(RegistryError::UnsupportedChannelType { channel_type });
            }
        }
        if self.channels.contains_key(name) {
            return Err(RegistryError::NameInUse { name: name.clone() });
        }
        if self.channels.len() >= self.config.max_channels {
            return Err(RegistryError::ChannelLimitExceeded {
                max: self.config.max_channels,
            });
        }
        // Last value wins; the proto decoder already capped the list at 50 entries.
        let tags: BTreeMap<TagKey, TagValue> = request
            .tags
            .iter()
            .flatten()
            .map(|tag| (tag.key.clone(), tag.value.clone()))
            .collect();
        if tags.len() > self.config.max_tags_per_resource {
            return Err(RegistryError::TooManyTags {
                max: self.config.max_tags_per_resource,
                found: tags.len(),
            });
        }
        let message_ttl = request
            .single_master_configuration
            .as_ref()
            .and_then(|config| config.message_ttl_seconds)
            .unwrap_or(self.config.default_message_ttl);

        let now_millis = now.duration_since(UNIX_EPOCH).map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
        self.retired.retain(|_, millis| *millis >= now_millis);
        let creation_millis = match self.retired.get(name) {
            Some(&retired) => retired.saturating_add(1),
            None => now_millis,
        };
        let arn = self.config.mint_arn(name, creation_millis)?;
        let record = ChannelRecord {
            name: name.clone(),
            arn: arn.clone(),
            channel_type: ChannelType::SingleMaster,
            status: ChannelStatus::Active,
            message_ttl,
            version: mint_version(self.rng.as_mut(), None)?,
            creation_millis,
            tags,
            revision: 0,
        };
        let mut response = CreateSignalingChannelResponse::new();
        response.channel_arn = Some(arn);
        Ok((
            response,
            Change::Put {
                record,
                replaces: None,
            },
        ))
    }

    /// Stages UpdateSignalingChannel: the new message TTL, if any, and a new version.
    pub fn stage_update(
        &mut self,
        request: &UpdateSignalingChannelRequest,
    ) -> Result<(EmptyResponse, Change), RegistryError> {
        let current = self.found("ChannelARN", &request.channel_arn)?;
        check_version(&request.current_version, &current.version)?;
        let mut record = current.clone();
        if let Some(ttl) = request
            .single_master_configuration
            .as_ref()
            .and_then(|config| config.message_ttl_seconds)
        {
            record.message_ttl = ttl;
        }
        Ok((EmptyResponse::new(), self.put(record, true)?))
    }

    /// Stages DeleteSignalingChannel: the channel goes at once; the change names it, so that
    /// the caller can close its connections once committed.
    pub fn stage_delete(
        &mut self,
        request: &DeleteSignalingChannelRequest,
    ) -> Result<(EmptyResponse, Change), RegistryError> {
        let channel = self.found("ChannelARN", &request.channel_arn)?;
        if let Some(given) = &request.current_version {
            check_version(given, &channel.version)?;
        }
        Ok((
            EmptyResponse::new(),
            Change::Remove {
                record: channel.clone(),
            },
        ))
    }

    /// Stages TagResource: the tags are added, overwriting existing keys. Nothing is staged
    /// when the channel would end up with more than 50 tags.
    pub fn stage_tag_resource(
        &mut self,
        request: &TagResourceRequest,
    ) -> Result<(EmptyResponse, Change), RegistryError> {
        let mut record = self.found("ResourceARN", &request.resource_arn)?.clone();
        record.tags.extend(
            request
                .tags
                .iter()
                .map(|tag| (tag.key.clone(), tag.value.clone())),
        );
        if record.tags.len() > self.config.max_tags_per_resource {
            return Err(RegistryError::TooManyTags {
                max: self.config.max_tags_per_resource,
                found: record.tags.len(),
            });
        }
        Ok((EmptyResponse::new(), self.put(record, false)?))
    }

    /// Stages UntagResource: the keys are removed; keys the channel does not have are ignored.
    pub fn stage_untag_resource(
        &mut self,
        request: &UntagResourceRequest,
    ) -> Result<(EmptyResponse, Change), RegistryError> {
        let mut record = self.found("ResourceARN", &request.resource_arn)?.clone();
        for key in &request.tag_key_list {
            record.tags.remove(key);
        }
        Ok((EmptyResponse::new(), self.put(record, false)?))
    }

    /// Applies a staged change. It must be the next change to the registry: a change staged
    /// against a version that another commit replaced meanwhile is refused (callers serialize
    /// their writes, so this guards a bug, not a race).
    pub fn commit(&mut self, change: Change) -> Result<(), RegistryError> {
        let name = change.name().clone();
        let current = self.channels.get(&name).map(|channel| &channel.version);
        let expected = match &change {
            Change::Put { replaces, .. } => replaces.as_ref(),
            Change::Remove { record } => Some(&record.version),
        };
        if current != expected {
            return Err(RegistryError::StaleChange { name });
        }
        match change {
            Change::Put { record, .. } => {
                self.channels.insert(name, record);
            }
            Change::Remove { record } => {
                self.channels.remove(&name);
                self.retired.insert(name, record.creation_millis);
            }
        }
        Ok(())
    }

    /// CreateSignalingChannel, staged and committed at once (for callers that keep the
    /// registry in memory only).
    pub fn create(
        &mut self,
        now: SystemTime,
        request: &CreateSignalingChannelRequest,
    ) -> Result<CreateSignalingChannelResponse, RegistryError> {
        let (response, change) = self.stage_create(now, request)?;
        self.commit(change)?;
        Ok(response)
    }

    /// UpdateSignalingChannel, staged and committed at once.
    pub fn update(
        &mut self,
        request: &UpdateSignalingChannelRequest,
    ) -> Result<EmptyResponse, RegistryError> {
        let (response, change) = self.stage_update(request)?;
        self.commit(change)?;
        Ok(response)
    }

    /// DeleteSignalingChannel, staged and committed at once: returns the removed channel, so
    /// that the caller can close its connections; the HTTP answer is an [`EmptyResponse`].
    pub fn delete(
        &mut self,
        request: &DeleteSignalingChannelRequest,
    ) -> Result<ChannelRecord, RegistryError> {
        let (_, change) = self.stage_delete(request)?;
        let record = change.record().clone();
        self.commit(change)?;
        Ok(record)
    }

    /// TagResource, staged and committed at once.
    pub fn tag_resource(
        &mut self,
        request: &TagResourceRequest,
    ) -> Result<EmptyResponse, RegistryError> {
        let (response, change) = self.stage_tag_resource(request)?;
        self.commit(change)?;
        Ok(response)
    }

    /// UntagResource, staged and committed at once.
    pub fn untag_resource(
        &mut self,
        request: &UntagResourceRequest,
    ) -> Result<EmptyResponse, RegistryError> {
        let (response, change) = self.stage_untag_resource(request)?;
        self.commit(change)?;
        Ok(response)
    }

    /// The channel `arn` names, or the not-found error about the request member `field`.
    fn found(
        &self,
        field: &'static str,
        arn: &kvs_signaling_proto::ChannelArn,
    ) -> Result<&ChannelRecord, RegistryError> {
        self.channel_by_arn(arn)
            .ok_or_else(|| RegistryError::not_found(field, arn))
    }

    /// `record`, an existing channel changed, with the next revision, and a new version when
    /// its configuration changed (tags do not change the version, as in the service).
    fn put(
        &mut self,
        mut record: ChannelRecord,
        new_version: bool,
    ) -> Result<Change, RegistryError> {
        let replaces = record.version.clone();
        if new_version {
            record.version = mint_version(self.rng.as_mut(), Some(&replaces))?;
        }
        record.revision = record.revision.saturating_add(1);
        Ok(Change::Put {
            record,
            replaces: Some(replaces),
        })
    }
}
