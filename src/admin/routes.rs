//! `/api/admin/members` and `/api/admin/audit`.

use actix_web::{HttpResponse, get, http::header, patch, post, web};

use super::dto::*;
use super::service;
use crate::auth::dto::MemberResponse;
use crate::auth::{ClientIp, Secretariat};
use crate::error::{ApiResult, Deferred, Problem};
use crate::input::{Json, Query};
use crate::pagination::{PageQuery, Paginated};
use crate::preconditions::{IfMatch, etag};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create_member)
        .service(list_members)
        .service(get_member)
        .service(update_member)
        .service(resend_invitation)
        .service(send_password_reset)
        .service(list_audit);
}

/// Invites a new member (status `invited`; the invitation mail is queued).
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), request_body = CreateMemberRequest,
    responses(
        (status = 201, body = MemberResponse),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "conflict: the email is taken", body = Problem),
    )
)]
#[post("/members")]
async fn create_member(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    ip: ClientIp,
    body: Deferred<Json<CreateMemberRequest>>,
) -> ApiResult<HttpResponse> {
    let member = service::create_member(&state, &actor, body?.into_inner(), ip.to_text()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/admin/members/{}", member.id)))
        .json(MemberResponse::from(member)))
}

/// Lists accounts, filtered by text, status or committee.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), params(MemberFilter, PageQuery),
    responses((status = 200, body = Paginated<MemberResponse>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem))
)]
#[get("/members")]
async fn list_members(
    state: web::Data<AppState>,
    _: Secretariat,
    filter: Deferred<Query<MemberFilter>>,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let (filter, page) = (filter?, page?.page()?);
    let rows = service::list_members(&state, &filter, page).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_rows(rows, page, |m| m.id.into(), MemberResponse::from)))
}

/// One account.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = MemberResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem))
)]
#[get("/members/{id}")]
async fn get_member(state: web::Data<AppState>, _: Secretariat, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    let member = service::get_member(&state, *id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(member.version))
        .json(MemberResponse::from(member)))
}

/// Renames, changes the role or organization, suspends or reactivates an account.
/// Suspending revokes every session and closes the member's sockets.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)), request_body = UpdateMemberRequest,
    responses((status = 200, body = MemberResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem))
)]
#[patch("/members/{id}")]
async fn update_member(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    ip: ClientIp,
    id: web::Path<i32>,
    if_match: Deferred<IfMatch>,
    body: Deferred<Json<UpdateMemberRequest>>,
) -> ApiResult<HttpResponse> {
    let member = service::update_member(&state, &actor, *id, if_match?, body?.into_inner(), ip.to_text()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(member.version))
        .json(MemberResponse::from(member)))
}

/// Sends a fresh invitation; the previous link stops working.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 202), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem))
)]
#[post("/members/{id}/invitation")]
async fn resend_invitation(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    ip: ClientIp,
    id: web::Path<i32>,
) -> ApiResult<HttpResponse> {
    service::resend_invitation(&state, &actor, *id, ip.to_text()).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Mails the member a password-reset link.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 202), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem))
)]
#[post("/members/{id}/password-reset")]
async fn send_password_reset(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    ip: ClientIp,
    id: web::Path<i32>,
) -> ApiResult<HttpResponse> {
    service::send_password_reset(&state, &actor, *id, ip.to_text()).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// The audit log, newest first.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), params(AuditFilter, PageQuery),
    responses((status = 200, body = Paginated<AuditEntryResponse>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem))
)]
#[get("/audit")]
async fn list_audit(
    state: web::Data<AppState>,
    _: Secretariat,
    filter: Deferred<Query<AuditFilter>>,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let (filter, page) = (filter?, page?.page()?);
    let rows = service::list_audit(&state, &filter, page).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_rows(
        rows,
        page,
        |e| e.id.into(),
        AuditEntryResponse::from,
    )))
}
