//! Indicator endpoints: submission by members, definitions and validation by the secretariat.

use actix_web::{HttpResponse, get, http::header, patch, post, web};

use super::service::{self, *};
use crate::auth::{CurrentMember, Secretariat};
use crate::error::{ApiError, ApiResult, Deferred, Problem};
use crate::input::{Json, Query};
use crate::pagination::{PageQuery, Paginated};
use crate::preconditions::{IfMatch, etag};
use crate::state::AppState;

pub fn configure_member(cfg: &mut web::ServiceConfig) {
    cfg.service(submit_value);
}

pub fn configure_admin(cfg: &mut web::ServiceConfig) {
    cfg.service(create_definition)
        .service(list_definitions)
        .service(update_definition)
        .service(list_values_for_review)
        .service(validate_value)
        .service(reject_value);
}

/// A port community's member submits a value for one of its ports (validated before it is public).
#[utoipa::path(context_path = "/api", tag = "indicators", security(("bearer" = [])), params(("code" = String, Path)), request_body = ValueRequest,
    responses((status = 201, body = ValueResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[post("/indicators/{code}/values")]
async fn submit_value(
    state: web::Data<AppState>,
    me: CurrentMember,
    code: web::Path<String>,
    body: Deferred<Json<ValueRequest>>,
) -> ApiResult<HttpResponse> {
    let value = service::submit(&state, &me.0, &code, body?.into_inner()).await?;
    // Where the value is published once the secretariat validates it (as the definition's).
    let location = format!(
        "/api/public/indicators/{}/values?port={}&year={}",
        value.indicator, value.port_id, value.year
    );
    Ok(HttpResponse::Created()
        .insert_header(etag(value.version))
        .insert_header((header::LOCATION, location))
        .json(value))
}

/// Defines an indicator.
#[utoipa::path(context_path = "/api/admin", tag = "indicators", security(("bearer" = [])), request_body = DefinitionRequest,
    responses((status = 201, body = DefinitionResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
#[post("/indicators")]
async fn create_definition(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    body: Deferred<Json<DefinitionRequest>>,
) -> ApiResult<HttpResponse> {
    let definition = service::create_definition(&state, actor.id(), body?.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/public/indicators/{}", definition.code)))
        .json(definition))
}

/// Every indicator definition, a page at a time.
#[utoipa::path(context_path = "/api/admin", tag = "indicators", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Paginated<DefinitionResponse>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[get("/indicators")]
async fn list_definitions(
    state: web::Data<AppState>,
    _: Secretariat,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let page = page?.page()?;
    Ok(HttpResponse::Ok().json(service::definitions_page(state.db.conn(), page).await?))
}

/// Changes a definition (not its code).
#[utoipa::path(context_path = "/api/admin", tag = "indicators", security(("bearer" = [])), params(("code" = String, Path)), request_body = UpdateDefinitionRequest,
    responses((status = 200, body = DefinitionResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[patch("/indicators/{code}")]
async fn update_definition(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    code: web::Path<String>,
    body: Deferred<Json<UpdateDefinitionRequest>>,
) -> ApiResult<HttpResponse> {
    let body = body?.into_inner();
    Ok(HttpResponse::Ok().json(service::update_definition(&state, actor.id(), &code, body).await?))
}

/// Values by review status (submitted by default).
#[utoipa::path(context_path = "/api/admin", tag = "indicators", security(("bearer" = [])), params(ReviewFilter, PageQuery),
    responses((status = 200, body = Paginated<ValueResponse>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[get("/indicators/values")]
async fn list_values_for_review(
    state: web::Data<AppState>,
    _: Secretariat,
    filter: Deferred<Query<ReviewFilter>>,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let page = page?.page()?;
    let status = match filter?.status.as_deref() {
        None => ValueStatus::Submitted,
        Some(status) => ValueStatus::from_db(status)
            .map_err(|_| ApiError::validation("status", "must be submitted, validated or rejected"))?,
    };
    Ok(HttpResponse::Ok().json(service::review_queue(state.db.conn(), status, page).await?))
}

/// Validates a value: it becomes public. `If-Match` names the version reviewed.
#[utoipa::path(context_path = "/api/admin", tag = "indicators", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = ValueResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)))]
#[post("/indicators/values/{id}/validate")]
async fn validate_value(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    id: web::Path<i32>,
    if_match: Deferred<IfMatch>,
) -> ApiResult<HttpResponse> {
    reviewed(service::review(&state, actor.id(), *id, if_match?, true).await?)
}

/// Rejects a value. `If-Match` names the version reviewed.
#[utoipa::path(context_path = "/api/admin", tag = "indicators", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = ValueResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)))]
#[post("/indicators/values/{id}/reject")]
async fn reject_value(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    id: web::Path<i32>,
    if_match: Deferred<IfMatch>,
) -> ApiResult<HttpResponse> {
    reviewed(service::review(&state, actor.id(), *id, if_match?, false).await?)
}

fn reviewed(value: ValueResponse) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().insert_header(etag(value.version)).json(value))
}
