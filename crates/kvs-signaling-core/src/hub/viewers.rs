//! The viewers of a channel: at most a handful, found by id on the routing hot path.

use kvs_signaling_proto::PeerId;

use super::ConnId;

/// How many bytes of an id the inline key holds: enough for the ids most SDKs generate, so
/// that a lookup compares contiguous memory and never follows a pointer to the id's text.
const INLINE: usize = 22;

/// An id's length and first bytes, compared before the id itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    len: u16,
    head: [u8; INLINE],
}

impl Key {
    fn of(id: &str) -> Self {
        let mut head = [0; INLINE];
        let bytes = id.as_bytes();
        let n = bytes.len().min(INLINE);
        if let (Some(dst), Some(src)) = (head.get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
        Self {
            len: u16::try_from(bytes.len()).unwrap_or(u16::MAX),
            head,
        }
    }

    /// Whether the key holds the whole id, so that equal keys mean equal ids.
    fn is_whole(self) -> bool {
        usize::from(self.len) <= INLINE
    }
}

#[derive(Debug)]
struct Viewer {
    key: Key,
    conn: ConnId,
    id: PeerId,
}

/// How many viewers' keys and connections are mirrored inside the channel itself: the
/// service's default viewer limit.
const MIRRORED: usize = 10;

/// The current connection of each viewer id of a channel, in the order they connected.
///
/// A vector searched by inline keys: a channel has ten viewers by default, and a linear scan of
/// a few cache lines beats a tree whose every comparison follows a pointer. The first ten keys
/// and connections are also mirrored inline, in the channel's own memory, so that routing a
/// message to a viewer with a short id touches no other allocation; the mirror is rebuilt on
/// every change, which only connects and closes make.
#[derive(Debug)]
pub(super) struct Viewers {
    mirrored_keys: [Key; MIRRORED],
    mirrored_conns: [ConnId; MIRRORED],
    mirrored: u8,
    entries: Vec<Viewer>,
}

impl Default for Viewers {
    fn default() -> Self {
        Self {
            mirrored_keys: [Key {
                len: 0,
                head: [0; INLINE],
            }; MIRRORED],
            mirrored_conns: [ConnId {
                slot: u32::MAX,
                generation: u32::MAX,
            }; MIRRORED],
            mirrored: 0,
            entries: Vec::new(),
        }
    }
}

impl Viewers {
    fn position(&self, id: &str) -> Option<usize> {
        let key = Key::of(id);
        self.entries
            .iter()
            .position(|v| v.key == key && (key.is_whole() || v.id.as_str() == id))
    }

    fn remirror(&mut self) {
        let n = self.entries.len().min(MIRRORED);
        for ((key, conn), viewer) in self
            .mirrored_keys
            .iter_mut()
            .zip(&mut self.mirrored_conns)
            .zip(&self.entries)
        {
            *key = viewer.key;
            *conn = viewer.conn;
        }
        self.mirrored = u8::try_from(n).unwrap_or(0);
    }

    /// The connection of viewer `id`.
    pub(super) fn get(&self, id: &str) -> Option<ConnId> {
        let key = Key::of(id);
        if key.is_whole() {
            // Equal keys mean equal ids: answer from the mirror when it holds the viewer.
            let mirrored = usize::from(self.mirrored);
            let found = self
                .mirrored_keys
                .iter()
                .take(mirrored)
                .position(|k| *k == key)
                .and_then(|i| self.mirrored_conns.get(i).copied());
            if found.is_some() || self.entries.len() <= mirrored {
                return found;
            }
        }
        self.position(id)
            .and_then(|i| self.entries.get(i))
            .map(|v| v.conn)
    }

    /// Whether viewer `id` is connected.
    pub(super) fn contains(&self, id: &str) -> bool {
        self.position(id).is_some()
    }

    /// Makes `conn` the connection of `id`, returning the one it replaces.
    pub(super) fn insert(&mut self, id: PeerId, conn: ConnId) -> Option<ConnId> {
        let previous = match self
            .position(id.as_str())
            .and_then(|i| self.entries.get_mut(i))
        {
            Some(viewer) => Some(std::mem::replace(&mut viewer.conn, conn)),
            None => {
                self.entries.push(Viewer {
                    key: Key::of(id.as_str()),
                    conn,
                    id,
                });
                None
            }
        };
        self.remirror();
        previous
    }

    /// Forgets `id` if `conn` is still its connection.
    pub(super) fn remove_if(&mut self, id: &str, conn: ConnId) {
        if let Some(i) = self.position(id)
            && self.entries.get(i).is_some_and(|v| v.conn == conn)
        {
            self.entries.remove(i);
            self.remirror();
        }
    }

    /// Connected viewers.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every viewer's connection, in the order they connected.
    pub(super) fn conns(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.entries.iter().map(|v| v.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(slot: u32) -> ConnId {
        ConnId {
            slot,
            generation: 0,
        }
    }

    #[test]
    fn short_and_long_ids_sharing_a_head() {
        let mut viewers = Viewers::default();
        let long_a = "ConsumerViewer_1681692777_a";
        let long_b = "ConsumerViewer_1681692777_b";
        assert_eq!(viewers.insert(PeerId::new(long_a).unwrap(), conn(1)), None);
        assert_eq!(viewers.insert(PeerId::new(long_b).unwrap(), conn(2)), None);
        assert_eq!(viewers.insert(PeerId::new("v").unwrap(), conn(3)), None);
        assert_eq!(viewers.get(long_a), Some(conn(1)));
        assert_eq!(viewers.get(long_b), Some(conn(2)));
        assert_eq!(viewers.get("v"), Some(conn(3)));
        assert_eq!(viewers.get("ConsumerViewer_1681692777_c"), None);
        assert_eq!(viewers.get("w"), None);
        assert_eq!(
            viewers.insert(PeerId::new("v").unwrap(), conn(4)),
            Some(conn(3))
        );
        viewers.remove_if("v", conn(3)); // No longer its connection: kept.
        assert_eq!(viewers.get("v"), Some(conn(4)));
        viewers.remove_if(long_a, conn(1));
        assert!(!viewers.contains(long_a));
        assert_eq!(viewers.conns().collect::<Vec<_>>(), [conn(2), conn(4)]);
        assert_eq!(viewers.len(), 2);
    }

    #[test]
    fn a_reconnecting_viewer_is_found_at_its_new_connection() {
        let mut viewers = Viewers::default();
        viewers.insert(PeerId::new("v0").unwrap(), conn(3));
        viewers.insert(PeerId::new("v1").unwrap(), conn(4));
        assert_eq!(
            viewers.insert(PeerId::new("v0").unwrap(), conn(6)),
            Some(conn(3))
        );
        assert_eq!(viewers.get("v0"), Some(conn(6)));
    }

    #[test]
    fn more_viewers_than_the_mirror_holds() {
        let mut viewers = Viewers::default();
        for i in 0..25 {
            assert_eq!(
                viewers.insert(PeerId::new(format!("v{i}")).unwrap(), conn(i)),
                None
            );
        }
        for i in 0..25 {
            assert_eq!(viewers.get(&format!("v{i}")), Some(conn(i)), "v{i}");
        }
        assert_eq!(viewers.get("v25"), None);
        viewers.remove_if("v0", conn(0));
        assert_eq!(viewers.get("v0"), None);
        assert_eq!(viewers.get("v10"), Some(conn(10)), "moved into the mirror");
        assert_eq!(viewers.get("v24"), Some(conn(24)));
        assert_eq!(viewers.conns().count(), 24);
    }
}
