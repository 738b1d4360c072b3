//! `GET /api/events`: the HTTP fallback for clients that cannot keep a socket, and for resuming.

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Channel, EventFrame, Replay};
use crate::auth::CurrentMember;
use crate::committees;
use crate::error::{ApiError, ApiResult, Deferred, Problem};
use crate::input::Query;
use crate::pagination::limit_of;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_events);
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// `committee:{id}`, `member:{id}` or `public`.
    #[param(pattern = r"^(public|(committee|member):[1-9][0-9]{0,9})$")]
    pub channel: String,
    /// The last offset the client saw; 0 (the default) asks from the channel's first event, and
    /// is answered `reset` once that event is no longer retained.
    pub after: Option<i64>,
    /// 1 to 200, default 50, as every list's (API.md); the next page is `after` the last
    /// offset received.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventFrame>,
    /// True when events after `after` were already deleted: reload the state, then resume from `head`.
    pub reset: bool,
    /// The channel's last offset.
    pub head: i64,
}

/// Events of a channel after an offset, in order.
#[utoipa::path(
    context_path = "/api", tag = "events", security(("bearer" = [])), params(EventQuery),
    responses((status = 200, body = EventPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/events")]
async fn list_events(
    state: web::Data<AppState>,
    me: CurrentMember,
    query: Deferred<Query<EventQuery>>,
) -> ApiResult<HttpResponse> {
    let query = query?.into_inner();
    let channel: Channel = query
        .channel
        .parse()
        .map_err(|_| ApiError::validation("channel", "is not a channel"))?;
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::validation("after", "must not be negative"));
    }
    let limit = limit_of(query.limit)?;
    // A channel the caller may not read looks like one that does not exist.
    if !committees::service::can_read_channel(&state, &me.0, channel).await? {
        return Err(ApiError::NotFound);
    }
    let page = match super::replay(state.db.conn(), &channel.to_string(), after, limit).await? {
        Replay::Events { events, head } => EventPage {
            items: events,
            reset: false,
            head,
        },
        Replay::Reset { head } => EventPage {
            items: Vec::new(),
            reset: true,
            head,
        },
    };
    Ok(HttpResponse::Ok().json(page))
}
