//! What one access key may do: on which channels, in which roles.
//!
//! The real service decides this with IAM policies; a self-hosted server needs far less. A key
//! is limited to channel names (exact, or a prefix ending in `*`) and to roles:
//!
//! - `master`: ConnectAsMaster;
//! - `viewer`: ConnectAsViewer and SendAlexaOfferToMaster;
//! - `admin`: CreateSignalingChannel, UpdateSignalingChannel, DeleteSignalingChannel,
//!   TagResource and UntagResource.
//!
//! Every role may read the channels in its scope: DescribeSignalingChannel,
//! ListSignalingChannels (which lists only those), GetSignalingChannelEndpoint,
//! ListTagsForResource, DescribeMediaStorageConfiguration and GetIceServerConfig. A refusal is
//! the service's AccessDeniedException, in the words of IAM's.

use std::fmt;

use kvs_signaling_proto::Operation;

/// A role a key may act in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Grant {
    /// Connect as the channel's master.
    Master,
    /// Connect as a viewer, and send Alexa offers.
    Viewer,
    /// Create, update, delete and tag channels.
    Admin,
}

impl Grant {
    /// Every role.
    pub const ALL: [Self; 3] = [Self::Master, Self::Viewer, Self::Admin];

    /// The role's name in configuration: `master`, `viewer` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Viewer => "viewer",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Grant {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|grant| grant.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not a role: use master, viewer or admin"))
    }
}

/// An action a request asks for, named as IAM names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// A REST operation.
    Rest(Operation),
    /// The WebSocket connect without a client id.
    ConnectAsMaster,
    /// The WebSocket connect with a client id.
    ConnectAsViewer,
}

impl Action {
    /// The role that allows this action, or `None` for reads, which every role may do.
    fn needs(self) -> Option<Grant> {
        match self {
            Self::ConnectAsMaster => Some(Grant::Master),
            Self::ConnectAsViewer | Self::Rest(Operation::SendAlexaOfferToMaster) => {
                Some(Grant::Viewer)
            }
            Self::Rest(
                Operation::CreateSignalingChannel
                | Operation::UpdateSignalingChannel
                | Operation::DeleteSignalingChannel
                | Operation::TagResource
                | Operation::UntagResource,
            ) => Some(Grant::Admin),
            Self::Rest(_) => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rest(operation) => write!(f, "kinesisvideo:{operation:?}"),
            Self::ConnectAsMaster => f.write_str("kinesisvideo:ConnectAsMaster"),
            Self::ConnectAsViewer => f.write_str("kinesisvideo:ConnectAsViewer"),
        }
    }
}

/// The channels and roles one access key is limited to. The default allows everything.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Scope {
    /// Channel names the key may touch: an exact name, or a prefix followed by `*` (`*` alone
    /// for every channel).
    pub channels: Vec<String>,
    /// The roles the key may act in.
    pub grants: Vec<Grant>,
}

impl Default for Scope {
    fn default() -> Self {
        Self {
            channels: vec!["*".to_owned()],
            grants: Grant::ALL.to_vec(),
        }
    }
}

impl Scope {
    /// A scope of `channels` and `grants`. Patterns are checked: `*` may only end one.
    pub fn new(channels: Vec<String>, grants: Vec<Grant>) -> Result<Self, String> {
        for pattern in &channels {
            let stem = pattern.strip_suffix('*').unwrap_or(pattern);
            if stem.contains('*') {
                return Err(format!(
                    "channel pattern {pattern:?}: `*` may only end a pattern"
                ));
            }
            if pattern.is_empty() {
                return Err("channel pattern: must not be empty".to_owned());
            }
        }
        Ok(Self { channels, grants })
    }

