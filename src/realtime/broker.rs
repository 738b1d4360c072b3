//! The `Broker`: one per process. Knows which session listens to which channel and routes each
//! committed event to them, serialized once and shared.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;

use super::outbox::{Delivery, Outbox, Pushed};
use super::protocol::ServerFrame;
use super::relay::{Notice, RelayHandle, Tell, WakeAll};
use super::session::WsSession;
use crate::events::EventFrame;

pub type SessionId = u64;

/// How often presence changes are broadcast: joins and leaves in between are coalesced, so a
/// thousand clients connecting at once cost one presence frame each, not a million.
const PRESENCE_INTERVAL: Duration = Duration::from_millis(250);

pub struct Broker {
    sessions: HashMap<SessionId, SessionEntry>,
    channels: HashMap<Arc<str>, HashSet<SessionId>>,
    /// The sessions of each channel whose access has been confirmed (`Present`): only they count
    /// as online and receive presence. A session is routed before its access is checked, and a
    /// subscribe that is then refused must neither see who is online nor be seen.
    present: HashMap<Arc<str>, HashSet<SessionId>>,
    presence_dirty: HashSet<Arc<str>>,
    presence_sent: HashMap<Arc<str>, Vec<i32>>,
    /// Sessions that subscribed since the last presence flush: they get the channel's presence
    /// even when their joining did not change it (a member already online in another tab).
    presence_joiners: HashMap<Arc<str>, HashSet<SessionId>>,
    /// Bytes a session may have waiting in its outbox before it is cut off: a client that stops
    /// reading stalls its actor, and without a bound its outbox would grow without end.
    max_pending_bytes: usize,
    /// A recheck sweep is under way; `recheck_again`: another was asked for meanwhile, and runs
    /// once this one ends (several nodes' `Recheck`s after one outage make one or two sweeps,
    /// not one each).
    rechecking: bool,
    recheck_again: bool,
    /// The node is stopping: a session that authenticates from now on is told to go elsewhere
    /// as soon as it is known, like those known when the node was told to stop.
    shutting_down: bool,
}

struct SessionEntry {
    member_id: i32,
    addr: Addr<WsSession>,
    outbox: Arc<Outbox>,
    /// The relay of the session's worker thread, which wakes it.
    relay: RelayHandle,
    channels: HashSet<Arc<str>>,
}

impl SessionEntry {
    /// Tells the session something, through its relay: after every wake sent before.
    fn tell(&self, notice: Notice) {
        self.relay.addr.do_send(Tell {
            session: self.addr.clone(),
            notice,
        });
    }

    /// Queues a frame for the session, to be woken if it was idle; false if it is too far behind.
    fn deliver(&self, delivery: Delivery, max_bytes: usize, wakes: &mut Wakes) -> bool {
        match self.outbox.push(delivery, max_bytes) {
            Pushed::Wake => {
                wakes.add(self);
                true
            }
            Pushed::Queued => true,
            Pushed::Full => false,
        }
    }
}

/// The sessions to wake after a batch, by worker thread: one message per worker.
#[derive(Default)]
struct Wakes(HashMap<usize, (RelayHandle, Vec<Addr<WsSession>>)>);

impl Wakes {
    fn add(&mut self, entry: &SessionEntry) {
        self.0
            .entry(entry.relay.id)
            .or_insert_with(|| (entry.relay.clone(), Vec::new()))
            .1
            .push(entry.addr.clone());
    }

    /// Wakes each worker's sessions with one message to its relay, which also carries every
    /// notice: a session's frames come before any notice sent after them.
    fn send(self) {
        for (relay, sessions) in self.0.into_values() {
            relay.addr.do_send(WakeAll(sessions));
        }
    }
}

impl Broker {
    pub fn new(max_pending_bytes: usize) -> Self {
        Self {
            sessions: HashMap::new(),
            channels: HashMap::new(),
            present: HashMap::new(),
            presence_dirty: HashSet::new(),
            presence_sent: HashMap::new(),
            presence_joiners: HashMap::new(),
            max_pending_bytes,
            rechecking: false,
            recheck_again: false,
            shutting_down: false,
        }
    }

    fn remove_from_channel(&mut self, id: SessionId, channel: &Arc<str>) {
        for sessions in [&mut self.channels, &mut self.present] {
            if let Some(members) = sessions.get_mut(channel) {
                members.remove(&id);
                if members.is_empty() {
                    sessions.remove(channel);
                }
            }
        }
        self.presence_dirty.insert(channel.clone());
    }

    fn remove_session(&mut self, id: SessionId) {
        if let Some(entry) = self.sessions.remove(&id) {
            for channel in &entry.channels {
                self.remove_from_channel(id, channel);
            }
        }
    }

