//! One `Relay` per worker thread. The Broker runs on a thread of its own; waking a session from
//! there is a cross-thread wake (a lock and often a system call) per session per event. Instead,
//! for each batch of events the Broker sends each worker's relay one message listing the
//! sessions to wake, and the relay wakes them from their own thread, where a wake is cheap.
//!
//! Everything else the Broker tells a session goes through the same relay, so that a session
//! gets it all in the order the Broker sent it (a channel's last events before its revocation).
//!
//! The relay wakes sessions a turn at a time (see [`Turns`]) and yields to the worker's other
//! tasks between turns. Woken all at once, a thousand sessions would queue ahead of every request
//! the worker has to answer, the next write included; taking turns, the next event is committed
//! while the last one is still going out, and reaches the sessions not yet woken in the same wake
//! and the same socket write as the last one. So the busier the fan-out, the more frames each
//! write carries, and requests are not held up behind it.

use std::cell::OnceCell;
use std::collections::VecDeque;
use std::collections::vec_deque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;

use super::session::{Drain, GoingAway, Overloaded, Recheck, Revoked, SessionEnded, WsSession};

#[derive(Default)]
pub struct Relay {
    /// Who is still to be woken or told something, in the order the Broker sent it. Not empty
    /// exactly while a next turn is scheduled.
    queue: Turns<(Addr<WsSession>, Option<Notice>)>,
}

impl Actor for Relay {
    type Context = Context<Self>;
}

impl Relay {
    /// Passes on one turn's worth of the queue; schedules the next turn if anything is left.
    fn take_turn(&mut self, ctx: &mut Context<Self>) {
        for (session, notice) in self.queue.next_turn() {
            match notice {
                None => session.do_send(Drain),
                Some(notice) => notice.tell(session),
            }
        }
        if !self.queue.is_empty() {
            // `yield_now` lets the worker poll its sockets before this relay runs again, so what
            // they have ready (a request, a client's frame) goes ahead of the next turn. (A
            // message from the Broker meanwhile polls it early and the turn comes sooner; the
            // sessions woken by this turn are still queued ahead of it.)
            ctx.spawn(fut::wrap_future(tokio::task::yield_now()).map(|(), relay: &mut Self, ctx| relay.take_turn(ctx)));
        }
    }

    fn enqueue(
        &mut self,
        entries: impl IntoIterator<Item = (Addr<WsSession>, Option<Notice>)>,
        ctx: &mut Context<Self>,
    ) {
        // A queue that was not empty has its next turn scheduled already.
        let idle = self.queue.is_empty();
        self.queue.extend(entries);
        if idle {
            self.take_turn(ctx);
        }
    }
}

/// A first-in, first-out queue taken in turns. A turn is at least [`Turns::MIN_TURN`] entries,
/// so that a turn's worth of sockets outweighs the yield after it, and at least an eighth of the
/// queue, so that a long queue (thousands of sockets on a worker) is not cut into so many turns
/// that the writes let in between make its last socket wait too long.
pub struct Turns<T>(VecDeque<T>);

impl<T> Default for Turns<T> {
    fn default() -> Self {
        Self(VecDeque::new())
    }
}

impl<T> Turns<T> {
    const MIN_TURN: usize = 64;
    const SHARE: usize = 8;

    pub fn extend(&mut self, entries: impl IntoIterator<Item = T>) {
        self.0.extend(entries);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The oldest entries, as many as make one turn.
    pub fn next_turn(&mut self) -> vec_deque::Drain<'_, T> {
        let turn = Self::MIN_TURN.max(self.0.len() / Self::SHARE).min(self.0.len());
        self.0.drain(..turn)
    }
}

/// These sessions have frames in their outbox.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WakeAll(pub Vec<Addr<WsSession>>);

impl Handler<WakeAll> for Relay {
    type Result = ();

    fn handle(&mut self, WakeAll(sessions): WakeAll, ctx: &mut Self::Context) {
        self.enqueue(sessions.into_iter().map(|session| (session, None)), ctx);
    }
}

/// What the Broker tells one session besides "you have frames".
pub enum Notice {
    /// The member lost the workspace.
    Revoked,
    /// One login session of the member ended (logout): the sockets it authenticated close.
    SessionEnded(Arc<str>),
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

    fn handle(&mut self, Tell { session, notice }: Tell, ctx: &mut Self::Context) {
        self.enqueue([(session, Some(notice))], ctx);
    }
}

impl Notice {
    fn tell(self, session: Addr<WsSession>) {
        match self {
            Notice::Revoked => session.do_send(Revoked),
            Notice::SessionEnded(login) => session.do_send(SessionEnded { login }),
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
            addr: Relay::default().start(),
        })
        .clone()
    })
}

#[cfg(test)]
mod tests {
    use super::Turns;

    #[test]
    fn a_turn_is_at_least_64_and_at_least_an_eighth_oldest_first() {
        let mut turns = Turns::default();
        turns.extend(0..1000);
        let first: Vec<_> = turns.next_turn().collect();
        assert_eq!(first, (0..125).collect::<Vec<_>>());
        turns.extend(1000..1010);
        let mut sizes = Vec::new();
        let mut taken = first;
        while !turns.is_empty() {
            let turn: Vec<_> = turns.next_turn().collect();
            sizes.push(turn.len());
            taken.extend(turn);
        }
        assert_eq!(taken, (0..1010).collect::<Vec<_>>(), "every entry once, in order");
        assert_eq!(sizes, [110, 96, 84, 74, 65, 64, 64, 64, 64, 64, 64, 64, 8]);
    }

    #[test]
    fn a_short_queue_is_one_turn() {
        let mut turns = Turns::default();
        turns.extend(["a", "b", "c"]);
        assert_eq!(turns.next_turn().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(turns.is_empty());
        assert_eq!(turns.next_turn().count(), 0);
    }
}
