//! The connection lifecycle: open, established, close and detach, supersession, each
//! connection's one timer and its deadlines (idle, duration, GO_AWAY grace, lingering), and
//! the drain.

use std::borrow::Cow;
use std::time::Instant;

use kvs_signaling_proto::{ErrorType, PeerId, Role};

use super::{
    Channel, CloseReason, Conn, ConnId, Frame, Hub, Observation, OpenConnection, Output, Recipient,
    Refused, Standing, Timer,
};
use crate::throttle::Bucket;

const GO_AWAY: &str = r#"{"messageType":"GO_AWAY"}"#;

impl Hub {
    /// A connection opened. Refused connects get the service's error, which the caller sends
    /// as the HTTP answer to the upgrade request.
    pub fn handle_open(&mut self, now: Instant, open: OpenConnection) -> Result<ConnId, Refused> {
        let observed = self
            .observing
            .then(|| (open.channel_arn.clone(), open.role, open.client_id.clone()));
        let result = self.open(now, open);
        match &result {
            Ok(_) => self.counters.opened += 1,
            Err(error) => {
                self.counters.refused += 1;
                if let Some((channel, role, client_id)) = observed {
                    let error = error.clone();
                    self.observe(|_| {
                        Some(Observation::ConnectRefused {
                            channel,
                            role,
                            client_id: client_id.map(PeerId::from),
                            error,
                        })
                    });
                }
            }
        }
        result
    }

    fn open(&mut self, now: Instant, open: OpenConnection) -> Result<ConnId, Refused> {
        if self.draining {
            return Err(Refused::new(
                ErrorType::InternalFailure,
                "the server is shutting down; connect again",
            ));
        }
        let client_id = match (open.role, open.client_id) {
            (Role::Master, None) => None,
            (Role::Viewer, Some(id)) => Some(PeerId::from(id)),
            (Role::Master, Some(_)) => {
                return Err(Refused::new(
                    ErrorType::InvalidArgumentException,
                    "X-Amz-ClientId: a master connects without a client id",
                ));
            }
            (Role::Viewer, None) => {
                return Err(Refused::new(
                    ErrorType::InvalidArgumentException,
                    "X-Amz-ClientId: a viewer must give its client id",
                ));
            }
        };
        let channel_index =
            self.channel_for(now, &open.channel_arn, open.message_ttl, open.ttl_revision);
        let new_viewer = client_id
            .as_ref()
            .is_some_and(|id| !self.viewer_known(channel_index, id));
        let viewers = self.viewer_count(channel_index);
        let config = &self.config;
        let Some(channel) = self.channels.at_mut(channel_index) else {
            return Err(Refused::new(ErrorType::InternalFailure, "channel lost"));
        };
        let restored = open.restored.is_some();
        let refusal = match open.role {
            // A restored connection was counted where it first opened.
            _ if restored => None,
            Role::Master if !channel.master_connects.try_take(config.connect_rate, now) => {
                Some(format!(
                    "ConnectAsMaster: more than {} connects per second on this channel",
                    config.connect_rate.per_second
                ))
            }
            Role::Viewer if !channel.viewer_connects.try_take(config.connect_rate, now) => {
                Some(format!(
                    "ConnectAsViewer: more than {} connects per second on this channel",
                    config.connect_rate.per_second
                ))
            }
            Role::Viewer if new_viewer && viewers >= config.max_viewers_per_channel => {
                Some(format!(
                    "ConnectAsViewer: the channel already has {} viewers",
                    config.max_viewers_per_channel
                ))
            }
            _ => None,
        };
        if let Some(message) = refusal {
            self.release_channel_if_unused(now, channel_index);
            return Err(Refused::new(
                ErrorType::ClientLimitExceededException,
                message,
            ));
        }

        let config = &self.config;
        let (sdp_rate, ice_rate) = match open.role {
            Role::Master => (config.master_sdp_rate, config.master_ice_candidate_rate),
            Role::Viewer => (config.sdp_rate, config.ice_candidate_rate),
        };
        // A restored connection loses to any connection of its identity opened here: it is
        // older than all of them.
        let seq = if restored {
            0
        } else {
            self.next_conn_seq += 1;
            self.next_conn_seq
        };
        let opened = open
            .restored
            .and_then(|age| now.checked_sub(age))
            .unwrap_or(now);
        let conn = Conn {
            channel: channel_index,
            role: open.role,
            client_id,
            standing: Standing::Opening,
            seq,
            indications: open.indications,
            opened,
            last_activity: now,
            remote_addr: open.remote_addr,
            delivery_status: open.delivery_status,
            messages_in: 0,
            messages_out: 0,
            close_due: None,
            // From when it first opened: a restored connection's frames read since are
            // judged by their reading times.
            sdp: Bucket::full(sdp_rate, opened),
            ice: Bucket::full(ice_rate, opened),
            timer: None,
        };
        let (slot, generation) = self.conns.insert(conn);
        let id = ConnId { slot, generation };
        let Some(channel) = self.channels.at_mut(channel_index) else {
            return Err(Refused::new(ErrorType::InternalFailure, "channel lost"));
        };
        channel.members.insert(slot);
        self.schedule_conn(id);
        Ok(id)
    }

