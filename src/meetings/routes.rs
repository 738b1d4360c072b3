//! Meeting, agenda, live-mode, attendance, minutes and calendar endpoints under `/api`.

use actix_web::{HttpResponse, delete, get, http::header, patch, post, put, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::dto::*;
use super::{calendar, live, service};
use crate::auth::{CallerToken, CurrentMember};
use crate::documents::service::Reader;
use crate::error::{ApiError, ApiResult, Deferred, Problem};
use crate::input::{Json, Query};
use crate::pagination::{PageQuery, Paginated};
use crate::preconditions::{IfMatch, etag};
use crate::state::AppState;
use crate::tasks::dto::TaskResponse;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_meetings)
        .service(create_meeting)
        .service(get_meeting)
        .service(update_meeting)
        .service(get_agenda)
        .service(add_agenda_item)
        .service(get_agenda_item)
        .service(update_agenda_item)
        .service(delete_agenda_item)
        .service(reorder_agenda)
        .service(finalize_agenda)
        .service(publish_agenda)
        .service(get_live)
        .service(command_live)
        .service(rsvp)
        .service(record_presence)
        .service(add_action_item)
        .service(get_minutes)
        .service(file_minutes)
        .service(meeting_calendar)
        .service(personal_calendar)
        .service(create_calendar_token)
        .service(revoke_calendar_token);
}

/// Meetings of a committee (owned or invited to), optionally in a date range.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path), MeetingRange, PageQuery),
    responses((status = 200, body = Paginated<MeetingResponse>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/committees/{id}/meetings")]
async fn list_meetings(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
    range: Deferred<Query<MeetingRange>>,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let (range, page) = (range?, page?.page()?);
    let rows = service::list(&state, &me.0, *id, &range, page).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_rows(rows, page, |m| m.id.into(), |m| m)))
}

/// Creates a meeting (the committee's chair or the secretariat).
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)), request_body = CreateMeetingRequest,
    responses((status = 201, body = MeetingResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem))
)]
#[post("/committees/{id}/meetings")]
async fn create_meeting(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
    body: Deferred<Json<CreateMeetingRequest>>,
) -> ApiResult<HttpResponse> {
    let meeting = service::create(&state, &me.0, *id, body?.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/meetings/{}", meeting.id)))
        .insert_header(etag(meeting.version))
        .json(meeting))
}

/// One meeting.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = MeetingResponse), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/meetings/{id}")]
async fn get_meeting(state: web::Data<AppState>, me: CurrentMember, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    let meeting = service::get(&state, &me.0, *id).await?;
    Ok(HttpResponse::Ok().insert_header(etag(meeting.version)).json(meeting))
}

/// Changes a meeting, its invited committees or its status (cancelling mails the invitees).
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)), request_body = UpdateMeetingRequest,
    responses(
        (status = 200, body = MeetingResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem), (status = 422, description = "invalid_transition or agenda_over_allocated", body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem),
    )
)]
#[patch("/meetings/{id}")]
async fn update_meeting(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
    if_match: Deferred<IfMatch>,
    body: Deferred<Json<UpdateMeetingRequest>>,
) -> ApiResult<HttpResponse> {
    let meeting = service::update(&state, &me.0, *id, if_match?, body?.into_inner()).await?;
    Ok(HttpResponse::Ok().insert_header(etag(meeting.version)).json(meeting))
}

/// The agenda with each item's planned start.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = AgendaResponse), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/meetings/{id}/agenda")]
async fn get_agenda(state: web::Data<AppState>, me: CurrentMember, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    let (meeting, _) = service::access(state.db.conn(), &me.0, *id).await?;
    Ok(HttpResponse::Ok().json(service::agenda(state.db.conn(), &meeting, Reader::Member(&me.0)).await?))
}

/// Adds an agenda item; the agenda may not outgrow the meeting (422 `agenda_over_allocated`).
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)), request_body = CreateAgendaItemRequest,
    responses(
        (status = 201, body = AgendaItemResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, description = "agenda_over_allocated, with overrun_minutes", body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem),
    )
)]
#[post("/meetings/{id}/agenda")]
async fn add_agenda_item(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
    body: Deferred<Json<CreateAgendaItemRequest>>,
) -> ApiResult<HttpResponse> {
    let item = service::add_item(&state, &me.0, *id, body?.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/agenda-items/{}", item.id)))
        .json(item))
}

