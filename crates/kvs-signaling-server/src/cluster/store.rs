//! The control plane in Redis. A channel is the hash `PREFIX:chan:ARN` (its record as JSON and
//! its version), its name the key `PREFIX:name:NAME` (holding the ARN, written with `SET NX`),
//! and every name a member of `PREFIX:names`. Each write is one Lua script, a compare-and-set
//! on the version, so that two nodes racing on the same CreateSignalingChannel,
//! UpdateSignalingChannel or DeleteSignalingChannel give exactly the answers one server would:
//! the loser's write fails its check, is staged again on what the winner wrote, and gets the
//! error one server would have given it.

#![allow(
    clippy::result_large_err,
    reason = "the error of these helpers is the ready HTTP answer, returned once per call"
)]

use kvs_signaling_core::{
    Change, ChannelRecord, Registry, RegistryError, RegistrySnapshot, SplitMix64,
};
use kvs_signaling_proto::ErrorType;

use super::Cluster;
use crate::channels::{Scope, registry_error};
use crate::http::{HttpResponse, rest_error};

/// Creates a channel: its name is free and the account below its limit, else nothing is
/// written.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 'EXISTS' end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 'LIMIT' end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('HSET', KEYS[3], 'rec', ARGV[3], 'ver', ARGV[4])
return 'OK'
";

/// Replaces a channel's record if its version is still the one the change was staged on.
const PUT: &str = r"
local current = redis.call('HGET', KEYS[1], 'ver')
if not current then return 'MISSING' end
if current ~= ARGV[1] then return 'CHANGED' end
redis.call('HSET', KEYS[1], 'rec', ARGV[2], 'ver', ARGV[3])
return 'OK'
";

/// Deletes a channel, and the messages held for it, if its version is still the one the
/// change was staged on.
const REMOVE: &str = r"
local current = redis.call('HGET', KEYS[1], 'ver')
if not current then return 'MISSING' end
if current ~= ARGV[1] then return 'CHANGED' end
redis.call('DEL', KEYS[1], KEYS[4])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
redis.call('ZREM', KEYS[3], ARGV[2])
return 'OK'
";

/// Every channel's record, in name order.
const ALL: &str = r"
local names = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for _, name in ipairs(names) do
  local arn = redis.call('GET', ARGV[1] .. ':name:' .. name)
  if arn then
    local rec = redis.call('HGET', ARGV[1] .. ':chan:' .. arn, 'rec')
    if rec then table.insert(out, rec) end
  end
end
return out
";

/// Attempts of a write that keeps losing its compare-and-set to other writers.
const MAX_ATTEMPTS: usize = 16;

impl Cluster {
    fn unavailable(&self, err: &redis::RedisError) -> HttpResponse {
        rest_error(
            ErrorType::InternalFailure,
            format!(
                "the cluster's Redis at {} did not answer: {err}; try again",
                self.where_
            ),
        )
    }

    fn damaged(&self, what: &str, err: &impl std::fmt::Display) -> HttpResponse {
        rest_error(
            ErrorType::InternalFailure,
            format!("{what} in the cluster's Redis is damaged: {err}"),
        )
    }

    /// A channel record from its JSON, if it is in a format this node reads.
    fn parse(&self, what: &str, json: &str) -> Result<ChannelRecord, HttpResponse> {
        match super::format::of_json(json) {
            Some(format) if !super::format::readable(format) => Err(rest_error(
                ErrorType::InternalFailure,
                super::format::unknown(&format!("{what} in the cluster's Redis"), format),
            )),
            _ => serde_json::from_str(json).map_err(|err| self.damaged(what, &err)),
        }
    }