    /// Whether `id` is a viewer of the channel already, connected or opening: its connect
    /// takes no new viewer slot.
    pub(super) fn viewer_known(&self, channel_index: u32, id: &PeerId) -> bool {
        let Some(channel) = self.channels.at(channel_index) else {
            return false;
        };
        channel.viewers.contains(id.as_str())
            || self.opening_viewers(channel).any(|opening| opening == id)
    }

    /// Distinct viewer ids of the channel, connected or opening.
    fn viewer_count(&self, channel_index: u32) -> usize {
        let Some(channel) = self.channels.at(channel_index) else {
            return 0;
        };
        let mut extra: Vec<&PeerId> = self
            .opening_viewers(channel)
            .filter(|id| !channel.viewers.contains(id.as_str()))
            .collect();
        extra.sort();
        extra.dedup();
        channel.viewers.len() + extra.len()
    }

    /// The ids of the channel's viewers whose sockets are not up yet.
    fn opening_viewers<'a>(&'a self, channel: &'a Channel) -> impl Iterator<Item = &'a PeerId> {
        channel.members.iter().filter_map(|&slot| {
            let c = self.conns.at(slot)?;
            match c.standing {
                Standing::Opening => c.client_id.as_ref(),
                Standing::Current | Standing::Superseded(_) => None,
            }
        })
    }

    /// The socket of `conn`, which [`Hub::handle_open`] accepted, is up: the `101` is on the
    /// wire. It now takes the place of the older connection with the same identity (master,
    /// or viewer id), which gets nothing more and is closed after
    /// [`HubConfig::superseded_linger`](crate::HubConfig::superseded_linger), and receives
    /// what was held for it. A connection whose identity was taken meanwhile by one opened
    /// later is superseded at once. Until this call, a new connection displaces nobody: a
    /// client that drops in the middle of its handshake cannot evict a healthy connection.
    /// Unknown, closed or already established connections are ignored.
    pub fn handle_established(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.get(conn.slot, conn.generation) else {
            return;
        };
        if c.standing != Standing::Opening {
            return;
        }
        let (channel_index, seq) = (c.channel, c.seq);
        let client_id = c.client_id.clone();
        let Some(channel) = self.channels.at(channel_index) else {
            return;
        };
        let current = match &client_id {
            None => channel.master,
            Some(id) => channel.viewers.get(id.as_str()),
        };
        let current_seq = current
            .and_then(|cur| self.conns.get(cur.slot, cur.generation))
            .map(|cur| cur.seq);
        if current_seq.is_some_and(|newer| newer > seq) {
            // A later connect with the same identity is up already: this one lost.
            if let Some(c) = self.conns.get_mut(conn.slot, conn.generation) {
                c.standing = Standing::Superseded(now);
            }
            self.counters.superseded += 1;
            self.observe(|hub| {
                Some(Observation::Superseded {
                    channel: hub.arn_of(channel_index)?,
                    conn,
                    client_id: client_id.clone(),
                })
            });
            self.schedule_conn(conn);
            return;
        }
        let Some(channel) = self.channels.at_mut(channel_index) else {
            return;
        };
        let (previous, recipient) = match &client_id {
            None => (channel.master.replace(conn), Recipient::Master),
            Some(peer) => (
                channel.viewers.insert(peer.clone(), conn),
                Recipient::Viewer(peer.clone()),
            ),
        };
        // A viewer now owns its id: a SendAlexaOfferToMaster call waiting under the same id
        // would take its answers.
        let alexa = client_id
            .as_ref()
            .and_then(|peer| channel.alexa.remove(peer));
        if let Some(c) = self.conns.get_mut(conn.slot, conn.generation) {
            c.standing = Standing::Current;
        }
        self.observe(|hub| {
            let c = hub.conns.get(conn.slot, conn.generation)?;
            Some(Observation::Connected {
                channel: hub.arn_of(channel_index)?,
                conn,
                role: c.role,
                client_id: client_id.clone(),
                remote_addr: c.remote_addr,
            })
        });
        if let Some(previous) = previous
            && let Some(old) = self.conns.get_mut(previous.slot, previous.generation)
        {
            old.standing = Standing::Superseded(now);
            self.counters.superseded += 1;
            self.observe(|hub| {
                Some(Observation::Superseded {
                    channel: hub.arn_of(channel_index)?,
                    conn: previous,
                    client_id: client_id.clone(),
                })
            });
            self.schedule_conn(previous);
        }
        if let Some(request) = alexa {
            self.counters.alexa_failed += 1;
            self.outputs.push_back(Output::AlexaAnswer {
                request,
                result: Err(Refused::new(
                    ErrorType::InvalidArgumentException,
                    "SenderClientId: a viewer connected to the channel with this client id, \
                     and the master's messages to it are the viewer's",
                )),
            });
        }
        // A connection moved here from another hub (restored, `seq` 0) takes up the tracking
        // of what it sent there that is held here now.
        if seq == 0 {
            self.take_up_moved_tracking(channel_index, client_id.as_ref(), conn);
        }
        self.schedule_conn(conn);
        self.flush_pending(now, channel_index, &recipient, conn);
    }

