//! The control plane's channels, wherever they are kept: a [`Registry`] in this process
//! (persisted in memory or redb), or, in cluster mode, Redis, which every node reads and
//! writes. Either way core's `Registry` decides the semantics: a cluster node loads the
//! channels an operation concerns into a scratch registry, stages the change there, and
//! writes it back with a compare-and-set, so that two nodes racing give exactly the answers
//! one server would.

#![allow(
    clippy::result_large_err,
    reason = "the error of these helpers is the ready HTTP answer, returned once per call"
)]

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kvs_signaling_core::{Change, ChannelRecord, Registry, RegistryError};
use kvs_signaling_proto::{ChannelArn, ChannelName, ErrorType};

use crate::http::{HttpResponse, rest_error};

/// Which channels an operation reads: in cluster mode, what to load.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// The channel with this ARN.
    Arn(&'a ChannelArn),
    /// The channel named by name or ARN, whichever is given.
    Either(Option<&'a ChannelName>, Option<&'a ChannelArn>),
    /// Every channel (listing).
    All,
    /// None (creating: uniqueness and the account's limit are checked where the channel is
    /// written).
    New,
}

/// A failing disk fails every write: one line per period says so.
static NOT_SAVED: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(std::time::Duration::from_secs(10));

/// The service's answer for a registry's refusal.
pub(crate) fn registry_error(err: &RegistryError) -> HttpResponse {
    rest_error(err.error_type(), err.to_string())
}

/// The channels of a server.
#[derive(Debug)]
pub(crate) enum Channels {
    /// In this process.
    Local(Box<Local>),
    /// In Redis, shared by the nodes of a cluster.
    Cluster(Arc<crate::cluster::Cluster>),
}

/// The channels of a single server: a registry, saved to the store before each change is
/// committed.
#[derive(Debug)]
pub(crate) struct Local {
    pub(crate) registry: Mutex<Registry>,
    /// Held by every write from its staging to its commit: writes are rare, and one at a
    /// time each stages against the state the previous one committed.
    writes: tokio::sync::Mutex<()>,
    pub(crate) store: Arc<crate::store::Store>,
}

impl Local {
    pub(crate) fn new(registry: Registry, store: Arc<crate::store::Store>) -> Self {
        Self {
            registry: Mutex::new(registry),
            writes: tokio::sync::Mutex::new(()),
            store,
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-changed: every method
        // checks before it changes anything.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A write: `stage` decides it on the registry without changing it; the change is saved
    /// (in the store's own thread, outside the registry's lock, which every connect takes)
    /// and only then committed, so that nobody sees a change that is not durable, and a
    /// failed save changes nothing.
    async fn write<R>(
        &self,
        stage: impl FnOnce(&mut Registry) -> Result<(R, Change), RegistryError>,
    ) -> Result<(R, ChannelRecord), HttpResponse> {
        let _one_at_a_time = self.writes.lock().await;
        let (response, change) = stage(&mut self.registry()).map_err(|err| registry_error(&err))?;
        let store = Arc::clone(&self.store);
        let saving = change.clone();
        let saved = if store.path().is_some() {
            tokio::task::spawn_blocking(move || store.save(&saving))
                .await
                .unwrap_or_else(|err| Err(crate::store::StoreError::stopped(&err)))
        } else {
            store.save(&saving)
        };
        if let Err(err) = saved {
            let name = change.name();
            if let Some(suppressed) = NOT_SAVED.check() {
                tracing::error!(%err, channel = %name, suppressed, "a control-plane change was not saved");
            }
            return Err(rest_error(
                ErrorType::InternalFailure,
                format!("the change to channel {name} could not be saved, and was not made: {err}"),
            ));
        }
        let record = change.record().clone();
        self.registry()
            .commit(change)
            .map_err(|err| registry_error(&err))?;
        Ok((response, record))
    }
}

impl Channels {
    /// Runs `read` on a registry holding (at least) the channels of `scope`.
    pub(crate) async fn read<R>(
        &self,
        scope: Scope<'_>,
        read: impl FnOnce(&Registry) -> R,
    ) -> Result<R, HttpResponse> {
        match self {
            Self::Local(local) => Ok(read(&local.registry())),
            Self::Cluster(cluster) => cluster.read(scope, read).await,
        }
    }

    /// A control-plane write, staged by `stage` on a registry holding the channels of
    /// `scope`: the answer and the channel as the change left it (as it was, for a
    /// deletion).
    pub(crate) async fn write<R>(
        &self,
        scope: Scope<'_>,
        stage: impl Fn(&mut Registry) -> Result<(R, Change), RegistryError>,
    ) -> Result<(R, ChannelRecord), HttpResponse> {
        match self {
            Self::Local(local) => local.write(stage).await,
            Self::Cluster(cluster) => cluster.write(scope, stage).await,
        }
    }

    /// The channel with this ARN: its record, or `None` when it does not exist.
    pub(crate) async fn by_arn(
        &self,
        arn: &ChannelArn,
    ) -> Result<Option<ChannelRecord>, HttpResponse> {
        self.read(Scope::Arn(arn), |registry| {
            registry.channel_by_arn(arn).cloned()
        })
        .await
    }

    /// How many channels there are.
    pub(crate) async fn count(&self) -> Result<usize, HttpResponse> {
        match self {
            Self::Local(local) => Ok(local.registry().len()),
            Self::Cluster(cluster) => cluster.count().await,
        }
    }
}
