//! What a node hears: events of its bridged sockets (to their owners), outputs of its hubs for
//! remote connections (to the sockets' nodes), and messages from other nodes. Each side checks
//! the other's word against what it knows: a frame for a connection the owner does not know is
//! answered `Gone`, a delivery or a close from a node that is not the socket's owner is refused.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use kvs_signaling_core::{AlexaOffer, ConnId, Frame, Refused};
use kvs_signaling_proto::{ChannelArn, ErrorType, MessagePayload, MessageTtlSeconds, PeerId};
use kvs_transport_tokio::{BridgeEvent, CloseCommand, RemoteOutput, RemoteOutputKind, ShardHandle};
use tokio::sync::mpsc;

use super::remotes::Remote;
use super::route::{Link, MOVING_QUEUE, Owner, Router, VERDICT_TIMEOUT, lock};
use super::wire::{Msg, OpenParams, Verdict};

/// A connection opened in this node's hub for another node's socket, not yet up.
#[derive(Debug)]
pub(super) struct Accepted {
    /// Its id for the socket's node.
    pub(super) wire: u64,
    shard: usize,
    conn: ConnId,
}

impl Router {
    /// What a bridged socket did: to its owner (or, while its channel moves, held).
    pub(super) async fn bridged(&self, event: BridgeEvent) {
        tracing::trace!(?event, "from a bridged socket");
        match event {
            // The owner counts the socket up from its verdict.
            BridgeEvent::Established(_) => {}
            BridgeEvent::Frame(conn, text, read_at) => {
                let at = super::wire::unix_ms_of(read_at);
                self.bridged_frame(conn.to_raw(), text, at).await;
            }
            BridgeEvent::Keepalive(conn) => {
                let to = lock(&self.links)
                    .get(&conn.to_raw())
                    .filter(|link| link.moving.is_none())
                    .map(|link| (link.owner.clone(), link.conn));
                if let Some((owner, owner_conn)) = to {
                    let msg = Msg::Keepalive { conn: owner_conn };
                    self.to_owner(conn.to_raw(), &owner, msg).await;
                }
            }
            BridgeEvent::Closed(conn) => {
                let link = lock(&self.links).remove(&conn.to_raw());
                // A socket whose channel moves is not known at the next owner yet: its open
                // there is closed when its verdict comes. What it sent meanwhile is lost with
                // it, and counted.
                match link {
                    Some(Link {
                        moving: Some(held), ..
                    }) => {
                        self.stats
                            .lost_moving
                            .fetch_add(held.len() as u64, Ordering::Relaxed);
                    }
                    Some(link) => self.closed_to_owner(&link).await,
                    None => {}
                }
            }
            BridgeEvent::Acked {
                conn,
                token,
                written,
            } => {
                let link = lock(&self.links).get(&conn.to_raw()).cloned();
                if let Some(link) = link {
                    let msg = Msg::Acked {
                        conn: link.conn,
                        token,
                        written,
                    };
                    self.to_owner(conn.to_raw(), &link.owner, msg).await;
                }
            }
            _ => {}
        }
    }

    /// What shard `shard`'s hub sends a remote connection: to the node that holds its socket.
    pub(super) async fn to_remote(&self, shard: usize, output: RemoteOutput) {
        let (wire, remote) = {
            let mut remotes = lock(&self.remotes);
            let Some((wire, remote)) = remotes
                .of_conn(shard, output.conn)
                .map(|(wire, remote)| (wire, remote.clone()))
            else {
                return;
            };
            if matches!(output.kind, RemoteOutputKind::Close(_)) {
                remotes.remove(wire);
            }
            (wire, remote)
        };
        let msg = match output.kind {
            RemoteOutputKind::Frame { frame, token } => Msg::Deliver {
                link: remote.link,
                conn: wire,
                frame: frame.into_string(),
                token,
            },
            RemoteOutputKind::Close(close) => Msg::Close {
                link: remote.link,
                conn: wire,
                code: close.code,
                reason: close.reason.to_owned(),
            },
            _ => return,
        };
        self.send(&remote.node, msg).await;
    }

