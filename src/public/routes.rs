//! `/api/public/*`: GET only, no authentication, published data only.

use actix_web::{HttpRequest, HttpResponse, get, web};
use entity::{document_version, publication};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::directory::dto::DirectoryEntry;
use crate::directory::dto::DirectoryFilter;
use crate::documents::dto::PublicationStatus;
use crate::error::{ApiError, ApiResult, Deferred, Problem};
use crate::indicators::service::{ValueFilter, ValueStatus};
use crate::input::Query;
use crate::pagination::{PageQuery, Paginated};
use crate::public::data;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_publications)
        .service(get_publication)
        .service(download_publication)
        .service(list_countries)
        .service(list_port_communities)
        .service(get_port)
        .service(directory)
        .service(public_meetings)
        .service(list_indicators)
        .service(get_indicator)
        .service(indicator_values);
}

async fn approved(state: &AppState, id: i32) -> ApiResult<(publication::Model, document_version::Model)> {
    let row = publication::Entity::find_by_id(id)
        .filter(publication::Column::Status.eq(PublicationStatus::Approved.as_str()))
        .one(state.db.conn())
        .await?
        .ok_or(ApiError::NotFound)?;
    let version = document_version::Entity::find()
        .filter(document_version::Column::DocumentId.eq(row.document_id))
        .filter(document_version::Column::Number.eq(row.version_number))
        .one(state.db.conn())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((row, version))
}

/// Approved publications, newest first.
#[utoipa::path(
    get, context_path = "/api/public", tag = "public", params(data::PublicPublicationFilter, PageQuery),
    responses((status = 429, description = "rate_limited", body = Problem), (status = 200, body = Paginated<data::PublicPublication>), (status = 400, body = Problem))
)]
#[get("/publications")]
async fn list_publications(
    state: web::Data<AppState>,
    filter: Deferred<Query<data::PublicPublicationFilter>>,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let (filter, page) = (filter?, page?.page()?);
    let listed = data::approved_publications(state.db.conn(), &filter, page).await?;
    Ok(HttpResponse::Ok().json(listed.map(|row| data::public_publication(row, None))))
}

/// One approved publication.
#[utoipa::path(
    get, context_path = "/api/public", tag = "public", params(("id" = i32, Path)),
    responses((status = 429, description = "rate_limited", body = Problem), (status = 200, body = data::PublicPublication), (status = 404, body = Problem))
)]
#[get("/publications/{id}")]
async fn get_publication(state: web::Data<AppState>, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    let (row, version) = approved(&state, *id).await?;
    Ok(HttpResponse::Ok().json(data::public_publication(row, Some(version))))
}

/// The file of an approved publication (the approved version only).
#[utoipa::path(
    get, context_path = "/api/public", tag = "public", params(("id" = i32, Path)),
    responses((status = 429, description = "rate_limited", body = Problem), (status = 200, description = "the file"), (status = 206, description = "a range"), (status = 304), (status = 400, description = "an If-Match that cannot be read", body = Problem), (status = 404, body = Problem), (status = 412, body = Problem), (status = 416, body = Problem), (status = 503, description = "content_unavailable", body = Problem))
)]
#[get("/publications/{id}/file")]
async fn download_publication(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<i32>,
) -> ApiResult<HttpResponse> {
    let (_, version) = approved(&state, *id).await?;
    crate::documents::download::serve_file(
        &state,
        &request,
        &version.sha256,
        &version.content_type,
        &version.file_name,
    )
    .await
}

/// The Network's member countries.
#[utoipa::path(get, context_path = "/api/public", tag = "public", params(PageQuery), responses((status = 429, description = "rate_limited", body = Problem), (status = 200, body = Paginated<data::CountryResponse>), (status = 400, body = Problem)))]
#[get("/countries")]
async fn list_countries(state: web::Data<AppState>, page: Deferred<Query<PageQuery>>) -> ApiResult<HttpResponse> {
    let page = page?.page_by::<String>()?;
    let countries = data::countries(state.db.conn()).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_list(countries, page, |c| c.code.clone())?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CountryFilter {
    pub country: Option<String>,
}

/// Logistic port communities with their ports.
#[utoipa::path(get, context_path = "/api/public", tag = "public", params(CountryFilter, PageQuery), responses((status = 429, description = "rate_limited", body = Problem), (status = 200, body = Paginated<data::PortCommunityResponse>), (status = 400, body = Problem)))]
#[get("/port-communities")]
async fn list_port_communities(
    state: web::Data<AppState>,
    filter: Deferred<Query<CountryFilter>>,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let (filter, page) = (filter?, page?.page()?);
    let communities = data::port_communities(state.db.conn(), filter.country.as_deref()).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_list(communities, page, |c| i64::from(c.id))?))
}