    /// Whether the key may act on the channel called `name` at all.
    pub fn covers(&self, name: &str) -> bool {
        self.channels
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == pattern,
            })
    }

    /// Whether the key may do `action` on the channel called `name`; the refusal names both.
    pub fn check(&self, access_key_id: &str, action: Action, name: &str) -> Result<(), String> {
        let role = action.needs();
        if self.covers(name) && role.is_none_or(|role| self.grants.contains(&role)) {
            return Ok(());
        }
        Err(format!(
            "User: {access_key_id} is not authorized to perform: {action} on channel {name}{}",
            match role {
                Some(role) if !self.grants.contains(&role) => {
                    format!(" (the key lacks the {} role)", role.as_str())
                }
                _ => " (the channel is outside the key's channels)".to_owned(),
            }
        ))
    }
}

/// A verified caller whose key is limited: who it is, and its scope.
#[derive(Debug)]
pub(crate) struct Caller<'a> {
    pub(crate) access_key_id: String,
    pub(crate) scope: &'a Scope,
}

impl Caller<'_> {
    /// [`Scope::check`] for this caller.
    pub(crate) fn check(&self, action: Action, name: &str) -> Result<(), String> {
        self.scope.check(&self.access_key_id, action, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(channels: &[&str], grants: &[Grant]) -> Scope {
        Scope::new(
            channels.iter().map(|c| (*c).to_owned()).collect(),
            grants.to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn patterns_match_exact_names_and_prefixes() {
        let s = scope(&["door", "cam-*"], &Grant::ALL);
        assert!(s.covers("door"));
        assert!(!s.covers("doorbell"));
        assert!(s.covers("cam-"));
        assert!(s.covers("cam-7"));
        assert!(!s.covers("cam"));
        assert!(scope(&["*"], &[]).covers("anything"));
        assert!(!scope(&[], &Grant::ALL).covers("anything"));
    }

    #[test]
    fn star_inside_a_pattern_is_refused() {
        let err = Scope::new(vec!["a*b".to_owned()], vec![]).unwrap_err();
        assert!(err.contains("\"a*b\""), "{err}");
        assert!(Scope::new(vec![String::new()], vec![]).is_err());
    }

    #[test]
    fn roles_gate_connects_alexa_and_changes_but_not_reads() {
        let viewer = scope(&["*"], &[Grant::Viewer]);
        assert!(viewer.check("K", Action::ConnectAsViewer, "c").is_ok());
        assert!(
            viewer
                .check("K", Action::Rest(Operation::SendAlexaOfferToMaster), "c")
                .is_ok()
        );
        assert!(
            viewer
                .check("K", Action::Rest(Operation::GetIceServerConfig), "c")
                .is_ok()
        );
        let err = viewer.check("K", Action::ConnectAsMaster, "c").unwrap_err();
        assert_eq!(
            err,
            "User: K is not authorized to perform: kinesisvideo:ConnectAsMaster on channel c \
             (the key lacks the master role)"
        );
        for operation in [
            Operation::CreateSignalingChannel,
            Operation::UpdateSignalingChannel,
            Operation::DeleteSignalingChannel,
            Operation::TagResource,
            Operation::UntagResource,
        ] {
            assert!(viewer.check("K", Action::Rest(operation), "c").is_err());
        }
        let master = scope(&["*"], &[Grant::Master]);
        assert!(master.check("K", Action::ConnectAsViewer, "c").is_err());
        assert!(
            master
                .check("K", Action::Rest(Operation::SendAlexaOfferToMaster), "c")
                .is_err()
        );
    }

    #[test]
    fn channels_outside_the_scope_are_refused_even_for_reads() {
        let s = scope(&["mine-*"], &Grant::ALL);
        assert!(
            s.check(
                "K",
                Action::Rest(Operation::DescribeSignalingChannel),
                "mine-1"
            )
            .is_ok()
        );
        let err = s
            .check(
                "K",
                Action::Rest(Operation::DescribeSignalingChannel),
                "yours",
            )
            .unwrap_err();
        assert!(err.contains("outside the key's channels"), "{err}");
    }

    #[test]
    fn grants_parse_from_their_names() {
        for grant in Grant::ALL {
            assert_eq!(grant.as_str().parse::<Grant>(), Ok(grant));
        }
        assert!("root".parse::<Grant>().unwrap_err().contains("\"root\""));
    }
}