    /// Queues one frame (the same bytes for all) for each of `subscribers`; those too far behind
    /// to take it are added to `overloaded`.
    fn deliver_to(
        &self,
        subscribers: &HashSet<SessionId>,
        delivery: &Delivery,
        wakes: &mut Wakes,
        overloaded: &mut Vec<SessionId>,
    ) {
        for id in subscribers {
            let Some(entry) = self.sessions.get(id) else { continue };
            if !entry.deliver(delivery.clone(), self.max_pending_bytes, wakes) {
                overloaded.push(*id);
            }
        }
    }

    /// Cuts off sessions whose outbox is full: they close with 1013 and resume from their offset.
    fn drop_overloaded(&mut self, overloaded: Vec<SessionId>) {
        for id in overloaded {
            if let Some(entry) = self.sessions.get(&id) {
                tracing::warn!(
                    session = id,
                    member_id = entry.member_id,
                    "session too far behind; closing it"
                );
                entry.tell(Notice::Overloaded);
            }
            self.remove_session(id);
        }
    }

    fn flush_presence(&mut self) {
        let (mut overloaded, mut wakes) = (Vec::new(), Wakes::default());
        for channel in std::mem::take(&mut self.presence_dirty) {
            let online: Vec<i32> = self
                .present
                .get(&channel)
                .into_iter()
                .flatten()
                .filter_map(|id| self.sessions.get(id).map(|entry| entry.member_id))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let joiners = self.presence_joiners.remove(&channel).unwrap_or_default();
            let unchanged = self.presence_sent.get(&channel) == Some(&online);
            if unchanged && joiners.is_empty() {
                continue;
            }
            let frame = ServerFrame::Presence {
                channel: &channel,
                online: &online,
            }
            .to_text();
            if let Some(subscribers) = self.present.get(&channel) {
                // Unchanged, only the newcomers need it; changed, everyone.
                let newcomers: HashSet<SessionId>;
                let recipients = if unchanged {
                    newcomers = joiners.intersection(subscribers).copied().collect();
                    &newcomers
                } else {
                    subscribers
                };
                let delivery = Delivery {
                    channel: channel.clone(),
                    offset: None,
                    frame,
                    removes: None,
                };
                self.deliver_to(recipients, &delivery, &mut wakes, &mut overloaded);
            }
            if online.is_empty() {
                self.presence_sent.remove(&channel);
            } else {
                self.presence_sent.insert(channel, online);
            }
        }
        wakes.send();
        self.drop_overloaded(overloaded);
    }
}

impl Actor for Broker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Publishing to thousands of sessions arrives in bursts; a roomy mailbox absorbs them.
        ctx.set_mailbox_capacity(4096);
        ctx.run_interval(PRESENCE_INTERVAL, |broker, _| broker.flush_presence());
    }
}

/// A session authenticated as `member_id`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub id: SessionId,
    pub member_id: i32,
    pub addr: Addr<WsSession>,
    pub outbox: Arc<Outbox>,
    pub relay: RelayHandle,
}

impl Handler<Connect> for Broker {
    type Result = ();

    fn handle(&mut self, message: Connect, _: &mut Self::Context) {
        let entry = SessionEntry {
            member_id: message.member_id,
            addr: message.addr,
            outbox: message.outbox,
            relay: message.relay,
            channels: HashSet::new(),
        };
        if self.shutting_down {
            entry.tell(Notice::GoingAway);
        }
        self.sessions.insert(message.id, entry);
    }
}

/// The session is gone (closed, timed out or stopped).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub id: SessionId,
}

impl Handler<Disconnect> for Broker {
    type Result = ();

    fn handle(&mut self, message: Disconnect, _: &mut Self::Context) {
        self.remove_session(message.id);
    }
}

/// Starts routing `channel` to the session. Answered once it is in effect, so the session can
/// read the replay from the database knowing no later event will be missed.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Subscribe {
    pub id: SessionId,
    pub channel: Arc<str>,
}

impl Handler<Subscribe> for Broker {
    type Result = bool;

    fn handle(&mut self, message: Subscribe, _: &mut Self::Context) -> bool {
        let Some(entry) = self.sessions.get_mut(&message.id) else {
            return false;
        };
        entry.channels.insert(message.channel.clone());
        self.channels.entry(message.channel).or_default().insert(message.id);
        true
    }
}

/// The session's access to `channel` was confirmed: it is online there, and gets presence.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Present {
    pub id: SessionId,
    pub channel: Arc<str>,
}

impl Handler<Present> for Broker {
    type Result = ();

    fn handle(&mut self, message: Present, _: &mut Self::Context) {
        // Revoked or unsubscribed since: not routed any more, so not present either.
        let routed = self
            .sessions
            .get(&message.id)
            .is_some_and(|entry| entry.channels.contains(&message.channel));
        if !routed {
            return;
        }
        self.present
            .entry(message.channel.clone())
            .or_default()
            .insert(message.id);
        self.presence_joiners
            .entry(message.channel.clone())
            .or_default()
            .insert(message.id);
        self.presence_dirty.insert(message.channel);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub id: SessionId,
    pub channel: Arc<str>,
}

impl Handler<Unsubscribe> for Broker {
    type Result = ();

