//! One `Relay` per worker thread. The Broker runs on a thread of its own; waking a session from
//! there is a cross-thread wake (a lock and often a system call) per session per event. Instead,
//! for each batch of events the Broker sends each worker's relay one message listing the
//! sessions to wake, and the relay wakes them from their own thread, where a wake is cheap.
//!
//! Everything else the Broker tells a session goes through the same relay, so that a session
//! gets it all in the order the Broker sent it (a channel's last events before its revocation).

use std::cell::OnceCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;

use super::session::{ChannelRevoked, Drain, GoingAway, Overloaded, Recheck, Revoked, SessionEnded, WsSession};

pub struct Relay;

impl Actor for Relay {
    type Context = Context<Self>;
}

/// These sessions have frames in their outbox.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WakeAll(pub Vec<Addr<WsSession>>);

impl Handler<WakeAll> for Relay {
    type Result = ();

    fn handle(&mut self, WakeAll(sessions): WakeAll, _: &mut Self::Context) {
        for session in sessions {
            session.do_send(Drain);
        }
    }
}

/// What the Broker tells one session besides "you have frames".
pub enum Notice {
    /// The member lost the workspace.
    Revoked,
    /// One login session of the member ended (logout): the sockets it authenticated close.
    SessionEnded(Arc<str>),
    /// The member lost one channel.
    ChannelRevoked(Arc<str>),
    /// The session fell too far behind.
    Overloaded,
    /// The node is stopping.
    GoingAway,
    /// What the Broker was told may be incomplete: check from the database.
    Recheck,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Tell {
    pub session: Addr<WsSession>,
    pub notice: Notice,
}

impl Handler<Tell> for Relay {
    type Result = ();

    fn handle(&mut self, Tell { session, notice }: Tell, _: &mut Self::Context) {
        match notice {
            Notice::Revoked => session.do_send(Revoked),
            Notice::SessionEnded(login) => session.do_send(SessionEnded { login }),
            Notice::ChannelRevoked(channel) => session.do_send(ChannelRevoked { channel }),
            Notice::Overloaded => session.do_send(Overloaded),
            Notice::GoingAway => session.do_send(GoingAway),
            Notice::Recheck => session.do_send(Recheck),
        }
    }
}

/// The relay of the calling worker thread, and a number that tells relays apart.
#[derive(Clone)]
pub struct RelayHandle {
    pub id: usize,
    pub addr: Addr<Relay>,
}

thread_local! {
    static LOCAL: OnceCell<RelayHandle> = const { OnceCell::new() };
}

static NEXT_RELAY_ID: AtomicUsize = AtomicUsize::new(0);

/// This thread's relay, started on first use; call from a session, on its worker thread.
pub fn local() -> RelayHandle {
    LOCAL.with(|cell| {
        cell.get_or_init(|| RelayHandle {
            id: NEXT_RELAY_ID.fetch_add(1, Ordering::Relaxed),
            addr: Relay.start(),
        })
        .clone()
    })
}