    /// A channel record as stored: its JSON, with its format.
    fn stamped(&self, record: &ChannelRecord) -> Result<String, HttpResponse> {
        #[derive(serde::Serialize)]
        struct Stamped<'a> {
            v: u32,
            #[serde(flatten)]
            record: &'a ChannelRecord,
        }
        serde_json::to_string(&Stamped {
            v: super::format::FIRST,
            record,
        })
        .map_err(|err| self.damaged("a record", &err))
    }

    async fn record(&self, arn: &str) -> Result<Option<ChannelRecord>, HttpResponse> {
        let key = self.keys.channel(arn);
        let json: Option<String> = self
            .retrying(|mut redis| {
                let key = key.clone();
                async move {
                    redis::cmd("HGET")
                        .arg(key)
                        .arg("rec")
                        .query_async(&mut redis)
                        .await
                }
            })
            .await
            .map_err(|err| self.unavailable(&err))?;
        json.map(|json| self.parse(&format!("channel {arn}"), &json))
            .transpose()
    }

    async fn arn_of(&self, name: &str) -> Result<Option<String>, HttpResponse> {
        let key = self.keys.name(name);
        self.retrying(|mut redis| {
            let key = key.clone();
            async move { redis::cmd("GET").arg(key).query_async(&mut redis).await }
        })
        .await
        .map_err(|err| self.unavailable(&err))
    }

    /// The records `scope` names, as they are in Redis now.
    async fn load(&self, scope: Scope<'_>) -> Result<Vec<ChannelRecord>, HttpResponse> {
        let by_name = |name: &str| {
            let name = name.to_owned();
            async move {
                match self.arn_of(&name).await? {
                    Some(arn) => self.record(&arn).await,
                    None => Ok(None),
                }
            }
        };
        let found = match scope {
            Scope::New => None,
            Scope::Arn(arn) => self.record(arn.as_str()).await?,
            Scope::Either(Some(name), _) => by_name(name.as_str()).await?,
            Scope::Either(None, Some(arn)) => self.record(arn.as_str()).await?,
            Scope::Either(None, None) => None,
            Scope::All => {
                let all: Vec<String> = self
                    .retrying(|mut redis| async move {
                        redis::Script::new(ALL)
                            .key(self.keys.names())
                            .arg(self.keys.prefix())
                            .invoke_async(&mut redis)
                            .await
                    })
                    .await
                    .map_err(|err| self.unavailable(&err))?;
                return all
                    .iter()
                    .map(|json| self.parse("a channel", json))
                    .collect();
            }
        };
        Ok(found.into_iter().collect())
    }

    /// A registry holding `records` and nothing else, to stage or read on.
    fn scratch(&self, records: Vec<ChannelRecord>) -> Result<Registry, HttpResponse> {
        let mut snapshot = RegistrySnapshot::default();
        snapshot.channels = records;
        // Versions are minted from a seed this node draws at the edge.
        let seed: [u8; 8] = ring::rand::generate(&ring::rand::SystemRandom::new())
            .map(|random| random.expose())
            .unwrap_or_default();
        Registry::restore(
            self.registry_config.clone(),
            SplitMix64::new(u64::from_le_bytes(seed)),
            snapshot,
        )
        .map_err(|err| self.damaged("a channel", &err))
    }

    /// Runs `read` on the channels of `scope` as they are in Redis now.
    pub(crate) async fn read<R>(
        &self,
        scope: Scope<'_>,
        read: impl FnOnce(&Registry) -> R,
    ) -> Result<R, HttpResponse> {
        let records = self.load(scope).await?;
        Ok(read(&self.scratch(records)?))
    }

    /// How many channels there are.
    pub(crate) async fn count(&self) -> Result<usize, HttpResponse> {
        self.retrying(|mut redis| async move {
            redis::cmd("ZCARD")
                .arg(self.keys.names())
                .query_async(&mut redis)
                .await
        })
        .await
        .map_err(|err| self.unavailable(&err))
    }

    /// A write: loaded, staged on a scratch registry, and written with a compare-and-set;
    /// staged again when another writer changed the channel meanwhile.
    pub(crate) async fn write<R>(
        &self,
        scope: Scope<'_>,
        stage: impl Fn(&mut Registry) -> Result<(R, Change), RegistryError>,
    ) -> Result<(R, ChannelRecord), HttpResponse> {
        for _ in 0..MAX_ATTEMPTS {
            let mut registry = self.scratch(self.load(scope).await?)?;
            let (response, change) = stage(&mut registry).map_err(|err| registry_error(&err))?;
            let mut redis = self.redis.clone();
            let outcome: String = match &change {
                Change::Put {
                    record,
                    replaces: None,
                } => {
                    let json = self.stamped(record)?;
                    redis::Script::new(CREATE)
                        .key(self.keys.name(record.name().as_str()))
                        .key(self.keys.names())
                        .key(self.keys.channel(record.arn().as_str()))
                        .arg(record.name().as_str())
                        .arg(record.arn().as_str())
                        .arg(json)
                        .arg(record.version().as_str())
                        .arg(self.registry_config.max_channels)
                        .invoke_async(&mut redis)
                        .await
                        .map_err(|err| self.unavailable(&err))?
                }
                Change::Put {
                    record,
                    replaces: Some(version),
                } => {
                    let json = self.stamped(record)?;
                    redis::Script::new(PUT)
                        .key(self.keys.channel(record.arn().as_str()))
                        .arg(version.as_str())
                        .arg(json)
                        .arg(record.version().as_str())
                        .invoke_async(&mut redis)
                        .await
                        .map_err(|err| self.unavailable(&err))?
                }
                Change::Remove { record } => redis::Script::new(REMOVE)
                    .key(self.keys.channel(record.arn().as_str()))
                    .key(self.keys.name(record.name().as_str()))
                    .key(self.keys.names())
                    .key(self.keys.held(record.arn().as_str()))
                    .arg(record.version().as_str())
                    .arg(record.name().as_str())
                    .arg(record.arn().as_str())
                    .invoke_async(&mut redis)
                    .await
                    .map_err(|err| self.unavailable(&err))?,
                _ => {
                    return Err(rest_error(
                        ErrorType::InternalFailure,
                        "a change this server does not know how to save",
                    ));
                }
            };
            match outcome.as_str() {
                "OK" => return Ok((response, change.record().clone())),
                "EXISTS" => {
                    return Err(registry_error(&RegistryError::NameInUse {
                        name: change.name().clone(),
                    }));
                }
                "LIMIT" => {
                    return Err(registry_error(&RegistryError::ChannelLimitExceeded {
                        max: self.registry_config.max_channels,
                    }));
                }
                // Another node changed or deleted the channel since it was read: stage again
                // on what it wrote.
                _ => {}
            }
        }
        Err(rest_error(
            ErrorType::ClientLimitExceededException,
            "the channel is being changed by other calls; try again",
        ))
    }
}
