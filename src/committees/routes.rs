//! `/api/committees` (the caller's) and `/api/admin/committees` (the secretariat's).

use actix_web::{HttpResponse, delete, get, http::header, patch, post, put, web};

use super::dto::*;
use super::service;
use crate::auth::{ClientIp, CurrentMember, Secretariat};
use crate::error::{ApiResult, Deferred, Problem};
use crate::input::{Json, Query};
use crate::pagination::{PageQuery, Paginated};
use crate::preconditions::{IfMatch, etag};
use crate::state::AppState;

pub fn configure_member(cfg: &mut web::ServiceConfig) {
    cfg.service(list_committees).service(get_committee);
}

pub fn configure_admin(cfg: &mut web::ServiceConfig) {
    cfg.service(create_committee)
        .service(update_committee)
        .service(put_membership)
        .service(delete_membership);
}

/// The caller's committees; every committee for the secretariat.
#[utoipa::path(
    context_path = "/api", tag = "committees", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Paginated<CommitteeResponse>), (status = 400, body = Problem), (status = 401, body = Problem))
)]
#[get("/committees")]
async fn list_committees(
    state: web::Data<AppState>,
    me: CurrentMember,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let page = page?.page()?;
    let rows = service::list_mine(&state, &me.0, page).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_rows(rows, page, |c| c.id.into(), |c| c)))
}

/// One committee with its members; 404 unless the caller belongs to it (or is the secretariat).
#[utoipa::path(
    context_path = "/api", tag = "committees", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = CommitteeDetailResponse), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/committees/{id}")]
async fn get_committee(state: web::Data<AppState>, me: CurrentMember, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    let detail = service::detail(&state, &me.0, *id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(detail.committee.version))
        .json(detail))
}

/// Creates a committee.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), request_body = CreateCommitteeRequest,
    responses(
        (status = 201, body = CommitteeResponse), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem),
    )
)]
#[post("/committees")]
async fn create_committee(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    ip: ClientIp,
    body: Deferred<Json<CreateCommitteeRequest>>,
) -> ApiResult<HttpResponse> {
    let committee = service::create(&state, &actor, body?.into_inner(), ip.to_text()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/committees/{}", committee.id)))
        .insert_header(etag(committee.version))
        .json(CommitteeResponse::new(committee, None)))
}

/// Renames, describes or archives a committee; `If-Match` guards against lost updates.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    request_body = UpdateCommitteeRequest,
    responses(
        (status = 200, body = CommitteeResponse), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem),
    )
)]
#[patch("/committees/{id}")]
async fn update_committee(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    ip: ClientIp,
    id: web::Path<i32>,
    if_match: Deferred<IfMatch>,
    body: Deferred<Json<UpdateCommitteeRequest>>,
) -> ApiResult<HttpResponse> {
    let committee = service::update(&state, &actor, *id, if_match?, body?.into_inner(), ip.to_text()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(committee.version))
        .json(CommitteeResponse::new(committee, None)))
}

/// Adds a member to the committee, or changes their role.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])),
    params(("id" = i32, Path), ("member_id" = i32, Path)), request_body = MembershipRequest,
    responses(
        (status = 200, body = MembershipResponse), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
    )
)]
#[put("/committees/{id}/members/{member_id}")]
async fn put_membership(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    ip: ClientIp,
    path: web::Path<(i32, i32)>,
    body: Deferred<Json<MembershipRequest>>,
) -> ApiResult<HttpResponse> {
    let (committee_id, member_id) = path.into_inner();
    let role = body?.role;
    let membership = service::put_membership(&state, &actor, committee_id, member_id, role, ip.to_text()).await?;
    Ok(HttpResponse::Ok().json(membership))
}

/// Removes a member from the committee; their sockets stop receiving its events at once.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])),
    params(("id" = i32, Path), ("member_id" = i32, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem))
)]
#[delete("/committees/{id}/members/{member_id}")]
async fn delete_membership(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    ip: ClientIp,
    path: web::Path<(i32, i32)>,
) -> ApiResult<HttpResponse> {
    let (committee_id, member_id) = path.into_inner();
    service::remove_membership(&state, &actor, committee_id, member_id, ip.to_text()).await?;
    Ok(HttpResponse::NoContent().finish())
}