    /// A connection's client closed it (or the socket failed, or its upgrade never
    /// finished). Unknown or already closed connections are ignored.
    pub fn handle_close(&mut self, now: Instant, conn: ConnId) {
        if self.detach(now, conn, None).is_some() {
            self.counters.closed_by_client += 1;
        }
    }

    /// A ping, pong or other control frame arrived: the connection is active.
    pub fn handle_keepalive(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(conn.slot, conn.generation) {
            c.last_activity = now;
        }
    }

    /// Forgets `conn`, releasing its identity if it still held it.
    fn detach(&mut self, now: Instant, conn: ConnId, reason: Option<CloseReason>) -> Option<Conn> {
        self.conns.get(conn.slot, conn.generation)?;
        let removed = self.conns.remove(conn.slot)?;
        self.observe(|hub| {
            Some(Observation::Closed {
                channel: hub.arn_of(removed.channel)?,
                conn,
                client_id: removed.client_id.clone(),
                reason,
            })
        });
        if let Some(key) = removed.timer {
            self.timers.remove(&key);
        }
        if let Some(channel) = self.channels.at_mut(removed.channel) {
            channel.members.remove(&conn.slot);
            if removed.standing == Standing::Current {
                match &removed.client_id {
                    None => {
                        if channel.master == Some(conn) {
                            channel.master = None;
                        }
                    }
                    Some(id) => channel.viewers.remove_if(id.as_str(), conn),
                }
            }
        }
        self.release_channel_if_unused(now, removed.channel);
        Some(removed)
    }

    /// Closes `conn` from the hub's side.
    pub(super) fn close(&mut self, now: Instant, conn: ConnId, reason: CloseReason) {
        if self.detach(now, conn, Some(reason)).is_some() {
            self.counters.closed_by_hub += 1;
            self.outputs.push_back(Output::Close { conn, reason });
        }
    }

    /// Schedules the one check of `conn`, at its earliest deadline.
    fn schedule_conn(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get(conn.slot, conn.generation) else {
            return;
        };
        let (at, _) = self.deadline(c);
        if let Some(old) = c.timer {
            self.timers.remove(&old);
        }
        let key = self.schedule(at, Timer::Conn(conn));
        if let Some(c) = self.conns.get_mut(conn.slot, conn.generation) {
            c.timer = Some(key);
        }
    }