/// One port, with its community and validated indicator values.
#[utoipa::path(get, context_path = "/api/public", tag = "public", params(("id" = i32, Path)), responses((status = 429, description = "rate_limited", body = Problem), (status = 200, body = data::PortResponse), (status = 404, body = Problem)))]
#[get("/ports/{id}")]
async fn get_port(state: web::Data<AppState>, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(data::port(state.db.conn(), *id).await?))
}

/// Public contacts of ministries, port authorities and other member organizations.
#[utoipa::path(get, context_path = "/api/public", tag = "public", params(DirectoryFilter, PageQuery),
    responses((status = 429, description = "rate_limited", body = Problem), (status = 200, body = Paginated<DirectoryEntry>), (status = 400, body = Problem)))]
#[get("/directory")]
async fn directory(
    state: web::Data<AppState>,
    filter: Deferred<Query<DirectoryFilter>>,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let (filter, page) = (filter?, page?.page()?);
    let rows = crate::directory::service::public_directory(state.db.conn(), &filter, page).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_rows(rows, page, |e| e.id.into(), |e| e)))
}

/// Regional meetings marked public: title, dates, place and the published agenda.
#[utoipa::path(get, context_path = "/api/public", tag = "public", params(PageQuery), responses((status = 429, description = "rate_limited", body = Problem), (status = 200, body = Paginated<data::PublicMeeting>), (status = 400, body = Problem)))]
#[get("/meetings")]
async fn public_meetings(state: web::Data<AppState>, page: Deferred<Query<PageQuery>>) -> ApiResult<HttpResponse> {
    let page = page?.page_by::<data::MeetingKey>()?;
    Ok(HttpResponse::Ok().json(data::public_meetings(state.db.conn(), page).await?))
}

/// Indicator definitions.
#[utoipa::path(get, context_path = "/api/public", tag = "public", params(PageQuery), responses((status = 429, description = "rate_limited", body = Problem), (status = 200, body = Paginated<crate::indicators::service::DefinitionResponse>), (status = 400, body = Problem)))]
#[get("/indicators")]
async fn list_indicators(state: web::Data<AppState>, page: Deferred<Query<PageQuery>>) -> ApiResult<HttpResponse> {
    let page = page?.page_by::<String>()?;
    let definitions = crate::indicators::service::definitions(state.db.conn()).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_list(definitions, page, |d| d.code.clone())?))
}

/// One indicator's definition.
#[utoipa::path(get, context_path = "/api/public", tag = "public", params(("code" = String, Path)), responses((status = 429, description = "rate_limited", body = Problem), (status = 200, body = crate::indicators::service::DefinitionResponse), (status = 404, body = Problem)))]
#[get("/indicators/{code}")]
async fn get_indicator(state: web::Data<AppState>, code: web::Path<String>) -> ApiResult<HttpResponse> {
    let definition = crate::indicators::service::definition(state.db.conn(), &code).await?;
    Ok(HttpResponse::Ok().json(crate::indicators::service::DefinitionResponse::from(definition)))
}

/// Validated values of an indicator: across ports for a `year`, or one `port` across years.
#[utoipa::path(get, context_path = "/api/public", tag = "public", params(("code" = String, Path), ValueFilter, PageQuery),
    responses((status = 429, description = "rate_limited", body = Problem), (status = 200, body = Paginated<crate::indicators::service::ValueResponse>), (status = 400, body = Problem), (status = 404, body = Problem)))]
#[get("/indicators/{code}/values")]
async fn indicator_values(
    state: web::Data<AppState>,
    code: web::Path<String>,
    filter: Deferred<Query<ValueFilter>>,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let (filter, page) = (filter?, page?.page_by()?);
    let values =
        crate::indicators::service::values(state.db.conn(), &code, ValueStatus::Validated, &filter, page).await?;
    Ok(HttpResponse::Ok().json(values))
}
