//! The names of the cluster's keys, all under one prefix.

pub(crate) use super::connection::{Connector, Redis, connect};

/// The names of the cluster's keys, all under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// A channel's hash: its record (`rec`, JSON), version (`ver`), owner and epoch.
    pub(crate) fn channel(&self, arn: &str) -> String {
        format!("{}:chan:{arn}", self.prefix)
    }

    /// A channel name's key, holding its ARN: written with `SET NX`, so a name is taken once.
    pub(crate) fn name(&self, name: &str) -> String {
        format!("{}:name:{name}", self.prefix)
    }

    /// Every channel name, in a sorted set (for listing and the account's limit).
    pub(crate) fn names(&self) -> String {
        format!("{}:names", self.prefix)
    }

    /// The nodes, scored by their last heartbeat (Redis `TIME`, milliseconds).
    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// Each node's digest of the settings every node must share (`/health` compares them).
    pub(crate) fn settings(&self) -> String {
        format!("{}:settings", self.prefix)
    }

    /// Each node's range of formats (`OLDEST-NEWEST`, see `format`), published with its
    /// heartbeats.
    pub(crate) fn formats(&self) -> String {
        format!("{}:formats", self.prefix)
    }

    /// The nodes whose consoles watch the cluster's events, scored by their last heartbeat
    /// while they do.
    pub(crate) fn watchers(&self) -> String {
        format!("{}:watchers", self.prefix)
    }

    /// The nodes that fell behind their inboxes, scored by their last heartbeat while they
    /// are.
    pub(crate) fn behind(&self) -> String {
        format!("{}:behind", self.prefix)
    }

    /// The nodes some node took for dead, until they heartbeat again.
    pub(crate) fn buried(&self) -> String {
        format!("{}:buried", self.prefix)
    }

    /// A node's inbox: the stream other nodes write its messages to.
    pub(crate) fn inbox(&self, node: &str) -> String {
        format!("{}:inbox:{node}", self.prefix)
    }

    /// A channel's held messages, for its next owner: one field per recipient.
    pub(crate) fn held(&self, arn: &str) -> String {
        format!("{}:held:{arn}", self.prefix)
    }

    /// The counter of ownership epochs.
    pub(crate) fn epochs(&self) -> String {
        format!("{}:epoch", self.prefix)
    }

    /// The prefix of every key, for scripts that build keys themselves.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
}
