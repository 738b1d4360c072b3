//! Real-time delivery: the `Broker` actor routes committed events to `WsSession` actors, one per
//! WebSocket. This is the only module that knows about actix-web-actors, so the WebSocket
//! library could be swapped without touching any other area.

mod admission;
mod broker;
pub mod bus;
mod frames;
mod outbox;
mod protocol;
mod relay;
pub mod routes;
mod session;

pub use admission::Admission;
pub use broker::{Broker, BrokerStats, MemberRevoked, Publish, Shutdown, Stats};
pub use session::HELD_BACK_TOO_LONG;

use std::sync::Arc;

use actix::Addr;

use crate::events::Recorded;
use crate::realtime::bus::Bus;
use crate::state::AppState;

/// Hands events to this node's broker and to the other nodes; call only after the transaction
/// that recorded them committed.
pub fn publish(state: &AppState, recorded: Recorded) {
    publish_to(&state.bus, &state.broker, recorded);
}

/// [`publish`] for the group-commit lanes, which run outside any request.
pub fn publisher(bus: Bus, broker: Addr<Broker>) -> crate::group_commit::Publish {
    std::sync::Arc::new(move |recorded| publish_to(&bus, &broker, recorded))
}

fn publish_to(bus: &Bus, broker: &Addr<Broker>, recorded: Recorded) {
    if recorded.0.is_empty() {
        return;
    }
    bus.send(bus::BusMessage::Events {
        events: recorded.0.clone(),
    });
    broker.do_send(Publish(recorded.0));
}

/// The member lost the workspace (suspended, sessions revoked): close their sockets on every node.
pub fn revoke_member(state: &AppState, member_id: i32) {
    state.bus.send(bus::BusMessage::MemberRevoked { member_id });
    state.broker.do_send(MemberRevoked { member_id });
}

/// One login session of the member ended: close the sockets it authenticated, on every node.
pub fn end_session(state: &AppState, member_id: i32, login: String) {
    state.bus.send(bus::BusMessage::SessionEnded {
        member_id,
        login: login.clone(),
    });
    state.broker.do_send(broker::SessionEnded {
        member_id,
        login: Arc::from(login),
    });
}