    /// An open from node `from` that waited `waited` milliseconds in this node's inbox,
    /// longer than [`super::route::OPEN_MAX_AGE_MS`]: refused, and counted.
    pub(super) async fn stale_open(&self, from: &str, req: u64, waited: u64) {
        self.stats.stale_opens.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = STALE_OPEN.check() {
            tracing::warn!(
                from,
                waited_ms = waited,
                suppressed,
                "refused a connect that waited too long in this node's inbox (this node is \
                 behind)"
            );
        }
        let verdict = refusal(Refused::new(
            ErrorType::InternalFailure,
            format!(
                "the connect waited {waited} ms for the channel's node, which is behind; \
                 connect again"
            ),
        ));
        self.send(from, Msg::Verdict { req, verdict }).await;
    }

    /// Tells the owner of `link`, taken out of the table, that its socket is closed; this
    /// node without waiting for room in its queue to itself (the task that empties it may be
    /// what the caller holds up).
    pub(super) async fn closed_to_owner(&self, link: &Link) {
        let closed = Msg::Closed { conn: link.conn };
        if link.owner == self.cluster.node {
            self.send_self_detached([closed]);
        } else {
            self.send(&link.owner, closed).await;
        }
    }

    /// What bridged socket `link_id` tells its owner `owner`: as [`Router::send`] to another
    /// node; to this node, never waiting for room in its queue to itself (see
    /// [`Router::overloaded`]).
    async fn to_owner(&self, link_id: u64, owner: &str, msg: Msg) {
        if owner != self.cluster.node {
            self.send(owner, msg).await;
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(msg)) = self.loopback.try_send(msg) {
            // A ping is not worth keeping; an ack is, ahead of the close (else its frame
            // would be held again, and delivered twice).
            let unsent = (!matches!(msg, Msg::Keepalive { .. })).then_some(msg);
            self.overloaded(link_id, unsent);
        }
    }

    /// This node's queue to itself is full, with what bridged socket `link_id` has to send it
    /// (a socket of one of this node's channels that a move left bridged). The task that
    /// forwards what bridged sockets do never waits for room there: the one task that empties
    /// that queue may be waiting for room in the bridge's orders (to write to a bridged
    /// socket), and the bridge for room in its events, which this task forwards. The socket
    /// is closed instead (1008: its client connects again, to a connection of this node's
    /// own), and its connection here closed as if its client had closed it, after `unsent`
    /// (what found the queue full: a frame, an ack); counted with the sockets shed for an
    /// overloaded owner. Acks the socket's writes make after this are lost: the hub holds
    /// their frames again, and delivers them again to the client's next connection.
    fn overloaded(&self, link_id: u64, unsent: Option<Msg>) {
        let Some(link) = lock(&self.links).remove(&link_id) else {
            return;
        };
        self.stats.shed.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = OVERLOADED.check() {
            tracing::warn!(
                suppressed,
                "this node's queue to itself is full: closing a socket of one of its channels \
                 that a move left bridged"
            );
        }
        match &link.moving {
            // Not known at the next owner yet: what it holds is lost, and counted.
            Some(held) => {
                let frame = u64::from(matches!(unsent, Some(Msg::Frame { .. })));
                self.stats
                    .lost_moving
                    .fetch_add(held.len() as u64 + frame, Ordering::Relaxed);
            }
            None => {
                let closed = Msg::Closed { conn: link.conn };
                self.send_self_detached(unsent.into_iter().chain([closed]));
            }
        }
        self.bridge.close_detached(
            ConnId::from_raw(link_id),
            CloseCommand::new(1008, "the channel's node is overloaded"),
        );
    }

