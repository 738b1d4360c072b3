//! Real-time delivery: the `Broker` actor routes committed events to `WsSession` actors, one per
//! WebSocket. This is the only module that knows about actix-web-actors, so the WebSocket
//! library could be swapped without touching any other area.

mod broker;
mod protocol;
pub mod routes;
mod session;

pub use broker::{Broker, BrokerStats, MemberRevoked, MembershipRevoked, Publish, Stats};

use crate::events::Recorded;
use crate::state::AppState;

/// Hands events to the broker; call only after the transaction that recorded them committed.
pub fn publish(state: &AppState, recorded: Recorded) {
    if !recorded.0.is_empty() {
        state.broker.do_send(Publish(recorded.0));
    }
}