/// One agenda item, with its planned start.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = AgendaItemResponse), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/agenda-items/{id}")]
async fn get_agenda_item(state: web::Data<AppState>, me: CurrentMember, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    let item = service::get_item(state.db.conn(), &me.0, *id).await?;
    Ok(HttpResponse::Ok().insert_header(etag(item.version)).json(item))
}

/// Changes an agenda item, or records its outcome.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)), request_body = UpdateAgendaItemRequest,
    responses(
        (status = 200, body = AgendaItemResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem),
    )
)]
#[patch("/agenda-items/{id}")]
async fn update_agenda_item(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
    if_match: Deferred<IfMatch>,
    body: Deferred<Json<UpdateAgendaItemRequest>>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::update_item(&state, &me.0, *id, if_match?, body?.into_inner()).await?))
}

/// Removes an agenda item (and its sub-items).
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem))
)]
#[delete("/agenda-items/{id}")]
async fn delete_agenda_item(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
) -> ApiResult<HttpResponse> {
    service::delete_item(&state, &me.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Puts the top-level items in a new order.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)), request_body = ReorderRequest,
    responses((status = 200, body = AgendaResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem))
)]
#[put("/meetings/{id}/agenda/order")]
async fn reorder_agenda(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
    body: Deferred<Json<ReorderRequest>>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::reorder(&state, &me.0, *id, &body?.item_ids).await?))
}

/// Agrees the agenda; later changes are flagged in their events.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = AgendaResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem))
)]
#[post("/meetings/{id}/agenda/finalize")]
async fn finalize_agenda(state: web::Data<AppState>, me: CurrentMember, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::finalize(&state, &me.0, *id).await?))
}

/// Mails the agenda to every invited member; again only ten minutes after the last time.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 202), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem), (status = 429, description = "rate_limited: the agenda was mailed less than ten minutes ago", body = Problem))
)]
#[post("/meetings/{id}/agenda/publish")]
async fn publish_agenda(state: web::Data<AppState>, me: CurrentMember, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    let recipients = service::publish_agenda(&state, &me.0, *id).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "recipients": recipients })))
}

/// The live clock: current item, elapsed and remaining time, drift, pause.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = LiveState), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/meetings/{id}/live")]
async fn get_live(state: web::Data<AppState>, me: CurrentMember, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    let (meeting, _) = service::access(state.db.conn(), &me.0, *id).await?;
    Ok(HttpResponse::Ok().json(live::current(state.db.conn(), &meeting).await?))
}

/// Live mode: `start`, `next`, `previous`, `pause`, `resume`, `end` (chair or secretariat).
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])),
    params(("id" = i32, Path), ("command" = String, Path, description = "start, next, previous, pause, resume or end")),
    responses((status = 200, body = LiveState), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem))
)]
#[post("/meetings/{id}/live/{command}")]
async fn command_live(
    state: web::Data<AppState>,
    me: CurrentMember,
    path: web::Path<(i32, String)>,
) -> ApiResult<HttpResponse> {
    let (id, command) = path.into_inner();
    let command: live::Command = command.parse()?;
    Ok(HttpResponse::Ok().json(live::apply(&state, &me.0, id, command).await?))
}

/// The caller's answer to the invitation.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)), request_body = RsvpRequest,
    responses((status = 200, body = AttendanceResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem))
)]
#[put("/meetings/{id}/attendance")]
async fn rsvp(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
    body: Deferred<Json<RsvpRequest>>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::rsvp(&state, &me.0, *id, body?.response).await?))
}

/// The chair records whether a member was present.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path), ("member_id" = i32, Path)), request_body = PresenceRequest,
    responses((status = 200, body = AttendanceResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem))
)]
#[put("/meetings/{id}/attendance/{member_id}")]
async fn record_presence(
    state: web::Data<AppState>,
    me: CurrentMember,
    path: web::Path<(i32, i32)>,
    body: Deferred<Json<PresenceRequest>>,
) -> ApiResult<HttpResponse> {
    let (id, member_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(service::record_presence(&state, &me.0, id, member_id, body?.present).await?))
}

