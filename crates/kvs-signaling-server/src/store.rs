//! Where channels are kept: in memory, or in a redb database in the data directory, so that
//! channels and tags survive a restart and a `kill -9`.
//!
//! redb is a maintained, pure-Rust embedded key-value store with ACID transactions: a commit is
//! durable when it returns, and a crash mid-write leaves the previous state. Each channel is
//! one record (its name to its JSON), so a control-plane call writes one small record.

use std::path::{Path, PathBuf};

use kvs_signaling_core::{Change, ChannelRecord, RegistrySnapshot};
use kvs_signaling_proto::ChannelName;
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};

const CHANNELS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("channels");

/// The file in the data directory.
const FILE: &str = "channels.redb";

/// The store failed: the change was not saved.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(String);

impl StoreError {
    fn new(what: &str, err: impl std::fmt::Display) -> Self {
        Self(format!("{what}: {err}"))
    }

    /// The thread saving the change did not finish.
    pub(crate) fn stopped(err: &impl std::fmt::Display) -> Self {
        Self::new("the save did not finish", err)
    }
}

/// Channel persistence.
#[derive(Debug)]
pub(crate) enum Store {
    /// Nothing survives the process.
    Memory,
    /// A redb database.
    Redb { db: Database, path: PathBuf },
    /// A disk that fails or stalls, for the tests.
    #[cfg(test)]
    Faulty(faulty::Faulty),
}

impl Store {
    /// The store in `data_dir` (created when missing), or memory only.
    pub(crate) fn open(data_dir: Option<&Path>) -> Result<Self, StoreError> {
        let Some(dir) = data_dir else {
            return Ok(Self::Memory);
        };
        std::fs::create_dir_all(dir)
            .map_err(|err| StoreError::new(&format!("creating {}", dir.display()), err))?;
        let path = dir.join(FILE);
        let db = Database::create(&path)
            .map_err(|err| StoreError::new(&format!("opening {}", path.display()), err))?;
        // Make sure the table exists, so that reading an empty store works.
        let tx = db
            .begin_write()
            .map_err(|err| StoreError::new("starting a write", err))?;
        tx.open_table(CHANNELS)
            .map_err(|err| StoreError::new("creating the channels table", err))?;
        tx.commit()
            .map_err(|err| StoreError::new("committing", err))?;
        Ok(Self::Redb { db, path })
    }

    /// Where the data lives, if anywhere.
    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            Self::Memory => None,
            Self::Redb { path, .. } => Some(path),
            #[cfg(test)]
            Self::Faulty(_) => Some(Path::new("/faulty")),
        }
    }

    /// Every saved channel.
    pub(crate) fn load(&self) -> Result<RegistrySnapshot, StoreError> {
        let mut snapshot = RegistrySnapshot::default();
        let Self::Redb { db, path } = self else {
            return Ok(snapshot);
        };
        let tx = db
            .begin_read()
            .map_err(|err| StoreError::new("starting a read", err))?;
        let table = tx
            .open_table(CHANNELS)
            .map_err(|err| StoreError::new("opening the channels table", err))?;
        for entry in table
            .iter()
            .map_err(|err| StoreError::new("reading channels", err))?
        {
            let (name, record) = entry.map_err(|err| StoreError::new("reading a channel", err))?;
            let channel: ChannelRecord = serde_json::from_slice(record.value()).map_err(|err| {
                StoreError::new(
                    &format!("channel {} in {} is damaged", name.value(), path.display()),
                    err,
                )
            })?;
            snapshot.channels.push(channel);
        }
        Ok(snapshot)
    }

    /// Saves a staged control-plane change; it is durable when this returns. Blocks on the
    /// disk: call it where blocking is allowed.
    pub(crate) fn save(&self, change: &Change) -> Result<(), StoreError> {
        #[cfg(test)]
        if let Self::Faulty(faulty) = self {
            return faulty.save();
        }
        match change {
            Change::Put { record, .. } => self.put(record),
            Change::Remove { record } => self.remove(record.name()),
            other => Err(StoreError::new(
                "saving",
                format!("a change this store does not know: {other:?}"),
            )),
        }
    }

    /// Saves `channel`, replacing what was saved under its name.
    pub(crate) fn put(&self, channel: &ChannelRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(channel).map_err(|err| StoreError::new("encoding", err))?;
        self.write("writing the channel", |table| {
            table
                .insert(channel.name().as_str(), json.as_slice())
                .map(drop)
        })
    }

    /// Forgets the channel `name`.
    pub(crate) fn remove(&self, name: &ChannelName) -> Result<(), StoreError> {
        self.write("removing the channel", |table| {
            table.remove(name.as_str()).map(drop)
        })
    }

    /// Runs `change` on the channels table in one write transaction and commits it; in memory,
    /// does nothing.
    fn write(
        &self,
        what: &str,
        change: impl FnOnce(
            &mut redb::Table<'_, &'static str, &'static [u8]>,
        ) -> Result<(), redb::StorageError>,
    ) -> Result<(), StoreError> {
        let Self::Redb { db, .. } = self else {
            return Ok(());
        };
        let tx = db
            .begin_write()
            .map_err(|err| StoreError::new("starting a write", err))?;
        {
            let mut table = tx
                .open_table(CHANNELS)
                .map_err(|err| StoreError::new("opening the channels table", err))?;
            change(&mut table).map_err(|err| StoreError::new(what, err))?;
        }
        tx.commit()
            .map_err(|err| StoreError::new("committing", err))
    }
}

#[cfg(test)]
pub(crate) mod faulty {
    //! A store whose saves fail, or wait until the test lets them go on.

    use std::sync::{Arc, Condvar, Mutex, PoisonError};

    use super::StoreError;

    /// What the disk does.
    #[derive(Debug, Default)]
    pub(crate) struct Gate {
        /// Saves begun.
        pub(crate) entered: Mutex<u32>,
        pub(crate) entered_changed: Condvar,
        /// Whether saves may finish.
        pub(crate) open: Mutex<bool>,
        pub(crate) opened: Condvar,
    }

    impl Gate {
        /// Lets every waiting and later save finish.
        pub(crate) fn release(&self) {
            *self.open.lock().unwrap_or_else(PoisonError::into_inner) = true;
            self.opened.notify_all();
        }

        /// Saves begun so far.
        pub(crate) fn entered(&self) -> u32 {
            *self.entered.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// A store that fails every save, or holds every save at its gate.
    #[derive(Debug, Clone)]
    pub(crate) enum Faulty {
        /// Every save fails, as on a full or read-only disk.
        Failing,
        /// Every save waits until the gate opens, as on a disk that stalls.
        Gated(Arc<Gate>),
    }

    impl Faulty {
        pub(crate) fn save(&self) -> Result<(), StoreError> {
            match self {
                Self::Failing => Err(StoreError::new("committing", "No space left on device")),
                Self::Gated(gate) => {
                    *gate.entered.lock().unwrap_or_else(PoisonError::into_inner) += 1;
                    gate.entered_changed.notify_all();
                    let mut open = gate.open.lock().unwrap_or_else(PoisonError::into_inner);
                    while !*open {
                        open = gate
                            .opened
                            .wait(open)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                    Ok(())
                }
            }
        }
    }
}