    /// A frame of bridged socket `link_id`, read at `at`: to its owner, or, while its channel
    /// moves, held. Room in the owner's queue is taken first, and the frame queued under the
    /// lock that a move takes to hold the socket: a move that holds it later finds the frame
    /// ahead of its flush or pause in that queue, never behind it.
    async fn bridged_frame(&self, link_id: u64, text: String, at: u64) {
        /// Room in the queue to one node.
        enum Room<'a> {
            Out(mpsc::Permit<'a, super::wire::Outgoing>),
            Loopback(mpsc::Permit<'a, Msg>),
        }
        loop {
            let (owner, conn) = {
                let mut links = lock(&self.links);
                let Some(link) = links.get_mut(&link_id) else {
                    return;
                };
                match &mut link.moving {
                    Some(queue) if queue.len() < MOVING_QUEUE => {
                        queue.push((text, at));
                        return;
                    }
                    Some(_) => {
                        self.stats.lost_moving.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    None => (link.owner.clone(), link.conn),
                }
            };
            let room = if owner == self.cluster.node {
                match self.loopback.try_reserve() {
                    Ok(permit) => Room::Loopback(permit),
                    Err(mpsc::error::TrySendError::Full(())) => {
                        self.overloaded(link_id, Some(Msg::Frame { conn, text, at }));
                        return;
                    }
                    Err(mpsc::error::TrySendError::Closed(())) => return,
                }
            } else {
                match self.out.reserve().await {
                    Ok(permit) => Room::Out(permit),
                    Err(_) => return,
                }
            };
            let mut links = lock(&self.links);
            let Some(link) = links.get_mut(&link_id) else {
                return;
            };
            if link.moving.is_some() || link.owner != owner {
                // Held or moved meanwhile: as it is now.
                continue;
            }
            let msg = Msg::Frame {
                conn: link.conn,
                text,
                at,
            };
            tracing::trace!(to = %owner, ?msg, "to a node");
            match room {
                Room::Out(permit) => permit.send(super::wire::Outgoing::Msg(owner, msg)),
                Room::Loopback(permit) => permit.send(msg),
            }
            return;
        }
    }

    /// A message from node `from`.
    pub(super) async fn received(self: &Arc<Self>, from: &str, msg: Msg) {
        tracing::trace!(from, ?msg, "from a node");
        match msg {
            Msg::Open { req, link, open } => {
                if self.forgotten(&open.arn) {
                    // Its claim, in a task of its own (Redis may be slow to answer), a few
                    // at a time: past that, the asking node is sent to look again.
                    let Ok(permit) = Arc::clone(&self.forgotten_opens).try_acquire_owned() else {
                        let verdict = Verdict::NotOwner { owner: None };
                        self.send(from, Msg::Verdict { req, verdict }).await;
                        return;
                    };
                    let router = Arc::clone(self);
                    let from = from.to_owned();
                    tokio::spawn(async move {
                        let opened = router.open_forgotten(&from, link, &open).await;
                        drop(permit);
                        // Off the task that hands the socket's frames to the hub: the
                        // connection comes up before its node hears the verdict and sends
                        // them, which the hub would otherwise drop.
                        let verdict = match opened {
                            Ok(accepted) => {
                                router.establish(&accepted).await;
                                Verdict::Ok(accepted.wire.to_string())
                            }
                            Err(verdict) => verdict,
                        };
                        router.send(&from, Msg::Verdict { req, verdict }).await;
                    });
                    return;
                }
                let opened = self.open_for(from, link, &open).await;
                self.answer_open(from, req, opened).await;
            }
            Msg::Alexa {
                req,
                arn,
                sender,
                payload,
                ttl,
                rev,
            } => {
                // The offer waits for the master's answer, which comes through this very task
                // when the master's socket is on another node: it waits on a task of its own,
                // a bounded number at once.
                let Ok(permit) = Arc::clone(&self.alexa_offers).try_acquire_owned() else {
                    let verdict = refusal(Refused::new(
                        ErrorType::ClientLimitExceededException,
                        "too many Alexa offers wait for their masters on this node; try again",
                    ));
                    self.send(from, Msg::AlexaAnswer { req, verdict }).await;
                    return;
                };
                let router = Arc::clone(self);
                let from = from.to_owned();
                tokio::spawn(async move {
                    let verdict = router.alexa_for(&arn, &sender, payload, ttl, rev).await;
                    drop(permit);
                    router.send(&from, Msg::AlexaAnswer { req, verdict }).await;
                });
            }
            Msg::Verdict { req, verdict } => self.verdict(from, req, verdict).await,
            Msg::AlexaAnswer { req, verdict } => {
                let waiting = lock(&self.alexa).remove(&req);
                if let Some(waiting) = waiting {
                    let _ = waiting.send(verdict);
                }
            }
            Msg::Frame { conn, text, at } => match self.remote(from, conn) {
                Some((shard, id)) => {
                    let read_at = super::wire::instant_of(at);
                    let _ = shard.frame_read_at(id, text, read_at).await;
                }
                None => self.send(from, Msg::Gone { conn }).await,
            },
            Msg::Keepalive { conn } => match self.remote(from, conn) {
                Some((shard, id)) => {
                    let _ = shard.keepalive(id).await;
                }
                None => self.send(from, Msg::Gone { conn }).await,
            },
            Msg::Closed { conn } => {
                // Its node reported every tracked frame written before the close: those not
                // reported are held again.
                let remote = {
                    let mut remotes = lock(&self.remotes);
                    match remotes.get(conn, from) {
                        Some(_) => remotes.remove(conn),
                        None => None,
                    }
                };
                if let Some(remote) = remote {
                    self.close_remotes(vec![remote]).await;
                }
            }
            Msg::Acked {
                conn,
                token,
                written,
            } => {
                // After its connection closed, a frame's ack is moot: the close held every
                // frame not acknowledged again.
                if let Some((shard, id)) = self.remote(from, conn) {
                    let _ = shard.remote_acked(id, token, written).await;
                }
            }
            Msg::Deliver {
                link,
                conn,
                frame,
                token,
            } => {
                let known = lock(&self.links)
                    .get(&link)
                    .is_some_and(|found| found.owner == from && found.conn == conn);
                if known {
                    let link = ConnId::from_raw(link);
                    let _ = self.bridge.deliver(link, Frame::from(frame), token).await;
                } else if let Some(token) = token {
                    // The socket is gone, or another owner has it now: the sender holds the
                    // message again.
                    let msg = Msg::Acked {
                        conn,
                        token,
                        written: false,
                    };
                    self.send(from, msg).await;
                }
            }
            Msg::Close {
                link,
                conn,
                code,
                reason,
            } => {
                let removed = {
                    let mut links = lock(&self.links);
                    match links.get(&link) {
                        Some(found) if found.owner == from && found.conn == conn => {
                            links.remove(&link)
                        }
                        _ => None,
                    }
                };
                if removed.is_some() {
                    let reason = close_reason(code, &reason);
                    let _ = self
                        .bridge
                        .close(ConnId::from_raw(link), CloseCommand::new(code, reason))
                        .await;
                }
            }
            Msg::Gone { conn } => {
                let gone = {
                    let mut links = lock(&self.links);
                    let found = links
                        .iter()
                        .find(|(_, link)| {
                            link.owner == from && link.conn == conn && link.moving.is_none()
                        })
                        .map(|(id, _)| *id);
                    found.and_then(|id| links.remove(&id).map(|_| id))
                };
                if let Some(link) = gone {
                    tracing::debug!(
                        from,
                        conn,
                        "the owner no longer knows a socket's connection"
                    );
                    let _ = self
                        .bridge
                        .close(
                            ConnId::from_raw(link),
                            CloseCommand::new(1001, "going away"),
                        )
                        .await;
                }
            }
            Msg::Updated { arn, ttl, rev } => {
                if let (Ok(arn), Ok(ttl)) = (ChannelArn::new(&arn), MessageTtlSeconds::new(ttl)) {
                    let _ = self
                        .shards
                        .of(&arn)
                        .channel_updated(arn.clone(), ttl, rev)
                        .await;
                }
            }
            Msg::Deleted { arn } => {
                if let Ok(arn) = ChannelArn::new(&arn) {
                    self.forget(&arn);
                    let _ = self.shards.of(&arn).channel_deleted(arn).await;
                }
            }
            Msg::States { req } => {
                let state = crate::console::local_state(&self.shards)
                    .await
                    .map(|state| state.to_string())
                    .unwrap_or_default();
                self.send(from, Msg::State { req, state }).await;
            }
            Msg::State { req, state } => {
                let waiting = lock(&self.states).remove(&req);
                if let Some(waiting) = waiting {
                    let _ = waiting.send(state);
                }
            }
            Msg::Pause { arn, req } => {
                if let Ok(arn) = ChannelArn::new(&arn) {
                    self.pause(from, &arn);
                }
                self.send(from, Msg::Paused { req }).await;
            }
            Msg::Paused { req } => {
                let waiting = lock(&self.pauses).remove(&req);
                if let Some(waiting) = waiting {
                    let _ = waiting.send(());
                }
            }
            Msg::Moved { arn } => {
                if let Ok(arn) = ChannelArn::new(&arn) {
                    self.moved(from, arn);
                }
            }
            Msg::Events { events, skipped } => self.remote_events(events, skipped),
        }
    }

    /// The owner's verdict on open `req`: the link recorded (or moved) before the opener hears
    /// it. A verdict that comes after its opener gave up, or for a socket that closed
    /// meanwhile, opened a connection nobody holds: the owner hears it closed.
    async fn verdict(&self, from: &str, req: u64, verdict: Verdict) {
        let pending = lock(&self.opens).remove(&req);
        let Some(pending) = pending else {
            if let Verdict::Ok(conn) = &verdict
                && let Ok(conn) = conn.parse()
            {
                self.send(from, Msg::Closed { conn }).await;
            }
            return;
        };
        let verdict = match verdict {
            Verdict::Ok(text) => match text.parse::<u64>() {
                Ok(conn) => {
                    let recorded = {
                        let mut links = lock(&self.links);
                        if pending.moving {
                            match links.get_mut(&pending.link_id) {
                                Some(link) => {
                                    link.owner = from.to_owned();
                                    link.conn = conn;
                                    true
                                }
                                None => false,
                            }
                        } else {
                            let link = Link {
                                owner: from.to_owned(),
                                conn,
                                ..pending.link
                            };
                            links.insert(pending.link_id, link);
                            true
                        }
                    };
                    if !recorded {
                        self.send(from, Msg::Closed { conn }).await;
                    }
                    Verdict::Ok(text)
                }
                Err(_) => Verdict::Refused {
                    error: ErrorType::InternalFailure.name().to_owned(),
                    message: format!("the owner's connection id {text:?}"),
                },
            },
            other => other,
        };
        if let Err(Verdict::Ok(_)) = pending.verdict.send(verdict)
            && !pending.moving
        {
            // The opener gave up just now: the owner's connection is nobody's.
            let link = lock(&self.links).remove(&pending.link_id);
            if let Some(link) = link {
                self.send(from, Msg::Closed { conn: link.conn }).await;
            }
        }
    }

    /// The shard and hub id of remote connection `wire`, whose socket node `from` holds.
    fn remote(&self, from: &str, wire: u64) -> Option<(ShardHandle, ConnId)> {
        let remotes = lock(&self.remotes);
        let remote = remotes.get(wire, from)?;
        let shard = self.shards.all().get(remote.shard)?.clone();
        Some((shard, remote.conn))
    }

    /// Whether an open for `arn` came to this node, valid, which does not own the channel: the
    /// asking node found this node named its owner in Redis, which may be so while this node
    /// does not know it (it let the channel go, and Redis lost that with its last writes).
    fn forgotten(&self, arn: &str) -> bool {
        // A node shutting down claims nothing: it hands over what it owns.
        !self.draining.load(Ordering::Relaxed)
            && self.cluster.liveness.is_valid()
            && !lock(&self.owned).contains_key(arn)
    }

    /// An open of a channel this node does not own: it claims the channel (owning it again
    /// when Redis names it, or anew when nobody holds it) and opens the connection, or
    /// answers with the owner Redis names.
    async fn open_forgotten(
        &self,
        from: &str,
        link: u64,
        params: &OpenParams,
    ) -> Result<Accepted, Verdict> {
        let Ok(arn) = ChannelArn::new(&params.arn) else {
            return self.open_for(from, link, params).await;
        };
        let asked = std::time::Instant::now();
        match self.owner(&arn, true).await {
            // The asking node has given up on this open (and may have made another): a
            // connection opened now would be waited for by nobody, or replace the other.
            Ok(Some(Owner::Me)) if asked.elapsed() >= VERDICT_TIMEOUT => {
                Err(Verdict::NotOwner { owner: None })
            }
            Ok(Some(Owner::Me)) => self.open_for(from, link, params).await,
            Ok(Some(Owner::Node(node))) => Err(Verdict::NotOwner { owner: Some(node) }),
            Ok(None) | Err(_) => Err(Verdict::NotOwner { owner: None }),
        }
    }

    /// Opens, in this node's hub, a connection whose socket node `from` holds as `link`: the
    /// connection, not yet up ([`Router::answer_open`] tells its node, then brings it up), or
    /// the verdict that refuses it.
    pub(super) async fn open_for(
        &self,
        from: &str,
        link: u64,
        params: &OpenParams,
    ) -> Result<Accepted, Verdict> {
        let open = match params.open() {
            Ok(open) => open,
            Err(message) => {
                return Err(Verdict::Refused {
                    error: ErrorType::InvalidArgumentException.name().to_owned(),
                    message,
                });
            }
        };
        let arn = open.channel_arn.clone();
        if !lock(&self.owned).contains_key(&arn) || !self.cluster.liveness.is_valid() {
            let owner = lock(&self.owners).get(&arn).cloned();
            return Err(Verdict::NotOwner { owner });
        }
        let index = self.shards.index_of(&arn);
        let (Some(shard), Some(sink)) = (self.shards.all().get(index), self.sinks.get(index))
        else {
            return Err(Verdict::Refused {
                error: ErrorType::InternalFailure.name().to_owned(),
                message: "no shard for the channel".to_owned(),
            });
        };
        match shard.open_remote(open, sink.clone()).await {
            Ok(Ok(conn)) => {
                let wire = lock(&self.remotes).insert(Remote {
                    node: from.to_owned(),
                    link,
                    arn: arn.clone(),
                    shard: index,
                    conn,
                });
                Ok(Accepted {
                    wire,
                    shard: index,
                    conn,
                })
            }
            Ok(Err(refused)) => Err(refusal(refused)),
            Err(_) => Err(refusal(Refused::new(
                ErrorType::InternalFailure,
                "the hub has stopped",
            ))),
        }
    }

    /// Brings an accepted connection up: only now does it take the place of an older one
    /// with its identity, and get what was held for it. The socket's node answers 101 as
    /// soon as it reads the verdict, so the verdict goes first: what the hub then sends the
    /// connection (what was held for it, at once) follows the verdict through the same
    /// queue, and finds the socket's link recorded; sent before the verdict, it would find
    /// no link there, and be dropped.
    pub(super) async fn establish(&self, accepted: &Accepted) {
        if let Some(shard) = self.shards.all().get(accepted.shard) {
            let _ = shard.established(accepted.conn).await;
        }
    }

    /// Answers node `from`'s open `req`: the verdict, then, if accepted, the connection up.
    pub(super) async fn answer_open(
        &self,
        from: &str,
        req: u64,
        opened: Result<Accepted, Verdict>,
    ) {
        match opened {
            Ok(accepted) => {
                let verdict = Verdict::Ok(accepted.wire.to_string());
                self.send(from, Msg::Verdict { req, verdict }).await;
                self.establish(&accepted).await;
            }
            Err(verdict) => self.send(from, Msg::Verdict { req, verdict }).await,
        }
    }

    /// Serves, in this node's hub, an Alexa offer made on another node.
    async fn alexa_for(
        &self,
        arn: &str,
        sender: &str,
        payload: String,
        ttl: u32,
        rev: u64,
    ) -> Verdict {
        let bad = |message: String| Verdict::Refused {
            error: ErrorType::InvalidArgumentException.name().to_owned(),
            message,
        };
        let Ok(arn) = ChannelArn::new(arn) else {
            return bad(format!("ChannelARN: {arn:?}"));
        };
        if !lock(&self.owned).contains_key(&arn) || !self.cluster.liveness.is_valid() {
            let owner = lock(&self.owners).get(&arn).cloned();
            return Verdict::NotOwner { owner };
        }
        let (Ok(sender), Ok(payload), Ok(ttl)) = (
            PeerId::new(sender),
            MessagePayload::new(payload),
            MessageTtlSeconds::new(ttl),
        ) else {
            return bad("SendAlexaOfferToMaster: a field is invalid".to_owned());
        };
        let offer = AlexaOffer::new(arn.clone(), sender, payload, ttl).ttl_revision(rev);
        match self.shards.of(&arn).alexa_offer(offer).await {
            Ok(Ok(answer)) => Verdict::Ok(answer.as_str().to_owned()),
            Ok(Err(refused)) => refusal(refused),
            Err(_) => refusal(Refused::new(
                ErrorType::InternalFailure,
                "the hub has stopped",
            )),
        }
    }
}

/// A hub's refusal, as the verdict the asking node answers its caller with.
fn refusal(refused: Refused) -> Verdict {
    Verdict::Refused {
        error: refused.error_type.name().to_owned(),
        message: refused.message,
    }
}

/// The close reason a remote owner gave, as one of the hub's own descriptions (a close frame's
/// reason is static text).
fn close_reason(code: u16, reason: &str) -> &'static str {
    [
        "idle timeout",
        "maximum connection duration reached",
        "server going away",
        "replaced by a newer connection",
        "channel deleted",
        "channel moved to another server",
        "slow consumer",
    ]
    .into_iter()
    .find(|known| *known == reason)
    .unwrap_or(if code == 1001 { "going away" } else { "" })
}

static OVERLOADED: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(std::time::Duration::from_secs(10));
static STALE_OPEN: kvs_transport_tokio::LogLimiter =
    kvs_transport_tokio::LogLimiter::new(std::time::Duration::from_secs(10));