/// Creates a task that follows up on an agenda item's decision.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)), request_body = ActionItemRequest,
    responses((status = 201, body = TaskResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem))
)]
#[post("/agenda-items/{id}/action-items")]
async fn add_action_item(
    state: web::Data<AppState>,
    me: CallerToken,
    id: web::Path<i32>,
    body: Deferred<Json<ActionItemRequest>>,
) -> ApiResult<HttpResponse> {
    let task = service::add_action_item(&state, me, *id, body?.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/tasks/{}", task.id)))
        .json(task))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MinutesQuery {
    /// `json` (default) or `markdown`.
    #[param(value_type = Option<MinutesFormat>, inline)]
    pub format: Option<String>,
}

/// The minutes: attendance, planned against actual time, outcomes and action items.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path), MinutesQuery),
    responses(
        (status = 200, content((MinutesResponse = "application/json"), (String = "text/markdown"))),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)
    )
)]
#[get("/meetings/{id}/minutes")]
async fn get_minutes(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
    query: Deferred<Query<MinutesQuery>>,
) -> ApiResult<HttpResponse> {
    let format = match query?.into_inner().format {
        None => MinutesFormat::Json,
        Some(format) => {
            MinutesFormat::from_db(&format).map_err(|_| ApiError::validation("format", "must be json or markdown"))?
        }
    };
    let minutes = service::minutes(&state, &me.0, *id).await?;
    Ok(match format {
        MinutesFormat::Json => HttpResponse::Ok().json(minutes),
        MinutesFormat::Markdown => HttpResponse::Ok()
            .content_type("text/markdown; charset=utf-8")
            .body(minutes.markdown),
    })
}

/// Files the minutes as a document of the owner committee (a new version when filed again).
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 201, body = crate::documents::dto::DocumentResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem))
)]
#[post("/meetings/{id}/minutes/document")]
async fn file_minutes(state: web::Data<AppState>, me: CurrentMember, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    let document = service::file_minutes(&state, &me.0, *id).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/documents/{}", document.id)))
        .json(document))
}

fn calendar_response(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/calendar; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .body(body)
}

/// The meeting as an iCalendar file.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "text/calendar"), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/meetings/{id}/calendar.ics")]
async fn meeting_calendar(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
) -> ApiResult<HttpResponse> {
    let (meeting, _) = service::access(state.db.conn(), &me.0, *id).await?;
    Ok(calendar_response(calendar::render(
        &meeting.title.clone(),
        &[meeting],
        &state.settings.server.public_url,
    )))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The feed token from `POST /api/me/calendar-token`.
    #[param(min_length = 1)]
    pub token: String,
}

/// The caller's personal feed of every meeting they can see; authenticated by its token.
#[utoipa::path(
    context_path = "/api", tag = "meetings", params(FeedQuery),
    responses((status = 200, description = "text/calendar"), (status = 400, body = Problem), (status = 404, description = "unknown or revoked token", body = Problem))
)]
#[get("/me/calendar.ics")]
async fn personal_calendar(state: web::Data<AppState>, query: Deferred<Query<FeedQuery>>) -> ApiResult<HttpResponse> {
    let owner = calendar::feed_owner(&state, &query?.token).await?;
    let meetings = service::visible_meetings(state.db.conn(), &owner).await?;
    Ok(calendar_response(calendar::render(
        "D&C Ports Network",
        &meetings,
        &state.settings.server.public_url,
    )))
}

/// Creates or replaces the caller's calendar feed URL (the old one stops working).
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])),
    responses((status = 201, body = CalendarTokenResponse), (status = 401, body = Problem))
)]
#[post("/me/calendar-token")]
async fn create_calendar_token(state: web::Data<AppState>, me: CurrentMember) -> ApiResult<HttpResponse> {
    let token = calendar::issue_feed_token(&state, &me.0).await?;
    let url = state.settings.link("/api/me/calendar.ics", &token);
    // The resource made is the feed: `Location` is its address, as every 201's is (API.md).
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, url.clone()))
        .json(CalendarTokenResponse { token, url }))
}

/// Revokes the caller's calendar feed.
#[utoipa::path(
    context_path = "/api", tag = "meetings", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem))
)]
#[delete("/me/calendar-token")]
async fn revoke_calendar_token(state: web::Data<AppState>, me: CurrentMember) -> ApiResult<HttpResponse> {
    calendar::revoke_feed_token(&state, &me.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