    fn handle(&mut self, message: Unsubscribe, _: &mut Self::Context) {
        if let Some(entry) = self.sessions.get_mut(&message.id) {
            entry.channels.remove(&message.channel);
        }
        self.remove_from_channel(message.id, &message.channel);
    }
}

/// Committed events, in commit order per channel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Vec<EventFrame>);

impl Handler<Publish> for Broker {
    type Result = ();

    fn handle(&mut self, Publish(events): Publish, _: &mut Self::Context) {
        let (mut overloaded, mut wakes) = (Vec::new(), Wakes::default());
        for event in events {
            let Some((channel, subscribers)) = self.channels.get_key_value(event.channel.as_str()) else {
                continue;
            };
            let Ok(json) = serde_json::to_string(&event) else {
                tracing::error!(channel = %event.channel, offset = event.offset, "event could not be serialized");
                continue;
            };
            let delivery = Delivery {
                channel: channel.clone(),
                offset: Some(event.offset),
                frame: ByteString::from(json),
                removes: event.removed_member(),
            };
            self.deliver_to(subscribers, &delivery, &mut wakes, &mut overloaded);
        }
        wakes.send();
        self.drop_overloaded(overloaded);
    }
}

/// The member may no longer use the workspace (suspended, sessions revoked): close their sockets.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MemberRevoked {
    pub member_id: i32,
}

impl Handler<MemberRevoked> for Broker {
    type Result = ();

    fn handle(&mut self, message: MemberRevoked, _: &mut Self::Context) {
        let ids: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, entry)| entry.member_id == message.member_id)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(entry) = self.sessions.get(&id) {
                entry.tell(Notice::Revoked);
            }
            self.remove_session(id);
        }
    }
}

/// One login session of the member ended (logout, a stolen refresh token): its sockets close.
/// The Broker does not know which session each socket authenticated with (a socket may
/// re-authenticate), so it tells the member's sessions and each compares its own.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionEnded {
    pub member_id: i32,
    pub login: Arc<str>,
}

impl Handler<SessionEnded> for Broker {
    type Result = ();

    fn handle(&mut self, message: SessionEnded, _: &mut Self::Context) {
        for entry in self.sessions.values() {
            if entry.member_id == message.member_id {
                entry.tell(Notice::SessionEnded(message.login.clone()));
            }
        }
    }
}

/// The bus between nodes was down, so revocations and events from other nodes may never have
/// arrived: every session checks its access again and catches up from the database. A few at a
/// time (`RECHECK_BATCH` every `RECHECK_PACE`), so that ten thousand sockets do not all query the
/// database at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecheckAll;

const RECHECK_BATCH: usize = 100;
const RECHECK_PACE: Duration = Duration::from_millis(100);

impl Handler<RecheckAll> for Broker {
    type Result = ();

    fn handle(&mut self, _: RecheckAll, ctx: &mut Self::Context) {
        if self.rechecking {
            self.recheck_again = true;
        } else {
            self.start_recheck(ctx);
        }
    }
}

impl Broker {
    fn start_recheck(&mut self, ctx: &mut Context<Self>) {
        self.rechecking = true;
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        tracing::info!(sessions = ids.len(), "rechecking every session after a bus outage");
        let batches = ids.chunks(RECHECK_BATCH).map(<[SessionId]>::to_vec).collect::<Vec<_>>();
        let count = batches.len() as u32;
        for (n, batch) in batches.into_iter().enumerate() {
            ctx.run_later(RECHECK_PACE * n as u32, move |broker, _| {
                for id in batch {
                    if let Some(entry) = broker.sessions.get(&id) {
                        entry.tell(Notice::Recheck);
                    }
                }
            });
        }
        ctx.run_later(RECHECK_PACE * count, |broker, ctx| {
            broker.rechecking = false;
            if std::mem::take(&mut broker.recheck_again) {
                broker.start_recheck(ctx);
            }
        });
    }
}

/// Counts, for health checks and for tests that sessions leave no trace.
#[derive(Message)]
#[rtype(result = "BrokerStats")]
pub struct Stats;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerStats {
    pub sessions: usize,
    pub channels: usize,
    pub subscriptions: usize,
}

impl Handler<Stats> for Broker {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        MessageResult(BrokerStats {
            sessions: self.sessions.len(),
            channels: self.channels.len(),
            subscriptions: self.channels.values().map(HashSet::len).sum(),
        })
    }
}

/// The node is stopping: every socket is told to reconnect (1012) and resume elsewhere.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for Broker {
    type Result = ();

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) {
        self.shutting_down = true;
        for entry in self.sessions.values() {
            entry.tell(Notice::GoingAway);
        }
    }
}
