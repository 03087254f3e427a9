//! The remote connections of this node's hubs: connections whose sockets other nodes hold,
//! named to those nodes by ids unique on this node.

use std::collections::{BTreeSet, HashMap};

use kvs_signaling_core::ConnId;
use kvs_signaling_proto::ChannelArn;

/// A connection of a local hub whose socket another node holds.
#[derive(Debug, Clone)]
pub(super) struct Remote {
    pub(super) node: String,
    pub(super) link: u64,
    pub(super) arn: ChannelArn,
    /// Its hub's shard, and its id there (ids are per hub: each shard's run on their own).
    pub(super) shard: usize,
    pub(super) conn: ConnId,
}

/// The remote connections of this node's hubs, by the id other nodes know them by: one
/// sequence for the node, since each shard's hub numbers its connections on its own.
#[derive(Debug, Default)]
pub(super) struct Remotes {
    by_wire: HashMap<u64, Remote>,
    by_conn: HashMap<(usize, ConnId), u64>,
    next: u64,
}

impl Remotes {
    /// Records `remote`; its id for other nodes.
    pub(super) fn insert(&mut self, remote: Remote) -> u64 {
        self.next += 1;
        let wire = self.next;
        self.by_conn.insert((remote.shard, remote.conn), wire);
        self.by_wire.insert(wire, remote);
        wire
    }

    /// The remote connection node `from` holds the socket of, by its id.
    pub(super) fn get(&self, wire: u64, from: &str) -> Option<&Remote> {
        self.by_wire.get(&wire).filter(|remote| remote.node == from)
    }

    /// The id and the remote connection of `conn` of shard `shard`.
    pub(super) fn of_conn(&self, shard: usize, conn: ConnId) -> Option<(u64, &Remote)> {
        let wire = *self.by_conn.get(&(shard, conn))?;
        Some((wire, self.by_wire.get(&wire)?))
    }

    pub(super) fn remove(&mut self, wire: u64) -> Option<Remote> {
        let remote = self.by_wire.remove(&wire)?;
        self.by_conn.remove(&(remote.shard, remote.conn));
        Some(remote)
    }

    /// Removes and returns the remote connections `which` picks.
    pub(super) fn take(&mut self, which: impl Fn(&Remote) -> bool) -> Vec<Remote> {
        let wires: Vec<u64> = self
            .by_wire
            .iter()
            .filter(|(_, remote)| which(remote))
            .map(|(wire, _)| *wire)
            .collect();
        wires
            .into_iter()
            .filter_map(|wire| self.remove(wire))
            .collect()
    }

    /// How many there are.
    pub(super) fn len(&self) -> usize {
        self.by_wire.len()
    }

    /// The nodes holding sockets of `arn`.
    pub(super) fn nodes_of(&self, arn: &ChannelArn) -> BTreeSet<String> {
        self.by_wire
            .values()
            .filter(|remote| remote.arn == *arn)
            .map(|remote| remote.node.clone())
            .collect()
    }
}
