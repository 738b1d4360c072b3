//! `/api/admin/directory/*`: the secretariat manages the directory.

use actix_web::{HttpRequest, HttpResponse, delete, get, http::header, patch, post, web};

use super::dto::*;
use super::service;
use crate::auth::Secretariat;
use crate::error::{ApiError, ApiResult, Deferred, Problem};
use crate::input::{Json, Query};
use crate::pagination::{PageQuery, Paginated};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_organizations)
        .service(create_organization)
        .service(get_organization)
        .service(update_organization)
        .service(delete_organization)
        .service(list_contacts)
        .service(create_contact)
        .service(get_contact)
        .service(update_contact)
        .service(delete_contact)
        .service(export_directory)
        .service(import_directory);
}

/// Organizations of the directory.
#[utoipa::path(context_path = "/api/admin", tag = "directory", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Paginated<OrganizationResponse>), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[get("/directory/organizations")]
async fn list_organizations(
    state: web::Data<AppState>,
    _: Secretariat,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let page = page?.page()?;
    let rows = service::list_organizations(&state, page).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_rows(
        rows,
        page,
        |o| o.id.into(),
        OrganizationResponse::from,
    )))
}

/// Adds an organization.
#[utoipa::path(context_path = "/api/admin", tag = "directory", security(("bearer" = [])), request_body = OrganizationRequest,
    responses((status = 201, body = OrganizationResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[post("/directory/organizations")]
async fn create_organization(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    body: Deferred<Json<OrganizationRequest>>,
) -> ApiResult<HttpResponse> {
    let org = service::save_organization(&state, actor.id(), None, body?.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/admin/directory/organizations/{}", org.id),
        ))
        .json(org))
}

/// One organization.
#[utoipa::path(context_path = "/api/admin", tag = "directory", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = OrganizationResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[get("/directory/organizations/{id}")]
async fn get_organization(state: web::Data<AppState>, _: Secretariat, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(OrganizationResponse::from(
        service::get_organization(&state, *id).await?,
    )))
}

/// Replaces an organization's fields.
#[utoipa::path(context_path = "/api/admin", tag = "directory", security(("bearer" = [])), params(("id" = i32, Path)), request_body = OrganizationRequest,
    responses((status = 200, body = OrganizationResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[patch("/directory/organizations/{id}")]
async fn update_organization(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    id: web::Path<i32>,
    body: Deferred<Json<OrganizationRequest>>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::save_organization(&state, actor.id(), Some(*id), body?.into_inner()).await?))
}

/// Removes an organization and its contacts.
#[utoipa::path(context_path = "/api/admin", tag = "directory", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[delete("/directory/organizations/{id}")]
async fn delete_organization(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    id: web::Path<i32>,
) -> ApiResult<HttpResponse> {
    service::delete_organization(&state, actor.id(), *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Contacts of the directory, public or not.
#[utoipa::path(context_path = "/api/admin", tag = "directory", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Paginated<ContactResponse>), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[get("/directory/contacts")]
async fn list_contacts(
    state: web::Data<AppState>,
    _: Secretariat,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let page = page?.page()?;
    let rows = service::list_contacts(&state, page).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_rows(rows, page, |c| c.id.into(), ContactResponse::from)))
}

/// Adds a contact.
#[utoipa::path(context_path = "/api/admin", tag = "directory", security(("bearer" = [])), request_body = ContactRequest,
    responses((status = 201, body = ContactResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[post("/directory/contacts")]
async fn create_contact(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    body: Deferred<Json<ContactRequest>>,
) -> ApiResult<HttpResponse> {
    let contact = service::save_contact(&state, actor.id(), None, body?.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/admin/directory/contacts/{}", contact.id),
        ))
        .json(contact))
}

/// One contact.
#[utoipa::path(context_path = "/api/admin", tag = "directory", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = ContactResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[get("/directory/contacts/{id}")]
async fn get_contact(state: web::Data<AppState>, _: Secretariat, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(ContactResponse::from(service::get_contact(&state, *id).await?)))
}

/// Replaces a contact's fields.
#[utoipa::path(context_path = "/api/admin", tag = "directory", security(("bearer" = [])), params(("id" = i32, Path)), request_body = ContactRequest,
    responses((status = 200, body = ContactResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[patch("/directory/contacts/{id}")]
async fn update_contact(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    id: web::Path<i32>,
    body: Deferred<Json<ContactRequest>>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::save_contact(&state, actor.id(), Some(*id), body?.into_inner()).await?))
}

/// Removes a contact.
#[utoipa::path(context_path = "/api/admin", tag = "directory", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[delete("/directory/contacts/{id}")]
async fn delete_contact(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    id: web::Path<i32>,
) -> ApiResult<HttpResponse> {
    service::delete_contact(&state, actor.id(), *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The whole directory as CSV, for programs or (`?for=spreadsheet`) for a spreadsheet.
#[utoipa::path(context_path = "/api/admin", tag = "directory", security(("bearer" = [])), params(ExportQuery),
    responses((status = 200, description = "text/csv"), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[get("/directory/export.csv")]
async fn export_directory(
    state: web::Data<AppState>,
    _: Secretariat,
    query: Deferred<Query<ExportQuery>>,
) -> ApiResult<HttpResponse> {
    let reader = query?.reader;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"directory.csv\""))
        .body(service::export_csv(&state, reader).await?))
}

/// Imports contacts from CSV (the export's columns, `Content-Type: text/csv` in UTF-8, separated by
/// commas or, as spreadsheets in Spanish or Portuguese save it, semicolons); all rows or none.
#[utoipa::path(context_path = "/api/admin", tag = "directory", security(("bearer" = [])), request_body(content_type = "text/csv", content = String),
    responses((status = 200, body = ImportReport), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem)))]
#[post("/directory/import")]
async fn import_directory(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    request: HttpRequest,
    body: Deferred<web::Bytes>,
) -> ApiResult<HttpResponse> {
    let body = body?;
    let csv = crate::input::utf8_media_type(request.headers()).is_some_and(|mime| mime.essence_str() == "text/csv");
    if !csv {
        return Err(ApiError::UnsupportedMediaType("text/csv, in UTF-8"));
    }
    Ok(HttpResponse::Ok().json(service::import_csv(&state, actor.id(), &body).await?))
}