    /// A connection's earliest deadline and what happens then. A superseded connection has
    /// only its lingering time (or an earlier close already due, as when draining).
    fn deadline(&self, c: &Conn) -> (Instant, Deadline) {
        let config = &self.config;
        let mut best = match c.standing {
            Standing::Superseded(since) => (
                since + config.superseded_linger,
                Deadline::Close(CloseReason::Superseded),
            ),
            Standing::Current | Standing::Opening => {
                (c.last_activity + config.idle_timeout, Deadline::Idle)
            }
        };
        let mut consider = |at: Instant, what: Deadline| {
            if at < best.0 {
                best = (at, what);
            }
        };
        match (c.close_due, c.standing) {
            (Some((at, reason)), _) => consider(at, Deadline::Close(reason)),
            // A client that handles GO_AWAY hears it a grace period before the cap; any
            // other is closed at the cap (1001), which every official client reconnects after.
            (None, Standing::Current) if c.indications => consider(
                c.opened + (config.max_connection_duration - config.go_away_grace),
                Deadline::GoAway,
            ),
            (None, Standing::Current | Standing::Opening) => consider(
                c.opened + config.max_connection_duration,
                Deadline::Close(CloseReason::MaxDuration),
            ),
            (None, Standing::Superseded(_)) => {}
        }
        best
    }

    pub(super) fn check_conn(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn.slot, conn.generation) else {
            return;
        };
        c.timer = None; // It just fired.
        let Some(c) = self.conns.get(conn.slot, conn.generation) else {
            return;
        };
        let (at, what) = self.deadline(c);
        if at > now {
            // Activity moved the deadline: check again then.
            self.schedule_conn(conn);
            return;
        }
        match what {
            Deadline::Idle => self.close(now, conn, CloseReason::IdleTimeout),
            Deadline::Close(reason) => {
                if reason == CloseReason::MaxDuration && c.close_due.is_none() {
                    self.counters.closed_without_go_away += 1;
                }
                self.close(now, conn, reason);
            }
            Deadline::GoAway => {
                self.go_away(now, conn, CloseReason::MaxDuration);
            }
        }
    }

    /// Sends GO_AWAY to `conn` and closes it a grace period later.
    fn go_away(&mut self, now: Instant, conn: ConnId, reason: CloseReason) {
        let grace = self.config.go_away_grace;
        let Some(c) = self.conns.get_mut(conn.slot, conn.generation) else {
            return;
        };
        let due = now + grace;
        match c.close_due {
            Some((at, _)) if at <= due => return,
            _ => c.close_due = Some((due, reason)),
        }
        if c.standing == Standing::Current {
            self.counters.go_aways += 1;
            self.outputs.push_back(Output::Deliver {
                conn,
                frame: Frame(Cow::Borrowed(GO_AWAY)),
            });
        }
        self.schedule_conn(conn);
    }

    /// Stops taking connections and closes every connection: one that handles GO_AWAY
    /// ([`OpenConnection::indications`]) gets it and is closed a grace period later; any other
    /// is closed at once with 1001 (going away), which every official client reconnects after.
    pub fn drain(&mut self, now: Instant) {
        self.draining = true;
        let conns: Vec<ConnId> = self
            .conns
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.value.is_some())
            .map(|(index, slot)| ConnId {
                slot: u32::try_from(index).unwrap_or(u32::MAX),
                generation: slot.generation,
            })
            .collect();
        self.go_away_connections(now, &conns);
    }

    /// Closes `conns` as [`Hub::drain`] closes every connection (GO_AWAY and a grace period
    /// to those that handle it, 1001 at once to the others), but goes on taking connections:
    /// a cluster node shutting down does this to its own sockets, while the sockets other
    /// nodes hold for its channels go on until the channels move. Unknown ids are ignored.
    pub fn go_away_connections(&mut self, now: Instant, conns: &[ConnId]) {
        for &conn in conns {
            let Some(c) = self.conns.get(conn.slot, conn.generation) else {
                continue;
            };
            if c.indications && c.standing == Standing::Current {
                self.go_away(now, conn, CloseReason::Drained);
            } else {
                self.counters.closed_without_go_away += 1;
                self.close(now, conn, CloseReason::Drained);
            }
        }
    }

    /// Whether [`Hub::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining
    }
}

/// What happens at a connection's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    Idle,
    GoAway,
    Close(CloseReason),
}
